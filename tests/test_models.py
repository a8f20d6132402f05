"""Physical layers inside real architectures: sequence-shaped inputs, CharTransformer, SmallCNN."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from hybridnet import BlackBoxLayer, HybridNetClassifier, split_parameters
from hybridnet.models import SCALE_QUERIES, CharTransformer, DeviceGain, SmallCNN, device_layer
from hybridnet.physical import SLM, MRRBank


def test_a_layer_takes_any_leading_shape_and_counts_every_vector():
    torch.manual_seed(0)
    layer = BlackBoxLayer(MRRBank(16, 8, seed=0), surrogate_rank=4, seed=0)
    x = torch.randn(4, 5, 16, requires_grad=True)
    y = layer(x)
    assert y.shape == (4, 5, 8)
    # the same as the flattened batch, one query per vector
    flat = layer.black_box(x.detach().reshape(20, 16), layer.params.detach())
    torch.testing.assert_close(y.detach().reshape(20, 8), flat)
    queries = layer.black_box.n_queries
    grad_output = torch.randn(4, 5, 8)
    y.backward(grad_output)
    # the input gradient is the surrogate's on every vector
    expected = layer.surrogate.input_gradient(grad_output.reshape(20, 8)).reshape(4, 5, 16)
    torch.testing.assert_close(x.grad, expected)
    assert layer.params.grad.shape == (128,)
    assert layer.black_box.n_queries > queries  # the ZO estimate queried the device


def test_transformer_is_causal_and_its_devices_see_every_position():
    torch.manual_seed(0)
    model = CharTransformer(20, 12, width=16, n_heads=2, n_layers=2, mlp_ratio=2,
                            device="slm", device_maps=("up", "down"), seed=0).eval()
    layers = [m for m in model.modules() if isinstance(m, BlackBoxLayer)]
    assert [(m.in_features, m.out_features) for m in layers] == [(16, 32), (32, 16)] * 2
    tokens = torch.randint(0, 20, (3, 12))
    with torch.no_grad():
        logits = model(tokens)
        changed = tokens.clone()
        changed[:, 7] = (changed[:, 7] + 1) % 20
        other = model(changed)
    assert logits.shape == (3, 12, 20)
    torch.testing.assert_close(logits[:, :7], other[:, :7])  # the past ignores the future
    assert not torch.allclose(logits[:, 7:], other[:, 7:])
    # the gain's 32 measuring queries, then two passes of 36 vectors
    assert all(m.black_box.n_queries == SCALE_QUERIES + 2 * 3 * 12 for m in layers)
    seeds = {m.black_box.seed for m in layers}
    assert len(seeds) == 4  # every device its own chip


def test_transformer_trains_in_situ_in_a_plain_loop():
    torch.manual_seed(0)
    text = torch.arange(400) % 7  # a periodic sequence: learnable from context
    windows = torch.stack([text[i:i + 9] for i in range(0, 390)])
    model = CharTransformer(7, 8, width=16, n_heads=2, n_layers=1, device="mrr", seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits = model(windows[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 7),
                                                 windows[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    layer = next(m for m in model.modules() if isinstance(m, BlackBoxLayer))
    assert layer.params.grad is not None  # the device's phases were trained


def test_transformer_with_last_token_fits_through_the_classifier():
    torch.manual_seed(0)
    text = np.arange(600) % 5
    X = np.stack([text[i:i + 6] for i in range(590)]).astype(np.float32)
    y = text[6:596]
    module = CharTransformer(5, 6, width=16, n_heads=2, n_layers=1, device="slm",
                             last_token=True, seed=0)
    model = HybridNetClassifier(module=module, max_iter=15, learning_rate=1e-2,
                                random_state=0).fit(X, y)
    assert model.score(X, y) > 0.9
    assert model.n_device_queries_ > 0


def test_cnn_on_digits_through_the_classifier_and_its_channel_mixing_device():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:500].astype(np.float32)
    y = y[:500]
    torch.manual_seed(0)
    module = SmallCNN((1, 8, 8), channels=(8,), hidden=16, device="slm", mix_device=True,
                      seed=0)
    layers = [m for m in module.modules() if isinstance(m, BlackBoxLayer)]
    assert [(m.in_features, m.out_features) for m in layers] == [(8, 8), (16, 16)]
    with torch.no_grad():
        module(torch.as_tensor(X[:3]))
    # every pixel of the 4 x 4 map, after the gain's measuring queries
    assert layers[0].black_box.n_queries == SCALE_QUERIES + 3 * 4 * 4
    model = HybridNetClassifier(module=module, max_iter=10, learning_rate=1e-2,
                                random_state=0).fit(X, y)
    assert model.score(X, y) > 0.9  # chance 0.1; all-digital 0.998


def test_cnn_trains_when_the_last_batch_holds_one_sample():
    # 65 samples at batch 64: the epoch's last batch is one image, whose own batch statistics
    # are undefined; it is normalised with the running ones and leaves them unchanged
    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X)[:65].astype(np.float32), y[:65]
    torch.manual_seed(0)
    module = SmallCNN((1, 8, 8), channels=(4,), hidden=8, device="mrr", seed=0)
    model = HybridNetClassifier(module=module, max_iter=2, batch_size=64, random_state=0)
    model.fit(X, y)
    assert model.n_iter_ == 2
    norm = next(m for m in model.module_.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert torch.isfinite(norm.running_mean).all() and torch.isfinite(norm.running_var).all()
    single = torch.randn(1, 8)
    norm.train()
    before = norm.running_mean.clone()
    expected = (single - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    torch.testing.assert_close(norm(single), expected * norm.weight + norm.bias)
    torch.testing.assert_close(norm.running_mean, before)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="device must be None"):
        device_layer("laser", 4, 4)
    with pytest.raises(ValueError, match="factory must return a BlackBox mapping 4 -> 4"):
        device_layer(lambda n_in, n_out, seed: SLM(4, 3), 4, 4)
    with pytest.raises(ValueError, match="device_maps"):
        CharTransformer(5, 4, width=8, n_heads=2, device_maps=("middle",))
    with pytest.raises(ValueError, match="multiple of n_heads"):
        CharTransformer(5, 4, width=10, n_heads=4)
    with pytest.raises(ValueError, match="exceed the context"):
        CharTransformer(5, 4, width=8, n_heads=2)(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="halve"):
        SmallCNN((1, 4, 4), channels=(4, 4, 4))
    with pytest.raises(ValueError, match="flat images must have 64 features"):
        SmallCNN((1, 8, 8), channels=(4,))(torch.zeros(2, 63))


def test_a_device_factory_builds_each_map():
    seeds = []

    def factory(n_in, n_out, seed):
        seeds.append(seed)
        return SLM(n_in, n_out, seed=seed, phase_bits=6)

    model = SmallCNN((1, 8, 8), channels=(4,), hidden=8, device=factory, mix_device=True)
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    layers = [m for m in model.modules() if isinstance(m, BlackBoxLayer)]
    assert all(m.black_box.phase_bits == 6 for m in layers)


def test_the_gain_gives_every_device_the_scale_of_a_linear_layer():
    torch.manual_seed(0)
    x = torch.randn(512, 256)
    linear = device_layer(None, 256, 64)(x).std().item()
    with torch.no_grad():
        raw = device_layer("mrr", 256, 64, gain=False)(x).std().item()
        scaled = {kind: device_layer(kind, 256, 64, seed=1)(x).std().item()
                  for kind in ("mrr", "slm", "mzi")}
    assert raw > 10 * linear  # an MRR bank's weights are mostly positive, about 0.5
    for value in scaled.values():
        assert 0.8 * linear < value < 1.25 * linear
    mapped = device_layer("mrr", 256, 64)
    assert isinstance(mapped, DeviceGain)
    digital, device = split_parameters(mapped)
    assert any(p is mapped.gain for p in digital) and len(device) == 1
