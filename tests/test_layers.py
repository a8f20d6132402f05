"""BlackBoxLayer: gradients, query accounting, baselines, faults and persistence."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn

from hybridnet import BlackBoxLayer
from hybridnet.layers import auto_smoothing, detect_linearity
from hybridnet.physical import (
    SLM,
    BlackBoxError,
    FaultyBlackBox,
    FunctionBlackBox,
    MRRBank,
    MZIMesh,
)


def tanh_squared(x, params):
    """A device that is not linear in x: tanh(W x)^2 (as after photodetection)."""
    return torch.tanh(x @ params.reshape(3, 5).T) ** 2


def model_with(layer, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, layer.in_features), nn.Tanh(), layer,
                         nn.Linear(layer.out_features, 2)).double()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
    return X[:1400], torch.tensor(y[:1400]), X[1400:], torch.tensor(y[1400:])


def test_full_rank_exact_gradients_reproduce_autograd_step_for_step():
    # Full-rank surrogate rebuilt on every step and central coordinate differences (exact on the
    # device's smooth phases up to O(mu^2)) against autograd through the same simulator.
    x = torch.randn(32, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    target = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    trajectories = []
    for training in ("surrogate", "backprop"):
        layer = BlackBoxLayer(SLM(6, 5, seed=0), training=training, surrogate_rank=5,
                              surrogate_update_every=1, surrogate_rebuild_every=1,
                              zo_estimator="cge", zo_smoothing=1e-5, seed=0)
        model = model_with(layer)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        losses = []
        for _ in range(15):
            optimizer.zero_grad()
            loss = (model(x) - target).square().mean()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        trajectories.append((torch.tensor(losses), layer.params.detach().clone()))
    (hybrid_losses, hybrid_params), (exact_losses, exact_params) = trajectories
    torch.testing.assert_close(hybrid_losses, exact_losses, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(hybrid_params, exact_params, rtol=1e-7, atol=1e-8)
    assert exact_losses[-1] < 0.9 * exact_losses[0]  # the trajectory really moves


@pytest.mark.parametrize("make_device", [lambda: SLM(32, 32, seed=0),
                                         lambda: MRRBank(32, 32, seed=0)])
def test_device_learns_by_zeroth_order_updates_alone(digits, make_device):
    # Input and output layers frozen at random: only the device can lift accuracy.
    X_train, y_train, X_test, y_test = digits

    def accuracy_after(epochs):
        torch.manual_seed(0)
        layer = BlackBoxLayer(make_device(), surrogate_rank=8, zo_samples=10, seed=0)
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), layer, nn.ReLU(), nn.Linear(32, 10))
        model.requires_grad_(False)
        layer.params.requires_grad_(True)
        optimizer = torch.optim.Adam([layer.params], lr=0.05)
        order = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            for batch in torch.randperm(len(X_train), generator=order).split(64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(X_train[batch]), y_train[batch]).backward()
                optimizer.step()
        with torch.no_grad():
            return (model(X_test).argmax(1) == y_test).float().mean().item()

    frozen, trained = accuracy_after(0), accuracy_after(10)
    assert frozen < 0.2
    # The device alone at least doubles accuracy (SLM 0.14 -> 0.42, MRR ~0.1 -> > 0.4).
    assert trained > max(2 * frozen, frozen + 0.25)


def test_batch_compression_gives_the_same_estimate():
    x = torch.randn(40, 6, dtype=torch.float64)
    grads = []
    for compress in (True, False):
        layer = BlackBoxLayer(MRRBank(6, 3, seed=0), zo_samples=7, batch_compression=compress,
                              seed=0).double()
        layer(x).sin().sum().backward()
        grads.append(layer.params.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("upstream_rank", "exact"), [(3, True), (12, False)])
def test_zo_batch_rank_compresses_the_objective(upstream_rank, exact):
    """A rank-4 sketch of K = G^T X: exact when G has rank 3, near-optimal when rank 12."""
    batch, n_in, n_out, sketch_rank = 40, 24, 20, 4
    g = torch.Generator().manual_seed(0)
    layer = BlackBoxLayer(MRRBank(n_in, n_out, seed=0), zo_batch_rank=sketch_rank,
                          seed=0).double()
    device, params = layer.black_box, layer.params.detach()
    x = torch.randn(batch, n_in, generator=g, dtype=torch.float64)
    # Upstream gradients with a decaying spectrum, as a classifier head gives.
    left = torch.linalg.qr(torch.randn(batch, upstream_rank, generator=g,
                                       dtype=torch.float64)).Q
    right = torch.linalg.qr(torch.randn(n_out, upstream_rank, generator=g,
                                        dtype=torch.float64)).Q
    spectrum = torch.logspace(0, -2, upstream_rank, dtype=torch.float64)
    upstream = left @ torch.diag(spectrum) @ right.T
    y = device(x, params)
    inputs, weights, value = layer._zo_queries(x, y, upstream)
    compressed = upstream.T @ x
    assert inputs.shape == (sketch_rank, n_in) and weights.shape == (sketch_rank, n_out)
    torch.testing.assert_close(weights @ weights.T, torch.eye(sketch_rank, dtype=torch.float64))
    torch.testing.assert_close(inputs, weights @ compressed)
    # phi at the unperturbed point is computed without a query, and matches one.
    torch.testing.assert_close(value, (device(inputs, params) * weights).sum())
    # At any parameters, the sketched phi is <A, Q Q^T K> (Q = W^T); exact when K's rank fits.
    moved = params + 0.3 * torch.randn(params.shape, generator=g, dtype=torch.float64)
    matrix = device(torch.eye(n_in, dtype=torch.float64), moved).T
    sketched = (device(inputs, moved) * weights).sum()
    torch.testing.assert_close(sketched, (matrix * (weights.T @ inputs)).sum())
    if exact:
        torch.testing.assert_close(sketched, (device(x, moved) * upstream).sum())
    # The sketch keeps nearly the energy of K's best rank-4 approximation.
    singular_values = torch.linalg.svdvals(compressed)
    best = singular_values[:sketch_rank].square().sum() / singular_values.square().sum()
    kept = inputs.square().sum() / compressed.square().sum()
    assert kept >= 0.98 * best
    assert (kept > 1 - 1e-9) if exact else (kept < 1)


def test_zo_batch_rank_sets_the_queries_per_perturbation():
    x = torch.randn(64, 32, requires_grad=True)
    counts = {}
    for rank in (4, None):
        layer = BlackBoxLayer(SLM(32, 48, seed=0), surrogate_rank=8, zo_samples=5,
                              zo_batch_rank=rank, seed=0)
        layer(x).sum().backward()  # builds the surrogate
        layer.black_box.reset_counters()
        surrogate_before = layer.surrogate.n_queries
        with torch.no_grad():
            layer.params.add_(0.01)
        layer(x).square().sum().backward()
        surrogate = layer.surrogate.n_queries - surrogate_before
        counts[rank] = layer.black_box.n_queries - len(x) - surrogate
    assert counts == {4: 5 * 4, None: 5 * 32}  # None: min(batch, n_in, n_out) = 32


@pytest.mark.parametrize("update", ["psi", "requery"])
def test_query_counts_are_exact(update):
    batch, n, m, rank, probes, samples = 40, 6, 3, 2, 5, 7
    layer = BlackBoxLayer(MRRBank(n, m, seed=0), surrogate_rank=rank, surrogate_probes=probes,
                          surrogate_update=update, surrogate_update_every=1, zo_samples=samples,
                          seed=0)
    box = layer.black_box
    x = torch.randn(batch, n, requires_grad=True)
    layer(x).sum().backward()
    # The integrator records its first probes right after the build; a re-query needs none.
    build = n + (rank + probes) if update == "psi" else n
    forward = batch
    zo = samples * m  # compressed: m rows per perturbed setting; phi(w) comes from the forward
    assert box.n_queries == build + forward + zo
    assert box.n_calls == (2 if update == "psi" else 1) + 1 + 1
    with torch.no_grad():
        layer.params.add_(0.01)
    box.reset_counters()
    layer(x).sum().backward()
    sync = 2 * (rank + probes) if update == "psi" else n
    assert box.n_queries == sync + forward + zo


def test_surrogate_update_every_spaces_the_updates():
    layer = BlackBoxLayer(MRRBank(6, 3, seed=0), surrogate_rank=2, surrogate_update_every=3,
                          seed=0)
    x = torch.randn(4, 6, requires_grad=True)
    updates = []
    for _ in range(7):
        layer(x).sum().backward()
        layer(x).sum().backward()  # a second pass at the same parameters is not a step
        updates.append(layer.surrogate.n_updates)
        with torch.no_grad():
            layer.params.add_(0.01)
    # Built on the first pass; brought up to date on every third step after that.
    assert updates == [0, 0, 0, 1, 1, 1, 2]
    torch.testing.assert_close(layer.surrogate_params, layer.params.detach() - 0.01)


def test_unchanged_parameters_skip_the_surrogate_update():
    layer = BlackBoxLayer(MRRBank(6, 3, seed=0), surrogate_rank=2, seed=0)
    x = torch.randn(4, 6, requires_grad=True)
    layer(x).sum().backward()
    layer.black_box.reset_counters()
    layer(x).sum().backward()
    assert layer.surrogate.n_updates == 0
    assert layer.black_box.n_queries == 4 + 10 * 3  # forward and compressed ZO only


def test_surrogate_input_gradient_matches_exact_at_full_rank():
    layer = BlackBoxLayer(MZIMesh(6, 4, seed=0), surrogate_rank=4, seed=0).double()
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, 4, dtype=torch.float64)
    (layer(x) * weights).sum().backward()
    matrix = layer.black_box(torch.eye(6, dtype=torch.float64), layer.params.detach()).T
    torch.testing.assert_close(x.grad, weights @ matrix)


class TestNonLinearDevices:
    def make(self, **options):
        params = torch.randn(15, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        box = FunctionBlackBox(tanh_squared, 5, 3, params.numpy())
        return BlackBoxLayer(box, seed=0, **options).double()

    def exact_gradients(self, layer, x, weights):
        x = x.detach().clone().requires_grad_(True)
        params = layer.params.detach().clone().requires_grad_(True)
        (tanh_squared(x, params) * weights).sum().backward()
        return x.grad, params.grad

    def test_non_linearity_is_detected(self):
        layer = self.make()
        x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
        layer(x).sum().backward()
        assert layer.linear is False
        assert layer.surrogate.n_rebuilds == 0  # the shared linear surrogate is never used

    def test_jacobian_input_gradient_is_exact_per_sample(self):
        layer = self.make(zo_smoothing=1e-7)
        x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
        weights = torch.randn(8, 3, dtype=torch.float64)
        (layer(x) * weights).sum().backward()
        exact_x, _ = self.exact_gradients(layer, x, weights)
        torch.testing.assert_close(x.grad, exact_x, rtol=1e-5, atol=1e-6)

    def test_zo_input_gradient_is_unbiased(self):
        layer = self.make(input_gradient="zo", zo_samples=4000, zo_smoothing=1e-6)
        x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
        weights = torch.randn(3, 3, dtype=torch.float64)
        (layer(x) * weights).sum().backward()
        exact_x, _ = self.exact_gradients(layer, x, weights)
        assert (x.grad - exact_x).norm() / exact_x.norm() < 0.1

    def test_parameter_gradient_is_unbiased(self):
        layer = self.make(zo_estimator="central_rge", zo_samples=4000, zo_smoothing=1e-5)
        x = torch.randn(6, 5, dtype=torch.float64)
        weights = torch.randn(6, 3, dtype=torch.float64)
        (layer(x) * weights).sum().backward()
        _, exact_params = self.exact_gradients(layer, x, weights)
        assert (layer.params.grad - exact_params).norm() / exact_params.norm() < 0.15


def test_linearity_detection():
    g = torch.Generator().manual_seed(0)
    mrr = MRRBank(5, 3, seed=0, detector_noise=1e-3)
    assert detect_linearity(mrr, mrr.initial_params(), g)
    affine = FunctionBlackBox(lambda x, p: x @ p.reshape(3, 5).T + 1.0, 5, 3, np.ones(15))
    assert not detect_linearity(affine, affine.initial_params(), g)
    intensity = MZIMesh(4, 4, output="intensity", seed=0)
    assert intensity.linear is False


def test_baselines_are_one_option_away():
    x = torch.randn(8, 6)
    digital = BlackBoxLayer(MZIMesh(6, 6, seed=0), training="digital", seed=0)
    digital(x).sum().backward()
    assert digital.black_box.n_queries == 0
    assert digital.weight.grad.shape == (6, 6)
    assert digital.device_parameters() == []
    twin = BlackBoxLayer(MZIMesh(6, 6, seed=0), training="backprop", seed=0)
    twin(x).sum().backward()
    assert twin.params.grad.abs().sum() > 0
    assert twin.surrogate is None


def test_backprop_is_refused_for_devices_autograd_cannot_differentiate():
    numpy_box = FunctionBlackBox(lambda x, p: x * p, 3, 3, np.ones(3), backend="numpy")
    with pytest.raises(ValueError, match="needs a differentiable simulator"):
        BlackBoxLayer(numpy_box, training="backprop")
    detached = FunctionBlackBox(lambda x, p: x * p.detach(), 3, 3, np.ones(3), name="driver")
    layer = BlackBoxLayer(detached, training="backprop")
    with pytest.raises(BlackBoxError, match="driver returned outputs autograd cannot"):
        layer(torch.randn(2, 3))


def test_a_failing_device_raises_and_leaves_the_weights_untouched():
    calls = {"n": 0}

    def flaky(x, params):
        calls["n"] += 1
        y = x @ params.reshape(3, 4).T
        return y * float("nan") if calls["n"] > 3 else y

    layer = BlackBoxLayer(FunctionBlackBox(flaky, 4, 3, np.ones(12), name="flaky"),
                          surrogate_rank=2, seed=0)
    model = nn.Sequential(nn.Linear(2, 4), layer)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    with pytest.raises(BlackBoxError, match="flaky returned .* NaN"):
        optimizer.zero_grad()
        model(torch.randn(5, 2)).sum().backward()
        optimizer.step()
    for key, value in model.named_parameters():
        torch.testing.assert_close(value.detach(), before[key])


def test_leading_dimensions_and_wrong_width():
    layer = BlackBoxLayer(SLM(6, 4, seed=0), seed=0)
    assert layer(torch.randn(2, 7, 6)).shape == (2, 7, 4)
    with pytest.raises(ValueError, match="expects inputs with 6 features"):
        layer(torch.randn(3, 5))


@pytest.mark.parametrize("kwargs, message", [
    ({"training": "hardware"}, "training must be one of"),
    ({"zo_estimator": "spsa"}, "zo_estimator must be one of"),
    ({"surrogate_rank": 0}, "surrogate_rank must be an int >= 1"),
    ({"zo_samples": 2.5}, "zo_samples must be an int >= 1"),
    ({"zo_smoothing": -1.0}, "zo_smoothing must be a finite number > 0"),
    ({"input_gradient": "exact"}, "input_gradient must be one of"),
    ({"surrogate_init": "qr"}, "surrogate init must be one of"),
    ({"surrogate_update": "never"}, "surrogate_update must be one of"),
    ({"surrogate_update_every": 0}, "surrogate_update_every must be an int >= 1"),
    ({"zo_batch_rank": 2.0}, "zo_batch_rank must be an int >= 1"),
    ({"zo_smoothing": float("inf")}, "zo_smoothing must be a finite number > 0"),
    ({"zo_smoothing": float("nan")}, "zo_smoothing must be a finite number > 0"),
    ({"device_retries": -1}, "device_retries must be an int >= 0"),
    ({"device_timeout": 0.0}, "device_timeout must be a finite number > 0 or None"),
])
def test_invalid_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BlackBoxLayer(SLM(4, 4, seed=0), **kwargs)


def test_numpy_integers_are_accepted_as_ints():
    layer = BlackBoxLayer(SLM(4, 4, seed=0), surrogate_rank=np.int64(2), zo_samples=np.int32(3),
                          zo_batch_rank=np.int64(2), seed=0)
    assert type(layer.zo_samples) is int and layer.surrogate.rank == 2


def test_non_black_box_is_refused():
    with pytest.raises(TypeError, match="wrap a plain callable in FunctionBlackBox"):
        BlackBoxLayer(lambda x, p: x)


def test_pickle_and_state_dict_round_trips():
    layer = BlackBoxLayer(MZIMesh(6, 6, seed=0, fabrication_error=0.1), surrogate_rank=3, seed=0)
    x = torch.randn(4, 6, requires_grad=True)
    layer(x).sum().backward()
    clone = pickle.loads(pickle.dumps(layer))
    with torch.no_grad():
        torch.testing.assert_close(clone(x), layer(x))
    torch.testing.assert_close(clone.surrogate.matrix(), layer.surrogate.matrix())
    fresh = BlackBoxLayer(MZIMesh(6, 6, seed=0, fabrication_error=0.1), surrogate_rank=3, seed=1)
    fresh.load_state_dict(layer.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), layer(x))


# ----------------------------------------------------------------------------- zo_smoothing="auto"

@pytest.mark.parametrize(("device", "expected"), [
    (MZIMesh(8, 8), 1e-3),                                   # clean: the floor
    (MZIMesh(8, 8, phase_bits=8), 2 * math.pi / 256),        # one DAC level
    (MZIMesh(8, 8, phase_bits=4), 0.1),                      # one level, capped by curvature
    (SLM(8, 8, phase_bits=4), 2 * math.pi / 16),             # the SLM's cap is 0.4
    (MRRBank(8, 8, detector_noise=0.01), 0.3 * math.sqrt(0.01)),
    (SLM(8, 8, phase_noise=0.02), 3 * 0.02),
    (MRRBank(8, 8, phase_bits=8, detector_noise=0.1), 0.3 * math.sqrt(0.1)),  # the largest
    (FunctionBlackBox(lambda x, p: x, 8, 8, init_params=np.zeros(1)), 1e-3),  # declares nothing
    (FaultyBlackBox(MZIMesh(8, 8, phase_bits=6), fail_rate=0.1), 2 * math.pi / 64),  # forwarded
])
def test_auto_smoothing_rule(device, expected):
    assert auto_smoothing(device) == pytest.approx(expected)
    layer = BlackBoxLayer(device, seed=0)
    assert layer.zo_smoothing == pytest.approx(expected)
    assert layer.input_smoothing == pytest.approx(
        max(1e-3, 0.3 * math.sqrt(device.output_noise)))


def mean_cosine(make, zo_smoothing, repeats=12):
    """Mean cosine of the layer's ZO parameter gradient with the ideal device's gradient."""
    cosines = []
    for seed in range(repeats):
        g = torch.Generator().manual_seed(seed)
        device = make(seed)
        ideal = type(device)(16, 16, seed=seed)
        layer = BlackBoxLayer(device, zo_smoothing=zo_smoothing, batch_compression=False,
                              seed=seed)
        x, grad_output = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
        (layer(x) * grad_output).sum().backward()
        point = layer.params.detach().clone().requires_grad_(True)
        (ideal(x, point) * grad_output).sum().backward()
        cosines.append(torch.nn.functional.cosine_similarity(layer.params.grad, point.grad, 0))
    return float(torch.stack(cosines).mean())


@pytest.mark.parametrize("make", [
    lambda seed: MZIMesh(16, 16, phase_bits=6, seed=seed),
    lambda seed: MRRBank(16, 16, detector_noise=0.03, seed=seed),
    lambda seed: SLM(16, 16, phase_bits=4, detector_noise=0.01, seed=seed),
])
def test_auto_smoothing_beats_the_old_default_on_quantized_and_noisy_devices(make):
    auto, old = mean_cosine(make, "auto"), mean_cosine(make, 1e-3)
    assert auto > 2 * old
    assert auto > 0.1


def test_integrator_surrogate_is_rebuilt_every_ten_updates_by_default():
    layer = BlackBoxLayer(MRRBank(128, 128, seed=0), surrogate_rank=10,
                          surrogate_update_every=1, seed=0)
    assert not layer.surrogate.requeries  # 128 > 2 (10 + 32): the integrator
    x = torch.randn(4, 128, requires_grad=True)
    for _ in range(30):  # the build, then 29 updates; the last call makes the 30th
        layer(x)
        with torch.no_grad():
            layer.params.add_(0.01)
    layer(x)
    assert layer.surrogate.n_updates == 30
    assert layer.surrogate.n_rebuilds == 1 + 3
