"""PINNacle's problems side by side: PINNSolver against PINNacle's vanilla PINN on DeepXDE.

Issue 26. The problems are posed as PINNacle poses them (i207M/PINNacle, ``src/pde/*.py``;
NeurIPS 2024 Datasets and Benchmarks, arXiv 2306.08827): the same domain, PDE, coefficients and
conditions, scored against PINNacle's reference solutions (COMSOL exports, read from
``PINNACLE_REF``, default ``../shared/data/pinnacle`` next to the repository) at PINNacle's test
points. A row whose reference file is missing is skipped, and says so.

| problem | PINNacle class | hybridnet features it uses |
|---|---|---|
| burgers1d | Burgers1D | ``Box(time_axis=1)``, initial and boundary conditions |
| poisson2d_classic | Poisson2D_Classic | ``Rectangle - Disk - ...`` (a square with four holes) |
| poisson_boltzmann2d | PoissonBoltzmann2D | a composed domain, ``where=`` on the conditions |
| wave1d | Wave1D | ``InitialCondition(0.0, derivative=1)`` (PINNacle's u_t = 0 at t = 0) |
| ns2d_classic | NS2D_Classic | ``PDE(n_outputs=3)``, ``DirichletBC(component=..., where=...)`` |
| ns2d_lid_driven | NS2D_LidDriven | the same |
| heat_inverse | HeatInv | ``PDE(n_outputs=2)``, ``fit(X, y)`` with NaN for the unobserved a |

Three rows per problem ("sides"), all trained in one invocation, one after the other, so their
wall times are comparable:

- ``deepxde``: PINNacle's vanilla PINN (its ``benchmark.py`` with the defaults) on DeepXDE's
  PyTorch back end: 2-100x5-k tanh network with Glorot-normal initialisation, float32, points
  drawn once (Hammersley; 8,192 in the domain and 2,048 on the boundary, plus 2,048 initial
  points for time-dependent problems, as PINNacle's ``training_points()``), every loss term of
  weight 1, Adam at a constant 1e-3.
- ``hybridnet``: ``PINNSolver`` run as a user would at the same settings:
  ``PINNSolver(pde, hidden_layer_sizes=(100,) * 5, activation="tanh",
  initializer="glorot_normal", n_collocation=8192, n_boundary=2048, max_iter=steps,
  learning_rate=1e-3, learning_rate_schedule="constant", random_state=seed)``: PINNacle's
  Glorot-normal initialisation and constant rate (rows before those options had torch's
  initialisation and decayed the rate exponentially from 1e-3 to 5e-5 over the steps,
  PINNSolver's defaults then). Everything else
  is PINNSolver's default, namely: autograd derivatives, float32; a fresh uniform draw of the
  8,192 interior points and of 2,048 points *per condition* every step (DeepXDE keeps one draw
  and shares its 2,048 boundary points among the conditions); ``loss_balancing="auto"``, which
  is gradient-norm balancing of the conditions against the residual (one factor for all
  conditions, re-estimated every 10 steps, only ever raising their weight);
  ``sampling="uniform"`` (no RAD); ``lbfgs_iter=0`` (no L-BFGS). Systems sum the mean squared
  residuals of their equations (as DeepXDE's terms of weight 1 do).
- ``hybridnet-defaults``: ``PINNSolver(pde, max_iter=steps, random_state=seed)``: its own
  defaults (2-64-64-k tanh, 256 interior points and 128 per condition per step, Adam from
  1e-2 decayed to 5e-4) at the same number of steps.

Scores: PINNacle's L2RE, ``sqrt(mean((pred - ref)^2)) / sqrt(mean(ref^2))`` over all
components together (its ``TesterCallback``), at the reference file's points (Wave1D: the
2,500 interior grid points of DeepXDE's ``uniform_points``, where PINNacle evaluates its
closed form). For systems each component's relative L2 error and their mean are reported too.

Usage::

    python benchmarks/pinnacle.py [--problems burgers1d ...] [--sides deepxde hybridnet ...]
        [--steps 20000] [--steps-scale 1.0] [--seed 0] [--threads 1] [--force]

Writes ``benchmarks/results/pinnacle/pinnacle.json`` and ``pinnacle.md`` (a row per problem and
side, each with its command and settings), and PNGs of prediction, reference and error there.
Rows are written as they finish; a row already present with the same settings is skipped
unless ``--force``, so an interrupted run resumes by repeating its command, and runs of
different problems may go side by side (``--threads 1`` each on a 2-core machine).
"""

import argparse
import math
import os
import pathlib
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from _results import SideBySide, check_pinnsolver_trains, command_line

os.environ.setdefault("DDE_BACKEND", "pytorch")

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "pinnacle"
REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
PROTOCOL_STEPS = 20000
# PINNacle's training_points(): baseclass.DEFAULT_NUM_*_POINTS.
N_DOMAIN, N_BOUNDARY, N_INITIAL = 8192, 2048, 2048
HIDDEN = (100,) * 5
LEARNING_RATE = 1e-3
SIDES = ("deepxde", "hybridnet", "hybridnet-defaults")


def reference_folder():
    """``PINNACLE_REF`` when set, else ``../shared/data/pinnacle`` beside the repository."""
    return pathlib.Path(os.environ.get("PINNACLE_REF",
                                       REPOSITORY.parent / "shared" / "data" / "pinnacle"))


class Skip(Exception):
    """A row that cannot run here: missing reference data, or a feature hybridnet lacks."""


@dataclass
class Case:
    """One PINNacle problem, posed for both libraries.

    ``hybridnet()`` returns the :class:`hybridnet.pinn.PDE` (raising ``TypeError`` where a
    feature is missing); ``deepxde(dde)`` returns ``(geometry, pde, bcs, time_dependent)``;
    ``test_x`` / ``test_y`` are PINNacle's test points and reference values (n, k).
    """

    name: str
    pinnacle: str
    components: tuple
    hybridnet: callable
    deepxde: callable
    test_x: np.ndarray
    test_y: np.ndarray
    needs: str = ""
    note: str = ""
    points: dict = field(default_factory=lambda: dict(domain=N_DOMAIN, boundary=N_BOUNDARY))
    fit_data: callable = None  # () -> (X, y) for PINNSolver.fit, inverse problems only


# ----------------------------------------------------------------------------- reference data


def load_reference(filename):
    """The COMSOL export ``filename`` under :func:`reference_folder` (``%`` lines skipped)."""
    path = reference_folder() / filename
    if not path.exists():
        raise Skip(f"reference file {path} not found (set PINNACLE_REF to the folder of "
                   f"PINNacle's ref/ files)")
    return np.loadtxt(path, comments="%")


def interpolator(points, values):
    """A PDE ``solution`` from scattered reference values: linear inside their hull, nearest
    outside (for PINNSolver's plots only; scores use the reference points themselves)."""
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    linear = LinearNDInterpolator(points, values)
    nearest = NearestNDInterpolator(points, values)

    def solution(x):
        x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float)
        out = linear(x)
        missing = np.isnan(out) if out.ndim == 1 else np.isnan(out).any(axis=1)
        if missing.any():
            out[missing] = nearest(x[missing])
        return out

    return solution


def _numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _near(values, target):
    """Face test for hybridnet's ``where`` (float64 points on the face exactly)."""
    return (values - target).abs() <= 1e-6


# ----------------------------------------------------------------------------- problems


def burgers1d():
    """Burgers1D: u_t + u u_x = 0.01/pi u_xx on [-1, 1] x [0, 1], u(x, 0) = -sin(pi x),
    u(+-1, t) = 0. Reference: x by t grid (101 x 11)."""
    nu = 0.01 / math.pi
    data = load_reference("burgers1d.dat")
    times = np.linspace(0, 1, data.shape[1] - 1)  # the header's t=0, 0.1, ..., 1
    x_grid, t_grid = np.meshgrid(data[:, 0], times, indexing="ij")
    test_x = np.stack([x_grid.ravel(), t_grid.ravel()], axis=1)
    test_y = data[:, 1:].reshape(-1, 1)

    def hybridnet():
        from scipy.interpolate import RegularGridInterpolator

        from hybridnet.pinn import PDE, DirichletBC, InitialCondition, Interval, SpaceTime

        grid = RegularGridInterpolator((data[:, 0], times), data[:, 1:])

        def residual(x, d):
            return d.diff(1) + d.u * d.diff(0) - nu * d.diff2(0)

        return PDE(SpaceTime(Interval(-1, 1), (0, 1)), residual,
                   [InitialCondition(lambda x: torch.sin(-math.pi * x[:, 0])),
                    DirichletBC(0.0)],
                   solution=lambda x: grid(_numpy(x)))

    def deepxde(dde):
        def pde(x, u):
            return (dde.grad.jacobian(u, x, i=0, j=1) + u * dde.grad.jacobian(u, x, i=0, j=0)
                    - nu * dde.grad.hessian(u, x, i=0, j=0))

        geometry = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1),
                                              dde.geometry.TimeDomain(0, 1))
        bcs = [dde.icbc.IC(geometry, lambda x: np.sin(-np.pi * x[:, 0:1]),
                           lambda _, on_initial: on_initial),
               dde.icbc.DirichletBC(geometry, lambda _: 0, lambda _, on_boundary: on_boundary)]
        return geometry, pde, bcs, True

    return Case("burgers1d", "Burgers1D", ("u",), hybridnet, deepxde, test_x, test_y,
                points=dict(domain=N_DOMAIN, boundary=N_BOUNDARY, initial=N_INITIAL))


def _square_minus_disks(dde, lower, upper, disks):
    geometry = dde.geometry.Rectangle(xmin=lower, xmax=upper)
    for cx, cy, r in disks:
        geometry = dde.geometry.CSGDifference(geometry, dde.geometry.Disk([cx, cy], r))
    return geometry


def _hybridnet_square_minus_disks(lower, upper, disks):
    from hybridnet.pinn import Disk, Rectangle

    geometry = Rectangle(lower, upper)
    for cx, cy, r in disks:
        geometry = geometry - Disk([cx, cy], r)
    return geometry


def _on_square(lower, upper):
    """(hybridnet where, DeepXDE predicate) of the square's sides; their complement on the
    boundary is the holes' rims."""
    def where(x):
        return (_near(x[:, 0], lower[0]) | _near(x[:, 0], upper[0])
                | _near(x[:, 1], lower[1]) | _near(x[:, 1], upper[1]))

    def predicate(x, on_boundary):
        return on_boundary and (np.isclose(x[0], lower[0]) or np.isclose(x[0], upper[0])
                                or np.isclose(x[1], lower[1]) or np.isclose(x[1], upper[1]))

    return where, predicate


def poisson2d_classic():
    """Poisson2D_Classic: u_xx + u_yy = 0 on [-0.5, 0.5]^2 minus 4 disks of radius 0.1 at
    (+-0.3, +-0.3); u = 1 on the square's sides, 0 on the circles."""
    lower, upper = [-0.5, -0.5], [0.5, 0.5]
    disks = [(0.3, 0.3, 0.1), (-0.3, 0.3, 0.1), (0.3, -0.3, 0.1), (-0.3, -0.3, 0.1)]
    data = load_reference("poisson1_cg_data.dat")
    square, on_square = _on_square(lower, upper)

    def hybridnet():
        from hybridnet.pinn import PDE, DirichletBC

        return PDE(_hybridnet_square_minus_disks(lower, upper, disks),
                   lambda x, d: d.laplacian(),
                   [DirichletBC(1.0, where=square),
                    DirichletBC(0.0, where=lambda x: ~square(x))],
                   solution=interpolator(data[:, :2], data[:, 2]))

    def deepxde(dde):
        def pde(x, u):
            return dde.grad.hessian(u, x, i=0, j=0) + dde.grad.hessian(u, x, i=1, j=1)

        geometry = _square_minus_disks(dde, lower, upper, disks)
        bcs = [dde.icbc.DirichletBC(geometry, lambda _: 1, on_square),
               dde.icbc.DirichletBC(geometry, lambda _: 0,
                                    lambda x, b: b and not on_square(x, b))]
        return geometry, pde, bcs, False

    return Case("poisson2d_classic", "Poisson2D_Classic", ("u",), hybridnet, deepxde,
                data[:, :2], data[:, 2:])


def poisson_boltzmann2d():
    """PoissonBoltzmann2D: -lap u + k^2 u = f on [-1, 1]^2 minus 4 disks, k = 8,
    f = A (mu1^2 + x^2 + mu2^2 + y^2) sin(mu1 pi x) sin(mu2 pi y), A = 10, mu = (1, 4);
    u = 0.2 on the square's sides, 1 on the circles."""
    k, (mu1, mu2), amplitude = 8, (1, 4), 10
    lower, upper = [-1, -1], [1, 1]
    disks = [(0.5, 0.5, 0.2), (0.4, -0.4, 0.4), (-0.2, -0.7, 0.1), (-0.6, 0.5, 0.3)]
    data = load_reference("poisson_boltzmann2d.dat")
    square, on_square = _on_square(lower, upper)

    def source(x, y, sin):
        return (amplitude * (mu1**2 + x**2 + mu2**2 + y**2)
                * sin(mu1 * math.pi * x) * sin(mu2 * math.pi * y))

    def hybridnet():
        from hybridnet.pinn import PDE, DirichletBC

        def residual(x, d):
            return -d.laplacian() + k**2 * d.u - source(x[:, 0], x[:, 1], torch.sin)

        return PDE(_hybridnet_square_minus_disks(lower, upper, disks), residual,
                   [DirichletBC(0.2, where=square),
                    DirichletBC(1.0, where=lambda x: ~square(x))],
                   solution=interpolator(data[:, :2], data[:, 2]))

    def deepxde(dde):
        def pde(x, u):
            laplacian = dde.grad.hessian(u, x, i=0, j=0) + dde.grad.hessian(u, x, i=1, j=1)
            return -laplacian + k**2 * u - source(x[:, 0:1], x[:, 1:2], torch.sin)

        geometry = _square_minus_disks(dde, lower, upper, disks)
        bcs = [dde.icbc.DirichletBC(geometry, lambda _: 0.2, on_square),
               dde.icbc.DirichletBC(geometry, lambda _: 1,
                                    lambda x, b: b and not on_square(x, b))]
        return geometry, pde, bcs, False

    return Case("poisson_boltzmann2d", "PoissonBoltzmann2D", ("u",), hybridnet, deepxde,
                data[:, :2], data[:, 2:])


def wave1d():
    """Wave1D: u_tt = 4 u_xx on (x, t) in [0, 1]^2 (PINNacle poses it on a Rectangle, not as
    a time-dependent problem); u = u_exact on x = 0, x = 1 and t = 0, du/dn = 0 on t = 0
    (u_t = 0), nothing on t = 1. u_exact = sin(pi x) cos(2 pi t) + 0.5 sin(4 pi x) cos(8 pi t).
    Scored, as PINNacle does, on DeepXDE's 2,500 ``uniform_points`` (50 x 50 interior grid)."""
    c, a = 2, 4

    def exact(x, t, sin, cos):
        return (sin(math.pi * x) * cos(2 * math.pi * t)
                + 0.5 * sin(a * math.pi * x) * cos(2 * a * math.pi * t))

    grid = np.linspace(0, 1, 51, endpoint=False)[1:]
    x_grid, t_grid = np.meshgrid(grid, grid, indexing="ij")
    test_x = np.stack([x_grid.ravel(), t_grid.ravel()], axis=1)
    test_y = exact(test_x[:, 0], test_x[:, 1], np.sin, np.cos)[:, None]

    def hybridnet():
        from hybridnet.pinn import PDE, DirichletBC, NeumannBC, Rectangle

        def value(x):
            return exact(x[:, 0], x[:, 1], torch.sin, torch.cos)

        def bottom(x):
            return _near(x[:, 1], 0.0)

        def sides(x):
            return _near(x[:, 0], 0.0) | _near(x[:, 0], 1.0)

        return PDE(Rectangle([0, 0], [1, 1]),
                   lambda x, d: d.diff2(1) - c**2 * d.diff2(0),
                   [NeumannBC(0.0, where=bottom), DirichletBC(value, where=bottom),
                    DirichletBC(value, where=sides)],
                   solution=lambda x: value(torch.as_tensor(x)))

    def deepxde(dde):
        def pde(x, u):
            return dde.grad.hessian(u, x, i=1, j=1) - c**2 * dde.grad.hessian(u, x, i=0, j=0)

        def value(x):
            return exact(x[:, 0:1], x[:, 1:2], np.sin, np.cos)

        geometry = dde.geometry.Rectangle(xmin=[0, 0], xmax=[1, 1])
        bcs = [dde.icbc.NeumannBC(geometry, lambda _: 0,
                                  lambda x, b: b and np.isclose(x[1], 0)),
               dde.icbc.DirichletBC(geometry, value, lambda x, b: b and np.isclose(x[1], 0)),
               dde.icbc.DirichletBC(geometry, value, lambda x, b: b and (
                   np.isclose(x[0], 0) or np.isclose(x[0], 1)))]
        return geometry, pde, bcs, False

    return Case("wave1d", "Wave1D", ("u",), hybridnet, deepxde, test_x, test_y,
                note="u_t = 0 at t = 0 as PINNacle's NeumannBC (du/dn = -u_t) on the edge t = 0")


def _navier_stokes(nu):
    """Steady incompressible Navier-Stokes residuals of (u, v, p) for both libraries."""
    def hybridnet_residual(x, d):
        u, v = d.u[:, 0], d.u[:, 1]
        u_x, u_y = d.diff(0, component=0), d.diff(1, component=0)
        v_x, v_y = d.diff(0, component=1), d.diff(1, component=1)
        p_x, p_y = d.diff(0, component=2), d.diff(1, component=2)
        return [u * u_x + v * u_y + p_x - nu * d.laplacian(component=0),
                u * v_x + v * v_y + p_y - nu * d.laplacian(component=1),
                u_x + v_y]

    def deepxde_residual(dde):
        def pde(x, out):
            u, v = out[:, 0:1], out[:, 1:2]
            u_x, u_y = dde.grad.jacobian(out, x, i=0, j=0), dde.grad.jacobian(out, x, i=0, j=1)
            v_x, v_y = dde.grad.jacobian(out, x, i=1, j=0), dde.grad.jacobian(out, x, i=1, j=1)
            p_x, p_y = dde.grad.jacobian(out, x, i=2, j=0), dde.grad.jacobian(out, x, i=2, j=1)
            lap_u = (dde.grad.hessian(out, x, component=0, i=0, j=0)
                     + dde.grad.hessian(out, x, component=0, i=1, j=1))
            lap_v = (dde.grad.hessian(out, x, component=1, i=0, j=0)
                     + dde.grad.hessian(out, x, component=1, i=1, j=1))
            return [u * u_x + v * u_y + p_x - nu * lap_u,
                    u * v_x + v * v_y + p_y - nu * lap_v,
                    u_x + v_y]
        return pde

    return hybridnet_residual, deepxde_residual


NEEDS_SYSTEMS = "PDE(n_outputs=3) and DirichletBC(component=...)"


def ns2d_classic():
    """NS2D_Classic: steady Navier-Stokes, nu = 1, on [0, 8]^2 minus the disks (6, 6, r 1) and
    (2, 1, r 0.5). Inlet x = 0: u = y (8 - y) / 16, v = 0; outlet x = 8: p = 0; walls y = 0, 8
    and the circles: u = v = 0."""
    nu, top = 1.0, 8.0
    lower, upper = [0, 0], [8, 8]
    disks = [(6, 6, 1.0), (2, 1.0, 0.5)]
    data = load_reference("ns2d.dat")
    hybridnet_residual, deepxde_residual = _navier_stokes(nu)
    square, on_square = _on_square(lower, upper)

    def inlet_profile(y):
        return y * (top - y) / (2 * top)

    def hybridnet():
        from hybridnet.pinn import PDE, DirichletBC

        def left(x):
            return _near(x[:, 0], 0.0)

        def right(x):
            return _near(x[:, 0], 8.0)

        def walls(x):
            return _near(x[:, 1], 0.0) | _near(x[:, 1], 8.0)

        def circles(x):
            return ~square(x)

        return PDE(_hybridnet_square_minus_disks(lower, upper, disks), hybridnet_residual,
                   [DirichletBC(lambda x: inlet_profile(x[:, 1]), component=0, where=left),
                    DirichletBC(0.0, component=1, where=left),
                    DirichletBC(0.0, component=2, where=right),
                    DirichletBC(0.0, component=0, where=walls),
                    DirichletBC(0.0, component=1, where=walls),
                    DirichletBC(0.0, component=0, where=circles),
                    DirichletBC(0.0, component=1, where=circles)],
                   n_outputs=3, solution=interpolator(data[:, :2], data[:, 2:]))

    def deepxde(dde):
        geometry = _square_minus_disks(dde, lower, upper, disks)
        rectangle = dde.geometry.Rectangle(xmin=lower, xmax=upper)

        def left(x, b):
            return b and np.isclose(x[0], 0)

        def right(x, b):
            return b and np.isclose(x[0], 8)

        def walls(x, b):
            return b and (np.isclose(x[1], 0) or np.isclose(x[1], 8))

        def circles(x, b):
            return b and not rectangle.on_boundary(x)

        bc = dde.icbc.DirichletBC
        bcs = [bc(geometry, lambda x: inlet_profile(x[:, 1:2]), left, component=0),
               bc(geometry, lambda _: 0, left, component=1),
               bc(geometry, lambda _: 0, right, component=2),
               bc(geometry, lambda _: 0, walls, component=0),
               bc(geometry, lambda _: 0, walls, component=1),
               bc(geometry, lambda _: 0, circles, component=0),
               bc(geometry, lambda _: 0, circles, component=1)]
        return geometry, deepxde_residual(dde), bcs, False

    return Case("ns2d_classic", "NS2D_Classic", ("u", "v", "p"), hybridnet, deepxde,
                data[:, :2], data[:, 2:], needs=NEEDS_SYSTEMS)


# hybridnet has no point condition: the pressure gauge p(0, 0) = 0 is imposed on the boundary
# within this distance of the corner (the reference's |p| there is at most 3.3e-4, its RMS
# 0.073); rejection sampling needs the stretch to be at least ~2 % of the perimeter.
GAUGE = 0.05


def ns2d_lid_driven():
    """NS2D_LidDriven: steady Navier-Stokes, nu = 1/100, on the unit square; lid y = 1:
    u = 4 x (1 - x), v = 0; other walls u = v = 0; p(0, 0) = 0 (DeepXDE: PINNacle's
    PointSetBC; hybridnet: p = 0 on the walls within 0.05 of that corner)."""
    nu, a = 1 / 100, 4
    data = load_reference("lid_driven_a4.dat")
    hybridnet_residual, deepxde_residual = _navier_stokes(nu)

    def hybridnet():
        from hybridnet.pinn import PDE, DirichletBC, Rectangle

        def lid(x):
            return _near(x[:, 1], 1.0)

        def corner(x):
            return (x[:, 0] <= GAUGE) & (x[:, 1] <= GAUGE)

        return PDE(Rectangle([0, 0], [1, 1]), hybridnet_residual,
                   [DirichletBC(lambda x: a * x[:, 0] * (1 - x[:, 0]), component=0, where=lid),
                    DirichletBC(0.0, component=1, where=lid),
                    DirichletBC(0.0, component=0, where=lambda x: ~lid(x)),
                    DirichletBC(0.0, component=1, where=lambda x: ~lid(x)),
                    DirichletBC(0.0, component=2, where=corner)],
                   n_outputs=3, solution=interpolator(data[:, :2], data[:, 2:]))

    def deepxde(dde):
        geometry = dde.geometry.Rectangle(xmin=[0, 0], xmax=[1, 1])

        def lid(x, b):
            return b and np.isclose(x[1], 1)

        def not_lid(x, b):
            return b and not np.isclose(x[1], 1)

        bc = dde.icbc.DirichletBC
        bcs = [bc(geometry, lambda x: a * x[:, 0:1] * (1 - x[:, 0:1]), lid, component=0),
               bc(geometry, lambda _: 0, lid, component=1),
               bc(geometry, lambda _: 0, not_lid, component=0),
               bc(geometry, lambda _: 0, not_lid, component=1),
               dde.icbc.PointSetBC(np.array([[0.0, 0.0]]), np.array([[0.0]]), component=2)]
        return geometry, deepxde_residual(dde), bcs, False

    return Case("ns2d_lid_driven", "NS2D_LidDriven", ("u", "v", "p"), hybridnet, deepxde,
                data[:, :2], data[:, 2:], needs=NEEDS_SYSTEMS,
                note=f"hybridnet's pressure gauge: p = 0 on the walls within {GAUGE} of (0, 0)")


def heat_inverse():
    """HeatInv: u_t = div(a grad u) + f on [-1, 1]^2 x [0, 1] with the diffusivity a(x, y)
    unknown (a second output); u observed with N(0, 0.1^2) noise at PINNacle's 2,500 points,
    a = 2 + sin(pi x) sin(pi y) on the boundary; PINNacle's training_points(mul=4). Scored on
    u and a at 20,000 interior points (DeepXDE's ``uniform_points``, as PINNacle does)."""
    points = load_reference("heatinv_points.dat")
    pi = math.pi

    def u_exact(x, y, t, exp, sin):
        return exp(-t) * sin(pi * x) * sin(pi * y)

    def a_exact(x, y, sin):
        return 2 + sin(pi * x) * sin(pi * y)

    def source(x, y, t):
        s, c = torch.sin, torch.cos
        return torch.exp(-t) * ((4 * pi**2 - 1) * s(pi * x) * s(pi * y) + pi**2 * (
            2 * s(pi * x)**2 * s(pi * y)**2 - c(pi * x)**2 * s(pi * y)**2
            - s(pi * x)**2 * c(pi * y)**2))

    noisy = (u_exact(points[:, 0], points[:, 1], points[:, 2], np.exp, np.sin)
             + np.random.default_rng(0).normal(0, 0.1, len(points)))
    # DeepXDE's GeometryXTime.uniform_points(20000, boundary=False), as PINNacle tests.
    side = (2 * 2 * 1 / 20000) ** (1 / 3)
    axes = [np.linspace(lo, hi, math.ceil((hi - lo) / side) + 1, endpoint=False)[1:]
            for lo, hi in ((-1, 1), (-1, 1), (0, 1))]
    test_x = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    test_y = np.stack([u_exact(*test_x.T, np.exp, np.sin),
                       a_exact(test_x[:, 0], test_x[:, 1], np.sin)], axis=1)

    def hybridnet():
        from hybridnet.pinn import PDE, DirichletBC, Rectangle, SpaceTime

        def residual(x, d):
            # div(a grad u) = a_x u_x + a_y u_y + a (u_xx + u_yy), with a the second output.
            a = d.u[:, 1]
            flux = sum(d.diff(i, component=1) * d.diff(i, component=0) for i in (0, 1))
            return (d.diff(2, component=0) - flux - a * d.laplacian(component=0)
                    - source(x[:, 0], x[:, 1], x[:, 2]))

        return PDE(SpaceTime(Rectangle([-1, -1], [1, 1]), (0, 1)), residual,
                   [DirichletBC(lambda x: a_exact(x[:, 0], x[:, 1], torch.sin), component=1)],
                   n_outputs=2)

    def fit_data():
        # u observed at the 2,500 points, a nowhere (NaN): the data term covers u only.
        return points, np.stack([noisy, np.full(len(points), np.nan)], axis=1)

    def deepxde(dde):
        def pde(x, out):
            a = out[:, 1:2]
            u_x = dde.grad.jacobian(out, x, i=0, j=0)
            u_y = dde.grad.jacobian(out, x, i=0, j=1)
            u_t = dde.grad.jacobian(out, x, i=0, j=2)
            flux = (dde.grad.jacobian(a * u_x, x, i=0, j=0)
                    + dde.grad.jacobian(a * u_y, x, i=0, j=1))
            return u_t - flux - source(x[:, 0:1], x[:, 1:2], x[:, 2:3])

        geometry = dde.geometry.GeometryXTime(dde.geometry.Rectangle([-1, -1], [1, 1]),
                                              dde.geometry.TimeDomain(0, 1))
        bcs = [dde.icbc.PointSetBC(points, noisy[:, None], component=0),
               dde.icbc.DirichletBC(geometry, lambda x: a_exact(x[:, 0:1], x[:, 1:2], np.sin),
                                    lambda _, b: b, component=1)]
        return geometry, pde, bcs, True

    return Case("heat_inverse", "HeatInv", ("u", "a"), hybridnet, deepxde, test_x, test_y,
                needs="PDE(n_outputs=2) and a data term on one component", fit_data=fit_data,
                points=dict(domain=4 * N_DOMAIN, boundary=4 * N_BOUNDARY,
                            initial=4 * N_INITIAL))


PROBLEMS = {"burgers1d": burgers1d, "poisson2d_classic": poisson2d_classic,
            "poisson_boltzmann2d": poisson_boltzmann2d, "wave1d": wave1d,
            "ns2d_classic": ns2d_classic, "ns2d_lid_driven": ns2d_lid_driven,
            "heat_inverse": heat_inverse}


# ----------------------------------------------------------------------------- scoring


def scores(case, predicted):
    """PINNacle's L2RE over all components, each component's relative L2, their mean."""
    predicted = np.asarray(predicted, dtype=np.float64).reshape(case.test_y.shape)
    exact = case.test_y
    joint = math.sqrt(np.mean((predicted - exact) ** 2)) / math.sqrt(np.mean(exact**2))
    each = {name: float(np.linalg.norm(predicted[:, c] - exact[:, c])
                        / np.linalg.norm(exact[:, c]))
            for c, name in enumerate(case.components)}
    return {"l2re": float(joint), "components": each,
            "mean_component_l2": float(np.mean(list(each.values())))}


def figure(case, predicted, path, title):
    """Prediction, reference and |error| at the test points, a row per component."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted = np.asarray(predicted, dtype=np.float64).reshape(case.test_y.shape)
    x, y = case.test_x[:, 0], case.test_x[:, 1]
    k = len(case.components)
    fig, panels = plt.subplots(k, 3, figsize=(13, 3.6 * k), squeeze=False)
    for c, name in enumerate(case.components):
        limits = (min(predicted[:, c].min(), case.test_y[:, c].min()),
                  max(predicted[:, c].max(), case.test_y[:, c].max()))
        error = np.abs(predicted[:, c] - case.test_y[:, c])
        for axis, values, label, cmap, scale in (
                (panels[c, 0], predicted[:, c], f"{name}: prediction", "viridis", limits),
                (panels[c, 1], case.test_y[:, c], f"{name}: reference", "viridis", limits),
                (panels[c, 2], error, f"|error|, relative L2 "
                 f"{np.linalg.norm(error) / np.linalg.norm(case.test_y[:, c]):.2e}", "magma",
                 (None, None))):
            image = axis.scatter(x, y, c=values, s=max(2, min(30, 12000 / len(x))),
                                 cmap=cmap, vmin=scale[0], vmax=scale[1])
            fig.colorbar(image, ax=axis)
            axis.set(title=label, aspect="auto")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------- the sides


def settings_of(case, side, steps, seed):
    """What identifies a row's run (a row with other settings is run again)."""
    if side == "deepxde":
        return dict(library="deepxde", network=[case.test_x.shape[1], *HIDDEN,
                                                len(case.components)],
                    activation="tanh", initializer="Glorot normal", optimizer="adam",
                    learning_rate=LEARNING_RATE, steps=steps, seed=seed,
                    points={**case.points, "resampled": False,
                            "distribution": "Hammersley"})
    if side == "hybridnet":
        options = pinnsolver_options(case, side, steps, seed)
        return dict(library="hybridnet", **{**options, "hidden_layer_sizes": list(HIDDEN)})
    return dict(library="hybridnet", defaults=True, max_iter=steps, random_state=seed)


def run_deepxde(case, steps, seed, out):
    import deepxde as dde

    dde.config.set_default_float("float32")
    dde.config.set_random_seed(seed)
    geometry, pde, bcs, time_dependent = case.deepxde(dde)
    points = case.points
    if time_dependent:
        data = dde.data.TimePDE(geometry, pde, bcs, num_domain=points["domain"],
                                num_boundary=points["boundary"],
                                num_initial=points["initial"], num_test=1024)
    else:
        data = dde.data.PDE(geometry, pde, bcs, num_domain=points["domain"],
                            num_boundary=points["boundary"], num_test=1024)
    net = dde.nn.FNN([case.test_x.shape[1], *HIDDEN, len(case.components)], "tanh",
                     "Glorot normal")
    model = dde.Model(data, net)
    model.compile("adam", lr=LEARNING_RATE)
    start = time.perf_counter()
    model.train(iterations=steps, display_every=max(1, steps // 10))
    seconds = time.perf_counter() - start
    predicted = model.predict(case.test_x.astype(np.float32))
    final = model.train_state.loss_train
    return predicted, seconds, {"final_loss": float(np.sum(final)),
                                "train_points": int(len(data.train_x)),
                                "parameters": sum(p.numel() for p in net.parameters())}


def pinnsolver_options(case, side, steps, seed):
    if side == "hybridnet":
        return dict(hidden_layer_sizes=HIDDEN, activation="tanh", initializer="glorot_normal",
                    n_collocation=case.points["domain"], n_boundary=case.points["boundary"],
                    max_iter=steps, learning_rate=LEARNING_RATE,
                    learning_rate_schedule="constant", random_state=seed)
    return dict(max_iter=steps, random_state=seed)


def run_hybridnet(case, pde, side, steps, seed, out):
    from hybridnet import PINNSolver

    solver = PINNSolver(pde, **pinnsolver_options(case, side, steps, seed))
    start = time.perf_counter()
    solver.fit(*(case.fit_data() if case.fit_data else ()))
    seconds = time.perf_counter() - start
    predicted = solver.predict(case.test_x)
    extra = {"final_loss": float(solver.loss_curve_[-1]),
             "loss_weights": [float(w) for w in solver.loss_weights_],
             "network_evaluations": int(solver.n_network_evaluations_),
             "parameters": sum(p.numel() for p in solver.module_.parameters()),
             "defaults_in_effect": {
                 "derivatives": solver.derivatives, "loss_balancing": solver.loss_balancing,
                 "sampling": solver.sampling, "lbfgs_iter": solver.lbfgs_iter,
                 "learning_rate_schedule": solver.learning_rate_schedule,
                 "points": "fresh draw every step, n_boundary per condition"}}
    if len(case.components) == 1:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            from hybridnet.plotting import plot_solution

            plt.close(plot_solution(solver, out / f"{case.name}_{side}_plot_solution.png",
                                    resolution=150,
                                    title=f"{case.pinnacle}: {side}, {steps} steps"))
        except Exception as error:  # a plot must never cost a trained row
            print(f"plot_solution failed: {error!r}", flush=True)
    return predicted, seconds, extra


def hybridnet_ready(case):
    """The hybridnet PDE, or ``Skip`` saying which feature is missing.

    Builds the problem and trains it 2 steps (``check_pinnsolver_trains``)."""

    try:
        pde = case.hybridnet()
    except TypeError as error:
        raise Skip(f"needs {case.needs or 'a feature hybridnet lacks'} ({error})") from None
    try:
        check_pinnsolver_trains(pde, case.test_x, len(case.components),
                                case.fit_data() if case.fit_data else ())
    except Exception as error:
        raise Skip(f"hybridnet cannot train it yet ({type(error).__name__}: {error}); "
                   f"needs {case.needs or 'a feature hybridnet lacks'}") from None
    return pde


# ----------------------------------------------------------------------------- results


def table(rows):
    lines = ["| problem | side | steps | L2RE (PINNacle) | per component | mean of components | "
             "train s | s / step | threads | command |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    skipped = {}
    for row in rows:
        if row.get("skipped"):
            skipped.setdefault((row["problem"], row["skipped"], row["command"]), []).append(
                row["side"])
            continue
        parts = ", ".join(f"{k} {v:.3e}" for k, v in row["components"].items())
        lines.append(f"| {row['problem']} | {row['side']} | {row['steps']} | "
                     f"{row['l2re']:.3e} | {parts} | {row['mean_component_l2']:.3e} | "
                     f"{row['seconds']:.0f} | {row['seconds'] / row['steps']:.3f} | "
                     f"{row['threads']} | `{row['command']}` |")
    verdicts = ["", "PINNSolver (PINNacle's settings) against DeepXDE at equal steps:", "",
                "| problem | steps | DeepXDE L2RE | PINNSolver L2RE | PINNSolver (defaults) "
                "L2RE | no worse? | train s (DeepXDE / PINNSolver / defaults) |",
                "|---|---|---|---|---|---|---|"]
    by_problem = {}
    for row in rows:
        if not row.get("skipped"):
            by_problem.setdefault(row["problem"], {})[row["side"]] = row
    for problem, sides in by_problem.items():
        reference, ours = sides.get("deepxde"), sides.get("hybridnet")
        defaults = sides.get("hybridnet-defaults")

        def cell(row, key="l2re", form="{:.3e}"):
            return form.format(row[key]) if row else "-"

        steps = {row["steps"] for row in sides.values()}
        verdict = "-" if not (reference and ours) or len(steps) != 1 else \
            ("yes" if ours["l2re"] <= reference["l2re"] else "no")
        lines_steps = "/".join(str(s) for s in sorted(steps))
        verdicts.append(f"| {problem} | {lines_steps} | {cell(reference)} | {cell(ours)} | "
                        f"{cell(defaults)} | {verdict} | {cell(reference, 'seconds', '{:.0f}')}"
                        f" / {cell(ours, 'seconds', '{:.0f}')} / "
                        f"{cell(defaults, 'seconds', '{:.0f}')} |")
    if skipped:
        verdicts += ["", "Skipped (rerun the command once the feature or file is there):", "",
                     "| problem | sides | why | command |", "|---|---|---|---|"]
        verdicts += [f"| {problem} | {', '.join(sides)} | {why} | `{command}` |"
                     for (problem, why, command), sides in skipped.items()]
    return "\n".join(lines + verdicts)


HEADING = (
    "# PINNacle problems: PINNSolver against PINNacle's vanilla PINN on DeepXDE\n\n"
    "Written by `benchmarks/pinnacle.py` (its docstring states both sides' settings); "
    "each row keeps the command that made it. L2RE is PINNacle's relative L2 error "
    "over all components together; seconds are training only.\n\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES,
                        help="default: all three; a problem hybridnet cannot pose yet is "
                             "skipped on every side unless only deepxde is asked for")
    parser.add_argument("--steps", type=int, default=PROTOCOL_STEPS)
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="fraction of --steps run, the same on every side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--force", action="store_true",
                        help="rerun rows already present with the same settings")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = SideBySide(out, "pinnacle", PROBLEMS, SIDES, HEADING, table)
    command = command_line("pinnacle.py", argv)
    steps = max(1, round(args.steps * args.steps_scale))
    print(f"reference data: {reference_folder()}; {steps} steps; {args.threads} thread(s)",
          flush=True)
    for name in args.problems:
        try:
            case = PROBLEMS[name]()
        except Skip as reason:
            print(f"[{name}] skipped: {reason}", flush=True)
            for side in args.sides:
                results.record({"problem": name, "side": side, "skipped": str(reason),
                                "command": command})
            continue
        pde = None
        if any(side.startswith("hybridnet") for side in args.sides):
            try:
                pde = hybridnet_ready(case)
            except Skip as reason:
                print(f"[{name}] skipped: {reason}", flush=True)
                for side in args.sides:
                    results.record({"problem": name, "side": side, "skipped": str(reason),
                                    "command": command})
                continue
        done = results.finished()
        for side in args.sides:
            settings = settings_of(case, side, steps, args.seed)
            previous = done.get((name, side))
            if previous is not None and previous.get("settings") == settings and not args.force:
                print(f"[{name} / {side}] already done with these settings: "
                      f"L2RE {previous['l2re']:.3e} (--force reruns it)", flush=True)
                continue
            print(f"[{name} / {side}] training {steps} steps ...", flush=True)
            if side == "deepxde":
                predicted, seconds, extra = run_deepxde(case, steps, args.seed, out)
            else:
                predicted, seconds, extra = run_hybridnet(case, pde, side, steps, args.seed,
                                                          out)
            row = {"problem": name, "pinnacle_class": case.pinnacle, "side": side,
                   "steps": steps, "steps_fraction": steps / PROTOCOL_STEPS,
                   **scores(case, predicted), "seconds": seconds, "threads": args.threads,
                   "test_points": int(len(case.test_x)), "settings": settings, **extra,
                   "note": case.note, "command": command}
            figure(case, predicted, out / f"{name}_{side}.png",
                   f"{case.pinnacle}: {side}, {steps} steps, L2RE {row['l2re']:.3e}")
            results.record(row)
            print(f"[{name} / {side}] L2RE {row['l2re']:.3e} "
                  f"({', '.join(f'{k} {v:.3e}' for k, v in row['components'].items())}), "
                  f"{seconds:.0f} s", flush=True)
    print((out / "pinnacle.md").read_text() if (out / "pinnacle.md").exists() else "",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
