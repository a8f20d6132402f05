"""Boundary, initial and terminal conditions: sampling, residuals, and solves of closed forms."""

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hybridnet import PINNSolver
from hybridnet.pinn import (
    PDE,
    Box,
    DirichletBC,
    Disk,
    InitialCondition,
    Interval,
    NeumannBC,
    OperatorBC,
    PeriodicBC,
    Polygon,
    Rectangle,
    RobinBC,
    SpaceTime,
    TerminalCondition,
    isclose,
)
from hybridnet.pinn.derivatives import AutogradDerivatives


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def derivatives(function, x):
    return AutogradDerivatives().evaluate(function, x, space_axes=[0, 1])


# ----------------------------------------------------------------------------- sampling, residuals


def test_periodic_bc_pairs_the_faces_and_compares_u_or_its_derivative():
    plate = Rectangle([-1, 0], [1, 1])
    lower_half = PeriodicBC(0, where=lambda x: x[:, 1] < 0.5)
    x = lower_half.sample(plate, 32, generator(), torch.float64)
    low, high = x[:32], x[32:]
    assert (low[:, 0] == -1).all() and (high[:, 0] == 1).all()
    assert torch.equal(low[:, 1], high[:, 1]) and (low[:, 1] < 0.5).all()
    # u = x + y sin(pi x): u differs across the faces (-1 against 1), du/dx does not
    u = derivatives(lambda p: p[:, 0] + p[:, 1] * torch.sin(math.pi * p[:, 0]), x)
    torch.testing.assert_close(lower_half.residual(x, u.u, None, plate),
                               torch.full((32,), -2.0, dtype=torch.float64))
    slope = PeriodicBC(0, derivative_order=1)
    assert slope.needs_derivatives and not lower_half.needs_derivatives
    torch.testing.assert_close(slope.residual(x, u.u, u, plate),
                               torch.zeros(32, dtype=torch.float64), atol=1e-12, rtol=0)


def test_periodic_bc_needs_a_space_axis_and_a_box_along_it():
    with pytest.raises(ValueError, match=r"PeriodicBC\(axis=1, derivative_order=0, weight=1.0\) "
                                         r"needs a space axis of SpaceTime.*, one of \[0\]"):
        PDE(SpaceTime(Interval(0, 1), (0, 1)), lambda x, d: d.u, [PeriodicBC(1)])
    triangle = Polygon([[0, 0], [1, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"moved to x\[0\] = 1.0 are not on the boundary of "
                                         r"Polygon.*which must be a box along axis 0"):
        PeriodicBC(0).sample(triangle, 8, generator())


def test_robin_and_neumann_use_the_normals_of_curved_and_composed_boundaries():
    # u = |x - c|^2: du/dn = 2 r on a circle of radius r around c, -2 r on a hole's edge
    # (whose normal points into the hole).
    center = torch.tensor([0.5, 0.5], dtype=torch.float64)

    def u(p):
        return ((p - center) ** 2).sum(dim=1)

    disk = Disk([0.5, 0.5], 2.0)
    robin = RobinBC(lambda x: x[:, 0], 0.5, lambda x: 4 * x[:, 0] + 2.0)  # x u + du/dn / 2
    x = robin.sample(disk, 16, generator(), torch.float64)
    torch.testing.assert_close(robin.residual(x, u(x), derivatives(u, x), disk),
                               torch.zeros(16, dtype=torch.float64))
    plate = Rectangle([0, 0], [1, 1]) - Disk([0.5, 0.5], 0.25)
    hole = NeumannBC(-0.5, where=lambda x: ((x - center) ** 2).sum(dim=1) < 0.1)
    x = hole.sample(plate, 16, generator(), torch.float64)
    assert ((x - center).norm(dim=1) - 0.25).abs().max() < 1e-9
    torch.testing.assert_close(hole.residual(x, u(x), derivatives(u, x), plate),
                               torch.zeros(16, dtype=torch.float64))


def test_time_slices_with_where_and_derivative():
    drum = SpaceTime(Disk([0, 0], 1), (0.5, 2.0))
    left = InitialCondition(0.0, where=lambda x: x[:, 0] < 0)
    x = left.sample(drum, 64, generator())
    assert (x[:, 2] == 0.5).all() and (x[:, 0] < 0).all()
    # u = x t^2: u_t = 2 x t, so 1 * x at t = 0.5 and 4 x at t = 2
    function = lambda p: p[:, 0] * p[:, 2] ** 2  # noqa: E731
    for condition, factor in ((InitialCondition(lambda x: x[:, 0], derivative=1), 1.0),
                              (TerminalCondition(lambda x: 4 * x[:, 0], derivative=1), 4.0)):
        x = condition.sample(drum, 16, generator(), torch.float64)
        d = AutogradDerivatives().evaluate(function, x, space_axes=[0, 1])
        assert condition.needs_derivatives
        torch.testing.assert_close(condition.residual(x, d.u, d, drum),
                                   torch.zeros(16, dtype=torch.float64))
        torch.testing.assert_close(d.diff(2), factor * x[:, 0])
    with pytest.raises(ValueError, match="where\\(x\\) selects almost no initial point"):
        InitialCondition(0.0, where=lambda x: x[:, 0] > 5).sample(drum, 8, generator())


def test_operator_bc_on_slices_and_its_checks():
    rod = SpaceTime(Interval(0, 1), (0, 2))
    end = OperatorBC(lambda x, d: d.diff(1) + d.u, on="terminal")
    x = end.sample(rod, 8, generator(), torch.float64)
    assert (x[:, 1] == 2).all()
    d = AutogradDerivatives().evaluate(lambda p: torch.exp(-p[:, 1]) * p[:, 0], x,
                                       space_axes=[0])
    torch.testing.assert_close(end.residual(x, d.u, d, rod), torch.zeros(8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"OperatorBC residual\(x, d\) must return a tensor of "
                                         r"shape \(8,\), got \(8, 2\)"):
        OperatorBC(lambda x, d: d.grad([0, 1])).residual(x, d.u, d, rod)
    with pytest.raises(ValueError, match="OperatorBC\\(on='initial'\\) needs a domain with a "
                                         "time_axis"):
        PDE(Interval(0, 1), lambda x, d: d.u, [OperatorBC(lambda x, d: d.u, on="initial")])


def test_operator_bc_reads_the_unknown_coefficients():
    # du/dx = k u at x = 0 with k unknown: the condition's d carries d.parameters, as the
    # residual's does
    seen = []

    def flux(x, d):
        seen.append(sorted(d.parameters))
        return d.diff(0) - d.parameters["k"] * d.u

    pde = PDE(Interval(0, 1), lambda x, d: d.diff2(0) - d.parameters["k"] ** 2 * d.u,
              [OperatorBC(flux, where=lambda x: x[:, 0] == 0)], parameters={"k": 0.5})
    X = np.linspace(0, 1, 10)[:, None]
    PINNSolver(pde, hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, np.exp(X[:, 0]))
    assert seen and all(names == ["k"] for names in seen)


def test_components_are_picked_and_checked():
    x = torch.rand(6, 2, generator=generator(), dtype=torch.float64)

    def field(p):
        return torch.stack([p[:, 0], p[:, 0] * p[:, 1], p[:, 0] ** 2 * p[:, 1]], dim=1)

    d = derivatives(field, x)
    square = Box([0, 0], [1, 1])
    torch.testing.assert_close(DirichletBC(lambda p: p[:, 0] * p[:, 1], component=1)
                               .residual(x, d.u, None, square), torch.zeros(6, dtype=x.dtype))
    # du_2/dn = d(x^2 y)/dx = 2 y on the face x = 1
    right = NeumannBC(lambda p: 2 * p[:, 1], where=lambda p: p[:, 0] == 1, component=2)
    points = right.sample(square, 6, generator(), torch.float64)
    torch.testing.assert_close(right.residual(points, None, derivatives(field, points), square),
                               torch.zeros(6, dtype=x.dtype))
    with pytest.raises(ValueError, match=re.escape(
            "NeumannBC(value=0.0, weight=1.0) does not say which of the PDE's 3 outputs")):
        NeumannBC(0.0).residual(points, None, derivatives(field, points), square)


@pytest.mark.parametrize("make, message", [
    (lambda: PeriodicBC(-1), "PeriodicBC axis must be an int >= 0"),
    (lambda: PeriodicBC(0, derivative_order=2), "derivative_order must be 0 or 1"),
    (lambda: InitialCondition(0.0, derivative=2), "InitialCondition derivative must be 0 or 1"),
    (lambda: OperatorBC(lambda x, d: d.u, on="side"), "on must be one of"),
    (lambda: OperatorBC(0.0), "OperatorBC residual must be callable"),
    (lambda: RobinBC("a", 1.0, 0.0), "RobinBC alpha must be a number or a callable"),
    (lambda: DirichletBC(0.0, component=-1), "component must be None or an int >= 0"),
    (lambda: DirichletBC(0.0, component=True), "component must be None or an int >= 0"),
    (lambda: NeumannBC(0.0, where=1), "where must be a callable of x or None"),
])
def test_bad_conditions_are_refused_by_name(make, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        make()


def right_face(x):
    return isclose(x[:, 0], 1.0)


def test_reprs_name_the_settings():
    assert repr(PeriodicBC(0, derivative_order=1)) == \
        "PeriodicBC(axis=0, derivative_order=1, weight=1.0)"
    assert repr(RobinBC(1.0, -1.0, 0.0, where=right_face, weight=2.0)) == \
        "RobinBC(alpha=1.0, beta=-1.0, value=0.0, where=right_face, weight=2.0)"
    assert repr(InitialCondition(0.0, derivative=1, component=1)) == \
        "InitialCondition(value=0.0, derivative=1, component=1, weight=1.0)"


@pytest.mark.parametrize("derivatives_name", ["finite_difference", "stein", "sparse_grid"])
def test_every_condition_in_one_batched_loss_equals_the_direct_loss(derivatives_name):
    """Every kind of condition through the back-propagation-free path: the network's outputs
    at network_inputs give the same terms as evaluating each use directly."""
    domain = SpaceTime(Interval(-1, 1), (0, 1))
    pde = PDE(domain, lambda x, d: d.diff2(1) - d.diff2(0) + d.diff2(0, 1),
              [DirichletBC(0.0, where=lambda x: x[:, 0] < 0), PeriodicBC(0),
               PeriodicBC(0, derivative_order=1), RobinBC(1.0, 2.0, 0.5, where=right_face),
               InitialCondition(lambda x: x[:, 0]), InitialCondition(0.0, derivative=1),
               TerminalCondition(1.0), OperatorBC(lambda x, d: d.diff(1) - d.u, on="terminal")])
    solver = PINNSolver(pde, hidden_layer_sizes=(8,), derivatives=derivatives_name,
                        stein_samples=4, training="bp_free", max_iter=1, n_boundary=5,
                        random_state=0).fit()
    loss = solver._loss_module.double()
    g = generator(3)
    options = dict(dtype=torch.float64, device=torch.device("cpu"))
    collocation = domain.sample_interior(6, g, torch.float64)
    draws = [collocation, loss.backend.draw(6, 2, g, **options), []]
    for condition in pde.conditions:
        points = condition.sample(domain, 5, g, torch.float64)
        draws[2].append((points, loss.backend.draw(len(points), 2, g, **options)))
    assert [len(points) for points, _ in draws[2]] == [5, 10, 10, 5, 5, 5, 5, 5]
    inputs = loss.network_inputs(*draws)
    assert len(inputs) == solver._evaluations_per_loss(SimpleNamespace(has_data=False, loss=loss),
                                                         draws)
    with torch.no_grad():
        direct = loss.terms(*draws)
        from_outputs = loss.terms_from_outputs(loss.network(inputs), *draws)
    assert direct.shape == (1 + 8,) and torch.isfinite(direct).all()
    torch.testing.assert_close(from_outputs, direct, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- closed forms
# Small tanh networks (2 x 16), Adam at the default rate; the bounds are about twice the worst
# error measured over random_state 0..2.

SMALL = dict(hidden_layer_sizes=(16, 16), n_collocation=64, n_boundary=16, random_state=0)


def at(value):
    return lambda x: isclose(x[:, 0], value)


def test_poisson_1d_with_a_periodic_condition():
    # -u'' = pi^2 sin(pi x) on [-1, 1], u(-1) = 0 and u(-1) = u(1): u = sin(pi x) (without the
    # periodic condition, sin(pi x) + a (x + 1) would solve it for any a)
    pde = PDE(Interval(-1, 1), lambda x, d: d.diff2(0) + math.pi**2 * torch.sin(math.pi * x[:, 0]),
              [DirichletBC(0.0, where=at(-1.0)), PeriodicBC(0)],
              solution=lambda x: torch.sin(math.pi * x[:, 0]))
    error = PINNSolver(pde, max_iter=500, **SMALL).fit().relative_l2_error()
    assert error < 1e-2, error  # measured 2.1e-3 (4.7e-4 to 3.0e-3)


def test_poisson_1d_with_a_robin_condition():
    # DeepXDE's Poisson_Robin_1d: u'' = 2 on [-1, 1], u(-1) = 0, u'(1) = u(1), i.e.
    # u - du/dn = 0 at x = 1; u = x^2 + a x + b with 1 - a + b = 0 and 2 + a = 1 + a + b
    # gives u = (x + 1)^2
    pde = PDE(Interval(-1, 1), lambda x, d: d.diff2(0) - 2,
              [DirichletBC(0.0, where=at(-1.0)), RobinBC(1.0, -1.0, 0.0, where=at(1.0))],
              solution=lambda x: (x[:, 0] + 1) ** 2)
    error = PINNSolver(pde, max_iter=500, **SMALL).fit().relative_l2_error()
    assert error < 1e-2, error  # measured 3.0e-3 (7.7e-4 to 3.0e-3)


def test_operator_bc_closes_a_problem():
    # u'' = e^x on [0, 1], u' - u = 0 at x = 0, u(1) = e: u = e^x + a x + b needs a = b and
    # a + b = 0, so u = e^x
    pde = PDE(Interval(0, 1), lambda x, d: d.diff2(0) - torch.exp(x[:, 0]),
              [OperatorBC(lambda x, d: d.diff(0) - d.u, where=at(0.0)),
               DirichletBC(math.e, where=at(1.0))],
              solution=lambda x: torch.exp(x[:, 0]))
    error = PINNSolver(pde, max_iter=500, **SMALL).fit().relative_l2_error()
    assert error < 1e-3, error  # measured 2.4e-4 (1.3e-4 to 2.8e-4)


def test_wave_1d_with_an_initial_velocity():
    # u_tt = u_xx on [0, 1] x [0, 0.5], u = 0 at x = 0 and 1, u(x, 0) = sin(pi x),
    # u_t(x, 0) = pi / 2 sin(pi x): by d'Alembert u = sin(pi x) (cos(pi t) + sin(pi t) / 2)
    def solution(x):
        t = x[:, 1]
        return torch.sin(math.pi * x[:, 0]) * (torch.cos(math.pi * t)
                                               + 0.5 * torch.sin(math.pi * t))

    pde = PDE(SpaceTime(Interval(0, 1), (0, 0.5)), lambda x, d: d.diff2(1) - d.diff2(0),
              [DirichletBC(0.0), InitialCondition(lambda x: torch.sin(math.pi * x[:, 0])),
               InitialCondition(lambda x: math.pi / 2 * torch.sin(math.pi * x[:, 0]),
                                derivative=1)],
              solution=solution)
    solver = PINNSolver(pde, max_iter=1000, **{**SMALL, "n_collocation": 128, "n_boundary": 32})
    error = solver.fit().relative_l2_error()
    assert error < 0.07, error  # measured 3.2e-2 (2.8e-2 to 3.2e-2)


def test_backward_heat_from_a_terminal_condition():
    # u_t + 0.1 u_xx = 0 on [0, 1] x [0, 1], u = 0 at x = 0 and 1, u(x, 1) = sin(pi x):
    # u = exp(0.1 pi^2 (t - 1)) sin(pi x)
    pde = PDE(SpaceTime(Interval(0, 1), (0, 1)), lambda x, d: d.diff(1) + 0.1 * d.diff2(0),
              [DirichletBC(0.0), TerminalCondition(lambda x: torch.sin(math.pi * x[:, 0]))],
              solution=lambda x: torch.exp(0.1 * math.pi**2 * (x[:, 1] - 1))
              * torch.sin(math.pi * x[:, 0]))
    error = PINNSolver(pde, max_iter=500, **SMALL).fit().relative_l2_error()
    assert error < 0.1, error  # measured 4.2e-2 (4.2e-2 to 5.5e-2)


def test_poisson_on_a_disk_with_a_neumann_condition_on_the_curved_rim():
    # -Laplacian u = 4 on the unit disk, u = 0 on the upper half of the rim and du/dn = -2 on
    # the lower half: u = 1 - |x|^2
    pde = PDE(Disk([0, 0], 1), lambda x, d: d.laplacian() + 4,
              [DirichletBC(0.0, where=lambda x: x[:, 1] >= 0),
               NeumannBC(-2.0, where=lambda x: x[:, 1] < 0)],
              solution=lambda x: 1 - (x**2).sum(dim=1))
    error = PINNSolver(pde, max_iter=500, **SMALL).fit().relative_l2_error()
    assert error < 0.06, error  # measured 2.5e-2 (1.4e-2 to 2.5e-2)
