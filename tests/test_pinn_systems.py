"""PDE systems (several outputs), mixed second derivatives and input transforms."""

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import hybridnet
from hybridnet import PINNSolver
from hybridnet.pinn import PDE, Box, DirichletBC, Interval, NeumannBC, isclose
from hybridnet.pinn.derivatives import (
    AutogradDerivatives,
    FiniteDifferences,
    SparseGridDerivatives,
    SteinDerivatives,
)
from hybridnet.pinn.loss import PINNLoss

# ----------------------------------------------------------------------------- back ends


def vector_field(p):
    """Three components of three coordinates (x, y, t), with mixed terms in each."""
    x, y, t = p[:, 0], p[:, 1], p[:, 2]
    return torch.stack([torch.sin(x) * y, x**2 * t, torch.exp(0.5 * y) * torch.cos(t) + x * y * t],
                       dim=1)


def every_derivative(d):
    """Each derivative a residual can ask for, per component and stacked, by name."""
    calls = {"u": lambda: d.u, "grad": lambda: d.grad([0, 1, 2]),
             "laplacian": lambda: d.laplacian(), "diff(2)": lambda: d.diff(2)}
    for i in range(3):
        for j in range(i, 3):
            calls[f"diff2({i}, {j})"] = lambda i=i, j=j: d.diff2(i, j)
    for c in range(3):
        calls[f"diff(0, component={c})"] = lambda c=c: d.diff(0, component=c)
        calls[f"diff2(2, 0, component={c})"] = lambda c=c: d.diff2(2, 0, component=c)
        calls[f"grad(component={c})"] = lambda c=c: d.grad(component=c)
        calls[f"laplacian(component={c})"] = lambda c=c: d.laplacian(component=c)
    return {name: call() for name, call in calls.items()}


@pytest.mark.parametrize("backend, tolerance", [
    (FiniteDifferences(1e-4), 1e-6),
    # N = 16 >= D (D + 1): the control variates' full quadratic basis
    (SteinDerivatives(1e-2, 16), 1e-3),
    # s^2 = 1e-6: the raw network's derivatives up to O(s^2)
    (SparseGridDerivatives(1e-3), 1e-5),
], ids=["finite_difference", "stein", "sparse_grid"])
def test_every_back_end_matches_autograd_on_a_vector_field(backend, tolerance):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, generator=generator, dtype=torch.float64)
    noise = backend.draw(40, 3, generator, dtype=x.dtype, device="cpu")
    exact = every_derivative(AutogradDerivatives().evaluate(vector_field, x, space_axes=[0, 1]))
    estimated = every_derivative(backend.evaluate(vector_field, x, noise, space_axes=[0, 1]))
    assert exact["grad"].shape == (40, 3, 3) and exact["diff2(0, 1)"].shape == (40, 3)
    # a hand-derived check of the reference itself: d2/dx dt of component 2 is y
    torch.testing.assert_close(exact["diff2(2, 0, component=2)"], x[:, 1])
    for name, value in exact.items():
        assert estimated[name].shape == value.shape, name
        error = (estimated[name] - value).abs().max() / value.abs().max().clamp_min(1)
        assert error < tolerance, (name, float(error))


def cubic(p):
    """A cubic polynomial with every mixed term of degree <= 3, two components."""
    x, y, t = p[:, 0], p[:, 1], p[:, 2]
    return torch.stack([x * y * t + x**2 * y - 2 * y * t**2, x**3 - x * t + y**2 * t], dim=1)


def cubic_hessian(p):
    """Exact (n, 3, 3, 2) Hessians of ``cubic``."""
    x, y, t = p[:, 0], p[:, 1], p[:, 2]
    zero = torch.zeros_like(x)
    first = [[2 * y, t + 2 * x, y], [t + 2 * x, zero, x - 4 * t], [y, x - 4 * t, -4 * y]]
    second = [[6 * x, zero, -torch.ones_like(x)], [zero, 2 * t, 2 * y],
              [-torch.ones_like(x), 2 * y, zero]]
    return torch.stack([torch.stack([torch.stack(row, dim=1) for row in h], dim=1)
                        for h in (first, second)], dim=3)


def test_sparse_grid_mixed_derivatives_are_exact_for_cubics_from_the_same_values():
    x = torch.rand(9, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    calls = []

    def counted(p):
        calls.append(len(p))
        return cubic(p)

    d = SparseGridDerivatives(0.3).evaluate(counted, x)  # a large s: exact all the same
    hessian = cubic_hessian(x)
    for i in range(3):
        for j in range(3):
            torch.testing.assert_close(d.diff2(i, j), hessian[:, i, j], rtol=1e-10, atol=1e-10)
    assert calls == [9 * 25]  # the mixed derivatives cost no evaluation of their own


def test_stein_mixed_derivatives_exact_for_quadratics_with_control_variates_unbiased_without():
    # With the full quadratic basis (N >= D (D + 1)) the estimate is exact for a quadratic.
    x = torch.rand(5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    stein = SteinDerivatives(0.1, 6)
    noise = stein.draw(5, 2, torch.Generator().manual_seed(3), dtype=x.dtype, device="cpu")
    d = stein.evaluate(lambda p: 3 * p[:, 0] * p[:, 1] - p[:, 1] ** 2 + p[:, 0], x, noise)
    torch.testing.assert_close(d.diff2(0, 1), torch.full((5,), 3.0, dtype=x.dtype))
    # u = sin x sin y smoothed by N(0, s^2 I) is exp(-s^2) sin x sin y (closed form): plain
    # Monte Carlo estimates its mixed derivative exp(-s^2) cos x cos y without bias.
    s, repeats, point = 0.3, 20000, (0.4, -0.7)
    plain = SteinDerivatives(s, 8, sampling="mc", control_variates=False)
    x = torch.tensor([point], dtype=torch.float64).expand(repeats, 2)
    noise = plain.draw(repeats, 2, torch.Generator().manual_seed(0), dtype=x.dtype, device="cpu")
    mixed = plain.evaluate(lambda p: torch.sin(p[:, 0]) * torch.sin(p[:, 1]), x,
                           noise).diff2(1, 0)
    exact = math.exp(-s**2) * math.cos(point[0]) * math.cos(point[1])
    standard_error = float(mixed.std()) / math.sqrt(repeats)
    assert abs(float(mixed.mean()) - exact) < 4 * standard_error


def test_finite_differences_add_a_mixed_pair_when_first_asked():
    x = torch.rand(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    calls = []

    def counted(p):
        calls.append(len(p))
        return cubic(p)

    fd = FiniteDifferences(1e-3)
    d = fd.evaluate(counted, x)
    d.diff2(1)
    d.diff(0)
    assert calls == [6 * 7] and fd.mixed_pairs == []
    torch.testing.assert_close(d.diff2(2, 1), cubic_hessian(x)[:, 1, 2], rtol=1e-6, atol=1e-6)
    assert calls == [6 * 7, 6 * 2] and fd.mixed_pairs == [(1, 2)]
    d.diff2(1, 2, component=0)  # cached: no further call
    calls.clear()
    again = fd.evaluate(counted, x)
    torch.testing.assert_close(again.diff2(1, 2), d.diff2(1, 2))
    assert calls == [6 * 9] == [6 * fd.evaluations_per_point(3)]
    # the split path has no network to call: a pair its values lack is refused by name
    values = torch.zeros(6, 9, dtype=torch.float64)
    with pytest.raises(ValueError, match=re.escape("d2u/dx0dx2: these finite-difference values "
                                                   "hold no shifts along e0 + e2")):
        fd.from_values(values, x).diff2(0, 2)
    with pytest.raises(ValueError, match="need 9 values per point"):
        fd.from_values(torch.zeros(6, 7, dtype=torch.float64), x)


def test_one_output_keeps_the_scalar_shapes_and_components_are_checked():
    x = torch.rand(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scalar = AutogradDerivatives().evaluate(lambda p: p[:, 0] * p[:, 1] ** 2, x)
    assert scalar.u.shape == (4,) and scalar.n_outputs == 1
    assert scalar.grad([0, 1]).shape == (4, 2) and scalar.diff2(0, 1).shape == (4,)
    torch.testing.assert_close(scalar.diff2(1, 0, component=0), 2 * x[:, 1])
    with pytest.raises(IndexError, match=re.escape(
            "d.diff(0, component=1): component 1 is out of range for a u of 1 component(s) "
            "(valid components 0..0)")):
        scalar.diff(0, component=1)
    system = AutogradDerivatives().evaluate(vector_field, torch.rand(4, 3, dtype=torch.float64))
    with pytest.raises(IndexError, match=re.escape("d.diff2(0, 3): axis 3 is out of range")):
        system.diff2(0, 3)
    with pytest.raises(TypeError, match=re.escape("d.laplacian(component=0.5): component must "
                                                  "be an int or None, got float")):
        system.laplacian(component=0.5)


# ----------------------------------------------------------------------------- input transform


def features(x):
    """Periodic features of a 1-D coordinate and time: (cos x, sin x, t)."""
    return torch.stack([torch.cos(x[:, 0]), torch.sin(x[:, 0]), x[:, 1]], dim=1)


@pytest.mark.parametrize("backend, tolerance", [(AutogradDerivatives(), 1e-12),
                                                (FiniteDifferences(1e-4), 1e-6)],
                         ids=["autograd", "finite_difference"])
def test_input_transform_derivatives_follow_the_chain_rule(backend, tolerance):
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    pde = PDE(Box([0, 0], [2 * math.pi, 1], time_axis=1), lambda x, d: d.diff(1),
              input_transform=features, n_outputs=2)
    loss = PINNLoss(network, pde, backend)
    x = pde.domain.sample_interior(7, torch.Generator().manual_seed(1), torch.float64)
    d = backend.evaluate(loss.field, x, space_axes=[0])
    # chain rule by hand: the network's own derivatives in its features (f1, f2, t) = (cos x,
    # sin x, t): du/dx = -sin x N_1 + cos x N_2, d2u/dx2 = sin^2 x N_11 - 2 sin x cos x N_12
    # + cos^2 x N_22 - cos x N_1 - sin x N_2, d2u/dx dt = -sin x N_13 + cos x N_23
    inner = AutogradDerivatives().evaluate(network, features(x))
    sin, cos = torch.sin(x[:, :1]), torch.cos(x[:, :1])
    n1, n2 = inner.diff(0), inner.diff(1)
    first = -sin * n1 + cos * n2
    second = (sin**2 * inner.diff2(0) - 2 * sin * cos * inner.diff2(0, 1)
              + cos**2 * inner.diff2(1) - cos * n1 - sin * n2)
    mixed = -sin * inner.diff2(0, 2) + cos * inner.diff2(1, 2)
    for value, expected in ((d.diff(0), first), (d.diff2(0), second), (d.diff2(0, 1), mixed),
                            (d.diff(1), inner.diff(2))):
        torch.testing.assert_close(value, expected, rtol=tolerance, atol=tolerance)
    assert network_periodic(loss, x)


def network_periodic(loss, x):
    """The field through (cos x, sin x) features is 2 pi periodic in x."""
    shifted = x + torch.tensor([2 * math.pi, 0], dtype=x.dtype)
    return torch.allclose(loss.field(x), loss.field(shifted), atol=1e-12)


# ----------------------------------------------------------------------------- solving systems


def oscillator_residual(x, d):
    """u' = v, v' = -u: two equations, two outputs."""
    return [d.diff(0, component=0) - d.u[:, 1], d.diff(0, component=1) + d.u[:, 0]]


def oscillator_solution(x):
    return torch.stack([torch.sin(x[:, 0]), torch.cos(x[:, 0])], dim=1)


def at_zero(x):
    return isclose(x[:, 0], 0.0)


def oscillator(**options):
    """On [0, pi] from u(0) = 0, v(0) = 1: u = sin, v = cos."""
    return PDE(Interval(0, math.pi), oscillator_residual,
               [DirichletBC(0.0, where=at_zero, component=0),
                DirichletBC(1.0, where=at_zero, component=1)],
               solution=oscillator_solution, n_outputs=2, **options)


SMALL = dict(hidden_layer_sizes=(16, 16), n_collocation=64, n_boundary=16, random_state=0)


def test_a_system_trains_with_a_term_per_equation_and_per_component_errors():
    pde = oscillator()
    solver = PINNSolver(pde, max_iter=1000, **SMALL).fit()
    errors = solver.relative_l2_error()
    # measured 0.022 and 0.038 (random_state 0..3: at most 0.025 and 0.039)
    assert isinstance(errors, np.ndarray) and errors.shape == (2,)
    assert (errors < 0.08).all(), errors
    X = np.linspace(0, math.pi, 5)[:, None]
    assert solver.predict(X).shape == (5, 2) and solver.module_[-1].out_features == 2
    loss = solver._loss_module
    assert loss.n_equations == 2
    assert loss.term_names(with_data=False)[:2] == ["equation 0 of the PDE residual",
                                                    "equation 1 of the PDE residual"]
    # one factor lifts both conditions; the equations keep weight 1
    assert solver.loss_weights_.shape == (2,) and solver.loss_weights_[0] > 1
    assert loss.weights(False)[:2].tolist() == [1.0, 1.0]
    assert solver.score(X, oscillator_solution(torch.as_tensor(X)).numpy()) > 0.9


def test_rad_lbfgs_and_the_data_term_with_unmeasured_components(monkeypatch):
    import hybridnet.pinn.solver as solver_module

    monkeypatch.setattr(solver_module, "LBFGS_ROUND", 20)
    pde = oscillator(parameters={"frequency": 0.5})
    pde.residual = lambda x, d: [d.diff(0, component=0) - d.parameters["frequency"] * d.u[:, 1],
                                 d.diff(0, component=1) + d.parameters["frequency"] * d.u[:, 0]]
    X = np.linspace(0, math.pi, 40)[:, None]
    y = oscillator_solution(torch.as_tensor(X)).numpy()
    y[:, 1] = np.nan  # only u is measured
    solver = PINNSolver(pde, max_iter=300, sampling="rad", lbfgs_iter=40, **SMALL).fit(X, y)
    assert solver.n_lbfgs_iter_ > 0 and np.isfinite(solver.loss_curve_).all()
    # the frequency (truth 1, started at 0.5) from u alone: measured 0.965 (random_state 0..2:
    # 0.965 to 0.989)
    assert abs(solver.parameters_["frequency"] - 1) < 0.1, solver.parameters_
    assert solver._loss_module.term_names(with_data=True)[-1] == "the data term"
    with pytest.raises(ValueError, match=r"y must have shape \(40, 2\) for a PDE of 2 outputs"):
        PINNSolver(pde, max_iter=1).fit(X, y[:, 0])
    with pytest.raises(ValueError, match="every entry is NaN"):
        PINNSolver(pde, max_iter=1).fit(X, np.full_like(y, np.nan))


def _draws(loss, pde, generator):
    """One step's draws at float64, for comparing the two ways of evaluating the loss."""
    backend, domain = loss.backend, pde.domain
    options = dict(dtype=torch.float64, device=torch.device("cpu"))
    collocation = domain.sample_interior(6, generator, torch.float64)
    conditions = []
    for condition in pde.conditions:
        points = condition.sample(domain, 5, generator, torch.float64)
        conditions.append((points, backend.draw(len(points), domain.dim, generator, **options)))
    X = domain.sample_interior(4, generator, torch.float64)
    y = torch.rand(4, pde.n_outputs, generator=generator, dtype=torch.float64)
    y[[0, 2], 1] = float("nan")  # component 1 measured at two of the four points
    return [collocation, backend.draw(6, domain.dim, generator, **options), conditions,
            (X, backend.draw(4, domain.dim, generator, **options)), y]


def flow_residual(x, d):
    """A system with mixed derivatives and a time axis: three equations of (u, v)."""
    return [d.diff(1, component=0) - d.diff2(0, 1, component=1) + d.u[:, 1],
            d.diff2(0, component=1) - d.u[:, 0] * d.diff(0, component=0),
            d.laplacian(component=0) + d.diff(1, component=1)]


@pytest.mark.parametrize("derivatives", ["finite_difference", "stein", "sparse_grid"])
def test_bp_free_loss_from_network_inputs_equals_the_direct_loss_for_systems(derivatives):
    pde = PDE(Box([0, 0], [1, 1], time_axis=1), flow_residual,
              [DirichletBC(0.0, component=0),
               NeumannBC(1.0, where=lambda x: x[:, 0] == 1, component=1)],
              output_transform=lambda x, out: out * (1 + x[:, 1:]),
              input_transform=lambda x: torch.cat([x, x.square()], dim=1), n_outputs=2)
    solver = PINNSolver(pde, hidden_layer_sizes=(8,), derivatives=derivatives, stein_samples=6,
                        training="bp_free", max_iter=2, random_state=0).fit()
    assert solver.module_[0].in_features == 4 and np.isfinite(solver.loss_curve_).all()
    loss = solver._loss_module.double()
    draws = _draws(loss, pde, torch.Generator().manual_seed(3))
    inputs = loss.network_inputs(*draws)
    plan = SimpleNamespace(has_data=True, loss=loss)
    assert inputs.shape == (solver._evaluations_per_loss(plan, draws), 4)
    with torch.no_grad():
        direct = loss.terms(*draws)
        from_outputs = loss.terms_from_outputs(loss.network(inputs), *draws)
    assert direct.shape == (3 + 2 + 1,)
    torch.testing.assert_close(from_outputs, direct, rtol=1e-12, atol=1e-12)
    # the data term: the mean over the six measured entries of y only
    X, y = draws[3], draws[4]
    with torch.no_grad():
        u = loss.values(*X)
    measured = ~torch.isnan(y)
    torch.testing.assert_close(direct[-1], (u - y)[measured].square().sum() / 6)


def test_tt_and_device_layers_train_a_system():
    pde = oscillator()
    tt = PINNSolver(pde, derivatives="sparse_grid", training="bp_free", tt_rank=2,
                    zo_estimator="central_rge", learning_rate=1e-2, max_iter=100,
                    **SMALL).fit()
    assert tt.loss_curve_[-1] < 0.5 * tt.loss_curve_[0]
    device = PINNSolver(pde, derivatives="finite_difference", physical_layer="mrr",
                        max_iter=20, **SMALL).fit()
    assert device.module_[2].black_box.n_queries > 0
    assert np.isfinite(device.loss_curve_).all() and device.predict(np.ones((3, 1))).shape == (3, 2)


def test_a_fitted_system_saves_and_loads(tmp_path):
    pde = oscillator()
    solver = PINNSolver(pde, hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit()
    path = tmp_path / "system.hnet"
    hybridnet.save(solver, path)
    loaded = hybridnet.load(path, pde=pde)
    X = np.linspace(0, math.pi, 7)[:, None]
    np.testing.assert_array_equal(loaded.predict(X), solver.predict(X))
    np.testing.assert_array_equal(loaded.relative_l2_error(), solver.relative_l2_error())
    assert loaded._loss_module.n_equations == 2


def test_system_definitions_are_checked():
    with pytest.raises(ValueError, match=re.escape(
            "DirichletBC(value=0.0, weight=1.0) does not say which of the PDE's 2 outputs it "
            "constrains: give component=0..1")):
        PDE(Interval(0, 1), oscillator_residual, [DirichletBC(0.0)], n_outputs=2)
    with pytest.raises(ValueError, match="component 2 is out of range for a PDE with 2"):
        PDE(Interval(0, 1), oscillator_residual, [DirichletBC(0.0, component=2)], n_outputs=2)
    with pytest.raises(ValueError, match="n_outputs must be an int >= 1"):
        PDE(Interval(0, 1), oscillator_residual, n_outputs=0)
    solution = PDE(Interval(0, 1), oscillator_residual, n_outputs=2,
                   solution=lambda x: x[:, 0])
    solver = PINNSolver(solution, hidden_layer_sizes=(4,), max_iter=1).fit()
    with pytest.raises(ValueError, match=r"solution\(x\) must return shape \(3, 2\)"):
        solver.relative_l2_error(np.ones((3, 1)))
    half = PDE(Interval(0, 1), lambda x, d: [d.u[:, 0], d.u[:, :1]], n_outputs=2)
    with pytest.raises(ValueError, match=re.escape("or a list of them (one per equation); "
                                                   "equation 1 is (64, 1)")):
        PINNSolver(half, hidden_layer_sizes=(4,), max_iter=1, n_collocation=64).fit()
    wrong = PDE(Interval(0, 1), oscillator_residual, n_outputs=2,
                output_transform=lambda x, out: out[:, 0])
    with pytest.raises(ValueError, match=r"output_transform\(x, network_output\) must return "
                                         r"shape \(256, 2\)"):
        PINNSolver(wrong, hidden_layer_sizes=(4,), max_iter=1).fit()


def test_sample_solution_of_a_system_scales_each_components_noise():
    pde = PDE(Interval(0, 1), oscillator_residual, n_outputs=2,
              solution=lambda x: torch.stack([x[:, 0], 100 * x[:, 0]], dim=1))
    X, exact = pde.sample_solution(4000, random_state=0)
    np.testing.assert_allclose(exact, np.stack([X[:, 0], 100 * X[:, 0]], axis=1))
    _, noisy = pde.sample_solution(4000, noise=0.01, random_state=0)
    rms = np.sqrt(np.mean(exact**2, axis=0))
    np.testing.assert_allclose(np.std(noisy - exact, axis=0), 0.01 * rms, rtol=0.05)
