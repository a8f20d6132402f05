"""Built-in PDE problems, each with a reference solution.

Closed forms where they exist (Poisson, heat, HJB, Black-Scholes, Helmholtz on a holed plate,
Kovasznay flow, Laplace on a disk, the wave equation); Burgers' reference is the Cole-Hopf
solution evaluated by Gauss-Hermite quadrature (:mod:`hybridnet.pinn.reference`).
Residuals and solutions are module-level functions, so the problems pickle. Each problem
records how it was made (``PDE.builtin``), so :func:`hybridnet.save` stores it by name.
"""

import functools
import inspect
import math

import numpy as np
import torch

from .conditions import DirichletBC, InitialCondition, NeumannBC, TerminalCondition
from .domain import Box
from .geometry import Disk, Interval, Rectangle, SpaceTime
from .problem import PDE

BUILTIN = {}
"""The built-in problem factories by name (what :func:`hybridnet.load` may call)."""


def _builtin(factory):
    """Register ``factory`` and record on each PDE it makes its name and arguments."""

    @functools.wraps(factory)
    def make(*args, **kwargs):
        arguments = inspect.signature(factory).bind(*args, **kwargs)
        arguments.apply_defaults()
        pde = factory(*args, **kwargs)
        pde.builtin = (factory.__name__, dict(arguments.arguments))
        return pde

    BUILTIN[factory.__name__] = make
    return make

# ----------------------------------------------------------------------------- Poisson 2-D


def _poisson_source(x):
    return -2 * math.pi**2 * torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])


def _poisson_residual(x, d):
    return d.laplacian() - _poisson_source(x)


def _poisson_solution(x):
    return torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])


def _square_bubble(x, out):
    # Scaled to peak at 1, so the network's output stays of order one.
    return 16 * x[:, 0] * (1 - x[:, 0]) * x[:, 1] * (1 - x[:, 1]) * out


@_builtin
def poisson_2d(hard_constraint=False):
    """``Laplacian u = -2 pi^2 sin(pi x) sin(pi y)`` on the unit square, ``u = 0`` on the boundary.

    Exact solution ``sin(pi x) sin(pi y)``.

    Parameters
    ----------
    hard_constraint : bool, default=False
        Impose the boundary condition exactly with ``u = 16 x(1-x)y(1-y) N(x, y)`` instead of a
        boundary loss.

    Returns
    -------
    PDE

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives

    The exact solution satisfies the PDE and the boundary condition:

    >>> pde = problems.poisson_2d()
    >>> pde.domain, pde.conditions
    (Box([0.0, 0.0], [1.0, 1.0]), (DirichletBC(value=0.0, weight=1.0),))
    >>> g = torch.Generator().manual_seed(0)
    >>> x = pde.domain.sample_interior(64, g, torch.float64)
    >>> d = AutogradDerivatives().evaluate(pde.solution, x, space_axes=pde.domain.space_axes)
    >>> torch.allclose(pde.residual(x, d), torch.zeros_like(x[:, 0]), atol=1e-10)
    True
    >>> wall, = pde.conditions
    >>> edge = wall.sample(pde.domain, 64, g, torch.float64)
    >>> residual = wall.residual(edge, pde.solution(edge), None, pde.domain)
    >>> torch.allclose(residual, torch.zeros_like(residual), atol=1e-12)
    True

    With the hard constraint the boundary condition is built into u:

    >>> problems.poisson_2d(hard_constraint=True).conditions
    ()
    """
    if hard_constraint:
        return PDE(Box([0, 0], [1, 1]), _poisson_residual, solution=_poisson_solution,
                   output_transform=_square_bubble)
    return PDE(Box([0, 0], [1, 1]), _poisson_residual, [DirichletBC(0.0)],
               solution=_poisson_solution)


# ----------------------------------------------------------------------------- heat 1-D


def _heat_residual(x, d, diffusivity):
    # None: the diffusivity is the unknown coefficient of an inverse problem
    a = d.parameters["diffusivity"] if diffusivity is None else diffusivity
    return d.diff(1) - a * d.diff2(0)


def _heat_solution(x, diffusivity):
    return torch.exp(-diffusivity * math.pi**2 * x[:, 1]) * torch.sin(math.pi * x[:, 0])


def _heat_initial(x):
    return torch.sin(math.pi * x[:, 0])


@_builtin
def heat_1d(diffusivity=0.1, unknown_diffusivity=None):
    """``u_t = a u_xx`` on x in [0, 1], t in [0, 1]; ``u(x, 0) = sin(pi x)``, ``u = 0`` at x = 0, 1.

    Columns (x, t). Exact solution ``exp(-a pi^2 t) sin(pi x)``.

    Parameters
    ----------
    diffusivity : float, default=0.1
        a.
    unknown_diffusivity : float, optional
        Make a unknown (an inverse problem): the PDE declares ``parameters={"diffusivity":
        unknown_diffusivity}``, this initial guess, and ``diffusivity`` only defines the exact
        solution (the truth to sample data from).

    Returns
    -------
    PDE

    Examples
    --------
    >>> from hybridnet.pinn import problems
    >>> problems.heat_1d(unknown_diffusivity=0.05).parameters
    {'diffusivity': 0.05}
    """
    unknown = unknown_diffusivity is not None
    return PDE(Box([0, 0], [1, 1], time_axis=1),
               functools.partial(_heat_residual, diffusivity=None if unknown else diffusivity),
               [DirichletBC(0.0), InitialCondition(_heat_initial)],
               solution=functools.partial(_heat_solution, diffusivity=diffusivity),
               parameters={"diffusivity": unknown_diffusivity} if unknown else None)


# ----------------------------------------------------------------------------- Burgers 1-D

BURGERS_VISCOSITY = 0.01 / math.pi


def _burgers_residual(x, d, viscosity):
    # None: the viscosity is the unknown coefficient of an inverse problem
    nu = d.parameters["viscosity"] if viscosity is None else viscosity
    return d.diff(1) + d.u * d.diff(0) - nu * d.diff2(0)


def _burgers_initial(x):
    return -torch.sin(math.pi * x[:, 0])


def _burgers_solution(x, viscosity):
    from . import reference  # quadrature code, loaded only when a reference is needed

    values = reference.burgers_solution(np.asarray(x, dtype=np.float64), viscosity=viscosity)
    return torch.as_tensor(values)


@_builtin
def burgers_1d(viscosity=BURGERS_VISCOSITY, unknown_viscosity=None):
    """Viscous Burgers ``u_t + u u_x = nu u_xx`` on x in [-1, 1], t in [0, 1].

    ``u(x, 0) = -sin(pi x)``, ``u(-1, t) = u(1, t) = 0``, ``nu = 0.01 / pi`` by default.
    Columns (x, t). Reference: the Cole-Hopf solution by quadrature.

    Parameters
    ----------
    viscosity : float, default=0.01/pi
        nu.
    unknown_viscosity : float, optional
        Make nu unknown (an inverse problem): the PDE declares ``parameters={"viscosity":
        unknown_viscosity}``, this initial guess, and ``viscosity`` only defines the reference
        solution (the truth to sample data from).

    Returns
    -------
    PDE

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems

    The reference solution satisfies the boundary and initial conditions:

    >>> pde = problems.burgers_1d()
    >>> pde.domain, [type(condition).__name__ for condition in pde.conditions]
    (Box([-1.0, 0.0], [1.0, 1.0], time_axis=1), ['DirichletBC', 'InitialCondition'])
    >>> g = torch.Generator().manual_seed(0)
    >>> for condition in pde.conditions:
    ...     x = condition.sample(pde.domain, 32, g, torch.float64)
    ...     residual = condition.residual(x, pde.solution(x), None, pde.domain)
    ...     print(torch.allclose(residual, torch.zeros_like(residual), atol=1e-12))
    True
    True
    >>> problems.burgers_1d(unknown_viscosity=0.01).parameters
    {'viscosity': 0.01}
    """
    unknown = unknown_viscosity is not None
    return PDE(Box([-1, 0], [1, 1], time_axis=1),
               functools.partial(_burgers_residual, viscosity=None if unknown else viscosity),
               [DirichletBC(0.0), InitialCondition(_burgers_initial)],
               solution=functools.partial(_burgers_solution, viscosity=viscosity),
               parameters={"viscosity": unknown_viscosity} if unknown else None)


# ----------------------------------------------------------------------------- HJB 20-D


def _hjb_residual(x, d):
    dim = x.shape[1] - 1
    return d.diff(dim) + d.laplacian() - d.grad().square().sum(dim=1) / dim + 2


def _hjb_transform(x, out):
    return x[:, :-1].sum(dim=1) + (1 - x[:, -1]) * out


def _hjb_solution(x):
    return x[:, :-1].sum(dim=1) + 1 - x[:, -1]


@_builtin
def hjb(dim=20):
    """Hamilton-Jacobi-Bellman ``u_t + Laplacian_x u - |grad_x u|^2 / dim + 2 = 0``.

    x in [0, 1]^dim, t in [0, 1] (the last column); terminal ``u(x, 1) = sum_i x_i``, imposed
    exactly by ``u = sum_i x_i + (1 - t) N(x, t)``. Exact solution ``sum_i x_i + 1 - t``, so the
    network must learn ``N = 1``. The seed's benchmark has ``dim = 20`` (coefficient 0.05);
    the coefficient ``1 / dim`` keeps the same exact solution in other dimensions.

    Parameters
    ----------
    dim : int, default=20
        Space dimension.

    Returns
    -------
    PDE

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import SparseGridDerivatives

    In 3 space dimensions: the exact solution is the output transform of ``N = 1`` and
    satisfies the PDE (sparse-grid derivatives are exact for this linear u):

    >>> pde = problems.hjb(dim=3)
    >>> pde.domain.dim, pde.domain.time_axis, pde.conditions
    (4, 3, ())
    >>> x = pde.domain.sample_interior(32, torch.Generator().manual_seed(0), torch.float64)
    >>> torch.allclose(pde.output_transform(x, torch.ones_like(x[:, 0])), pde.solution(x))
    True
    >>> d = SparseGridDerivatives(0.01).evaluate(pde.solution, x, space_axes=[0, 1, 2])
    >>> torch.allclose(pde.residual(x, d), torch.zeros_like(x[:, 0]), atol=1e-8)
    True
    """
    return PDE(Box([0.0] * (dim + 1), [1.0] * (dim + 1), time_axis=dim), _hjb_residual,
               solution=_hjb_solution, output_transform=_hjb_transform)


# ----------------------------------------------------------------------------- Black-Scholes


def _black_scholes_residual(x, d, rate, volatility):
    s = x[:, 0]
    return (d.diff(1) + 0.5 * volatility**2 * s**2 * d.diff2(0) + rate * s * d.diff(0)
            - rate * d.u)


def _call_payoff(x, strike):
    return torch.clamp(x[:, 0] - strike, min=0)


def _far_boundary(x, strike, rate, maturity):
    return x[:, 0] - strike * torch.exp(-rate * (maturity - x[:, 1]))


def _at_zero(x):
    return x[:, 0] <= 1e-9


def _at_far_end(x, s_max):
    return x[:, 0] >= s_max - 1e-9


def _black_scholes_solution(x, strike, rate, volatility, maturity):
    from . import reference

    values = reference.black_scholes_call(np.asarray(x, dtype=np.float64), strike=strike,
                                          rate=rate, volatility=volatility, maturity=maturity)
    return torch.as_tensor(values)


@_builtin
def black_scholes(strike=1.0, rate=0.05, volatility=0.2, maturity=1.0, s_max=2.0):
    """European call under Black-Scholes: ``V_t + sigma^2 S^2 V_SS / 2 + r S V_S - r V = 0``.

    Columns (S, t), S in [0, s_max], t in [0, maturity]; terminal payoff ``max(S - K, 0)``,
    ``V(0, t) = 0`` and ``V(s_max, t) = s_max - K exp(-r (T - t))``. Exact solution: the
    Black-Scholes formula.

    Parameters
    ----------
    strike, rate, volatility, maturity, s_max : float
        K, r, sigma, T and the truncation of the S axis.

    Returns
    -------
    PDE

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import FiniteDifferences

    The Black-Scholes formula satisfies the PDE (to the O(h^2) of finite differences) and the
    payoff and ``V(0, t) = 0`` exactly; the far boundary's value is an approximation of it:

    >>> pde = problems.black_scholes()
    >>> pde.domain, [type(condition).__name__ for condition in pde.conditions]
    (Box([0.0, 0.0], [2.0, 1.0], time_axis=1), ['TerminalCondition', 'DirichletBC', 'DirichletBC'])
    >>> x = torch.tensor([[0.8, 0.2], [1.0, 0.5], [1.3, 0.7]], dtype=torch.float64)
    >>> d = FiniteDifferences(1e-3).evaluate(pde.solution, x, space_axes=[0])
    >>> torch.allclose(pde.residual(x, d), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    True
    >>> g = torch.Generator().manual_seed(0)
    >>> for condition in pde.conditions:
    ...     points = condition.sample(pde.domain, 32, g, torch.float64)
    ...     residual = condition.residual(points, pde.solution(points), None, pde.domain)
    ...     error = float(residual.abs().max())
    ...     print(error == 0, error < 1e-4)
    True True
    True True
    False True
    """
    return PDE(
        Box([0.0, 0.0], [s_max, maturity], time_axis=1),
        functools.partial(_black_scholes_residual, rate=rate, volatility=volatility),
        [TerminalCondition(functools.partial(_call_payoff, strike=strike)),
         DirichletBC(0.0, where=_at_zero),
         DirichletBC(functools.partial(_far_boundary, strike=strike, rate=rate,
                                       maturity=maturity),
                     where=functools.partial(_at_far_end, s_max=s_max))],
        solution=functools.partial(_black_scholes_solution, strike=strike, rate=rate,
                                   volatility=volatility, maturity=maturity))


# ----------------------------------------------------------------------------- Helmholtz, hole
# DeepXDE's Helmholtz_Neumann_2d_hole example: the square [-1/2, 1/2]^2 without the disk of
# radius 1/4 at its centre.
HOLE_RADIUS = 0.25
HALF_SIDE = 0.5


def _helmholtz_solution(x, wavenumber):
    return torch.sin(wavenumber * x[:, 0]) * torch.sin(wavenumber * x[:, 1])


def _helmholtz_residual(x, d, wavenumber):
    source = wavenumber**2 * _helmholtz_solution(x, wavenumber)
    return -d.laplacian() - wavenumber**2 * d.u - source


def _on_hole(x):
    return (x.norm(dim=1) - HOLE_RADIUS).abs() <= 1e-6


def _on_square(x):
    return (x.abs().amax(dim=1) - HALF_SIDE).abs() <= 1e-6


def _hole_flux(x, wavenumber):
    """The exact solution's derivative along the outward normal of the holed plate on the
    hole's edge, which points into the hole: ``n = -x / |x|``."""
    kx, ky = wavenumber * x[:, 0], wavenumber * x[:, 1]
    gradient = wavenumber * torch.stack([torch.cos(kx) * torch.sin(ky),
                                         torch.sin(kx) * torch.cos(ky)], dim=1)
    return -(gradient * x).sum(dim=1) / x.norm(dim=1)


@_builtin
def helmholtz_hole(n=1):
    """``-Laplacian u - k^2 u = k^2 sin(k x) sin(k y)``, ``k = 2 pi n``, on a plate with a hole.

    DeepXDE's ``Helmholtz_Neumann_2d_hole`` example: the square ``[-1/2, 1/2]^2`` minus the disk
    of radius 1/4 at its centre; ``u = 0`` on the square's edges (Dirichlet), and on the hole's
    edge the exact solution's normal derivative (Neumann, with the plate's outward normal,
    which points into the hole). Exact solution ``sin(k x) sin(k y)``.

    Parameters
    ----------
    n : int, default=1
        Wavelengths across the plate.

    Returns
    -------
    PDE

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives

    The exact solution satisfies the PDE and both conditions:

    >>> pde = problems.helmholtz_hole()
    >>> [type(condition).__name__ for condition in pde.conditions]
    ['DirichletBC', 'NeumannBC']
    >>> g = torch.Generator().manual_seed(0)
    >>> x = pde.domain.sample_interior(64, g, torch.float64)
    >>> d = AutogradDerivatives().evaluate(pde.solution, x, space_axes=[0, 1])
    >>> bool(pde.residual(x, d).abs().max() < 1e-9)
    True
    >>> for condition in pde.conditions:
    ...     points = condition.sample(pde.domain, 64, g, torch.float64)
    ...     d = AutogradDerivatives().evaluate(pde.solution, points, space_axes=[0, 1])
    ...     print(bool(condition.residual(points, d.u, d, pde.domain).abs().max() < 1e-9))
    True
    True
    """
    wavenumber = 2 * math.pi * n
    plate = Rectangle([-HALF_SIDE, -HALF_SIDE], [HALF_SIDE, HALF_SIDE]) \
        - Disk([0.0, 0.0], HOLE_RADIUS)
    return PDE(plate, functools.partial(_helmholtz_residual, wavenumber=wavenumber),
               [DirichletBC(0.0, where=_on_square),
                NeumannBC(functools.partial(_hole_flux, wavenumber=wavenumber), where=_on_hole)],
               solution=functools.partial(_helmholtz_solution, wavenumber=wavenumber))


# ----------------------------------------------------------------------------- Kovasznay flow
# DeepXDE's Kovasznay_flow example: steady Navier-Stokes on [-1/2, 1] x [-1/2, 3/2].


def _kovasznay_rate(reynolds):
    """Kovasznay's decay rate ``l = Re / 2 - sqrt(Re^2 / 4 + 4 pi^2)`` (negative)."""
    return reynolds / 2 - math.sqrt(reynolds**2 / 4 + 4 * math.pi**2)


def _kovasznay_velocity_x(x, rate):
    return 1 - torch.exp(rate * x[:, 0]) * torch.cos(2 * math.pi * x[:, 1])


def _kovasznay_velocity_y(x, rate):
    return rate / (2 * math.pi) * torch.exp(rate * x[:, 0]) * torch.sin(2 * math.pi * x[:, 1])


def _kovasznay_pressure(x, rate):
    return (1 - torch.exp(2 * rate * x[:, 0])) / 2


def _kovasznay_solution(x, rate):
    return torch.stack([_kovasznay_velocity_x(x, rate), _kovasznay_velocity_y(x, rate),
                        _kovasznay_pressure(x, rate)], dim=1)


def _navier_stokes_residual(x, d, viscosity):
    u, v = d.u[:, 0], d.u[:, 1]
    u_x, u_y = d.diff(0, component=0), d.diff(1, component=0)
    v_x, v_y = d.diff(0, component=1), d.diff(1, component=1)
    return [u * u_x + v * u_y + d.diff(0, component=2) - viscosity * d.laplacian(component=0),
            u * v_x + v * v_y + d.diff(1, component=2) - viscosity * d.laplacian(component=1),
            u_x + v_y]


def _on_outflow(x):
    return (x[:, 0] - 1).abs() <= 1e-6


@_builtin
def kovasznay(reynolds=20.0):
    """Kovasznay flow: steady incompressible Navier-Stokes, a system of three outputs.

    ``u . grad u + grad p = Laplacian u / Re`` and ``div u = 0`` for the velocity
    ``(u, v)`` (components 0, 1) and the pressure ``p`` (component 2) on
    ``[-1/2, 1] x [-1/2, 3/2]``, DeepXDE's ``Kovasznay_flow`` example: u and v equal the exact
    solution on the whole boundary, p on the outflow edge ``x = 1``. Exact solution (Kovasznay,
    1948), with ``l = Re / 2 - sqrt(Re^2 / 4 + 4 pi^2)``::

        u = 1 - exp(l x) cos(2 pi y)
        v = l / (2 pi) exp(l x) sin(2 pi y)
        p = (1 - exp(2 l x)) / 2

    Parameters
    ----------
    reynolds : float, default=20.0
        The Reynolds number Re (the viscosity is 1 / Re).

    Returns
    -------
    PDE
        Three residuals (two momentum equations, continuity) and ``solution(x) -> (n, 3)``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives

    The exact flow satisfies the three equations and the three conditions:

    >>> pde = problems.kovasznay()
    >>> pde.n_outputs, [c.component for c in pde.conditions]
    (3, [0, 1, 2])
    >>> g = torch.Generator().manual_seed(0)
    >>> x = pde.domain.sample_interior(64, g, torch.float64)
    >>> d = AutogradDerivatives().evaluate(pde.solution, x, space_axes=[0, 1])
    >>> [bool(r.abs().max() < 1e-9) for r in pde.residual(x, d)]
    [True, True, True]
    >>> for condition in pde.conditions:
    ...     edge = condition.sample(pde.domain, 64, g, torch.float64)
    ...     u = pde.solution(edge)
    ...     print(bool(condition.residual(edge, u, None, pde.domain).abs().max() < 1e-12))
    True
    True
    True
    """
    reynolds = float(reynolds)
    if not reynolds > 0:
        raise ValueError(f"reynolds must be positive, got {reynolds!r}")
    rate = _kovasznay_rate(reynolds)
    return PDE(Rectangle([-0.5, -0.5], [1.0, 1.5]),
               functools.partial(_navier_stokes_residual, viscosity=1 / reynolds),
               [DirichletBC(functools.partial(_kovasznay_velocity_x, rate=rate), component=0),
                DirichletBC(functools.partial(_kovasznay_velocity_y, rate=rate), component=1),
                DirichletBC(functools.partial(_kovasznay_pressure, rate=rate), component=2,
                            where=_on_outflow)],
               n_outputs=3, solution=functools.partial(_kovasznay_solution, rate=rate))


# ----------------------------------------------------------------------------- Laplace, disk


def _harmonic_polynomial(x, n):
    """``Re (x + i y)^n = r^n cos(n theta)``, harmonic in the plane."""
    return (torch.complex(x[:, 0], x[:, 1]) ** n).real


def _laplace_residual(x, d):
    return d.laplacian()


@_builtin
def laplace_disk(n=1):
    """``Laplacian u = 0`` on the unit disk with ``u = cos(n theta)`` on its circle.

    The exact solution is ``r^n cos(n theta) = Re (x + i y)^n``. ``n = 1`` is the solution of
    DeepXDE's ``Laplace_disk`` example, posed here on a :class:`~hybridnet.pinn.Disk` in
    Cartesian coordinates (DeepXDE maps the disk to a polar rectangle instead; the benchmark
    poses that form too, with ``PDE(input_transform=...)``).

    Parameters
    ----------
    n : int, default=1
        Angular frequency of the boundary values (``n >= 0``).

    Returns
    -------
    PDE

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives
    >>> pde = problems.laplace_disk(n=3)
    >>> pde.domain
    Disk([0.0, 0.0], 1.0)
    >>> g = torch.Generator().manual_seed(0)
    >>> x = pde.domain.sample_interior(64, g, torch.float64)
    >>> d = AutogradDerivatives().evaluate(pde.solution, x, space_axes=[0, 1])
    >>> bool(pde.residual(x, d).abs().max() < 1e-10)
    True
    >>> rim = pde.conditions[0].sample(pde.domain, 64, g, torch.float64)
    >>> angle = torch.atan2(rim[:, 1], rim[:, 0])
    >>> torch.allclose(pde.solution(rim), torch.cos(3 * angle))
    True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    solution = functools.partial(_harmonic_polynomial, n=int(n))
    return PDE(Disk([0.0, 0.0], 1.0), _laplace_residual, [DirichletBC(solution)],
               solution=solution)


# ----------------------------------------------------------------------------- wave 1-D
# DeepXDE's wave_1d example (from Wang, Wang and Perdikaris, 2021): u_tt = c^2 u_xx on
# [0, 1] x [0, 1] with two standing waves, the second at twice the frequency.


def _wave_solution(x, speed, initial_velocity):
    space, time = math.pi * x[:, 0], speed * math.pi * x[:, 1]
    return (torch.sin(space) * torch.cos(time) + torch.sin(2 * space) * torch.cos(2 * time)
            + initial_velocity / (speed * math.pi) * torch.sin(space) * torch.sin(time))


def _wave_residual(x, d, speed):
    return d.diff2(1) - speed**2 * d.diff2(0)


def _wave_initial_value(x):
    return torch.sin(math.pi * x[:, 0]) + torch.sin(2 * math.pi * x[:, 0])


def _wave_initial_velocity(x, initial_velocity):
    return initial_velocity * torch.sin(math.pi * x[:, 0])


@_builtin
def wave_1d(speed=10.0, initial_velocity=0.0):
    """The wave equation ``u_tt = c^2 u_xx`` on ``[0, 1] x [0, 1]`` with an initial velocity.

    DeepXDE's ``wave_1d`` example at its defaults: ``u = 0`` at ``x = 0, 1``, the initial
    displacement ``sin(pi x) + sin(2 pi x)`` and the initial velocity
    ``du/dt = v0 sin(pi x)`` (``v0 = 0`` there), an
    :class:`~hybridnet.pinn.InitialCondition` with ``derivative=1``. Exact solution::

        u = sin(pi x) cos(c pi t) + sin(2 pi x) cos(2 c pi t)
            + v0 / (c pi) sin(pi x) sin(c pi t)

    At ``c = 10`` the solution runs through 10 periods of its second mode in time, which plain
    PINNs fit poorly (DeepXDE's example uses multi-scale Fourier features).

    Parameters
    ----------
    speed : float, default=10.0
        The wave speed c.
    initial_velocity : float, default=0.0
        v0, the amplitude of the initial velocity.

    Returns
    -------
    PDE

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives
    >>> pde = problems.wave_1d(speed=2.0, initial_velocity=1.5)
    >>> [type(c).__name__ for c in pde.conditions]
    ['DirichletBC', 'InitialCondition', 'InitialCondition']
    >>> g = torch.Generator().manual_seed(0)
    >>> x = pde.domain.sample_interior(64, g, torch.float64)
    >>> d = AutogradDerivatives().evaluate(pde.solution, x, space_axes=[0])
    >>> bool(pde.residual(x, d).abs().max() < 1e-9)
    True
    >>> for condition in pde.conditions:
    ...     points = condition.sample(pde.domain, 64, g, torch.float64)
    ...     d = AutogradDerivatives().evaluate(pde.solution, points, space_axes=[0])
    ...     print(bool(condition.residual(points, d.u, d, pde.domain).abs().max() < 1e-9))
    True
    True
    True
    """
    speed, initial_velocity = float(speed), float(initial_velocity)
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    if not math.isfinite(initial_velocity):
        raise ValueError(f"initial_velocity must be finite, got {initial_velocity!r}")
    return PDE(SpaceTime(Interval(0.0, 1.0), (0.0, 1.0)),
               functools.partial(_wave_residual, speed=speed),
               [DirichletBC(0.0), InitialCondition(_wave_initial_value),
                InitialCondition(functools.partial(_wave_initial_velocity,
                                                   initial_velocity=initial_velocity),
                                 derivative=1)],
               solution=functools.partial(_wave_solution, speed=speed,
                                          initial_velocity=initial_velocity))
