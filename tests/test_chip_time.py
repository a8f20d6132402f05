"""Chip time: parameter settings and vectors counted exactly in every training mode, the
modelled device seconds, and budgets that stop a fit."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

from hybridnet import HybridNetClassifier
from hybridnet.physical import MRRBank, MZIMesh
from hybridnet.training import DeviceUsage


class Served:
    """A simulated device that tallies, inside the simulation itself, what it was asked to
    serve: the reference the estimators' counters are checked against."""

    served_vectors = served_settings = 0

    def _query(self, x, params):
        self.served_settings += x.shape[0]
        self.served_vectors += x.shape[0] * x.shape[1]
        return super()._query(x, params)


class ServedMZIMesh(Served, MZIMesh):
    pass


class ServedMRRBank(Served, MRRBank):
    pass


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


MODES = [
    dict(training="surrogate"),
    dict(training="surrogate", zo_estimator="cge"),
    dict(training="backprop"),
    dict(training="bp_free", zo_estimator="rge"),
    dict(training="bp_free", zo_estimator="cge"),
    dict(training="bp_free", zo_estimator="hybrid", n_iter_no_change=1),
    dict(training="calibrated_twin", fine_tune_iter=1),
    dict(training="physics_aware"),
    dict(training="physics_aware", twin="nominal"),
]


@pytest.mark.parametrize("device", [ServedMZIMesh, ServedMRRBank])
@pytest.mark.parametrize("options", MODES, ids=lambda o: "-".join(map(str, o.values())))
def test_counts_are_what_the_device_served(iris, device, options):
    X, y = iris
    chip = device(8, 8, fabrication_error=0.1, seed=0)
    model = HybridNetClassifier((8, 8), physical_layer=chip, max_iter=2, batch_size=50,
                                random_state=0, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the query-cost warning of the costly settings
        model.fit(X, y)
    served = next(layer.black_box for layer in model._device_layers())  # the network's copy
    assert model.n_device_queries_ == served.served_vectors > 0
    assert model.n_device_settings_ == served.served_settings > 0
    seconds = served.served_settings * chip.settle_time + served.served_vectors * chip.vector_time
    assert model.device_seconds_ == pytest.approx(seconds, rel=1e-12)
    last = model.history_[-1]
    assert (last["device_queries"], last["device_settings"]) == (
        model.n_device_queries_, model.n_device_settings_)
    assert last["device_seconds"] == pytest.approx(model.device_seconds_, rel=1e-12)
    # Predictions are served too, but not training: the counters stay.
    model.predict(X)
    assert model.n_device_queries_ < served.served_vectors


def test_a_device_without_a_cost_model_reports_no_seconds(iris):
    X, y = iris
    chip = MZIMesh(8, 8, seed=0)
    chip.settle_time = chip.vector_time = None
    model = HybridNetClassifier((8, 8), physical_layer=chip, max_iter=1,
                                random_state=0).fit(X, y)
    assert model.device_seconds_ is None and "device_seconds" not in model.history_[-1]
    assert model.n_device_settings_ > 0
    with pytest.raises(ValueError, match="needs a device cost model"):
        HybridNetClassifier((8, 8), physical_layer=chip, max_device_seconds=1.0).fit(X, y)


def test_a_query_budget_stops_the_fit_within_it_with_a_warning(iris):
    X, y = iris
    options = dict(hidden_layer_sizes=(8, 8), max_iter=50, batch_size=30, random_state=0)
    free = HybridNetClassifier(**options).fit(X, y)
    per_epoch = free.history_[1]["device_queries"] - free.history_[0]["device_queries"]
    budget = int(2.5 * per_epoch)
    with pytest.warns(UserWarning, match=f"max_device_queries={budget}"):
        model = HybridNetClassifier(max_device_queries=budget, **options).fit(X, y)
    assert budget - per_epoch / 2 < model.n_device_queries_ <= budget
    assert model.n_iter_ == 3  # two whole epochs and part of the third
    assert model.history_[-1]["device_queries"] == model.n_device_queries_
    # Up to the stop the fit is the unbudgeted one.
    assert model.loss_curve_[:2] == free.loss_curve_[:2]


def test_a_seconds_budget_counts_the_calibration(iris):
    X, y = iris
    options = dict(hidden_layer_sizes=(8, 8), max_iter=50, random_state=0,
                   training="physics_aware")
    model = HybridNetClassifier(**{**options, "max_iter": 1}).fit(X, y)
    # 8 calibration settings, then a forward pass per step: 1e-4 s each (the nominal model).
    calibration = 8 * 1e-4 + model.n_calibration_queries_ * 1e-9
    step = 1e-4 + 64 * 1e-9
    with pytest.warns(UserWarning, match="max_device_seconds=0.002"):
        model = HybridNetClassifier(max_device_seconds=0.002, **options).fit(X, y)
    # The calibration and 11 steps fit in 2 ms, a 12th would not.
    assert model.n_device_settings_ == 8 + 11
    assert 0.002 - step < model.device_seconds_ <= 0.002
    assert model.device_seconds_ > calibration


def test_device_usage_arithmetic():
    assert DeviceUsage(5, 2, None) - DeviceUsage(1, 1, 0.5) == DeviceUsage(4, 1, -0.5)
    assert DeviceUsage(5, 2, 1.0) + DeviceUsage(1, 1, None) == DeviceUsage(6, 3, 1.0)


def test_the_progress_bar_shows_chip_seconds(iris, capsys):
    X, y = iris
    HybridNetClassifier((8, 8), max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert "chip_s=" in capsys.readouterr().err


def test_a_request_counts_one_setting_per_parameter_vector():
    chip = MZIMesh(4, 4, seed=0)
    settings = torch.stack([chip.initial_params() for _ in range(3)])
    chip(torch.randn(3, 7, 4), settings)
    chip.settings_per_call = 1
    chip(torch.randn(5, 4), settings)
    assert (chip.n_queries, chip.n_settings, chip.n_calls) == (21 + 15, 6, 4)
    assert chip.device_seconds == pytest.approx(6 * 1e-4 + 36 * 1e-9)
    chip.reset_counters()
    assert (chip.n_queries, chip.n_settings, chip.n_calls, chip.device_seconds) == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="settle_time must be a finite number of seconds"):
        MZIMesh(4, 4, settle_time=-1.0)
