"""Tests of the reference solutions in :mod:`hybridnet.pinn.reference`.

Each closed form is checked against its PDE by finite differences of the function itself, and
against its initial/terminal/boundary conditions; Burgers' quadrature is also checked for
convergence in the order, against adaptive quadrature of the Cole-Hopf integrals, and against
Basdevant et al.'s published maximum slope.
"""


import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import ndtr

from hybridnet.pinn import reference

NU = 0.01 / np.pi


def _grid(x_values, t_values):
    xx, tt = np.meshgrid(x_values, t_values)
    return np.column_stack([xx.ravel(), tt.ravel()])


def _central(f, x, column, h):
    """First and second central differences of ``f`` along one column of the points ``x``."""
    step = np.zeros(x.shape[1])
    step[column] = h
    up, mid, down = f(x + step), f(x), f(x - step)
    return (up - down) / (2 * h), (up - 2 * mid + down) / h**2


# ----------------------------------------------------------------------------- Burgers


def _burgers(x):
    return reference.burgers_solution(x)


def test_burgers_initial_condition_is_exact():
    x = _grid(np.linspace(-1, 1, 101), [0.0])
    np.testing.assert_array_equal(reference.burgers_solution(x), -np.sin(np.pi * x[:, 0]))


def test_burgers_boundary_values_vanish():
    t = np.linspace(0.0, 1.0, 51)
    u = reference.burgers_solution(np.concatenate([_grid([-1.0], t), _grid([1.0], t)]))
    np.testing.assert_allclose(u, 0.0, atol=1e-12)


def test_burgers_is_odd_in_x():
    x = _grid(np.linspace(0, 1, 57), np.linspace(0.05, 1, 20))
    mirrored = x * np.array([-1.0, 1.0])
    np.testing.assert_allclose(reference.burgers_solution(mirrored),
                               -reference.burgers_solution(x), atol=1e-12)


def test_burgers_satisfies_pde_at_smooth_points():
    # Away from t = 0 and from the shock at x = 0 (x = 0 itself is left out: every term is 0).
    x = _grid(np.linspace(-0.95, 0.95, 20), np.linspace(0.1, 0.95, 10))
    h = 1e-4
    u = _burgers(x)
    u_x, u_xx = _central(_burgers, x, 0, h)
    u_t, _ = _central(_burgers, x, 1, h)
    terms = np.abs(u_t) + np.abs(u * u_x) + np.abs(NU * u_xx)
    residual = np.abs(u_t + u * u_x - NU * u_xx)
    assert np.max(residual / terms) < 1e-4


def test_burgers_satisfies_pde_across_the_shock():
    # Inside the shock layer (width ~ nu) the terms are O(100); a finer step resolves them.
    x = _grid(np.linspace(-0.02, 0.02, 8), np.linspace(0.4, 1.0, 7))
    h = 1e-5
    u = _burgers(x)
    u_x, u_xx = _central(_burgers, x, 0, h)
    u_t, _ = _central(_burgers, x, 1, h)
    terms = np.abs(u_t) + np.abs(u * u_x) + np.abs(NU * u_xx)
    assert np.max(np.abs(u_t + u * u_x - NU * u_xx) / terms) < 1e-4


def test_burgers_quadrature_has_converged():
    x = _grid(np.linspace(-1, 1, 201), np.linspace(0.1, 1, 10))
    default = reference.burgers_solution(x)
    doubled = reference.burgers_solution(x, n_quadrature=400)
    assert np.max(np.abs(default - doubled)) < 1e-6


@pytest.mark.parametrize("viscosity", [0.1 / np.pi, 0.003 / np.pi])
def test_burgers_default_order_scales_with_viscosity(viscosity):
    x = _grid(np.linspace(-1, 1, 101), np.linspace(0.05, 1, 6))
    default = reference.burgers_solution(x, viscosity=viscosity)
    doubled = reference.burgers_solution(
        x, viscosity=viscosity, n_quadrature=2 * reference._default_quadrature_order(viscosity))
    assert np.max(np.abs(default - doubled)) < 1e-6


def _cole_hopf_by_adaptive_quadrature(x, t, viscosity):
    """The Cole-Hopf ratio integrated in eta by scipy's adaptive quadrature, independently."""
    def exponent(eta):
        return -eta**2 / (4 * viscosity * t) - np.cos(np.pi * (x - eta)) / (2 * np.pi * viscosity)

    shift = exponent(np.linspace(-3, 3, 20001)).max()  # keeps both integrands in range
    breaks = sorted({x - 1, x, x + 1, 0.0})
    options = {"points": breaks, "limit": 400, "epsabs": 0.0, "epsrel": 1e-12}
    numerator, _ = quad(lambda e: np.sin(np.pi * (x - e)) * np.exp(exponent(e) - shift),
                        -3, 3, **options)
    denominator, _ = quad(lambda e: np.exp(exponent(e) - shift), -3, 3, **options)
    return -numerator / denominator


def test_burgers_matches_adaptive_quadrature():
    points = np.array([[-0.6, 0.1], [0.3, 0.25], [0.004, 0.5], [-0.01, 1.0], [0.8, 0.9],
                       [0.002, 1 / np.pi]])
    expected = [_cole_hopf_by_adaptive_quadrature(x, t, NU) for x, t in points]
    np.testing.assert_allclose(reference.burgers_solution(points), expected, rtol=0,
                               atol=1e-9)


def test_burgers_maximum_slope_matches_basdevant():
    # Basdevant et al. (1986): for nu = 0.01/pi, max |u_x| = 152.00516, reached at x = 0,
    # t = 1.6037/pi.
    h = 1e-6
    t = 1.6037 / np.pi
    u = reference.burgers_solution(np.array([[h, t], [-h, t]]))
    assert abs(-(u[0] - u[1]) / (2 * h) - 152.00516) < 1e-3


def test_burgers_chunking_does_not_change_values():
    x = _grid(np.linspace(-1, 1, 31), np.linspace(0.0, 1, 7))
    np.testing.assert_array_equal(reference.burgers_solution(x, chunk_size=5),
                                  reference.burgers_solution(x))


def test_burgers_rejects_bad_input():
    with pytest.raises(ValueError, match=r"burgers_solution.*\(x, t\)"):
        reference.burgers_solution(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="burgers_solution"):
        reference.burgers_solution(np.zeros(2))
    with pytest.raises(ValueError, match=">= 0"):
        reference.burgers_solution(np.array([[0.0, -0.1]]))
    with pytest.raises(ValueError, match="viscosity"):
        reference.burgers_solution(np.array([[0.0, 0.1]]), viscosity=0.0)


# ----------------------------------------------------------------------------- Black-Scholes

STRIKE, RATE, SIGMA, MATURITY = 1.0, 0.05, 0.2, 1.0


def _call(x):
    return reference.black_scholes_call(x, strike=STRIKE, rate=RATE, volatility=SIGMA,
                                        maturity=MATURITY)


def _put(s, t):
    """European put by its own formula, ``K exp(-r tau) N(-d2) - S N(-d1)``."""
    tau = MATURITY - t
    d2 = (np.log(s / STRIKE) + (RATE - SIGMA**2 / 2) * tau) / (SIGMA * np.sqrt(tau))
    d1 = d2 + SIGMA * np.sqrt(tau)
    return STRIKE * np.exp(-RATE * tau) * ndtr(-d2) - s * ndtr(-d1)


def test_black_scholes_terminal_condition_is_exact():
    s = np.linspace(0, 3, 61)
    x = _grid(s, [MATURITY])
    np.testing.assert_array_equal(_call(x), np.maximum(s - STRIKE, 0))


def test_black_scholes_vanishes_at_zero_price():
    x = _grid([0.0], np.linspace(0, MATURITY, 11))
    np.testing.assert_array_equal(_call(x), 0.0)


def test_black_scholes_put_call_parity():
    x = _grid(np.linspace(0.05, 3, 40), np.linspace(0, 0.99, 12))
    s, t = x[:, 0], x[:, 1]
    np.testing.assert_allclose(_call(x) - _put(s, t), s - STRIKE * np.exp(-RATE * (MATURITY - t)),
                               rtol=0, atol=1e-13)


def test_black_scholes_satisfies_pde():
    # Interior points; near (K, T) the payoff's kink makes V_SS too large to difference.
    x = _grid(np.linspace(0.2, 2.0, 19), np.linspace(0.01, 0.9, 10))
    h = 1e-4
    s = x[:, 0]
    v = _call(x)
    v_s, v_ss = _central(_call, x, 0, h)
    v_t, _ = _central(_call, x, 1, h)
    residual = v_t + 0.5 * SIGMA**2 * s**2 * v_ss + RATE * s * v_s - RATE * v
    np.testing.assert_allclose(residual, 0.0, atol=1e-5)


def test_black_scholes_far_field_and_bounds():
    x = _grid([6.0], np.linspace(0, 0.9, 5))
    t = x[:, 1]
    np.testing.assert_allclose(_call(x), 6.0 - STRIKE * np.exp(-RATE * (MATURITY - t)),
                               atol=1e-12)
    x = _grid(np.linspace(0, 3, 31), np.linspace(0, 1, 11))
    v = _call(x)
    assert np.all(v >= np.maximum(x[:, 0] - STRIKE, 0) - 1e-15) and np.all(v <= x[:, 0])


def test_black_scholes_rejects_bad_input():
    with pytest.raises(ValueError, match=r"black_scholes_call.*\(S, t\)"):
        reference.black_scholes_call(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="maturity"):
        reference.black_scholes_call(np.array([[1.0, 1.5]]))
    with pytest.raises(ValueError, match="S >= 0"):
        reference.black_scholes_call(np.array([[-1.0, 0.5]]))
    with pytest.raises(ValueError, match="volatility"):
        reference.black_scholes_call(np.array([[1.0, 0.5]]), volatility=0.0)
