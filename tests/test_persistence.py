"""hybridnet.save / hybridnet.load: data-only model files that never execute code on load."""

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_iris
from sklearn.preprocessing import StandardScaler
from torch import nn

import hybridnet
from hybridnet import BlackBoxLayer, HybridNetClassifier, HybridNetRegressor, PINNSolver
from hybridnet.physical import FunctionBlackBox, MZIMesh
from hybridnet.pinn import PDE, Box, DirichletBC, problems

SMALL = dict(hidden_layer_sizes=(8, 8), max_iter=4, random_state=0)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _round_trip(estimator, tmp_path, **objects):
    path = tmp_path / "model.hnet"
    hybridnet.save(estimator, path)
    return hybridnet.load(path, **objects)


def _assert_same_model_and_continuation(original, restored, X, y):
    """Same predictions now, and after one more epoch of training on both (same streams)."""
    np.testing.assert_array_equal(restored.predict(X), original.predict(X))
    assert restored.get_params(deep=False).keys() == original.get_params(deep=False).keys()
    for key in ("n_iter_", "loss_curve_", "n_device_queries_", "n_features_in_"):
        assert getattr(restored, key) == getattr(original, key), key
    original.partial_fit(X, y)
    restored.partial_fit(X, y)
    np.testing.assert_allclose(restored.predict_proba(X) if hasattr(restored, "predict_proba")
                               else restored.predict(X),
                               original.predict_proba(X) if hasattr(original, "predict_proba")
                               else original.predict(X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options", [
    dict(physical_layer="mzi", device_options={"fabrication_error": 0.1, "phase_noise": 0.01}),
    dict(physical_layer="mrr", device_options={"detector_noise": 0.01}),
    dict(physical_layer="slm", surrogate_update="psi"),
    dict(physical_layer="mzi", training="backprop"),
    dict(physical_layer=None, training="bp_free", zo_estimator="hybrid", n_iter_no_change=4),
    dict(physical_layer="mrr", tt_rank=2, early_stopping=True),
])
def test_classifier_round_trip_predicts_and_continues_identically(iris, tmp_path, options):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, **options}).fit(X, y)
    restored = _round_trip(clf, tmp_path)
    assert restored.classes_.dtype == clf.classes_.dtype
    assert restored.get_params()["hidden_layer_sizes"] == (8, 8)
    _assert_same_model_and_continuation(clf, restored, X, y)


def test_string_labels_and_pandas_names_survive(iris, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": "slm"}).fit(frame, labels)
    restored = _round_trip(clf, tmp_path)
    np.testing.assert_array_equal(restored.feature_names_in_, clf.feature_names_in_)
    np.testing.assert_array_equal(restored.predict(frame), clf.predict(frame))


def test_regressor_round_trip_keeps_the_target_scaling(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    reg = HybridNetRegressor(**{**SMALL, "physical_layer": "mrr"}).fit(X, y)
    restored = _round_trip(reg, tmp_path)
    np.testing.assert_array_equal(restored.predict(X), reg.predict(X))
    np.testing.assert_array_equal(restored._y_scale, reg._y_scale)
    _assert_same_model_and_continuation(reg, restored, X, y)


def test_unfitted_estimators_round_trip(tmp_path):
    clf = HybridNetClassifier(hidden_layer_sizes=(4,), physical_layer=None, device_retries=5)
    restored = _round_trip(clf, tmp_path)
    assert not hasattr(restored, "module_")
    assert restored.get_params() == clf.get_params()


def test_a_driver_device_must_be_passed_back(iris, tmp_path):
    X, y = iris

    def bench(x, params):
        return x @ params.reshape(8, 8).T

    device = FunctionBlackBox(bench, 8, 8, init_params=np.eye(8).ravel(), linear=True,
                              name="bench")
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": device}).fit(X, y)
    path = tmp_path / "bench.hnet"
    hybridnet.save(clf, path)
    with pytest.raises(ValueError, match=r"physical_layer=FunctionBlackBox 'bench'.*pass it back"):
        hybridnet.load(path)
    restored = hybridnet.load(path, physical_layer=device)
    _assert_same_model_and_continuation(clf, restored, X, y)
    with pytest.raises(TypeError, match="no hyperparameter"):
        hybridnet.load(path, physical_layer=device, laser=1)


def test_a_custom_module_must_be_passed_back(iris, tmp_path):
    X, y = iris
    module = nn.Sequential(nn.Linear(4, 6), nn.Tanh(),
                           BlackBoxLayer(MZIMesh(6, 6, seed=0), seed=1), nn.Linear(6, 3))
    clf = HybridNetClassifier(max_iter=3, random_state=0, module=module).fit(X, y)
    path = tmp_path / "custom.hnet"
    hybridnet.save(clf, path)
    with pytest.raises(ValueError, match="module=Sequential"):
        hybridnet.load(path)
    _assert_same_model_and_continuation(clf, hybridnet.load(path, module=module), X, y)
    wrong = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match="does not match"):
        hybridnet.load(path, module=wrong)


def test_pinn_solver_with_a_built_in_problem_loads_by_itself(tmp_path):
    solver = PINNSolver(problems.heat_1d(diffusivity=0.2), hidden_layer_sizes=(8, 8),
                        max_iter=20, random_state=0).fit()
    restored = _round_trip(solver, tmp_path)
    assert restored.pde.builtin == ("heat_1d", {"diffusivity": 0.2, "unknown_diffusivity": None})
    X = solver.pde.domain.sample_interior(50, torch.Generator().manual_seed(0),
                                          torch.float64).numpy()
    np.testing.assert_array_equal(restored.predict(X), solver.predict(X))
    np.testing.assert_array_equal(restored.loss_weights_, solver.loss_weights_)
    assert restored.relative_l2_error() == solver.relative_l2_error()


def test_pinn_solver_bp_free_tt_with_stein(tmp_path):
    solver = PINNSolver(problems.poisson_2d(hard_constraint=True), hidden_layer_sizes=(8, 8),
                        derivatives="stein", stein_samples=8, training="bp_free", tt_rank=2,
                        max_iter=5, random_state=0).fit()
    restored = _round_trip(solver, tmp_path)
    X = np.random.default_rng(0).uniform(size=(20, 2))
    np.testing.assert_array_equal(restored.predict(X), solver.predict(X))


def test_pinn_solver_with_a_user_problem_needs_it_back(tmp_path):
    pde = PDE(Box([0.0], [1.0]), lambda x, d: d.diff2(0) + 1.0, [DirichletBC(0.0)])
    solver = PINNSolver(pde, hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit()
    path = tmp_path / "user.hnet"
    hybridnet.save(solver, path)
    with pytest.raises(ValueError, match="pde=PDE"):
        hybridnet.load(path)
    X = np.linspace(0, 1, 7).reshape(-1, 1)
    np.testing.assert_array_equal(hybridnet.load(path, pde=pde).predict(X), solver.predict(X))


def test_the_file_is_json_plus_weights_only_tensors(iris, tmp_path):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": "mrr"}).fit(X, y)
    path = tmp_path / "model.hnet"
    hybridnet.save(clf, path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "tensors.pt"]
        config = json.loads(archive.read("config.json"))
        tensors = torch.load(io.BytesIO(archive.read("tensors.pt")), weights_only=True)
    assert config["class"] == "HybridNetClassifier"
    assert config["params"]["physical_layer"] == "mrr"
    assert config["fitted"]["classes_"] == {"__array__": [0, 1, 2], "dtype": "<i8"}
    assert set(tensors["module"]) == set(clf.module_.state_dict())


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_tampered_file_cannot_run_code(iris, tmp_path):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": "mrr"}).fit(X, y)
    path = tmp_path / "model.hnet"
    hybridnet.save(clf, path)
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    payload = io.BytesIO()
    torch.save({"module": exploit}, payload)
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("tensors.pt", payload.getvalue())
    with pytest.raises(pickle.UnpicklingError):
        hybridnet.load(path)
    assert not marker.exists()
    # a class name that is not one of the three estimators is refused before anything is built
    evil = json.loads(config)
    evil["class"] = "os.system"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(evil))
        archive.writestr("tensors.pt", b"")
    with pytest.raises(ValueError, match="unknown estimator class 'os.system'"):
        hybridnet.load(path)


def test_not_a_model_file_is_refused_clearly(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a model written by hybridnet.save"):
        hybridnet.load(path)
    with pytest.raises(TypeError, match="save stores"):
        hybridnet.save(StandardScaler(), tmp_path / "scaler.hnet")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to fit on")
def test_a_model_fitted_on_a_gpu_loads_on_a_cpu_only_machine(iris, tmp_path):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": "mzi", "device": "cuda"}).fit(X, y)
    path = tmp_path / "gpu.hnet"
    hybridnet.save(clf, path)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", clf.predict_proba(X))
    script = (f"import numpy as np, hybridnet, torch; assert not torch.cuda.is_available(); "
              f"m = hybridnet.load({str(path)!r}); "
              f"assert m._device.type == 'cpu'; "
              f"np.testing.assert_allclose(m.predict_proba(np.load({str(tmp_path / 'X.npy')!r})),"
              f" np.load({str(tmp_path / 'expected.npy')!r}), rtol=1e-4, atol=1e-5)")
    subprocess.run([sys.executable, "-c", script], check=True,
                   env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    np.testing.assert_array_equal(hybridnet.load(path).predict(X), clf.predict(X))


def test_a_continued_model_moves_to_the_device_it_is_asked_for(iris, tmp_path):
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": "mrr", "warm_start": True}).fit(X, y)
    restored = _round_trip(clf, tmp_path)
    # As if loaded from a GPU fit: continuing with device="cpu" must move the network and the
    # optimizer's moments (a real GPU run is test_a_model_fitted_on_a_gpu_loads_... above).
    restored._device = torch.device("cuda")
    restored.fit(X, y)
    assert restored._device == torch.device("cpu")
    clf.fit(X, y)
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-6,
                               atol=1e-7)
