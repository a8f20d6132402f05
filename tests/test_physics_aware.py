"""Physics-aware training: the device's answer forward, the twin's vector-Jacobian product
backward (``BlackBoxLayer(training="physics_aware")``, ``training="physics_aware"``)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

import hybridnet
from hybridnet import BlackBoxLayer, HybridNetClassifier
from hybridnet.physical import FaultyBlackBox, FunctionBlackBox, MZIMesh


@pytest.mark.parametrize("output", ["real", "intensity"])  # linear and non-linear in x
def test_forward_is_the_device_and_backward_is_the_twins_vjp(output):
    chip = MZIMesh(6, 6, output=output, fabrication_error=0.3, detector_noise=0.01, seed=0)
    layer = BlackBoxLayer(chip, training="physics_aware", seed=0)
    x = torch.randn(5, 6, requires_grad=True)
    state = chip.noise_state()
    y = layer(x)
    chip.set_noise_state(state)
    with torch.no_grad():
        assert torch.equal(y, chip(x, layer.params))  # the chip's noisy answer, bit for bit
    upstream = torch.randn(5, 6)
    (y * upstream).sum().backward()
    # Reference: torch.func.vjp of the nominal twin at the same inputs and parameters.
    _, vjp = torch.func.vjp(chip.nominal_twin(), x.detach(), layer.params.detach())
    grad_x, grad_params = vjp(upstream)
    torch.testing.assert_close(x.grad, grad_x)
    torch.testing.assert_close(layer.params.grad, grad_params)


def test_a_training_step_queries_the_device_once_and_the_twin_costs_nothing():
    chip = MZIMesh(8, 8, seed=0)
    layer = BlackBoxLayer(chip, training="physics_aware", seed=0)
    layer(torch.randn(16, 8, requires_grad=True)).square().sum().backward()
    assert (chip.n_queries, chip.n_settings, chip.n_calls) == (16, 1, 1)
    assert (layer.device_queries(), layer.device_settings()) == (16, 1)
    with torch.no_grad():  # inference: the device only
        layer(torch.randn(4, 8))
    assert layer.twin.n_queries == 16 and chip.n_queries == 20


def test_bad_twins_are_refused():
    chip = MZIMesh(4, 4, seed=0)
    with pytest.raises(ValueError, match="only used with training='physics_aware'"):
        BlackBoxLayer(chip, twin=chip.nominal_twin())
    driver = FunctionBlackBox(lambda x, p: x * p, 4, 4, init_params=np.ones(4),
                              backend="numpy")
    with pytest.raises(ValueError, match="no nominal_twin"):
        BlackBoxLayer(driver, training="physics_aware")
    with pytest.raises(ValueError, match="not differentiable"):
        BlackBoxLayer(MZIMesh(4, 4, seed=0), training="physics_aware", twin=FunctionBlackBox(
            lambda x, p: x, 4, 4, init_params=np.zeros(12), backend="numpy"))
    with pytest.raises(ValueError, match="shape and parameter count"):
        BlackBoxLayer(chip, training="physics_aware", twin=MZIMesh(6, 6))
    # A driver of a real chip with a simulator of its own as the twin.
    twin = MZIMesh(4, 4, seed=0)
    real = FunctionBlackBox(lambda x, p: twin(x, p), 4, 4, init_params=twin.initial_params(),
                            backend="torch")
    layer = BlackBoxLayer(real, training="physics_aware", twin=MZIMesh(4, 4, seed=1))
    layer(torch.randn(3, 4)).sum().backward()
    assert layer.params.grad is not None and real.n_queries == 3


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X)[:600], y[:600]


def test_physics_aware_training_beats_the_nominal_twin_deployed_on_a_mismatched_chip(digits):
    X, y = digits
    chip = {"fabrication_error": 0.3}
    options = dict(hidden_layer_sizes=(16, 16), max_iter=15, random_state=0)
    aware = HybridNetClassifier(training="physics_aware", twin="nominal", device_options=chip,
                                **options).fit(X, y)
    layer = next(m for m in aware.module_.modules() if isinstance(m, BlackBoxLayer))
    assert layer.training_mode == "physics_aware" and layer.black_box.fabrication_error == 0.3
    assert aware.n_calibration_queries_ == 0
    # One setting per step: the forward pass of each batch.
    steps = 15 * -(-len(X) // 64)
    assert (aware.n_device_settings_, aware.n_device_queries_) == (steps, 15 * len(X))
    # The same network trained on the nominal twin and deployed on the chip.
    nominal = HybridNetClassifier(training="calibrated_twin", twin="nominal",
                                  device_options=chip, **options).fit(X, y)
    assert nominal.n_device_queries_ == 0
    assert aware.score(X, y) > nominal.score(X, y) + 0.05  # measured: 0.825 against 0.732


def test_a_calibrated_twin_gives_better_gradients_and_is_saved(digits, tmp_path):
    X, y = digits
    options = dict(hidden_layer_sizes=(16, 16), device_options={"fabrication_error": 0.3},
                   max_iter=3, training="physics_aware", random_state=0)
    model = HybridNetClassifier(**options).fit(X, y)
    layer = next(m for m in model.module_.modules() if isinstance(m, BlackBoxLayer))
    # The twin's offsets are fitted to the chip's: far closer than the nominal twin's zeros.
    truth = layer.black_box.fabrication_offsets
    fitted = layer.twin.fabrication_offsets
    assert float((fitted - truth).norm()) < 0.3 * float(truth.norm())
    assert model.n_calibration_queries_ == 8 * 16
    assert model.history_[0]["device_queries"] > model.n_calibration_queries_
    hybridnet.save(model, tmp_path / "model.hnet")
    loaded = hybridnet.load(tmp_path / "model.hnet")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    loaded_layer = next(m for m in loaded.module_.modules() if isinstance(m, BlackBoxLayer))
    assert torch.equal(loaded_layer.twin.fabrication_offsets, fitted)
    loaded.partial_fit(X[:64], y[:64])  # continues physics-aware
    assert loaded.n_device_settings_ == model.n_device_settings_ + 1


def test_a_module_with_other_layers_is_refused(digits):
    X, y = digits
    module = torch.nn.Sequential(torch.nn.Linear(64, 8),
                                 BlackBoxLayer(MZIMesh(8, 8, seed=0), seed=0),
                                 torch.nn.Linear(8, 10))
    model = HybridNetClassifier(module=module, training="physics_aware")
    with pytest.raises(ValueError, match="built with training='physics_aware'"):
        model.fit(X, y)
    assert not hasattr(model, "module_")
    driver = FunctionBlackBox(lambda x, p: x * p, 16, 16, init_params=np.ones(16))
    with pytest.raises(ValueError, match="no nominal_twin"):
        HybridNetClassifier((16, 16), physical_layer=driver, training="physics_aware").fit(X, y)


def test_a_measurement_log_keeps_evenly_spaced_steps_of_the_largest_batch():
    log = hybridnet.MeasurementLog(n_settings=8)
    for step in range(100):
        batch = 3 if step == 64 else 5  # step 64: a partial batch
        log.add(torch.zeros(batch, 2), torch.full((1,), float(step)), torch.zeros(batch, 2))
    # Thinned on overflow to every 16th step: 0, 16, ..., 96 (64 has the smaller batch).
    inputs, settings, answers = log.tensors()
    assert (log.n_seen, log.stride, len(log)) == (100, 16, 7)
    assert settings[:, 0].tolist() == [0.0, 16.0, 32.0, 48.0, 80.0, 96.0]
    assert inputs.shape == (6, 5, 2) and answers.shape == (6, 5, 2)
    params = torch.zeros(1)
    log.clear()
    log.add(torch.zeros(1, 2), params, torch.zeros(1, 2))
    params += 1  # the optimizer moves the parameters in place: the log keeps a copy
    assert log.tensors()[1].item() == 0.0
    log.clear()
    with pytest.raises(ValueError, match="holds no measurement"):
        log.tensors()
    with pytest.raises(ValueError, match="n_settings must be an int >= 1"):
        hybridnet.MeasurementLog(0)


def test_calibrating_from_measurements_queries_nothing_and_fits_the_chip():
    chip = MZIMesh(6, 6, fabrication_error=0.3, seed=0)
    generator = torch.Generator().manual_seed(0)
    settings = torch.stack([chip.initial_params(generator) for _ in range(8)])
    inputs = torch.randn(8, 6, 6, generator=generator)
    with torch.no_grad():
        answers = chip(inputs, settings)
    queries = chip.n_queries
    twin = hybridnet.calibrate(chip, chip.nominal_twin(), measurements=(inputs, settings,
                                                                        answers))
    assert chip.n_queries == queries and twin.calibration_queries == 0
    assert twin.calibration_strategy == "measurements"
    # The chip's own offsets (0.3 rad spread), from its noiseless float32 answers.
    torch.testing.assert_close(twin.fabrication_offsets, chip.fabrication_offsets,
                               atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="n_queries would be ignored"):
        hybridnet.calibrate(chip, chip.nominal_twin(), 48, measurements=(inputs, settings,
                                                                         answers))
    with pytest.raises(ValueError, match=r"answers must have shape \(8, 6, 6\)"):
        hybridnet.calibrate(chip, chip.nominal_twin(), measurements=(inputs, settings,
                                                                     answers[:, :4]))
    with pytest.raises(ValueError, match=r"settings must have shape \(S, 30\)"):
        hybridnet.calibrate(chip, chip.nominal_twin(), measurements=(inputs, settings[:, :3],
                                                                     answers))
    with pytest.raises(ValueError, match="answers holds NaN"):
        hybridnet.calibrate(chip, chip.nominal_twin(), measurements=(
            inputs, settings, answers.masked_fill(answers > 0.5, float("nan"))))
    with pytest.raises(TypeError, match="MeasurementLog or a tuple of three tensors"):
        hybridnet.calibrate(chip, chip.nominal_twin(), measurements=[inputs, settings])


def test_recording_keeps_the_training_steps_answers_only():
    chip = MZIMesh(4, 4, seed=0)
    layer = BlackBoxLayer(chip, training="physics_aware", seed=0)
    log = hybridnet.MeasurementLog()
    x = torch.randn(3, 4)
    with layer.recording(log):
        y = layer(x)  # a training step's forward pass
        with torch.no_grad():
            layer(torch.randn(2, 4))  # inference: not recorded
    layer(x)  # after the block: not recorded
    inputs, settings, answers = log.tensors()
    assert log.n_seen == 1
    torch.testing.assert_close(inputs[0], x)
    torch.testing.assert_close(settings[0], layer.params.detach())
    torch.testing.assert_close(answers[0], y.detach())
    with pytest.raises(ValueError, match="has training='surrogate'"):
        with BlackBoxLayer(chip, seed=0).recording(log):
            pass
    with pytest.raises(TypeError, match="MeasurementLog"):
        with layer.recording([]):
            pass


def test_recalibrating_from_the_training_answers_follows_a_drifting_chip(digits):
    X, y = digits

    def fit(**options):
        chip = FaultyBlackBox(MZIMesh(16, 16, fabrication_error=0.3, seed=0), drift=0.01,
                              seed=0)
        model = HybridNetClassifier((16, 16), physical_layer=chip, training="physics_aware",
                                    max_iter=4, random_state=0, **options).fit(X, y)
        layer = next(m for m in model.module_.modules() if isinstance(m, BlackBoxLayer))
        chip, params = layer.black_box, layer.params.detach()
        # Where training ended, the chip answers as its mesh at the commanded phases plus the
        # drift so far; the twin models it at the commanded phases.
        x = torch.randn(256, 16, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            truth = chip.device(x, params + chip.drift_offsets.to(params))
            modelled = layer.twin(x, params)
        return model, float((modelled - truth).norm() / truth.norm())

    still, still_error = fit()
    model, error = fit(recalibrate_every=2)
    # The refits use the answers training already had: no extra device query.
    assert (model.n_device_queries_, model.n_device_settings_) == (
        still.n_device_queries_, still.n_device_settings_)
    assert [record.get("twin_error") is not None for record in model.history_] == [
        False, True, False, True]
    for record in model.history_[1::2]:
        assert record["twin_error"] < 0.5 * record["twin_error_before"]
    # The chip drifted 0.01 rad a request for 41 requests; the twin calibrated at the start
    # lags it, the recalibrated one follows (measured: 0.068 against 0.212).
    assert error < 0.5 * still_error, (error, still_error)
    with pytest.raises(ValueError, match="recalibrate_every=2 would be ignored"):
        HybridNetClassifier(recalibrate_every=2).fit(X, y)
