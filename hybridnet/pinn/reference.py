"""Reference solutions of the built-in PDE problems that need more than a one-line formula.

Pure numpy/scipy: every function takes points ``x`` as an ``(n, D)`` array (one point a row,
columns as documented per function) and returns the solution as an ``(n,)`` float64 array.

- :func:`burgers_solution`: viscous Burgers, Cole-Hopf transform + Gauss-Hermite quadrature.
- :func:`black_scholes_call`: European call, Black-Scholes formula.

The one-line closed forms (Poisson, heat, HJB) live beside their problems in
:mod:`hybridnet.pinn.problems`.
"""

import functools
import math

import numpy as np
from scipy.special import ndtr, roots_hermite

__all__ = ["black_scholes_call", "burgers_solution"]


def _points(x, function, n_columns, columns):
    """Return ``x`` as a float64 ``(n, n_columns)`` array or raise a ValueError that says why."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_columns:
        raise ValueError(f"{function}: x must be a 2-D array of shape (n, {n_columns}) with "
                         f"columns {columns}; got shape {x.shape}")
    return x


# ----------------------------------------------------------------------------- Burgers


@functools.lru_cache(maxsize=8)
def _hermite_rule(n):
    """Gauss-Hermite nodes and log-weights (weight ``exp(-z^2)``), cached per order."""
    # scipy's rule stays finite for large n (numpy's hermgauss overflows from n ~ 360 on).
    nodes, weights = roots_hermite(n)
    # The outermost weights underflow to 0 for large n; log 0 = -inf just drops those nodes,
    # whose true weight (< 1e-308) is far below anything the integrand's exp(+-1/(2 pi nu))
    # range could lift back into double precision.
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    nodes.setflags(write=False)
    log_weights.setflags(write=False)
    return nodes, log_weights


def _default_quadrature_order(viscosity):
    # Measured against orders of 1000: the error reaches rounding level from about 80 nodes for
    # nu = 0.01/pi, 200 for nu = 0.003/pi and 300 for nu = 0.001/pi (the heat kernel gets
    # narrower relative to the peaks of f, which sit ever further out in the node variable z).
    # 0.3/nu keeps a factor >= 1.5 above those; 200 is a floor for large viscosities.
    return max(200, math.ceil(0.3 / viscosity))


def burgers_solution(x, viscosity=0.01 / np.pi, n_quadrature=None, chunk_size=8192):
    """Viscous Burgers' equation with ``u(x, 0) = -sin(pi x)``, by the Cole-Hopf transform.

    Solves ``u_t + u u_x = nu u_xx`` on x in [-1, 1], t >= 0, with ``u(x, 0) = -sin(pi x)`` and
    ``u(-1, t) = u(1, t) = 0``. With ``u = -2 nu phi_x / phi`` and ``phi`` solving the heat
    equation ``phi_t = nu phi_xx`` from ``phi(x, 0) = exp(-(1/(2 nu)) int_0^x u(s, 0) ds)``,
    which is proportional to ``f(x) = exp(-cos(pi x) / (2 pi nu))``, convolution with the heat
    kernel gives

    ``u(x, t) = -int sin(pi (x - eta)) f(x - eta) exp(-eta^2 / (4 nu t)) d eta
    / int f(x - eta) exp(-eta^2 / (4 nu t)) d eta``

    (Basdevant et al., 1986). The initial data extend to the whole line 2-periodically and are
    odd about x = -1, 0 and 1, so the solution is too and the boundary values are 0. With
    ``eta = sqrt(4 nu t) z`` both integrals take Gauss-Hermite form; ``f`` spans
    ``exp(+-1/(2 pi nu))`` (``exp(+-50)`` by default), so the exponent is shifted by its maximum
    per point before exponentiating and the ratio stays finite.

    Parameters
    ----------
    x : array_like, shape (n, 2)
        Points, columns (x, t) with t >= 0; x may lie anywhere (the solution is 2-periodic).
    viscosity : float, default=0.01/pi
        nu > 0.
    n_quadrature : int, optional
        Gauss-Hermite order. Default ``max(200, ceil(0.3 / nu))``: 200 for the default
        viscosity, where the values agree with a 1000-node rule and with adaptive quadrature
        to about 1e-14 on [-1, 1] x (0, 1], shock included.
    chunk_size : int, default=8192
        Points evaluated at once; bounds the ``chunk_size x n_quadrature`` work arrays.

    Returns
    -------
    ndarray, shape (n,)
        u at the points; exactly ``-sin(pi x)`` where t = 0.

    Raises
    ------
    ValueError
        If x is not ``(n, 2)``, some t < 0 or is not finite, or viscosity <= 0.

    Examples
    --------
    >>> u = burgers_solution([[0.5, 0.0], [0.0, 0.5], [-1.0, 0.7]])
    >>> print(np.round(u, 12) + 0.0)
    [-1.  0.  0.]
    """
    x = _points(x, "burgers_solution", 2, "(x, t)")
    if not viscosity > 0:
        raise ValueError(f"burgers_solution: viscosity must be > 0; got {viscosity}")
    position, time = x[:, 0], x[:, 1]
    if not np.all(np.isfinite(time) & (time >= 0)):
        raise ValueError("burgers_solution: t (column 1) must be finite and >= 0")
    if n_quadrature is None:
        n_quadrature = _default_quadrature_order(viscosity)
    nodes, log_weights = _hermite_rule(int(n_quadrature))

    u = -np.sin(np.pi * position)  # the initial condition, kept exactly where t = 0
    inner = np.flatnonzero(time > 0)
    scale = 1.0 / (2.0 * np.pi * viscosity)
    for start in range(0, inner.size, chunk_size):
        index = inner[start:start + chunk_size]
        width = np.sqrt(4.0 * viscosity * time[index])
        shifted = position[index, None] - width[:, None] * nodes  # x - eta at every node
        exponent = log_weights - scale * np.cos(np.pi * shifted)
        # Shifting by the per-point maximum makes the largest term exactly 1: no overflow, and
        # the denominator is >= 1, so the ratio is always well defined.
        exponent -= exponent.max(axis=1, keepdims=True)
        weight = np.exp(exponent)
        u[index] = -(np.sin(np.pi * shifted) * weight).sum(axis=1) / weight.sum(axis=1)
    return u


# ----------------------------------------------------------------------------- Black-Scholes


def black_scholes_call(x, strike=1.0, rate=0.05, volatility=0.2, maturity=1.0):
    """Price of a European call under Black-Scholes.

    Solves ``V_t + sigma^2 S^2 V_SS / 2 + r S V_S - r V = 0`` for t < T with the terminal payoff
    ``V(S, T) = max(S - K, 0)``: ``V = S N(d1) - K exp(-r tau) N(d2)`` with ``tau = T - t``,
    ``d1 = (log(S / K) + (r + sigma^2 / 2) tau) / (sigma sqrt(tau))`` and
    ``d2 = d1 - sigma sqrt(tau)``.

    Parameters
    ----------
    x : array_like, shape (n, 2)
        Points, columns (S, t): S >= 0 the asset price, t <= maturity calendar time.
    strike : float, default=1.0
        K > 0.
    rate : float, default=0.05
        Risk-free rate r.
    volatility : float, default=0.2
        sigma > 0.
    maturity : float, default=1.0
        T, the time of the payoff.

    Returns
    -------
    ndarray, shape (n,)
        V at the points; exactly the payoff where t = T and exactly 0 where S = 0.

    Raises
    ------
    ValueError
        If x is not ``(n, 2)``, some S < 0, some t > maturity, or strike or volatility <= 0.

    Examples
    --------
    >>> print(black_scholes_call([[0.0, 0.5], [1.5, 1.0], [0.5, 1.0]]))
    [0.  0.5 0. ]
    """
    x = _points(x, "black_scholes_call", 2, "(S, t)")
    if not (strike > 0 and volatility > 0):
        raise ValueError("black_scholes_call: strike and volatility must be > 0; "
                         f"got strike={strike}, volatility={volatility}")
    price, time = x[:, 0], x[:, 1]
    if np.any(price < 0) or np.any(time > maturity):
        raise ValueError("black_scholes_call: need S >= 0 (column 0) and t <= maturity "
                         f"(column 1, maturity={maturity})")
    value = np.maximum(price - strike, 0.0)  # the payoff, kept exactly where tau = 0
    tau = maturity - time
    # S = 0 is absorbing (V = 0, which the payoff already gives); excluding it also keeps
    # log(S / K) finite.
    inner = (tau > 0) & (price > 0)
    s, tau = price[inner], tau[inner]
    spread = volatility * np.sqrt(tau)
    d1 = (np.log(s / strike) + (rate + 0.5 * volatility**2) * tau) / spread
    value[inner] = s * ndtr(d1) - strike * np.exp(-rate * tau) * ndtr(d1 - spread)
    return value


# ----------------------------------------------------------------------------- heat
