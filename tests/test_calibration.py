"""``hybridnet.calibrate``, ``BlackBoxLayer.using`` and ``training="calibrated_twin"``."""

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from hybridnet import BlackBoxLayer, HybridNetClassifier, calibrate
from hybridnet.physical import SLM, FunctionBlackBox, MRRBank, MZIMesh, USVMesh


def held_out_error(chip, twin, seed=5):
    """Relative error of the twin against the noise-free chip at fresh settings and inputs."""
    g = torch.Generator().manual_seed(seed)
    settings = torch.stack([chip.initial_params(g) for _ in range(3)]).double()
    x = torch.randn(3, 16, chip.in_features, generator=g, dtype=torch.float64)
    with torch.no_grad():
        truth = chip(x, settings)
        return float((twin.double()(x, settings) - truth).norm() / truth.norm())


def test_recovers_the_phase_offsets_of_an_slm():
    chip = SLM(5, 4, fabrication_error=0.2, seed=0)
    twin = calibrate(chip, chip.nominal_twin(), seed=0)
    # each weight is cos(w + delta): the offsets themselves are identifiable
    torch.testing.assert_close(twin.fabrication_offsets, chip.fabrication_offsets, atol=1e-4,
                               rtol=0)
    assert twin.calibration_error < 1e-4 < 0.1 < twin.calibration_error_before


def test_a_fit_that_cannot_match_the_device_warns_and_a_good_one_does_not():
    # 50 % detector noise: no setting of the offsets brings the twin within 0.1 of the answers
    noisy = MZIMesh(6, 6, fabrication_error=0.2, detector_noise=0.5, seed=0)
    with pytest.warns(UserWarning, match="MZIMesh left a relative error of 0\\.[4-9]"):
        twin = calibrate(noisy, noisy.nominal_twin(), seed=0)
    assert twin.calibration_error > 0.1
    chip = MZIMesh(6, 6, fabrication_error=0.2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate(chip, chip.nominal_twin(), seed=0)


def test_lossy_mzi_twin_predicts_the_chip_and_costs_exactly_its_queries():
    chip = MZIMesh(6, 6, fabrication_error=0.2, insertion_loss=0.3, insertion_loss_std=0.1,
                   seed=1)
    nominal = chip.nominal_twin()
    twin = calibrate(chip, nominal, n_queries=60, n_settings=6, seed=0)
    assert chip.n_queries == twin.calibration_queries == 60
    assert chip.n_calls == 1  # every setting in one request
    assert held_out_error(chip, nominal) > 0.2
    assert held_out_error(chip, twin) < 1e-2
    # the losses were fitted too: the nominal twin's are all 0.3 dB, the chip's spread
    fitted = twin.insertion_losses
    assert float((fitted - chip.insertion_losses).abs().mean()) < float(
        (nominal.insertion_losses - chip.insertion_losses).abs().mean())
    assert bool((nominal.fabrication_offsets == 0).all())  # the argument is left unchanged


@pytest.mark.parametrize("make", [
    lambda: MZIMesh(8, 8, fabrication_error=0.2, insertion_loss=0.1, insertion_loss_std=0.05,
                    detector_noise=0.02, seed=0),
    lambda: USVMesh(4, 4, fabrication_error=0.1, insertion_loss=0.05, insertion_loss_std=0.05,
                    detector_noise=0.02, seed=0),
])
def test_fitted_losses_are_never_negative(make):
    # 2 % detector noise: fitted unconstrained, 3 of the 28 MZIs of the mesh went below 0 dB.
    chip = make()
    twin = calibrate(chip, chip.nominal_twin(), seed=0)
    for name in twin.nonnegative_buffers():
        assert bool((twin.get_buffer(name) >= 0).all()), name
    assert twin.calibration_error < 0.05
    assert held_out_error(chip, twin) < held_out_error(chip, chip.nominal_twin()) / 5


def test_the_losses_of_a_lossless_design_are_fitted_too():
    # The nominal twin starts every loss at 0 dB, where a fit of the losses never moved them.
    chip = MZIMesh(6, 6, fabrication_error=0.2, insertion_loss_std=0.1, seed=3)
    nominal = chip.nominal_twin()
    assert bool((nominal.insertion_losses == 0).all())
    twin = calibrate(chip, nominal, seed=0)
    assert float((twin.insertion_losses - chip.insertion_losses).abs().mean()) < 0.25 * float(
        chip.insertion_losses.abs().mean())


def record_settings(chip):
    """The list that collects every parameter setting ``chip`` is queried with from now on."""
    seen = []
    original = chip._query

    def recording(x, settings):
        seen.append(settings.clone())
        return original(x, settings)

    chip._query = recording
    return seen


def test_the_given_setting_is_measured_first():
    chip = MRRBank(4, 3, fabrication_error=0.2, seed=2)
    params = chip.initial_params(torch.Generator().manual_seed(9))
    nominal = chip.nominal_twin()  # before the recording query below, which it would copy
    seen = record_settings(chip)
    calibrate(chip, nominal, n_queries=8, n_settings=2, params=params, seed=0)
    torch.testing.assert_close(seen[0][0], params.double())


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda chip: calibrate(chip, SLM(4, 2)), ValueError, "the twin must match"),
    (lambda chip: calibrate(chip, "twin"), TypeError, "twin must be a hybridnet"),
    (lambda chip: calibrate(chip, FunctionBlackBox(lambda x, p: x[:, :3], 4, 3,
                                                   init_params=np.zeros(12))),
     TypeError, "calibration_buffers"),
    (lambda chip: calibrate(chip, chip.nominal_twin(), n_queries=3), ValueError,
     "n_queries must be an int >= n_settings=8"),
    (lambda chip: calibrate(chip, chip.nominal_twin(), n_settings=0), ValueError, "n_settings"),
    (lambda chip: calibrate(chip, chip.nominal_twin(), params=torch.zeros(5)), ValueError,
     r"params must have shape \(12,\)"),
    (lambda chip: calibrate(chip, chip.nominal_twin(), strategy="best"), ValueError,
     "strategy must be one of"),
])
def test_bad_calls_are_refused(call, error, match):
    chip = SLM(4, 3, fabrication_error=0.1, seed=0)
    with pytest.raises(error, match=match):
        call(chip)
    assert chip.n_queries == 0


def usv_chip(n_in, n_out, **options):
    """A U Sigma V chip at 0.3 rad offsets with lossy MZIs, as the mismatch study's."""
    return USVMesh(n_in, n_out, fabrication_error=0.3, insertion_loss=0.2,
                   insertion_loss_std=0.05, **options)


def noise_free(chip):
    """The chip without its detector noise: what a calibrated twin should reproduce."""
    clean = copy.deepcopy(chip)
    clean.detector_noise = 0.0
    return clean


@pytest.mark.parametrize(("n_in", "n_out"), [(8, 8), (7, 4), (4, 6)])
def test_usv_probes_read_each_mesh_apart(n_in, n_out):
    # Fitted at the chip's own hidden state, every stage's loss vanishes on noise-free answers
    # (the decomposition found U's columns, V's rows and Sigma); at the nominal state it does
    # not.
    chip = usv_chip(n_in, n_out, seed=2)
    twin = chip.nominal_twin().double()
    settings = torch.stack([chip.initial_params(torch.Generator().manual_seed(s))
                            for s in range(3)]).double()
    inputs, probe_settings, stages = twin.calibration_probes(settings,
                                                             torch.Generator().manual_seed(0))
    assert inputs.shape == (12, n_in, n_in) and probe_settings.shape == (12, chip.n_params)
    torch.testing.assert_close(probe_settings[:3], settings)  # the settings are read first
    with torch.no_grad():
        answers = noise_free(chip).double()(inputs, probe_settings)
        truth = {name: chip.get_buffer(name).double() for name in chip.calibration_buffers()}
        nominal = {name: twin.get_buffer(name) for name in twin.calibration_buffers()}
        for loss, _, _ in stages(answers):
            assert float(loss(truth)) < 1e-5 < 1e-2 < float(loss(nominal))


def test_usv_probe_stages_fold_only_their_own_mesh():
    twin = usv_chip(4, 4, seed=0).nominal_twin().double()
    generator = torch.Generator().manual_seed(0)
    settings = torch.stack([twin.initial_params(generator) for _ in range(2)]).double()
    inputs, probe_settings, stages = twin.calibration_probes(settings)
    with torch.no_grad():
        answers = twin(inputs, probe_settings)
    values = {name: twin.get_buffer(name).clone() for name in twin.calibration_buffers()}
    offsets = torch.tensor([3.0, -2.0, 0.2], dtype=torch.float64).repeat(11)[:twin.n_params]
    values["fabrication_offsets"] = offsets
    folded = {tuple(move(values)["fabrication_offsets"].tolist())
              for _, _, move in stages(answers) if move is not None}
    # V's 12 phases, the 4 + 4 modulator phases (never folded), U's 12 phases
    wrapped = offsets - math.pi * offsets.sign() * (offsets.abs() > math.pi / 2)
    v_folded = torch.cat([wrapped[:12], offsets[12:]])
    u_folded = torch.cat([offsets[:20], wrapped[20:]])
    assert folded == {tuple(v_folded.tolist()), tuple(u_folded.tolist())}


def test_usv_chip_at_large_offsets_calibrates_from_its_probes():
    chip = usv_chip(8, 8, detector_noise=0.01, seed=1)
    nominal = chip.nominal_twin()
    twin = calibrate(chip, nominal, seed=0)
    assert twin.calibration_strategy == "probes"
    assert chip.n_queries == twin.calibration_queries == 4 * 8 * 8  # 8 settings, 4 reads
    assert twin.calibration_error < 0.02 < 0.5 < twin.calibration_error_before
    clean = noise_free(chip)
    assert held_out_error(clean, twin) < 0.01 < 0.5 < held_out_error(clean, nominal)
    # the fitted losses are the chip's, closer than the nominal 0.2 dB
    for name in ("v_mesh.insertion_losses", "u_mesh.insertion_losses"):
        fitted, true = twin.get_buffer(name), chip.get_buffer(name)
        assert float((fitted - true).abs().mean()) < 0.5 * float((true - 0.2).abs().mean())


def test_usv_probes_measure_the_given_setting_first():
    chip = usv_chip(4, 4, seed=0)
    params = chip.initial_params(torch.Generator().manual_seed(9))
    nominal = chip.nominal_twin()
    seen = record_settings(chip)
    twin = calibrate(chip, nominal, n_settings=2, params=params, seed=0, max_iter=5)
    assert twin.calibration_strategy == "probes"
    torch.testing.assert_close(seen[0][0], params.double())


@pytest.mark.parametrize(("make", "options", "queries"), [
    (lambda: usv_chip(5, 5, seed=0), {}, 8 * 5),  # odd: a channel of Sigma is hidden
    (lambda: usv_chip(4, 4, seed=0), {"n_queries": 24}, 24),  # a budget of one's own
    (lambda: usv_chip(4, 4, seed=0), {"strategy": "random"}, 8 * 4),
])
def test_usv_falls_back_to_random_queries(make, options, queries):
    chip = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 24 queries may leave a stuck fit; not the point
        twin = calibrate(chip, chip.nominal_twin(), seed=0, max_iter=5, **options)
    assert twin.calibration_strategy == "random"
    assert chip.n_queries == twin.calibration_queries == queries


@pytest.mark.parametrize(("make", "options"), [
    (lambda: usv_chip(5, 5, seed=0), {"strategy": "probes"}),
    (lambda: usv_chip(4, 4, seed=0), {"strategy": "probes", "n_queries": 64}),
    (lambda: MZIMesh(4, 4, seed=0), {"strategy": "probes"}),
])
def test_probes_are_refused_where_there_are_none(make, options):
    chip = make()
    with pytest.raises(ValueError, match="strategy='probes' needs n_queries=None"):
        calibrate(chip, chip.nominal_twin(), seed=0, **options)
    assert chip.n_queries == 0


def test_using_a_twin_trains_without_device_queries_and_restores_the_layer():
    chip = MZIMesh(4, 4, fabrication_error=0.3, seed=0)
    layer = BlackBoxLayer(chip, seed=0)
    twin = chip.nominal_twin()
    before = layer.params.detach().clone()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    with layer.using(twin):
        assert layer.black_box is twin and layer.training_mode == "backprop"
        layer(torch.randn(8, 4)).square().sum().backward()
        optimizer.step()
        assert layer.device_queries() == 0
    assert layer.black_box is chip and layer.training_mode == "surrogate"
    assert chip.n_queries == 0 and twin.n_queries == 8
    assert not torch.equal(layer.params.detach(), before)
    with pytest.raises(RuntimeError, match="inside"), layer.using(twin):
        raise RuntimeError("inside")
    assert layer.black_box is chip
    with pytest.raises(ValueError, match="shape and parameter count"):
        layer.using(MZIMesh(4, 2)).__enter__()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X)[:600], y[:600]


def test_calibrated_twin_training_beats_the_nominal_twin_on_a_mismatched_chip(digits):
    X, y = digits
    options = dict(hidden_layer_sizes=(16, 16), device_options={"fabrication_error": 0.3},
                   max_iter=15, random_state=0)
    calibrated = HybridNetClassifier(training="calibrated_twin", **options).fit(X, y)
    layer = next(m for m in calibrated.module_.modules() if isinstance(m, BlackBoxLayer))
    assert layer.training_mode == "surrogate" and layer.black_box.fabrication_error == 0.3
    # 8 settings x 16 inputs, and nothing else: the 15 epochs ran on the twin
    assert calibrated.n_calibration_queries_ == calibrated.n_device_queries_ == 128
    assert layer.black_box.n_queries == 128
    # The nominal twin (no fabrication error) trained by backprop, deployed on the same chip.
    options["device_options"] = None
    nominal = HybridNetClassifier(training="backprop", **options).fit(X, y)
    nominal_layer = next(m for m in nominal.module_.modules() if isinstance(m, BlackBoxLayer))
    assert nominal_layer.black_box.seed == layer.black_box.seed
    twin_score = nominal.score(X, y)
    nominal_layer.black_box = MZIMesh(16, 16, fabrication_error=0.3,
                                      seed=nominal_layer.black_box.seed)
    assert calibrated.score(X, y) > nominal.score(X, y) + 0.1
    assert calibrated.score(X, y) > twin_score - 0.05


def test_fine_tune_runs_in_situ_and_counts_its_queries(digits):
    X, y = digits
    model = HybridNetClassifier((16, 16), device_options={"fabrication_error": 0.3},
                                training="calibrated_twin", fine_tune_iter=2, max_iter=3,
                                calibration_queries=32, random_state=0).fit(X, y)
    assert model.n_iter_ == 5 and len(model.loss_curve_) == 5
    assert model.n_calibration_queries_ == 32 < model.n_device_queries_
    queries = model.history_[:, "device_queries"]
    assert queries[0] == queries[2] == 32 < queries[3] < queries[4] == model.n_device_queries_


def test_calibrated_twin_refuses_a_device_without_a_simulator(digits):
    X, y = digits
    box = FunctionBlackBox(lambda x, p: x * p, 16, 16, init_params=np.ones(1))
    model = HybridNetClassifier((16, 16), physical_layer=box, training="calibrated_twin")
    with pytest.raises(ValueError, match="nominal_twin"):
        model.fit(X, y)
    assert not hasattr(model, "module_")


def test_a_saved_calibrated_twin_model_predicts_the_same_and_continues_in_situ(digits, tmp_path):
    import hybridnet

    X, y = digits
    model = HybridNetClassifier((16, 16), device_options={"fabrication_error": 0.3},
                                training="calibrated_twin", max_iter=2, random_state=0).fit(X, y)
    hybridnet.save(model, tmp_path / "model.hnet")
    loaded = hybridnet.load(tmp_path / "model.hnet")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.n_calibration_queries_ == model.n_calibration_queries_
    before = loaded.n_device_queries_
    loaded.partial_fit(X[:64], y[:64])
    assert loaded.n_device_queries_ > before  # in situ, on the chip
    assert loaded.n_calibration_queries_ == model.n_calibration_queries_


def test_a_device_failing_during_calibration_leaves_the_estimator_as_it_was(digits):
    from hybridnet.physical import BlackBoxError, FaultyBlackBox

    X, y = digits
    chip = FaultyBlackBox(MZIMesh(16, 16, fabrication_error=0.3, seed=0), fail_rate=1.0,
                          seed=0)
    model = HybridNetClassifier((16, 16), physical_layer=chip, training="calibrated_twin",
                                device_retries=1)
    with pytest.raises(BlackBoxError, match="failed 2 time"):
        model.fit(X, y)
    assert not hasattr(model, "module_")
