"""hybridnet.save / hybridnet.load: data-only model files that never execute code on load."""

import io
import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import TransformedTargetRegressor, make_column_transformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.decomposition import PCA
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    PolynomialFeatures,
    StandardScaler,
)
from torch import nn

import hybridnet
from hybridnet import (
    BlackBoxLayer,
    HybridNetClassifier,
    HybridNetRegressor,
    PINNSolver,
    persistence,
)
from hybridnet.persistence import ModelFileError
from hybridnet.physical import FunctionBlackBox, MZIMesh
from hybridnet.pinn import PDE, Box, DirichletBC, problems

SMALL = dict(hidden_layer_sizes=(8, 8), max_iter=4, random_state=0)
TINY = dict(hidden_layer_sizes=(8,), physical_layer=None, max_iter=3, random_state=0)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def iris_frame():
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["colour"] = np.array(["red", "green", "blue"])[np.arange(len(y)) % 3]
    return frame, y


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


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _tamper(path, edit=None, members=None):
    """Rewrite the model file: ``edit`` changes the parsed config.json in place; ``members``
    maps names to new contents (None drops the member). Members are stored as save stores
    them: config.json compressed, the rest not."""
    contents = _members(path)
    config = json.loads(contents.pop("config.json"))
    if edit is not None:
        edit(config)
    contents.update(members or {})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config), compress_type=zipfile.ZIP_DEFLATED)
        for name, data in contents.items():
            if data is not None:
                archive.writestr(name, data)


def _tensors(path):
    """The name and the content of a single saved estimator's tensors member."""
    contents = _members(path)
    name = json.loads(contents["config.json"])["estimator"]["tensors"]
    return name, torch.load(io.BytesIO(contents[name]), weights_only=True)


def _torch_bytes(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fitted_file(iris, tmp_path_factory):
    """A fitted classifier with an MRR bank, saved; tests tamper with copies of it."""
    X, y = iris
    clf = HybridNetClassifier(**{**SMALL, "physical_layer": "mrr"}).fit(X, y)
    path = tmp_path_factory.mktemp("saved") / "model.hnet"
    hybridnet.save(clf, path)
    return clf, path.read_bytes()


@pytest.fixture
def copy(fitted_file, tmp_path):
    path = tmp_path / "copy.hnet"
    path.write_bytes(fitted_file[1])
    return path


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
    with pytest.raises(TypeError, match=r"no hybridnet estimator .*\(s\) \['laser'\]"):
        hybridnet.load(path, physical_layer=device, laser=1)


def test_a_custom_module_must_be_passed_back(iris, tmp_path):
    X, y = iris
    module = nn.Sequential(nn.Linear(4, 6), nn.Tanh(),
                           BlackBoxLayer(MZIMesh(6, 6, seed=0), surrogate_rank=4, seed=1),
                           nn.Linear(6, 3))
    clf = HybridNetClassifier(max_iter=3, random_state=0, module=module).fit(X, y)
    path = tmp_path / "custom.hnet"
    hybridnet.save(clf, path)
    with pytest.raises(ValueError, match="module=Sequential"):
        hybridnet.load(path)
    _assert_same_model_and_continuation(clf, hybridnet.load(path, module=module), X, y)
    wrong = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ModelFileError, match="does not match"):
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


def test_the_file_is_json_plus_arrays_and_weights_only_tensors(fitted_file, copy):
    clf, _ = fitted_file
    contents = _members(copy)
    config = json.loads(contents["config.json"])
    node = config["estimator"]
    assert (config["format"], config["version"]) == ("hybridnet-model", 2)
    assert node["__hybridnet__"] == "HybridNetClassifier"
    assert node["params"]["physical_layer"] == "mrr"
    classes = np.load(io.BytesIO(contents[node["fitted"]["classes_"]["__npy__"]]),
                      allow_pickle=False)
    np.testing.assert_array_equal(classes, clf.classes_)
    tensors = torch.load(io.BytesIO(contents[node["tensors"]]), weights_only=True)
    assert set(tensors["module"]) == set(clf.module_.state_dict())
    assert set(contents) == {"config.json", node["tensors"], node["fitted"]["classes_"]["__npy__"]}
    with zipfile.ZipFile(copy) as archive:  # data members cannot inflate: stored as they are
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist()
                   if info.filename != "config.json")


def _as_version_1(path):
    """Rewrite a saved single estimator in format version 1 (hybridnet 0.1.0): its node's
    fields at the top of config.json, arrays inline as {"__array__": list, "dtype": str},
    numpy scalars as plain numbers, and the tensors in a compressed tensors.pt (also when
    unfitted: then an empty dict)."""
    contents = _members(path)
    node = json.loads(contents["config.json"])["estimator"]

    def inline(value):
        if isinstance(value, list):
            return [inline(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__npy__" in value:
            array = np.load(io.BytesIO(contents[value["__npy__"]]), allow_pickle=False)
            return {"__array__": array.tolist(), "dtype": array.dtype.str}
        if "__scalar__" in value:
            return value["__scalar__"]
        return {key: inline(v) for key, v in value.items()}

    config = {"format": "hybridnet-model", "version": 1, "class": node["__hybridnet__"],
              "params": inline(node["params"]), "fitted": inline(node["fitted"])}
    tensors = contents[node["tensors"]] if node["tensors"] else _torch_bytes({})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config, indent=1))
        archive.writestr("tensors.pt", tensors)


@pytest.mark.parametrize("kind", ["classifier", "bp_free", "regressor", "unfitted", "pinn"])
def test_version_1_files_still_load(iris, tmp_path, kind):
    X, y = iris
    path = tmp_path / "old.hnet"
    if kind == "pinn":
        model = PINNSolver(problems.heat_1d(diffusivity=0.2), hidden_layer_sizes=(8,),
                           max_iter=10, random_state=0).fit()
    elif kind == "regressor":
        model = HybridNetRegressor(**{**SMALL, "physical_layer": "mzi"}).fit(X, X[:, 0])
    elif kind == "unfitted":
        model = HybridNetClassifier(hidden_layer_sizes=(4,), device_retries=5)
    else:
        options = dict(training="bp_free", zo_estimator="hybrid", physical_layer=None) \
            if kind == "bp_free" else dict(physical_layer="mrr")
        model = HybridNetClassifier(**{**SMALL, **options}).fit(X, y)
    hybridnet.save(model, path)
    _as_version_1(path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "tensors.pt"]
    restored = hybridnet.load(path)
    if kind == "unfitted":
        assert restored.get_params() == model.get_params()
    elif kind == "pinn":
        assert restored.relative_l2_error() == model.relative_l2_error()
    else:
        _assert_same_model_and_continuation(model, restored, X, X[:, 0] if kind == "regressor"
                                            else y)


def _assert_same_outputs(original, restored, X):
    """Bitwise the same predict, predict_proba and transform, wherever the model has them."""
    methods = [m for m in ("predict", "predict_proba", "transform") if hasattr(original, m)]
    assert methods
    for method in methods:
        np.testing.assert_array_equal(getattr(restored, method)(X), getattr(original, method)(X))


def test_the_readme_pipeline_round_trips_exactly(tmp_path):
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(),
                          HybridNetClassifier(physical_layer="mzi", surrogate_rank=4,
                                              device_options={"fabrication_error": 0.1},
                                              **SMALL)).fit(X, y)
    restored = _round_trip(model, tmp_path)
    assert [type(step).__name__ for _, step in restored.steps] == ["StandardScaler",
                                                                    "HybridNetClassifier"]
    np.testing.assert_array_equal(restored[0].mean_, model[0].mean_)
    _assert_same_outputs(model, restored, X)
    contents = _members(tmp_path / "model.hnet")
    for name, data in contents.items():  # every member is readable without pickle
        if name.endswith(".npy"):
            np.load(io.BytesIO(data), allow_pickle=False)
        elif name.endswith(".pt"):
            torch.load(io.BytesIO(data), weights_only=True)
    restored[-1].partial_fit(restored[0].transform(X), y)  # the network keeps training


def test_a_column_transformer_composition_round_trips_exactly(iris_frame, tmp_path):
    frame, y = iris_frame
    model = make_pipeline(
        make_column_transformer((StandardScaler(), ["a", "b"]), (OneHotEncoder(), ["colour"]),
                                remainder="passthrough"),
        HybridNetClassifier(**TINY)).fit(frame, y)
    restored = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(restored[0].get_feature_names_out(),
                                  model[0].get_feature_names_out())
    _assert_same_outputs(model, restored, frame)


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(FeatureUnion([("pca", PCA(2)), ("poly", PolynomialFeatures(2))]),
                          MinMaxScaler(), FunctionTransformer(), HybridNetClassifier(**TINY)),
    lambda: TransformedTargetRegressor(make_pipeline(StandardScaler(),
                                                     HybridNetRegressor(**TINY)),
                                       transformer=StandardScaler()),
    lambda: GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()),
                         {"logisticregression__C": [0.1, 1.0]}, cv=3),
    lambda: OneHotEncoder(sparse_output=False, dtype=np.float32),
], ids=["feature_union", "transformed_target", "search_best_estimator", "one_hot"])
def test_scikit_learn_compositions_round_trip_exactly(iris, tmp_path, make):
    X, y = iris
    model = make()
    if isinstance(model, OneHotEncoder):
        X = np.round(X).astype(int)
        model.fit(X)
    elif isinstance(model, TransformedTargetRegressor):
        model.fit(X, X[:, 0])
    else:
        model.fit(X, y)
    if isinstance(model, GridSearchCV):
        model = model.best_estimator_
    restored = _round_trip(model, tmp_path)
    assert restored.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    _assert_same_outputs(model, restored, X)


def test_an_object_passed_back_reaches_the_estimator_inside_a_pipeline(iris, tmp_path):
    X, y = iris
    device = FunctionBlackBox(lambda x, params: x @ params.reshape(8, 8).T, 8, 8,
                              init_params=np.eye(8).ravel(), linear=True, name="bench")
    model = make_pipeline(StandardScaler(), HybridNetClassifier(
        **{**SMALL, "physical_layer": device})).fit(X, y)
    path = tmp_path / "bench.hnet"
    hybridnet.save(model, path)
    with pytest.raises(ValueError, match=r"physical_layer=FunctionBlackBox 'bench'"):
        hybridnet.load(path)
    restored = hybridnet.load(path, physical_layer=device)
    assert restored[-1].physical_layer is device
    _assert_same_outputs(model, restored, X)


class _OwnTransformer(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_what_has_no_data_form_is_refused_at_save_naming_its_place(iris, tmp_path):
    X, y = iris
    path = tmp_path / "refused.hnet"
    logged = make_pipeline(FunctionTransformer(np.log1p), HybridNetClassifier(**TINY))
    with pytest.raises(ValueError, match=r"Pipeline\.steps\[0\]\[1\]\.func "
                                         r"\(FunctionTransformer\.func\): it is a function "
                                         r"\(numpy\.log1p\)"):
        hybridnet.save(logged, path)
    scaler = StandardScaler().fit(X)
    scaler.notes_ = np.array([{"by": "me"}], dtype=object)
    with pytest.raises(ValueError, match=r"StandardScaler\.notes_: it is an array of \['dict'\]"):
        hybridnet.save(scaler, path)
    search = GridSearchCV(LogisticRegression(), {"C": [1.0]}, cv=2).fit(X, y)
    with pytest.raises(ValueError, match=r"cannot save GridSearchCV\.\w+: it is a "):
        hybridnet.save(search, path)
    with pytest.raises(TypeError, match=r"Pipeline\.steps\[0\]\[1\]: .*_OwnTransformer is "
                                        "neither a hybridnet estimator"):
        hybridnet.save(make_pipeline(_OwnTransformer(), HybridNetClassifier(**TINY)), path)
    with pytest.raises(TypeError, match="save stores estimators"):
        hybridnet.save(object(), path)
    assert not path.exists()  # a refused save writes nothing


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _exploit(tmp_path):
    exploit = _Exploit()
    exploit.marker = tmp_path / "pwned"
    return exploit


@pytest.mark.parametrize("payload", ["torch_archive", "plain_pickle", "npy_object_array"])
def test_a_pickle_payload_is_refused_and_never_runs(copy, tmp_path, payload):
    exploit = _exploit(tmp_path)
    name, tensors = _tensors(copy)
    if payload == "npy_object_array":  # numpy's own pickle route, in place of an array
        config = json.loads(_members(copy)["config.json"])
        name = config["estimator"]["fitted"]["classes_"]["__npy__"]
        buffer = io.BytesIO()
        np.save(buffer, np.array([exploit, 1], dtype=object), allow_pickle=True)
        data, expected = buffer.getvalue(), "holds an array of object, not of numbers"
    elif payload == "plain_pickle":
        data, expected = pickle.dumps({"module": exploit}), "executable pickle data"
    else:
        data = _torch_bytes({**tensors, "module": exploit})
        expected = r"executable pickle data \(naming posix\.system\)" if os.name == "posix" \
            else "executable pickle data"
    _tamper(copy, members={name: data})
    with pytest.raises(ModelFileError, match=expected) as error:
        hybridnet.load(copy)
    assert str(copy) in str(error.value) and "weights_only" not in str(error.value)
    if payload != "npy_object_array":
        assert "was not loaded" in str(error.value)
    assert not exploit.marker.exists()


@pytest.mark.parametrize("where", ["weight", "optimizer_moment"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_them(copy, where, bad):
    name, tensors = _tensors(copy)
    if where == "weight":
        key = "0.weight"
        tensors["module"][key][0, 0] = bad
        expected = r"0\.weight holds NaN or infinite values"
    else:
        tensors["optimizer"]["state"][0]["exp_avg"][0, 0] = bad
        expected = r"optimizer: exp_avg of parameter 0 holds NaN or infinite values"
    _tamper(copy, members={name: _torch_bytes(tensors)})
    with pytest.raises(ModelFileError, match=expected):
        hybridnet.load(copy)


def _wrong_tensors(tensors, change):
    module = tensors["module"]
    if change == "shape":
        module["0.weight"] = module["0.weight"][:, :2]
    elif change == "dtype":
        module["0.weight"] = module["0.weight"].double()
    elif change == "missing":
        del module["0.bias"]
    elif change == "extra":
        module["0.scale"] = torch.ones(3)
    elif change == "view":  # a huge shape over one stored number: refused before it is read
        module["0.weight"] = torch.zeros(1).expand(10**6, 10**6)
    elif change == "generator":
        tensors["batch_generator"] = tensors["batch_generator"][:100]
    else:
        del tensors["optimizer"]
    return tensors


@pytest.mark.parametrize("change, expected", [
    ("shape", r"0\.weight is torch\.float32 \(8, 2\), where the network rebuilt from its "
              r"hyperparameters has torch\.float32 \(8, 4\)"),
    ("dtype", r"0\.weight is torch\.float64 \(8, 4\)"),
    ("missing", "does not match the one rebuilt"),
    ("extra", "does not match the one rebuilt"),
    ("view", r"0\.weight is torch\.float32 \(1000000, 1000000\)"),
    ("generator", r"batch_generator is torch\.uint8 \(100,\)"),
    ("no_optimizer", r"should hold \['batch_generator', 'generators', 'module', 'optimizer'\]"),
])
def test_tensors_that_do_not_fit_the_network_are_refused(copy, change, expected):
    name, tensors = _tensors(copy)
    _tamper(copy, members={name: _torch_bytes(_wrong_tensors(tensors, change))})
    with pytest.raises(ModelFileError, match=expected):
        hybridnet.load(copy)


def _set(*keys, value):
    """An edit of config.json setting the entry at ``keys`` (below "estimator") to ``value``."""
    def edit(config):
        entry = config["estimator"]
        for key in keys[:-1]:
            entry = entry[key]
        entry[keys[-1]] = value
    return edit


def _delete(*keys):
    def edit(config):
        entry = config["estimator"]
        for key in keys[:-1]:
            entry = entry[key]
        del entry[keys[-1]]
    return edit


@pytest.mark.parametrize("edit, expected", [
    (_set("fitted", "n_features_in_", value="four"),
     r"HybridNetClassifier\.n_features_in_ should be a positive integer, got 'four'"),
    (_set("fitted", "_y_mean", value=1.0), r"unknown fitted attribute\(s\) \['_y_mean'\]"),
    (_set("fitted", "predict", value=1), r"unknown fitted attribute\(s\) \['predict'\]"),
    (_delete("fitted", "classes_"), r"no fitted attribute\(s\) \['classes_'\]"),
    (_set("fitted", "_stream_seeds", value=[1, 2]), r"_stream_seeds should be a list of 4"),
    (_set("fitted", "classes_", value={"__array__": [2, 1, 0], "dtype": "<i8"}),
     "classes_ should be a sorted 1-D array"),
    (_set("fitted", "classes_", value={"__array__": [0, 1], "dtype": "|V8"}),
     r"names the dtype '\|V8', not one of numbers or strings"),
    (_set("fitted", "classes_", value={"__array__": ["a", "b"], "dtype": "<U99999999"}),
     r"classes_ names the dtype <U99999999, wider than its strings"),  # 400 MB an element
    (_set("params", "hidden_layer_sizes", value="wide"),
     r"invalid hyperparameter: The 'hidden_layer_sizes' parameter"),
    (_set("params", "laser", value=1), r"load .*: HybridNetClassifier has no "
                                       r"hyperparameter\(s\) \['laser'\]"),
    (_set("params", "random_state", value={"__tuple__": 1}),
     r"random_state\['__tuple__'\] is 1"),
    (_set("params", "random_state", value={"__call__": "os.system"}),
     "has an unknown tag '__call__'"),
    (_set("fitted", "module_attributes", "2", "forward", value=1),
     r"module_attributes\['2'\]\['forward'\] would hide BlackBoxLayer\.forward"),
    (_set("fitted", "module_attributes", "0", "weight", value=0.0),
     r"module_attributes\['0'\]\['weight'\] would hide Linear\.weight"),
    (_set("fitted", "module_attributes", "0", "in_features", value="4"),
     r"module_attributes\['0'\]\['in_features'\] is '4', where the rebuilt Linear has 4"),
    (_set("fitted", "module_attributes", "2.black_box", "in_features", value=7),
     r"\['in_features'\] is 7, where the rebuilt MRRBank has 8"),
    (_set("fitted", "module_attributes", "2", "device_retries", value=None),
     r"\['device_retries'\] is None, where the rebuilt BlackBoxLayer has 2"),
    (_set("fitted", "optimizer_attributes", value=[]),
     r"optimizer_attributes is a list, not a dict"),
    (_set("tensors", value="tensors/9.pt"), "it has no member 'tensors/9.pt'"),
    (_set("fitted", "history_", value=[1, 2]), "history_ should be a list of dicts"),
    (_delete("fitted", "module_attributes"), r"no fitted attribute\(s\) \['module_attributes'\]"),
], ids=lambda value: "" if callable(value) else value[:40])
def test_a_malformed_config_is_refused_naming_the_entry(copy, edit, expected):
    _tamper(copy, edit)
    with pytest.raises(ModelFileError, match=expected) as error:
        hybridnet.load(copy)
    assert str(error.value).startswith(f"cannot load {copy}: ")


@pytest.mark.parametrize("text, expected", [
    (b"{", "config.json is not valid JSON"),
    (b"\xff\xfe\x00", "config.json is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "config.json is not valid JSON"),
    (b"[]", r"not a hybridnet model of format version 1 or 2 \(format and version \[\]"),
    (json.dumps({"format": "hybridnet-model", "version": True}).encode(), "format version"),
    (json.dumps({"format": "hybridnet-model", "version": 2, "estimator": {},
                 "sklearn_version": "1.9"}).encode(),
     r"config\.json\['estimator'\] is not an estimator"),
])
def test_config_that_is_not_a_model_is_refused(copy, text, expected):
    contents = _members(copy)
    contents["config.json"] = text
    with zipfile.ZipFile(copy, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match=expected):
        hybridnet.load(copy)


def _hostile_name(name, kind):
    """An edit putting a node of class ``name`` where the pipeline's scaler was."""
    def edit(config):
        node = {"__sklearn__": name, "state": {}} if kind == "sklearn" else {
            "__hybridnet__": name, "params": {}, "fitted": None, "tensors": None}
        config["estimator"]["state"]["steps"][0]["__tuple__"][1] = node
    return edit


@pytest.mark.parametrize("name, kind", [
    ("os.system", "sklearn"), ("builtins.eval", "sklearn"), ("posix.system", "sklearn"),
    ("sklearn.datasets.fetch_openml", "sklearn"),  # a function of scikit-learn
    ("sklearn.utils.Bunch", "sklearn"),  # a class that is not an estimator
    ("sklearn.conftest.pytest_configure", "sklearn"),  # never imported
    ("hybridnet.HybridNetClassifier", "sklearn"),  # ours, but not by the sklearn route
    ("sklearn.preprocessing.StandardScaler", "sklearn"),  # re-exported, not defined there
    ("sklearn..preprocessing._data.StandardScaler", "sklearn"),
    ("os.system", "hybridnet"), ("HybridNetClassifier.__init__", "hybridnet"),
])
def test_hostile_class_names_in_a_tree_are_refused_without_importing_them(
        iris, tmp_path, monkeypatch, name, kind):
    X, y = iris
    path = tmp_path / "pipeline.hnet"
    hybridnet.save(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), path)
    _tamper(path, _hostile_name(name, kind))
    imported = []
    original = persistence.importlib.import_module
    monkeypatch.setattr(persistence.importlib, "import_module",
                        lambda module: imported.append(module) or original(module))
    expected = (r"Pipeline\.steps\[0\]\[1\] names " + repr(name).replace(".", r"\.")
                + ", which is not a scikit-learn estimator class") if kind == "sklearn" else (
        r"Pipeline\.steps\[0\]\[1\] names an unknown estimator class")
    with pytest.raises(ModelFileError, match=expected):
        hybridnet.load(path)
    assert all(module.startswith("sklearn.") for module in imported), imported
    assert "sklearn.conftest" not in imported


def test_a_file_saved_with_another_scikit_learn_warns(iris, tmp_path):
    X, y = iris
    path = tmp_path / "scaler.hnet"
    hybridnet.save(StandardScaler().fit(X), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hybridnet.load(path)
    _tamper(path, lambda config: config.update(sklearn_version="0.24.2"))
    with pytest.warns(InconsistentVersionWarning, match="from version 0.24.2"):
        hybridnet.load(path)


@pytest.mark.parametrize("change, expected", [
    ("extra", r"holds members the model does not use: \['notes.txt'\]"),
    ("missing", "it has no member 'arrays/0.npy'"),
    ("duplicate", r"it holds several members named \['arrays/0.npy'\]"),
    ("too_many", "it has 4 members, more than the 3 allowed"),
    ("compressed", r"arrays/0.npy is compressed \([\d,]+ bytes for [\d,]+\), but "
                   "hybridnet.save stores it uncompressed"),
    ("no_config", "it has no config.json"),
])
def test_unexpected_missing_duplicated_or_too_many_members_are_refused(
        copy, monkeypatch, change, expected):
    contents = _members(copy)
    with zipfile.ZipFile(copy, "w") as archive:
        for name, data in contents.items():
            if name == "arrays/0.npy" and change == "missing" or (
                    name == "config.json" and change == "no_config"):
                continue
            info = zipfile.ZipInfo(name)
            if name == "arrays/0.npy" and change == "compressed":
                info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            if name == "arrays/0.npy" and change == "duplicate":
                with pytest.warns(UserWarning, match="Duplicate name"):
                    archive.writestr(info, data)
        if change in ("extra", "too_many"):
            archive.writestr("notes.txt", b"hello")
    monkeypatch.setattr(persistence, "MAX_MEMBERS", 3 if change == "too_many" else 10_000)
    with pytest.raises(ModelFileError, match=expected):
        hybridnet.load(copy)


def test_not_a_model_file_is_refused_clearly(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match=r"not a zip archive written by hybridnet\.save "
                                             r"\(File is not a zip file\)") as error:
        hybridnet.load(path)
    assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError):  # a missing file is not a bad file
        hybridnet.load(tmp_path / "nowhere.hnet")


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
