"""Back-propagation-free PINN training: the coordinate engine on PINN losses, the hybrid
schedule, loss balancing from loss values alone, and the bp_free defaults."""

import math

import numpy as np
import pytest
import torch

from hybridnet import PINNSolver
from hybridnet.network import build_mlp
from hybridnet.perturbation import CoordinateEvaluator
from hybridnet.pinn import PDE, DirichletBC, Interval, isclose, problems
from hybridnet.pinn import solver as solver_module
from hybridnet.pinn.derivatives import make_backend
from hybridnet.pinn.loss import PINNLoss
from hybridnet.pinn.solver import HYBRID_CGE_LR_FACTOR, HYBRID_CGE_SKIP, _perturbed_losses


def oscillator_residual(x, d):
    """u' = v, v' = -u: two equations, two outputs."""
    return [d.diff(0, component=0) - d.u[:, 1], d.diff(0, component=1) + d.u[:, 0]]


def at_zero(x):
    return isclose(x[:, 0], 0.0)


def oscillator():
    return PDE(Interval(0, math.pi), oscillator_residual,
               [DirichletBC(0.0, where=at_zero, component=0),
                DirichletBC(1.0, where=at_zero, component=1)], n_outputs=2)


def _pinn_loss(pde, derivatives, tt_rank):
    """A small float64 PINN loss and one step's draws (5 interior, 4 points per condition)."""
    torch.manual_seed(0)
    network = build_mlp(pde.domain.dim, pde.n_outputs, (8, 8), "tanh", tt_rank=tt_rank)
    backend = make_backend(derivatives, scale=pde.domain.scale)
    loss = PINNLoss(network.double(), pde, backend, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    options = dict(dtype=torch.float64, device="cpu")
    collocation = pde.domain.sample_interior(5, generator, torch.float64)
    conditions = []
    for condition in pde.conditions:
        points = condition.sample(pde.domain, 4, generator, torch.float64)
        conditions.append((points, backend.draw(len(points), pde.domain.dim, generator,
                                                **options)))
    draws = [collocation, backend.draw(5, pde.domain.dim, generator, **options), conditions]
    with torch.no_grad():
        loss(*draws)  # sets the number of equations
    return loss, draws


@pytest.mark.parametrize("problem", ["poisson", "system"])
@pytest.mark.parametrize("derivatives", ["sparse_grid", "finite_difference"])
@pytest.mark.parametrize("tt_rank", [None, 2], ids=["dense", "tt"])
@pytest.mark.parametrize("step", [1e-2, -0.3])
def test_coordinate_losses_of_a_pinn_loss_equal_the_whole_loss_at_each_point(
        problem, derivatives, tt_rank, step):
    pde = problems.poisson_2d() if problem == "poisson" else oscillator()
    loss, draws = _pinn_loss(pde, derivatives, tt_rank)
    inputs = loss.network_inputs(*draws)
    closure = _perturbed_losses(loss, draws, inputs, loss.weights(False), None)
    assert CoordinateEvaluator.supports(loss.network, (inputs,))  # the engine, not a fallback
    params = list(loss.parameters())
    dim = sum(p.numel() for p in params)
    coordinates = torch.randperm(dim, generator=torch.Generator().manual_seed(2))
    fast = closure.evaluate_coordinates(params, coordinates, step)
    # The plain path: move one parameter entry, evaluate the whole loss (back end included).
    plain = []
    entries = [(p, index) for p in params for index in range(p.numel())]
    with torch.no_grad():
        for coordinate in coordinates.tolist():
            p, index = entries[coordinate]
            p.view(-1)[index] += step
            plain.append(loss(*draws))
            p.view(-1)[index] -= step
    torch.testing.assert_close(fast, torch.stack(plain), rtol=1e-9, atol=1e-10)


SMALL = dict(hidden_layer_sizes=(8, 8), tt_rank=2, derivatives="sparse_grid",
             training="bp_free", n_collocation=16, n_boundary=8, random_state=0)


def test_cge_trains_the_same_through_the_engine_as_through_whole_evaluations(monkeypatch):
    fast = PINNSolver(problems.poisson_2d(), zo_estimator="cge", max_iter=3, **SMALL).fit()
    monkeypatch.setattr(CoordinateEvaluator, "supports", staticmethod(lambda *args: False))
    plain = PINNSolver(problems.poisson_2d(), zo_estimator="cge", max_iter=3, **SMALL).fit()
    assert fast.n_network_evaluations_ == plain.n_network_evaluations_
    np.testing.assert_allclose(fast.loss_curve_, plain.loss_curve_, rtol=1e-9)
    for mine, theirs in zip(fast.module_.parameters(), plain.module_.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-7, atol=1e-9)


def test_hybrid_runs_sign_rge_then_cge_on_a_plateau(monkeypatch):
    # windows of 5 steps, and a rate of 1e-9 that leaves the loss flat: the plateau comes early
    monkeypatch.setattr(solver_module, "HYBRID_WINDOW", 5)
    solver = PINNSolver(problems.poisson_2d(), zo_estimator="hybrid", learning_rate=1e-9,
                        max_iter=60, **SMALL).fit()
    group = solver._zo_optimizer.param_groups[0]
    assert group["estimator"] == "cge" and group["coordinate_skip"] == HYBRID_CGE_SKIP
    # the decay to a twentieth over max_iter runs on through the switch
    expected = 1e-9 * HYBRID_CGE_LR_FACTOR * (1 / 20) ** (60 / 60)
    assert group["lr"] == pytest.approx(expected, rel=1e-9)
    assert solver.n_iter_ == 60 and np.isfinite(solver.loss_curve_).all()


def test_hybrid_and_auto_estimators_by_training_mode():
    with pytest.raises(ValueError, match="zo_estimator='hybrid'.*needs training='bp_free'"):
        PINNSolver(problems.poisson_2d(), zo_estimator="hybrid", max_iter=1).fit()
    assert PINNSolver(problems.poisson_2d()).zo_estimator == "auto"
    assert PINNSolver(problems.poisson_2d())._settings().zo_estimator == "rge"
    bp_free = PINNSolver(problems.poisson_2d(), derivatives="sparse_grid", training="bp_free")
    assert bp_free._settings().zo_estimator == "hybrid"


def test_bp_free_balancing_estimates_the_gradient_norm_ratio_from_loss_values():
    # One balancing update at the first step, from the same network and points: many
    # directions make the zeroth-order ratio close to the autograd one.
    options = dict(hidden_layer_sizes=(8, 8), derivatives="sparse_grid", n_collocation=16,
                   n_boundary=8, max_iter=1, random_state=0)
    exact = PINNSolver(problems.poisson_2d(), **options).fit().loss_weights_[0]
    estimated = PINNSolver(problems.poisson_2d(), training="bp_free", zo_estimator="rge",
                           zo_samples=4000, **options).fit().loss_weights_[0]
    assert exact > 1.5  # the ratio is above 1, so the update moved the factor
    assert abs(estimated - exact) < 0.1 * (exact - 0.9)
    unbalanced = PINNSolver(problems.poisson_2d(), training="bp_free", loss_balancing="none",
                            **options).fit()
    assert unbalanced.loss_weights_[0] == 1.0


def test_the_bp_free_defaults_improve_clearly_on_the_former_ones():
    # measured at this size: 0.168 against 1.03 for the former defaults (RGE at 3e-3, no
    # balancing); the full-size runs are in doc/pinn.md
    options = dict(hidden_layer_sizes=(16, 16), derivatives="sparse_grid", training="bp_free",
                   tt_rank=2, n_collocation=64, n_boundary=32, max_iter=300, random_state=0)
    default = PINNSolver(problems.poisson_2d(), **options).fit()
    former = PINNSolver(problems.poisson_2d(), zo_estimator="rge", learning_rate=3e-3,
                        loss_balancing="none", **options).fit()
    assert default.relative_l2_error() < 0.3
    assert default.relative_l2_error() < 0.3 * former.relative_l2_error()
