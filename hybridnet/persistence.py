"""Save and load fitted estimators without pickle: :func:`save` and :func:`load`.

A saved model is one zip file with two members:

- ``config.json``: the format version, the estimator's class (one of the three hybridnet
  estimators), its hyperparameters and its fitted attributes (numbers, lists, arrays as lists
  with their dtype), all plain JSON;
- ``tensors.pt``: the network's ``state_dict``, the optimizer's, and the states of the random
  generators, written by ``torch.save`` and read back with ``torch.load(weights_only=True)``,
  which builds only tensors and plain containers.

Loading therefore never runs code from the file: the class comes from a fixed list, the
network is rebuilt by hybridnet from the hyperparameters, and built-in PDE problems are rebuilt
by name from :mod:`hybridnet.pinn.problems`. Objects that cannot be stored as data (a
``FunctionBlackBox`` wrapping your driver, a custom ``module``, a PDE written by you, a
``RandomState``) are recorded by description only and must be passed back to :func:`load` by
parameter name. A model fitted on a GPU loads on a CPU-only machine (its tensors are saved on
the CPU; ``device="cuda"`` is honoured on load where CUDA exists).

Pickle and joblib remain fine for files you made yourself (they also keep objects this format
refuses), but unpickling a file runs whatever code it names: never unpickle a model from
someone you do not trust.
"""

import io
import json
import zipfile

import numpy as np
import torch

from .estimators import HybridNetClassifier, HybridNetRegressor, _to_cpu
from .pinn import problems
from .pinn.solver import PINNSolver, _streams
from .training import History

FORMAT = "hybridnet-model"
VERSION = 1
ESTIMATORS = {cls.__name__: cls for cls in (HybridNetClassifier, HybridNetRegressor, PINNSolver)}
# Fitted attributes of every estimator, stored as JSON when present.
_FITTED = ("n_features_in_", "feature_names_in_", "loss_curve_", "n_iter_", "fit_time_",
           "_seed")
_FITTED_BY_CLASS = {
    "HybridNetClassifier": ("classes_",),
    "HybridNetRegressor": ("n_outputs_", "_y_mean", "_y_scale", "_single_output"),
    "PINNSolver": ("n_network_evaluations_", "loss_weights_", "parameters_", "n_lbfgs_iter_"),
}
_FITTED_HYBRID = ("best_loss_", "validation_scores_", "n_device_queries_",
                  "n_calibration_queries_", "n_device_retries_", "n_loss_evaluations_",
                  "switched_at_", "_stream_seeds")
_SIMPLE = (bool, int, float, str, type(None))


class _Unstorable(TypeError):
    """A value that has no JSON form."""


def _encode(value):
    """``value`` as JSON data; tuples and arrays are tagged so that they come back as such."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _SIMPLE):
        return value
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype == object and not all(isinstance(v, _SIMPLE) for v in value.flat):
            raise _Unstorable(f"an array of {sorted({type(v).__name__ for v in value.flat})}")
        return {"__array__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        if any(key.startswith("__") for key in value):
            raise _Unstorable("a dict with keys starting with '__'")
        return {key: _encode(v) for key, v in value.items()}
    raise _Unstorable(type(value).__name__)


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__array__" in value:
        return np.asarray(value["__array__"], dtype=np.dtype(value["dtype"]))
    return {key: _decode(v) for key, v in value.items()}


def _encode_parameter(name, value):
    """A hyperparameter as JSON, a built-in problem by name, or a note that it must be given."""
    builtin = getattr(value, "builtin", None) if name == "pde" else None
    if builtin is not None:
        factory, arguments = builtin
        return {"__problem__": factory, "arguments": _encode(arguments)}
    try:
        return _encode(value)
    except _Unstorable:
        shown = getattr(value, "name", None) or type(value).__name__
        return {"__pass_at_load__": f"{type(value).__name__} {shown!r}"}


def _decode_parameter(name, stored, given, path):
    if isinstance(stored, dict) and "__pass_at_load__" in stored:
        if name not in given:
            raise ValueError(f"{path} was saved with {name}={stored['__pass_at_load__']}, which "
                             "cannot be stored as data; pass it back: "
                             f"hybridnet.load(path, {name}=...)")
        return given[name]
    if name in given:
        return given[name]
    if isinstance(stored, dict) and "__problem__" in stored:
        factory = problems.BUILTIN.get(stored["__problem__"])
        if factory is None:
            raise ValueError(f"{path} names an unknown built-in problem "
                             f"{stored['__problem__']!r}; pass the problem: "
                             "hybridnet.load(path, pde=...)")
        return factory(**_decode(stored["arguments"]))
    return _decode(stored)


def _simple_attributes(obj):
    return {key: value for key, value in vars(obj).items() if isinstance(value, _SIMPLE)}


def _module_state(module):
    """What ``state_dict`` leaves out: every submodule's plain attributes (counters, flags such
    as a layer's detected linearity) and its random generators' states."""
    attributes, generators = {}, {}
    for name, submodule in module.named_modules():
        attributes[name] = _simple_attributes(submodule)
        for key, value in vars(submodule).items():
            if isinstance(value, torch.Generator):
                generators[f"{name}:{key}"] = value.get_state()
    return attributes, generators


def _restore_module_state(module, attributes, generators):
    submodules = dict(module.named_modules())
    if attributes.keys() != submodules.keys():
        raise ValueError("the saved network does not match the one rebuilt from its "
                         "hyperparameters (different layers); pass the same module / "
                         "physical_layer it was fitted with")
    for name, values in attributes.items():
        vars(submodules[name]).update(values)
    for key, state in generators.items():
        name, attribute = key.split(":")
        getattr(submodules[name], attribute).set_state(state)


def save(estimator, path):
    """Write ``estimator`` (fitted or not) to ``path`` as data only (no pickle).

    Parameters
    ----------
    estimator : HybridNetClassifier, HybridNetRegressor or PINNSolver
        The estimator to save.
    path : str or path-like
        Destination file (a zip archive; any extension, e.g. ``.hnet``).

    Raises
    ------
    TypeError
        When ``estimator`` is not one of the three hybridnet estimators.
    ValueError
        When a fitted attribute has no data form (for instance class labels that are not
        numbers, strings or booleans).

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_iris
    >>> import hybridnet
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = hybridnet.HybridNetClassifier((8, 8), physical_layer="mrr", max_iter=5,
    ...                                     random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "iris.hnet")
    >>> hybridnet.save(clf, path)
    >>> (hybridnet.load(path).predict(X) == clf.predict(X)).all()
    np.True_
    """
    name = type(estimator).__name__
    if ESTIMATORS.get(name) is not type(estimator):
        raise TypeError(f"save stores {', '.join(ESTIMATORS)}, got {name}")
    params = {key: _encode_parameter(key, value)
              for key, value in estimator.get_params(deep=False).items()}
    config = {"format": FORMAT, "version": VERSION, "class": name, "params": params,
              "fitted": None}
    tensors = {}
    if hasattr(estimator, "module_"):
        config["fitted"], tensors = _fitted_state(estimator, name)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config, indent=1))
        archive.writestr("tensors.pt", buffer.getvalue())


def _fitted_state(estimator, name):
    fitted = {}
    for key in (*_FITTED, *_FITTED_BY_CLASS[name],
                *(() if name == "PINNSolver" else _FITTED_HYBRID)):
        if key in vars(estimator):
            try:
                fitted[key] = _encode(getattr(estimator, key))
            except _Unstorable as error:
                raise ValueError(f"cannot save {name}.{key}: it holds {error}, which has no "
                                 "data form; use pickle for this model (trusted files only)") \
                    from None
    fitted["history_"] = [_encode(record) for record in estimator.history_]
    network = estimator._loss_module if name == "PINNSolver" else estimator.module_
    fitted["module_attributes"], generators = _module_state(network)
    tensors = {"module": {key: value.detach().cpu() for key, value in
                          network.state_dict().items()},
               "generators": generators}
    if name != "PINNSolver":
        optimizer = estimator._optimizer
        tensors["optimizer"] = _to_cpu(optimizer.state_dict())
        fitted["optimizer_attributes"] = _simple_attributes(optimizer)
        if isinstance(getattr(optimizer, "generator", None), torch.Generator):
            tensors["optimizer_generator"] = optimizer.generator.get_state()
        tensors["batch_generator"] = estimator._batch_generator.get_state()
        if estimator._switch is not None:
            fitted["switch"] = _encode(_simple_attributes(estimator._switch))
    return fitted, tensors


def load(path, **objects):
    """Read an estimator written by :func:`save`; never executes code from the file.

    Parameters
    ----------
    path : str or path-like
        The file.
    **objects
        Hyperparameters that could not be stored as data (the error says which), passed back
        by name: ``physical_layer=`` a device instance, ``module=`` a network, ``pde=`` a
        problem of your own, ``random_state=`` a RandomState. A given object replaces the
        stored value of that hyperparameter.

    Returns
    -------
    HybridNetClassifier, HybridNetRegressor or PINNSolver
        Fitted as saved (predictions and continued training are those of the saved model),
        or unfitted if it was saved unfitted.

    Raises
    ------
    ValueError
        When the file is not a hybridnet model, or an object it needs was not given.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from hybridnet import HybridNetClassifier, load, save
    >>> X, y = load_iris(return_X_y=True)
    >>> X, y = X[::5], y[::5]  # 30 rows, 10 per class
    >>> clf = HybridNetClassifier(hidden_layer_sizes=(8,), max_iter=1, physical_layer=None,
    ...                           random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "iris.hnet")
    ...     save(clf, path)
    ...     loaded = load(path)
    >>> type(loaded).__name__, loaded.n_features_in_, loaded.classes_.tolist()
    ('HybridNetClassifier', 4, [0, 1, 2])
    >>> bool((loaded.predict(X) == clf.predict(X)).all())
    True
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            tensor_bytes = archive.read("tensors.pt")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a model written by hybridnet.save: {error}") from None
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise ValueError(f"{path} is not a hybridnet model of format version {VERSION} "
                         f"(format {config.get('format')!r}, version {config.get('version')!r})")
    cls = ESTIMATORS.get(config.get("class"))
    if cls is None:
        raise ValueError(f"{path} holds an unknown estimator class {config.get('class')!r}")
    unknown = set(objects) - set(config["params"])
    if unknown:
        raise TypeError(f"{cls.__name__} has no hyperparameter(s) {sorted(unknown)}")
    params = {key: _decode_parameter(key, stored, objects, path)
              for key, stored in config["params"].items()}
    estimator = cls(**params)
    if config["fitted"] is None:
        return estimator
    tensors = torch.load(io.BytesIO(tensor_bytes), map_location="cpu", weights_only=True)
    fitted = config["fitted"]
    attributes = {key: _decode(value) for key, value in fitted.items()
                  if key not in ("history_", "module_attributes", "optimizer_attributes",
                                 "switch")}
    # Rebuilding the network needs some attributes (n_features_in_, classes_) and resets
    # others (counters, history), so they are set before and after.
    vars(estimator).update(attributes)
    if cls is PINNSolver:
        _restore_solver(estimator, fitted, tensors)
    else:
        _restore_network(estimator, fitted, tensors)
    vars(estimator).update(attributes)
    estimator.history_ = History(_decode(record) for record in fitted["history_"])
    return estimator


def _load_network_state(network, fitted, tensors):
    try:
        network.load_state_dict(tensors["module"])
    except RuntimeError as error:
        raise ValueError("the saved network does not match the one rebuilt from its "
                         f"hyperparameters: {error}") from None
    _restore_module_state(network, fitted["module_attributes"], tensors["generators"])


def _restore_network(estimator, fitted, tensors):
    hidden_sizes, device = estimator._check_hyperparameters(require_device=False)
    n_outputs = estimator._n_outputs(None)
    estimator._initialize(estimator.n_features_in_, n_outputs, hidden_sizes, device)
    _load_network_state(estimator.module_, fitted, tensors)
    optimizer = estimator._optimizer
    optimizer.load_state_dict(tensors["optimizer"])
    vars(optimizer).update(fitted["optimizer_attributes"])
    if "optimizer_generator" in tensors:
        optimizer.generator.set_state(tensors["optimizer_generator"])
    estimator._batch_generator.set_state(tensors["batch_generator"])
    if "switch" in fitted:
        vars(estimator._switch).update(_decode(fitted["switch"]))


def _restore_solver(estimator, fitted, tensors):
    estimator._validate_params()
    plan = estimator._settings(require_device=False)
    plan.streams = _streams(estimator._seed)
    loss = estimator._build(plan)
    _load_network_state(loss, fitted, tensors)
    estimator._device, estimator._dtype = plan.device, plan.dtype
    estimator._loss_module = loss
    estimator.module_ = loss.network
    if isinstance(estimator.loss_weights_, np.ndarray):
        estimator.loss_weights_ = estimator.loss_weights_.astype(np.float64)
