"""What makes PINNSolver accurate: Stein variance reduction, adaptive sampling, L-BFGS, plots."""

import numpy as np
import pytest
import torch

from hybridnet import PINNSolver
from hybridnet.pinn import PDE, RAD, Box, DirichletBC, problems
from hybridnet.pinn.derivatives import (
    AutogradDerivatives,
    SteinDerivatives,
    gaussian_directions,
)
from hybridnet.pinn.solver import PINNSolver as Solver

# ----------------------------------------------------------------------------- Stein


def quadratic(x):
    """x' A x + b' x + 1 in three coordinates, A with off-diagonal entries."""
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    return 2 * a**2 - b**2 + 0.5 * c**2 + 3 * a * b - a * c + 2 * b * c + a - 2 * c + 1


def quadratic_derivatives(x):
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    gradient = torch.stack([4 * a + 3 * b - c + 1, -2 * b + 3 * a + 2 * c, c - a + 2 * b - 2],
                           dim=1)
    return gradient, torch.tensor([4.0, -2.0, 1.0], dtype=x.dtype).expand(len(x), 3)


@pytest.fixture
def points():
    return torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("sampling", ["qmc", "mc"])
def test_stein_control_variates_are_exact_for_a_quadratic(points, sampling):
    # 16 pairs >= D (D + 1) = 12: the full quadratic basis, so only rounding is left.
    backend = SteinDerivatives(0.1, 16, sampling=sampling)
    noise = backend.draw(len(points), 3, torch.Generator().manual_seed(1), dtype=torch.float64,
                         device="cpu")
    d = backend.evaluate(quadratic, points, noise, space_axes=[0, 1, 2])
    gradient, second = quadratic_derivatives(points)
    torch.testing.assert_close(d.grad(), gradient, rtol=0, atol=1e-9)
    torch.testing.assert_close(torch.stack([d.diff2(i) for i in range(3)], 1), second,
                               rtol=0, atol=1e-8)
    plain = SteinDerivatives(0.1, 16, sampling=sampling, control_variates=False)
    d_plain = plain.evaluate(quadratic, points, noise, space_axes=[0, 1, 2])
    assert (d_plain.laplacian() - second.sum(1)).abs().mean() > 0.5  # what they remove


def test_stein_variance_reduction_on_a_network_at_the_same_cost():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(),
                                  torch.nn.Linear(32, 1)).double()
    x = torch.rand(400, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = AutogradDerivatives().evaluate(lambda p: network(p)[:, 0], x, space_axes=[0, 1])
    laplacian, gradient = exact.laplacian().detach(), exact.grad().detach()
    errors = {}
    for name, options in {"mc": dict(sampling="mc", control_variates=False),
                          "qmc": dict(sampling="qmc", control_variates=False),
                          "qmc + cv": {}}.items():
        backend = SteinDerivatives(0.01, 32, **options)
        noise = backend.draw(len(x), 2, torch.Generator().manual_seed(3), dtype=x.dtype,
                             device="cpu")
        calls = []

        def counted(p, calls=calls):
            calls.append(len(p))
            return network(p)[:, 0]

        with torch.no_grad():
            d = backend.evaluate(counted, x, noise, space_axes=[0, 1])
        assert calls == [len(x) * 65]  # 2N + 1 evaluations per point whatever the options
        errors[name] = (float((d.laplacian() - laplacian).norm() / laplacian.norm()),
                        float((d.grad() - gradient).norm() / gradient.norm()))
    assert errors["qmc"][1] < 0.8 * errors["mc"][1]  # QMC: a better spread of directions
    # Control variates leave only the O(s^2) difference of smoothed and raw derivatives.
    assert errors["qmc + cv"][0] < 1e-3 * errors["mc"][0]
    assert errors["qmc + cv"][1] < 1e-2 * errors["mc"][1]


def test_qmc_directions_are_gaussian_and_independent_between_points():
    z = gaussian_directions(2000, 64, 3, torch.Generator().manual_seed(0),
                            dtype=torch.float64, device="cpu")
    flat = z.reshape(-1, 3)
    torch.testing.assert_close(flat.mean(0), torch.zeros(3, dtype=torch.float64), atol=0.01,
                               rtol=0)
    torch.testing.assert_close(torch.cov(flat.T), torch.eye(3, dtype=torch.float64),
                               atol=0.01, rtol=0)
    assert float(flat.pow(4).mean()) == pytest.approx(3.0, abs=0.1)
    assert not torch.equal(z[0], z[1])  # each point has its own random shift
    # Per point, the sample second moment is far closer to 1 than with Monte Carlo draws.
    mc = gaussian_directions(2000, 64, 3, torch.Generator().manual_seed(0), sampling="mc",
                             dtype=torch.float64, device="cpu")
    assert (z**2).mean(1).std() < 0.5 * (mc**2).mean(1).std()
    with pytest.raises(ValueError, match="sampling must be one of"):
        gaussian_directions(1, 4, 2, torch.Generator(), sampling="sobol",
                            dtype=torch.float64, device="cpu")


# ----------------------------------------------------------------------------- RAD


def test_rad_probabilities_follow_the_formula():
    residuals = torch.tensor([0.0, 1.0, -2.0, 3.0])
    for k, c in ((1.0, 1.0), (2.0, 0.5), (0.0, 1.0)):
        density = residuals.abs() ** k / (residuals.abs() ** k).mean() + c
        torch.testing.assert_close(RAD(k=k, c=c).probabilities(residuals),
                                   density / density.sum())
    torch.testing.assert_close(RAD().probabilities(torch.zeros(4)), torch.full((4,), 0.25))
    for options, message in ((dict(k=-1), "k must be"), (dict(c=float("nan")), "c must be"),
                             (dict(every=0), "every must be"), (dict(k=0, c=0), "0/0"),
                             (dict(n_candidates=2.5), "n_candidates")):
        with pytest.raises(ValueError, match=message):
            RAD(**options)


def _bump_residual(x, d):
    # u = bump(x): the residual of an untrained network is large near (0.8, 0.8) only.
    return d.u - 10 * torch.exp(-((x - 0.8) ** 2).sum(dim=1) / 0.005)


@pytest.fixture
def drawn(monkeypatch):
    """The collocation points of every draw of the solver's fits, in order."""
    points = []
    original = Solver._draw

    def spy(self, plan):
        draws = original(self, plan)
        points.append(draws[0])
        return draws

    monkeypatch.setattr(Solver, "_draw", spy)
    return points


def test_rad_moves_the_collocation_points_toward_large_residuals(drawn):
    pde = PDE(Box([0, 0], [1, 1]), _bump_residual)
    near = {}
    for sampling in ("uniform", RAD(k=2, c=0.1, every=5)):
        drawn.clear()
        solver = PINNSolver(pde, hidden_layer_sizes=(8,), max_iter=10, n_collocation=500,
                            learning_rate=1e-6, sampling=sampling, random_state=0).fit()
        late = torch.cat(drawn[-5:])  # the steps after the refresh at step 5
        near[str(sampling)] = float(((late - 0.8).norm(dim=1) < 0.1).double().mean())
    # About 3 % of uniform points lie within 0.1 of the bump; RAD puts most of them there.
    assert near["uniform"] < 0.06
    assert near[str(RAD(k=2, c=0.1, every=5))] > 0.5
    # A refresh evaluates the residual at ten times n_collocation candidates, counted.
    assert solver.n_network_evaluations_ == 10 * 500 + 5000


def test_rad_uses_x_as_the_candidate_pool_and_works_without_backprop():
    pde = problems.poisson_2d(hard_constraint=True)
    X = pde.domain.sample_interior(300, torch.Generator().manual_seed(0), torch.float64)
    evaluations = {}
    for sampling in ("uniform", RAD(every=2)):
        solver = PINNSolver(pde, hidden_layer_sizes=(8,), derivatives="finite_difference",
                            training="bp_free", zo_samples=2, max_iter=4, n_collocation=50,
                            sampling=sampling, random_state=0).fit(X.numpy())
        assert solver.n_iter_ == 4 and np.isfinite(solver.loss_curve_).all()
        evaluations[str(sampling)] = solver.n_network_evaluations_
    # one refresh (at step 2) evaluates the residual at the 300 rows of X, 5 points each
    assert evaluations[str(RAD(every=2))] - evaluations["uniform"] == 300 * 5


# ----------------------------------------------------------------------------- L-BFGS


def test_lbfgs_after_adam_lowers_the_error_with_a_fresh_draw_each_round(monkeypatch, drawn):
    import hybridnet.pinn.solver as solver_module

    options = dict(hidden_layer_sizes=(16, 16), max_iter=300, n_collocation=256,
                   random_state=0)
    pde = problems.heat_1d()
    adam = PINNSolver(pde, **options).fit()
    assert adam.n_lbfgs_iter_ == 0
    monkeypatch.setattr(solver_module, "LBFGS_ROUND", 100)
    drawn.clear()
    both = PINNSolver(pde, lbfgs_iter=300, **options).fit()
    assert both.relative_l2_error() < 0.5 * adam.relative_l2_error()
    assert both.n_iter_ == adam.n_iter_ == 300  # L-BFGS iterations are not Adam steps
    assert 0 < both.n_lbfgs_iter_ <= 300
    # the plan's first draw, 300 Adam steps, then three L-BFGS rounds on points of their own
    rounds = drawn[-3:]
    assert len(drawn) == 1 + 300 + 3
    assert not torch.equal(rounds[0], rounds[1]) and not torch.equal(rounds[1], rounds[2])


# ----------------------------------------------------------------------------- plots


def test_plot_solution_draws_prediction_reference_and_error(tmp_path):
    pytest.importorskip("matplotlib")
    from hybridnet.plotting import plot_solution

    solver = PINNSolver(problems.heat_1d(), hidden_layer_sizes=(8,), max_iter=20,
                        random_state=0).fit()
    path = tmp_path / "heat.png"
    figure = plot_solution(solver, path, resolution=30, title="heat")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    prediction, reference, error = (axis.get_images()[0].get_array() for axis in
                                    figure.axes[:3])
    x, t = np.meshgrid(np.linspace(0, 1, 30), np.linspace(0, 1, 30))
    np.testing.assert_allclose(reference, np.exp(-0.1 * np.pi**2 * t) * np.sin(np.pi * x),
                               atol=1e-12)
    np.testing.assert_allclose(error, np.abs(prediction - reference))
    assert [axis.get_xlabel() for axis in figure.axes[:3]] == ["x"] * 3
    assert figure.axes[0].get_ylabel() == "t"
    # A 21-D problem is drawn on a slice through the box's centre.
    hjb = PINNSolver(problems.hjb(20), hidden_layer_sizes=(4,), max_iter=1,
                     random_state=0).fit()
    assert len(plot_solution(hjb, axes=(0, 20), resolution=10).axes) == 6
    with pytest.raises(ValueError, match="axes must be two different"):
        plot_solution(solver, axes=(0, 0))
    no_reference = PINNSolver(PDE(Box([0, 0], [1, 1]), _bump_residual, [DirichletBC(0.0)]),
                              hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit()
    assert len(plot_solution(no_reference, resolution=10).axes) == 2


# ----------------------------------------------------------------------------- defaults


def _left(x):
    return x[:, 0] == 0


def _not_left(x):
    return x[:, 0] > 0


def test_conditions_are_balanced_as_one_group_keeping_the_user_ratio():
    poisson = problems.poisson_2d()
    pde = PDE(poisson.domain, poisson.residual,
              [DirichletBC(0.0, where=_left, weight=1.0),
               DirichletBC(0.0, where=_not_left, weight=3.0)], solution=poisson.solution)
    solver = PINNSolver(pde, hidden_layer_sizes=(8, 8), max_iter=40, random_state=0).fit()
    left, rest = solver.loss_weights_
    # Poisson's residual outweighs its boundary: one factor lifts both conditions.
    assert left > 2 and rest == pytest.approx(3 * left)


@pytest.mark.parametrize("name", ["poisson_2d", "heat_1d", "burgers_1d", "black_scholes"])
def test_default_balancing_is_no_worse_than_none(name):
    errors = {}
    for balancing in ("auto", "none"):
        solver = PINNSolver(getattr(problems, name)(), hidden_layer_sizes=(16, 16),
                            max_iter=300, n_collocation=128, loss_balancing=balancing,
                            random_state=0).fit()
        errors[balancing] = solver.relative_l2_error()
    assert errors["auto"] <= 1.05 * errors["none"], errors


def test_sample_solution_gives_noisy_measurements_of_the_reference():
    pde = problems.heat_1d()
    X, exact = pde.sample_solution(4000, random_state=0)
    assert X.shape == (4000, 2) and (X >= 0).all() and (X <= 1).all()
    np.testing.assert_allclose(exact, np.exp(-0.1 * np.pi**2 * X[:, 1]) * np.sin(np.pi * X[:, 0]))
    X_again, noisy = pde.sample_solution(4000, noise=0.01, random_state=0)
    np.testing.assert_array_equal(X_again, X)
    rms = np.sqrt(np.mean(exact**2))
    assert np.std(noisy - exact) == pytest.approx(0.01 * rms, rel=0.05)
    with pytest.raises(ValueError, match="noise must be"):
        pde.sample_solution(10, noise=-1)
    with pytest.raises(ValueError, match="no exact solution"):
        PDE(Box([0], [1]), _bump_residual).sample_solution(10)
