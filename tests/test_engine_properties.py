"""Property-based tests of the zeroth-order engine: random small networks of every supported
layer kind (dense, TT, device, activations, in place or not), random shapes and dtypes; and
save / load round trips of estimators with random settings.

The independent reference is the plain whole-network evaluation: each perturbed point is
written into the parameters and the untouched network is run on a copy of the batch. Device
calls are checked against a counter kept inside the driver and against a hand count.
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import hybridnet
from hybridnet import BlackBoxLayer, HybridNetClassifier, TTLinear
from hybridnet.network import Sine
from hybridnet.optim import BatchedLoss
from hybridnet.perturbation import CoordinateEvaluator, supports_batched_forward
from hybridnet.physical import FunctionBlackBox

ACTIVATIONS = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "relu_inplace": lambda: nn.ReLU(inplace=True),
    "sigmoid": nn.Sigmoid, "identity": nn.Identity, "sine": Sine,
    "elu_inplace": lambda: nn.ELU(inplace=True),
}
PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])


class Driver:
    """A linear device ``y = reshape(params) x`` whose driver counts the vectors it served."""

    def __init__(self):
        self.served = 0

    def box(self, n_in, n_out, generator):
        def device(x, params):  # x (settings, batch, in), params (settings, n_params)
            self.served += x.shape[0] * x.shape[1]
            return torch.einsum("soi,sbi->sbo", params.reshape(len(params), n_out, n_in), x)

        init = torch.randn(n_out * n_in, generator=generator, dtype=torch.float64) / n_in
        return FunctionBlackBox(device, n_in, n_out, init_params=init, batched=True,
                                linear=True)


@st.composite
def networks(draw):
    """(model, x, targets, dtype, driver, device positions) of a random layered network."""
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    n_maps = draw(st.integers(1, 3))
    widths = draw(st.lists(st.integers(1, 6), min_size=n_maps + 1, max_size=n_maps + 1))
    kinds = draw(st.lists(st.sampled_from(["linear", "tt", "device"]), min_size=n_maps,
                          max_size=n_maps))
    activations = draw(st.lists(st.sampled_from(sorted(ACTIVATIONS)), min_size=n_maps,
                                max_size=n_maps))
    batch = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    driver, layers, device_positions = Driver(), [], []
    for index, (kind, n_in, n_out) in enumerate(zip(kinds, widths, widths[1:], strict=False)):
        if kind == "linear":
            layers.append(nn.Linear(n_in, n_out))
        elif kind == "tt":
            layers.append(TTLinear(n_in, n_out, draw(st.integers(1, 3))))
        else:
            device_positions.append(len(layers))
            layers.append(BlackBoxLayer(driver.box(n_in, n_out, generator), seed=seed + index,
                                        surrogate_rank=1))
        if index < n_maps - 1 or draw(st.booleans()):
            layers.append(ACTIVATIONS[activations[index]]())
    model = nn.Sequential(*layers).to(dtype)
    x = torch.randn(batch, widths[0], generator=generator, dtype=dtype)
    target = torch.randn(batch, widths[-1], generator=generator, dtype=dtype)
    return model, x, target, dtype, driver, device_positions


def loss_fn(output, target):
    return (output - target).square().mean() + output.sin().sum() / 7


def reference_losses(model, x, target, points, params):
    """The whole network at each point: written into the parameters, x copied per call."""
    saved = [p.detach().clone() for p in params]
    values = []
    with torch.no_grad():
        for point in points:
            for p, piece in zip(params, point.split([p.numel() for p in params]), strict=True):
                p.copy_(piece.view_as(p))
            values.append(loss_fn(model(x.clone()), target))
        for p, old in zip(params, saved, strict=True):
            p.copy_(old)
    return torch.stack(values)


def tolerance(dtype):
    return dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-4)


@PROPERTY_SETTINGS
@given(networks(), st.sampled_from([1e-2, 0.3]))
def test_every_coordinate_loss_is_the_whole_network_at_that_point(network, step):
    model, x, target, dtype, driver, device_positions = network
    params = list(model.parameters())
    assert CoordinateEvaluator.supports(model, (x,))
    kept = x.clone()
    flat = torch.cat([p.detach().flatten() for p in params])
    coordinates = torch.arange(len(flat))
    evaluator = CoordinateEvaluator(model, loss_fn, x, (target,), params)
    values = evaluator.evaluate(coordinates.flip(0), step).flip(0)  # any order
    points = flat.expand(len(flat), -1).clone()
    points[coordinates, coordinates] += step
    torch.testing.assert_close(values, reference_losses(model, x, target, points, params),
                               **tolerance(dtype))
    assert torch.equal(x, kept)  # in-place activations never write into the batch


@PROPERTY_SETTINGS
@given(networks())
def test_the_device_serves_exactly_the_hand_counted_vectors(network):
    model, x, target, _, driver, device_positions = network
    params = list(model.parameters())
    evaluator = CoordinateEvaluator(model, loss_fn, x, (target,), params)
    n = sum(p.numel() for p in params)
    evaluator.evaluate(torch.arange(n), 1e-2)
    # A device answers the unperturbed batch once and every coordinate at or before it; a
    # coordinate after it reuses that answer (the host computes the layers after a device).
    expected = 0
    for position in device_positions:
        before = sum(p.numel() for layer in list(model)[:position + 1]
                     for p in layer.parameters())
        expected += len(x) * (1 + before)
    boxes = [model[position].black_box for position in device_positions]
    assert driver.served == expected == sum(box.n_queries for box in boxes)


@PROPERTY_SETTINGS
@given(networks(), st.integers(1, 4))
def test_batched_losses_are_the_whole_network_at_each_point(network, n_points):
    model, x, target, dtype, _, _ = network
    params = list(model.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    generator = torch.Generator().manual_seed(n_points)
    points = flat + 0.1 * torch.randn(n_points, len(flat), generator=generator, dtype=dtype)
    stacked = {p: piece.reshape(n_points, *p.shape) for p, piece in
               zip(params, points.split([p.numel() for p in params], dim=1), strict=True)}
    kept = x.clone()
    closure = BatchedLoss(model, loss_fn, x, target)
    torch.testing.assert_close(closure.evaluate_batch(stacked),
                               reference_losses(model, x, target, points, params),
                               **tolerance(dtype))
    torch.testing.assert_close(closure(), loss_fn(model(x.clone()), target), **tolerance(dtype))
    assert torch.equal(x, kept)


@PROPERTY_SETTINGS
@given(networks())
def test_a_reused_closure_tracks_parameters_that_moved(network):
    model, x, target, dtype, _, _ = network
    params = list(model.parameters())
    closure = BatchedLoss(model, loss_fn, x, target)
    n = sum(p.numel() for p in params)
    closure.evaluate_coordinates(params, torch.arange(n), 1e-2)
    with torch.no_grad():
        for p in params:
            p.mul_(0.5).add_(0.1)
    fresh = BatchedLoss(model, loss_fn, x, target)
    torch.testing.assert_close(closure.evaluate_coordinates(params, torch.arange(n), 1e-2),
                               fresh.evaluate_coordinates(params, torch.arange(n), 1e-2),
                               **tolerance(dtype))


def test_the_generated_networks_cover_every_layer_kind():
    """The strategy reaches TT layers, devices, in-place activations and both dtypes (a
    property suite whose generator never made them would pass vacuously)."""
    seen = set()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(networks())
    def collect(network):
        model, x, _, dtype, _, _ = network
        seen.add(dtype)
        seen.update(type(layer).__name__ for layer in model)
        seen.update("in place" for layer in model if getattr(layer, "inplace", False))
        seen.add("batched" if supports_batched_forward(model, (x,)) else "with device")

    collect()
    assert {torch.float32, torch.float64, "TTLinear", "BlackBoxLayer", "Linear", "in place",
            "batched", "with device"} <= seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hand_count_of_a_known_network(dtype):
    """The hand count above on one fixed network: Linear(3, 4) -> device(4, 2) -> Linear(2, 1)
    at batch 5: (1 + 16 + 8) * 5 = 125 vectors; the last layer's 3 coordinates cost none."""
    driver = Driver()
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), BlackBoxLayer(driver.box(4, 2, generator),
                                                                    surrogate_rank=1, seed=0),
                          nn.Linear(2, 1)).to(dtype)
    x = torch.randn(5, 3, generator=generator, dtype=dtype)
    evaluator = CoordinateEvaluator(model, loss_fn, x, (torch.zeros(5, 1, dtype=dtype),),
                                    list(model.parameters()))
    evaluator.evaluate(torch.arange(16 + 8 + 3), 1e-3)
    assert driver.served == 125 == 5 * (1 + 16 + 8)


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([None, "mrr", "slm", "mzi"]), st.sampled_from(["surrogate", "bp_free"]),
       st.sampled_from([None, 2]), st.lists(st.integers(2, 6), min_size=2, max_size=3),
       st.integers(0, 2**16))
def test_a_saved_model_loads_and_predicts_identically(tmp_path_factory, physical_layer,
                                                     training, tt_rank, hidden, seed):
    rng = np.random.RandomState(seed)
    X, y = rng.randn(40, 4), rng.randint(0, 3, 40)
    model = HybridNetClassifier(tuple(hidden), physical_layer=physical_layer, training=training,
                                tt_rank=tt_rank, surrogate_rank=1, max_iter=1, batch_size=16,
                                random_state=seed).fit(X, y)
    path = tmp_path_factory.mktemp("saved") / "model.hnet"
    hybridnet.save(model, path)
    loaded = hybridnet.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.get_params()["physical_layer"] == physical_layer
