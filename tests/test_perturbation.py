"""The structure-aware perturbation engine gives the plain path's losses, faster."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from hybridnet import BlackBoxLayer, TTLinear
from hybridnet.network import Sine
from hybridnet.optim import BatchedLoss, ZerothOrderOptimizer
from hybridnet.perturbation import (
    CoordinateEvaluator,
    Workspace,
    batched_forward,
    supports_batched_forward,
    tt_core_responses,
)
from hybridnet.physical import MRRBank
from hybridnet.tensor_train import tt_to_dense


def _weighted_cross_entropy(output, targets, weights):
    losses = nn.functional.cross_entropy(output, targets, reduction="none")
    return (losses * weights).sum() / weights.sum()


def _plain_losses(closure, stacked):
    """The reference: the whole module evaluated at each point (vmap of functional_call)."""
    names = {id(p): name for name, p in closure.module.named_parameters()}
    named = {names[id(p)]: value for p, value in stacked.items()}
    return torch.vmap(lambda params: closure.loss_fn(
        functional_call(closure.module, params, closure.inputs), *closure.targets))(named)


def _networks():
    torch.manual_seed(0)
    yield "dense", nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.Tanh(),
                                 nn.Linear(5, 3))
    yield "tt", nn.Sequential(TTLinear(12, 16, 3, in_shape=[3, 4], out_shape=[4, 4]), nn.ReLU(),
                              TTLinear(16, 3, 2, in_shape=[4, 4], out_shape=[1, 3]))
    yield "mixed", nn.Sequential(TTLinear(12, 8, 2, in_shape=[2, 2, 3], out_shape=[2, 2, 2]),
                                 Sine(), nn.Linear(8, 8), nn.Sigmoid(), nn.Tanh(),
                                 TTLinear(8, 3, 2, in_shape=[2, 4], out_shape=[1, 3]))
    yield "device", nn.Sequential(nn.Linear(12, 8), nn.ReLU(),
                                  BlackBoxLayer(MRRBank(8, 8, seed=0), seed=1), nn.ReLU(),
                                  TTLinear(8, 3, 2, in_shape=[2, 4], out_shape=[1, 3]))
    yield "no activation", nn.Sequential(nn.Linear(12, 4), nn.Linear(4, 3))


@pytest.mark.parametrize("name, network", list(_networks()), ids=lambda v: v
                         if isinstance(v, str) else "")
@pytest.mark.parametrize("step", [1e-3, -0.3])
def test_coordinate_losses_equal_evaluating_the_whole_network(name, network, step):
    network = network.double()
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(9, network[0].in_features, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (9,), generator=generator)
    weights = torch.rand(9, generator=generator, dtype=torch.float64)
    closure = BatchedLoss(network, _weighted_cross_entropy, inputs, targets, weights)
    params = [p for p in network.parameters()]
    dim = sum(p.numel() for p in params)
    coordinates = torch.randperm(dim, generator=generator)
    fast = closure.evaluate_coordinates(params, coordinates, step)
    point = torch.cat([p.detach().reshape(-1) for p in params])
    points = point.expand(dim, -1).clone()
    points[torch.arange(dim), coordinates] += step
    sizes = [p.numel() for p in params]
    stacked = {p: piece.reshape(dim, *p.shape) for p, piece in
               zip(params, points.split(sizes, dim=1), strict=True)}
    plain = _plain_losses(closure, stacked)
    torch.testing.assert_close(fast, plain, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(closure.evaluate_batch(stacked), plain, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, network", [(name, network) for name, network in _networks()
                                           if name != "device"], ids=lambda v: v
                         if isinstance(v, str) else "")
@pytest.mark.parametrize("tt_path", ["contract", "assemble"])
def test_batched_forward_equals_each_point_evaluated_alone(name, network, tt_path):
    network = network.double()
    for layer in network:  # force each of a TT layer's two forward paths
        if isinstance(layer, TTLinear):
            layer._dense_from_rows = 0 if tt_path == "assemble" else float("inf")
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(7, network[0].in_features, generator=generator, dtype=torch.float64)
    x_before = x.clone()
    named = dict(network.named_parameters())
    workspace = Workspace()
    assert supports_batched_forward(network, (x,))
    # all parameters perturbed, then only the last two (the first layers stay shared)
    for chosen in (list(named), list(named)[-2:]):
        for _ in range(2):  # the second call reuses the workspace's buffers
            stacked = {name: named[name].detach() + 0.3 * torch.randn(
                5, *named[name].shape, generator=generator, dtype=torch.float64)
                for name in chosen}
            expected = torch.stack([functional_call(
                network, {name: value[p] for name, value in stacked.items()}, (x,))
                for p in range(5)])
            torch.testing.assert_close(batched_forward(network, stacked, x, workspace),
                                       expected, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(batched_forward(network, stacked, x), expected,
                                       rtol=1e-10, atol=1e-12)
    assert torch.equal(x, x_before)  # in-place activations never touch the input


def test_networks_with_devices_or_tied_weights_use_the_vmap_path():
    device_network = dict(_networks())["device"]
    x = torch.randn(3, 12)
    assert not supports_batched_forward(device_network, (x,))
    shared = nn.Linear(4, 4)
    assert not supports_batched_forward(nn.Sequential(shared, nn.ReLU(), shared),
                                        (torch.randn(3, 4),))


def test_tt_core_responses_are_the_output_change_of_each_entry():
    generator = torch.Generator().manual_seed(0)
    cores = [torch.randn(1, 2, 3, 2, generator=generator, dtype=torch.float64),
             torch.randn(2, 3, 2, 3, generator=generator, dtype=torch.float64),
             torch.randn(3, 2, 2, 1, generator=generator, dtype=torch.float64)]
    x = torch.randn(4, 12, generator=generator, dtype=torch.float64)
    base = x @ tt_to_dense(cores).T
    for k, core in enumerate(cores):
        responses, units = tt_core_responses(cores, x, k)
        for a, i, j, b in np.ndindex(*core.shape):
            bumped = [c.clone() for c in cores]
            bumped[k][a, i, j, b] += 1.0
            change = x @ tt_to_dense(bumped).T - base
            torch.testing.assert_close(change[:, units[i]], responses[a, j, b])
            others = torch.ones(change.shape[1], dtype=torch.bool)
            others[units[i]] = False
            assert change[:, others].abs().max() < 1e-12  # only outputs with k-th index i move


@pytest.mark.parametrize("estimator", ["cge", "central_rge", "rge"])
def test_the_optimizer_counts_the_same_evaluations_and_takes_the_same_steps(estimator):
    torch.manual_seed(0)
    network = nn.Sequential(TTLinear(12, 16, 3, in_shape=[3, 4], out_shape=[4, 4]), nn.ReLU(),
                            nn.Linear(16, 3)).double()
    initial = [p.detach().clone() for p in network.parameters()]
    inputs = torch.randn(20, 12, dtype=torch.float64)
    targets = torch.randint(0, 3, (20,))

    class PlainLoss(BatchedLoss):
        evaluate_coordinates = None  # no coordinate fast path: the optimizer builds points

    results = []
    for closure_class in (BatchedLoss, PlainLoss):
        with torch.no_grad():
            for p, start in zip(network.parameters(), initial, strict=True):
                p.copy_(start)
        optimizer = ZerothOrderOptimizer(network.parameters(), lr=0.05, estimator=estimator,
                                         coordinate_skip=0.3, smoothing=1e-4, seed=3)
        for _ in range(3):
            optimizer.step(closure_class(network, nn.functional.cross_entropy, inputs, targets))
        results.append(([p.detach().clone() for p in network.parameters()],
                        optimizer.n_evaluations))
    (fast, fast_count), (plain, plain_count) = results
    assert fast_count == plain_count > 0
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    assert all(p.grad is None for p in network.parameters())


def test_other_networks_fall_back_to_the_plain_path():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, x, shift):
            return self.linear(x) + shift

    model = TwoInputs().double()
    inputs = (torch.randn(4, 3, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64))
    assert not CoordinateEvaluator.supports(model, inputs)
    closure = BatchedLoss(model, lambda out: out.square().mean(), inputs)
    params = list(model.parameters())
    values = closure.evaluate_coordinates(params, torch.tensor([0, 3]), 0.5)
    with torch.no_grad():
        model.linear.weight[0, 0] += 0.5
        first = closure()
        model.linear.weight[0, 0] -= 0.5
        model.linear.bias[0] += 0.5
        second = closure()
    torch.testing.assert_close(values, torch.stack([first, second]))


def test_tied_weights_and_unknown_layers_are_left_to_the_plain_path():
    shared = nn.Linear(4, 4)
    tied = nn.Sequential(shared, nn.ReLU(), shared)
    inputs = (torch.randn(3, 4),)
    assert not CoordinateEvaluator.supports(tied, inputs)
    assert not CoordinateEvaluator.supports(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)),
                                            inputs)
    assert CoordinateEvaluator.supports(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), inputs)


def test_loss_parameters_train_beside_the_module_and_coordinates_match_the_plain_path():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    scale = nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
    inputs = torch.randn(10, 4, dtype=torch.float64)
    with torch.no_grad():
        targets = 3.0 * network(inputs)  # reached by the scale alone

    def loss_fn(output, y, values):
        return (values["scale"] * output - y).square().mean()

    closure = BatchedLoss(network, loss_fn, inputs, targets, loss_parameters={"scale": scale})
    params = [*network.parameters(), scale]
    dim = sum(p.numel() for p in params)
    coordinates = torch.arange(dim)
    fast = closure.evaluate_coordinates(params, coordinates, 1e-3)
    expected = []
    with torch.no_grad():
        for p in params:
            for index in range(p.numel()):
                p.view(-1)[index] += 1e-3
                expected.append(loss_fn(network(inputs), targets, {"scale": scale}))
                p.view(-1)[index] -= 1e-3
    torch.testing.assert_close(fast, torch.stack(expected), rtol=1e-10, atol=1e-12)
    # a stray parameter is refused by name of the problem
    with pytest.raises(ValueError, match="neither in the module"):
        closure.evaluate_batch({nn.Parameter(torch.zeros(1)): torch.zeros(2, 1)})
    optimizer = ZerothOrderOptimizer(params, lr=0.05, estimator="central_rge", n_samples=8,
                                     seed=0)
    start = float(closure())
    for _ in range(60):
        optimizer.step(closure)
    assert float(closure()) < 0.1 * start and float(scale) > 0.9  # the scale trains too
