"""Reliability: continued training, transactional fits, device faults, clear errors, streams."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from hybridnet import BlackBoxLayer, HybridNetClassifier, HybridNetRegressor
from hybridnet.network import build_mlp
from hybridnet.physical import (
    BlackBoxError,
    DeviceTimeoutError,
    FaultyBlackBox,
    FunctionBlackBox,
    MRRBank,
)
from hybridnet.training import EarlyStopping, train_epochs

SMALL = dict(hidden_layer_sizes=(8, 8), physical_layer="mrr", max_iter=5, random_state=0)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def _weights(estimator):
    return torch.cat([p.detach().flatten().clone() for p in estimator.module_.parameters()])


def _train_loss(estimator, X, y):
    """Mean training loss of the fitted network on (X, y), in the estimator's own units."""
    X_t = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        out = estimator.module_(X_t)
    if isinstance(estimator, HybridNetClassifier):
        targets = torch.as_tensor(np.searchsorted(estimator.classes_, y))
        return torch.nn.functional.cross_entropy(out, targets).item()
    scaled = (np.asarray(y, dtype=np.float64).reshape(len(y), -1) - estimator._y_mean) \
        / estimator._y_scale
    return (out.double() - torch.as_tensor(scaled)).square().mean().item()


# ----------------------------------------------------------------- continued training
@pytest.mark.parametrize("make, training", [
    (lambda: HybridNetClassifier(physical_layer="slm", max_iter=3, random_state=0), "surrogate"),
    (lambda: HybridNetClassifier(physical_layer="slm", max_iter=3, random_state=0,
                                 training="backprop"), "backprop"),
    (lambda: HybridNetRegressor(physical_layer="slm", max_iter=3, random_state=0), "surrogate"),
])
def test_partial_fit_after_fit_keeps_training(iris, diabetes, make, training):
    estimator = make()
    X, y = diabetes if isinstance(estimator, HybridNetRegressor) else iris
    estimator.fit(X, y)
    before, loss_before = _weights(estimator), _train_loss(estimator, X, y)
    for _ in range(3):
        estimator.partial_fit(X, y)
    # the cosine schedule of fit ends at 0; partial_fit must train at learning_rate again
    assert (_weights(estimator) - before).abs().max() > 1e-3
    assert _train_loss(estimator, X, y) < loss_before
    rates = [group["lr"] for group in estimator._optimizer.param_groups]
    assert rates == [estimator.learning_rate, estimator.device_learning_rate]


def test_warm_start_and_unpickled_models_keep_training(iris):
    X, y = iris
    clf = HybridNetClassifier(physical_layer="slm", max_iter=3, warm_start=True,
                              random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    for estimator in (clf, restored):
        before, loss_before = _weights(estimator), _train_loss(estimator, X, y)
        estimator.fit(X, y)
        assert (_weights(estimator) - before).abs().max() > 1e-3
        assert _train_loss(estimator, X, y) < loss_before
        assert estimator.n_iter_ == 6


def test_an_unpickled_bp_free_model_continues_exactly(iris):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "training": "bp_free", "physical_layer": None})
    clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    for estimator in (clf, restored):
        estimator.partial_fit(X, y)
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert restored.n_loss_evaluations_ == clf.n_loss_evaluations_ > 0


def test_warm_start_applies_a_new_learning_rate(iris):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "warm_start": True}).fit(X, y)
    before = _weights(clf)
    clf.set_params(learning_rate=1e-12, device_learning_rate=1e-12).fit(X, y)
    assert (_weights(clf) - before).abs().max() < 1e-6


# ----------------------------------------------------------------- transactional fit
def _snapshot(estimator, X):
    kept = {key: value for key, value in vars(estimator).items() if key.endswith("_")}
    return kept, estimator.predict(X)


def _assert_unchanged(estimator, X, snapshot):
    kept, predictions = snapshot
    now = {key: value for key, value in vars(estimator).items() if key.endswith("_")}
    assert now.keys() == kept.keys()
    for key, value in kept.items():
        assert now[key] is value, key
    np.testing.assert_array_equal(estimator.predict(X), predictions)


def test_failed_classifier_refit_leaves_the_model_as_it_was(iris):
    X, y = iris
    clf = HybridNetClassifier(**SMALL).fit(X, y)
    snapshot = _snapshot(clf, X)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X[y == 0], y[y == 0])
    _assert_unchanged(clf, X, snapshot)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(np.full((10, 7), np.nan), np.arange(10) % 2)
    _assert_unchanged(clf, X, snapshot)
    with pytest.raises(ValueError, match="'zo_samples' parameter"):
        clf.set_params(zo_samples=0).fit(X[:, :2], y)
    _assert_unchanged(clf, X, snapshot)


def test_failed_regressor_refit_keeps_the_target_scaling(diabetes):
    X, y = diabetes
    reg = HybridNetRegressor(**SMALL).fit(X, y)
    snapshot = _snapshot(reg, X)
    with pytest.raises(ValueError, match="'zo_samples' parameter"):
        reg.set_params(zo_samples=0).fit(X, y * 1000)
    _assert_unchanged(reg, X, snapshot)
    with pytest.raises(ValueError, match="Negative values .*sample_weight"):
        reg.set_params(zo_samples=10).fit(X, y * 1000, sample_weight=-np.ones(len(y)))
    _assert_unchanged(reg, X, snapshot)


def test_warm_start_refuses_a_changed_architecture_before_any_epoch(iris):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "warm_start": True}).fit(X, y)
    snapshot = _snapshot(clf, X)
    for change, named in [({"training": "bp_free"}, "training ('surrogate' -> 'bp_free')"),
                          ({"hidden_layer_sizes": (8, 4)}, "hidden_layer_sizes ((8, 8) -> "
                                                           "(8, 4))"),
                          ({"physical_layer": "slm"}, "physical_layer")]:
        with pytest.raises(ValueError, match=r"cannot continue .*" + named.replace(
                "(", r"\(").replace(")", r"\)")):
            clone = pickle.loads(pickle.dumps(clf))
            clone.set_params(**change).fit(X, y)
    with pytest.raises(ValueError, match="cannot continue"):
        clf.set_params(training="backprop").partial_fit(X, y)
    _assert_unchanged(clf, X, snapshot)
    # set back, it continues; with warm_start off it starts afresh
    clf.set_params(training="surrogate").fit(X, y)
    assert clf.n_iter_ == 10
    clf.set_params(warm_start=False, training="bp_free").fit(X, y)
    assert clf.n_iter_ == 5


def test_bp_free_warm_start_to_first_order_is_refused(iris):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "training": "bp_free", "physical_layer": None,
                                 "warm_start": True}).fit(X, y)
    with pytest.raises(ValueError, match="training .'bp_free' -> 'backprop'."):
        clf.set_params(training="backprop").fit(X, y)
    assert clf.n_iter_ == 5


# ----------------------------------------------------------------- numpy scalars, bad input
def test_numpy_integer_hyperparameters_work(iris):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "surrogate_rank": np.int64(4),
                                 "batch_size": np.int64(32), "max_iter": np.int32(2),
                                 "zo_samples": np.int64(3), "learning_rate": np.float32(3e-3)})
    clf.fit(X, y)
    assert clf.n_iter_ == 2
    search = GridSearchCV(HybridNetClassifier(**SMALL), {"surrogate_rank": np.arange(2, 4)},
                          cv=2, error_score="raise").fit(X, y)
    assert search.best_params_["surrogate_rank"] in (2, 3)


def test_inputs_beyond_float32_are_refused_before_the_device(iris):
    X, y = iris
    huge = X.copy()
    huge[0, 0] = 1e39
    with pytest.raises(ValueError, match="beyond float32's range"):
        HybridNetClassifier(**SMALL).fit(huge, y)
    clf = HybridNetClassifier(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="beyond float32's range"):
        clf.predict(huge)


def test_negative_sample_weights_are_refused(iris):
    X, y = iris
    weights = np.ones(len(y))
    weights[3] = -1
    with pytest.raises(ValueError, match="Negative values .*sample_weight"):
        HybridNetClassifier(**SMALL).fit(X, y, sample_weight=weights)


# ----------------------------------------------------------------- device faults
def _flaky(fail_on, *, nan_on=(), sleep_on=(), seconds=0.0, record=None):
    """A 4 -> 3 linear numpy device that fails on the given call numbers (0-based)."""
    import time

    matrix = np.arange(12.0).reshape(3, 4) / 10
    calls = {"n": 0}

    def device(x, params):
        index = calls["n"]
        calls["n"] += 1
        if record is not None:
            record.append(params.copy())
        if index in sleep_on:
            time.sleep(seconds)
        if index in fail_on:
            raise OSError("frame dropped")
        y = x @ (matrix * params[0]).T
        if index in nan_on:
            y[0, 0] = np.nan
        return y

    return FunctionBlackBox(device, 4, 3, init_params=[1.0], backend="numpy", linear=True,
                            name="bench")


def test_failed_queries_are_retried_with_the_same_parameters():
    record = []
    layer = BlackBoxLayer(_flaky({0, 1}, record=record), seed=0)
    x = torch.ones(2, 4, dtype=torch.float64)
    y = layer.query_device(x, layer.params.detach().double())
    assert layer.n_device_retries == 2
    np.testing.assert_allclose(y.numpy(), np.ones((2, 4)) @ (np.arange(12.0).reshape(3, 4).T
                                                              / 10))
    assert all(np.array_equal(params, record[0]) for params in record)

    nan_layer = BlackBoxLayer(_flaky(set(), nan_on={0}), seed=0)
    assert torch.isfinite(nan_layer.query_device(x, nan_layer.params.detach())).all()
    assert nan_layer.n_device_retries == 1


def test_persistent_failure_names_the_device_and_the_attempts():
    layer = BlackBoxLayer(_flaky(set(range(10))), device_retries=3, seed=0)
    with pytest.raises(BlackBoxError, match=r"bench failed 4 time\(s\) in a row .*frame dropped"):
        layer.query_device(torch.ones(2, 4), layer.params.detach())
    assert layer.n_device_retries == 3


def test_device_timeout_retries_a_slow_call():
    layer = BlackBoxLayer(_flaky(set(), sleep_on={0}, seconds=1.0), device_timeout=0.2, seed=0)
    y = layer.query_device(torch.ones(2, 4), layer.params.detach())
    assert y.shape == (2, 3) and layer.n_device_retries == 1
    slow = BlackBoxLayer(_flaky(set(), sleep_on={0, 1}, seconds=1.0), device_timeout=0.1,
                         device_retries=1, seed=0)
    with pytest.raises(BlackBoxError, match="did not answer within device_timeout=0.1") as info:
        slow.query_device(torch.ones(2, 4), slow.params.detach())
    assert isinstance(info.value.__cause__, DeviceTimeoutError)


@pytest.mark.parametrize("fail_rate, retries", [(0.01, 2), (0.1, 5)])
def test_transient_faults_do_not_end_or_spoil_a_fit(digits, fail_rate, retries):
    X_train, X_test, y_train, y_test = digits
    options = dict(hidden_layer_sizes=(32, 32), max_iter=8, random_state=0)
    healthy = HybridNetClassifier(physical_layer=MRRBank(32, 32, seed=1), **options)
    healthy.fit(X_train, y_train)
    faulty = HybridNetClassifier(
        physical_layer=FaultyBlackBox(MRRBank(32, 32, seed=1), fail_rate=fail_rate,
                                      nan_rate=fail_rate / 2, seed=2),
        device_retries=retries, **options).fit(X_train, y_train)
    assert faulty.n_iter_ == 8
    assert faulty.n_device_retries_ > 0
    assert faulty.score(X_test, y_test) >= healthy.score(X_test, y_test) - 0.01


def test_device_failure_mid_fit_keeps_finished_epochs_and_best_weights(iris):
    X, y = iris
    # iris: 135 training rows -> 3 steps an epoch; the device dies for good after 150 calls
    dead_after = 150

    def bench(x, params):
        bench.calls += 1
        if bench.calls > dead_after:
            raise OSError("laser off")
        return x @ params.reshape(8, 8).T

    bench.calls = 0
    device = FunctionBlackBox(bench, 8, 8, init_params=np.eye(8).ravel() * 0.5, linear=True,
                              name="bench")
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": device, "max_iter": 50,
                                 "early_stopping": True, "n_iter_no_change": 50})
    with pytest.raises(BlackBoxError, match="bench failed 3 time"):
        clf.fit(X, y)
    assert 0 < clf.n_iter_ < 50 and len(clf.loss_curve_) == clf.n_iter_
    assert len(clf.validation_scores_) == clf.n_iter_


def test_training_loop_restores_the_best_weights_when_a_step_raises():
    module = torch.nn.Linear(1, 1, bias=False)
    scores = iter([0.5, 0.9, 0.7])
    seen = []

    def step(_):
        with torch.no_grad():
            module.weight += 1.0
        if len(seen) == 3:
            raise BlackBoxError("gone")
        return 0.0, 1.0

    class Score(EarlyStopping):
        def on_epoch_end(self, state):
            state.history[-1]["valid_score"] = next(scores)
            seen.append(module.weight.item())
            super().on_epoch_end(state)

    with pytest.raises(BlackBoxError):
        train_epochs(module, step, lambda: [None], 10,
                     callbacks=[Score("valid_score", lower_is_better=False, restore_best=True)])
    assert module.weight.item() == seen[1]  # the epoch that scored 0.9


def test_keyboard_interrupt_restores_the_best_weights():
    module = torch.nn.Linear(1, 1, bias=False)
    calls = []

    def step(_):
        calls.append(1)
        with torch.no_grad():
            module.weight += 1.0
        if len(calls) == 2:
            raise KeyboardInterrupt
        return 1.0 / len(calls), 1.0

    stopper = EarlyStopping(restore_best=True)
    with pytest.raises(KeyboardInterrupt):
        train_epochs(module, step, lambda: [None], 10, callbacks=[stopper])
    assert stopper.best_epoch == 1
    assert module.weight.item() == pytest.approx(stopper._best_state["weight"].item())


# ----------------------------------------------------------------- random streams
def test_fabrication_offsets_are_independent_of_the_initial_phases():
    network = build_mlp(64, 4, (64, 64), physical_layer="mzi",
                        device_options={"fabrication_error": 0.2}, seed=123)
    layer = network[2]
    offsets = layer.black_box.fabrication_offsets
    deviations = layer.params.detach() - torch.pi / 2
    correlation = np.corrcoef(offsets.numpy(), deviations.numpy())[0, 1]
    assert abs(correlation) < 0.1


def test_device_noise_and_layer_directions_are_different_streams():
    network = build_mlp(16, 4, (16, 16), physical_layer="mzi",
                        device_options={"phase_noise": 0.1}, seed=123)
    layer = network[2]
    device_draw = torch.randn(1000, generator=layer.black_box._generator)
    layer_draw = torch.randn(1000, generator=layer.generator)
    assert abs(np.corrcoef(device_draw.numpy(), layer_draw.numpy())[0, 1]) < 0.15
    assert not torch.equal(device_draw, layer_draw)


def test_estimator_streams_are_distinct_and_reproducible(iris):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "training": "bp_free", "physical_layer": None})
    clf.fit(X, y)
    assert len(set(clf._stream_seeds)) == len(clf._stream_seeds)
    batch_draw = torch.randperm(1000, generator=torch.Generator().manual_seed(
        clf._stream_seeds[1]))
    zo_draw = torch.randperm(1000, generator=torch.Generator().manual_seed(
        clf._stream_seeds[2]))
    assert not torch.equal(batch_draw, zo_draw)
    again = HybridNetClassifier(**{**SMALL, "training": "bp_free", "physical_layer": None})
    np.testing.assert_array_equal(again.fit(X, y).predict_proba(X), clf.predict_proba(X))
