"""PINNSolver(module=...): a network of the user's own in place of the built-in MLP."""

import numpy as np
import pytest
import torch
from torch import nn

import hybridnet
from hybridnet import PINNSolver
from hybridnet.pinn import problems


def _network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))


def test_a_given_module_is_trained_as_a_copy_and_saves(tmp_path):
    network = _network()
    initial = [p.detach().clone() for p in network.parameters()]
    solver = PINNSolver(problems.poisson_2d(), module=network, max_iter=200,
                        random_state=0).fit()
    # The copy trained from the given weights; the caller's module is untouched.
    assert all(torch.equal(a, b) for a, b in zip(initial, network.parameters(), strict=True))
    assert solver.module_ is not network
    first_layer = solver.module_[0].weight.detach()
    assert first_layer.shape == (16, 2) and not torch.equal(first_layer, initial[0])
    assert solver.relative_l2_error() < 0.9
    # Equal to training the same network by hand from the same weights: the solver adds
    # nothing to it (no re-initialisation).
    twin = PINNSolver(problems.poisson_2d(), module=_network(), max_iter=200,
                      random_state=0).fit()
    x = np.random.default_rng(0).random((7, 2))
    np.testing.assert_array_equal(twin.predict(x), solver.predict(x))
    path = tmp_path / "custom.hnet"
    hybridnet.save(solver, path)
    np.testing.assert_array_equal(hybridnet.load(path, module=network).predict(x),
                                  solver.predict(x))


def test_a_given_module_trains_without_back_propagation():
    solver = PINNSolver(problems.poisson_2d(), module=_network(), derivatives="sparse_grid",
                        training="bp_free", zo_estimator="rge", max_iter=30,
                        random_state=0).fit()
    assert solver.n_iter_ == 30 and np.isfinite(solver.loss_curve_).all()
    assert solver.loss_curve_[-1] < solver.loss_curve_[0]


@pytest.mark.parametrize("option", [dict(tt_rank=2), dict(physical_layer="mzi")])
def test_options_that_build_the_network_are_refused_with_a_module(option):
    with pytest.raises(ValueError, match="would be ignored"):
        PINNSolver(problems.poisson_2d(), module=_network(), **option).fit()


def test_a_module_of_the_wrong_width_is_named():
    with pytest.raises(ValueError, match=r"must output \(n, 1\).*got \(\d+, 3\)"):
        PINNSolver(problems.poisson_2d(), module=nn.Linear(2, 3), max_iter=2).fit()
