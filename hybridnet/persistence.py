"""Save and load fitted estimators and pipelines without pickle: :func:`save` and :func:`load`.

A saved model is one zip file:

- ``config.json``: the format version and a tree of the saved objects, all plain JSON. A
  hybridnet estimator is stored by its hyperparameters and fitted attributes (numbers,
  strings, lists); a scikit-learn estimator (a :class:`~sklearn.pipeline.Pipeline`,
  :class:`~sklearn.compose.ColumnTransformer`, :class:`~sklearn.preprocessing.StandardScaler`,
  ...) by its fully qualified class name and its attributes, nested estimators in place;
- ``arrays/<i>.npy``: each numeric, boolean or string array of the tree, read back with
  ``numpy.load(allow_pickle=False)``;
- ``tensors/<i>.pt``: each fitted hybridnet estimator's network ``state_dict``, its optimizer's
  state and its random generators' states, written by ``torch.save`` and read back with
  ``torch.load(weights_only=True)``, which builds only tensors and plain containers.

Loading therefore never runs code from the file: a class is either one of the three hybridnet
estimators or a scikit-learn estimator class (a :class:`~sklearn.base.BaseEstimator` defined in
a ``sklearn`` module, found by name; no other module is imported), rebuilt with ``__new__``
and its stored attributes; networks are rebuilt by hybridnet from the hyperparameters; built-in
PDE problems are rebuilt by name from :mod:`hybridnet.pinn.problems`. What has no data form is
refused by :func:`save` (a function in a ``FunctionTransformer``, an array of objects), except
the hyperparameters of a hybridnet estimator that only you can supply (a
``FunctionBlackBox`` wrapping your driver, a custom ``module``, a PDE written by you, a
``RandomState``): those are recorded by description and passed back to :func:`load` by name.
A model fitted on a GPU loads on a CPU-only machine (its tensors are saved on the CPU;
``device="cuda"`` is honoured on load where CUDA exists). Files of format version 1 (a single
hybridnet estimator: ``config.json`` and ``tensors.pt``) still load.

A file that is not such a model, or is damaged or tampered with, is refused with
:class:`ModelFileError`, naming the file and what is wrong, before its content is used:

- memory stays bounded whatever the file declares: at most :data:`MAX_MEMBERS` members,
  ``config.json`` at most :data:`MAX_CONFIG_BYTES`, all other members together at most
  :data:`MAX_DATA_BYTES` uncompressed. These declared sizes are checked before anything is
  read, and members are read in chunks that stop past the declared size. Arrays and tensors
  are stored uncompressed, so they cannot inflate beyond the file's own size; the tensors of
  an estimator must moreover fit the network rebuilt from its hyperparameters (6 times its
  weights, plus overhead), which also bounds the compressed ``tensors.pt`` of version 1;
- a pickle that names anything but tensors is not run; tensors of the wrong names, shapes
  or dtypes, weights and buffers holding NaN (or infinities the rebuilt network does not
  have), fitted attributes of the wrong types, attributes that would hide a method, and plain
  attributes of the network's layers that differ from the rebuilt ones other than as a fit
  changes them (a flag, a counter) are refused.

The bounds fit networks of up to about 350 million float32 weights trained with Adam (12
bytes a weight in the file); raise them (for instance
``hybridnet.persistence.MAX_DATA_BYTES = 16 * 2**30``) to load a larger model you trust.

Pickle and joblib remain fine for files you made yourself (they also keep objects this format
refuses), but unpickling a file runs whatever code it names: never unpickle a model from
someone you do not trust.
"""

import collections
import contextlib
import importlib
import inspect
import io
import json
import numbers
import pathlib
import pickle
import re
import warnings
import zipfile
import zlib

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import InconsistentVersionWarning
from torch import nn

from .estimators import HybridNetClassifier, HybridNetRegressor, _to_cpu
from .pinn import problems
from .pinn.solver import PINNSolver, _streams
from .training import History

FORMAT = "hybridnet-model"
VERSION = 2
ESTIMATORS = {cls.__name__: cls for cls in (HybridNetClassifier, HybridNetRegressor, PINNSolver)}

MAX_MEMBERS = 10_000
"""The most members a model file may have (a pipeline of 100 steps uses a few hundred)."""
MAX_CONFIG_BYTES = 64 * 2**20
"""The largest ``config.json`` (uncompressed); 100,000 epochs of history take about 15 MB."""
MAX_DATA_BYTES = 4 * 2**30
"""The largest total size of the arrays and tensors of a file (uncompressed)."""
MAX_DEPTH = 100
"""The deepest nesting of containers and estimators in a saved tree."""

_CHUNK = 2**20
# Per record of a tensors archive (a tensor or a generator's 5,056-byte state): torch's zip
# headers, 64-byte alignment and pickle opcodes take under 1 KiB.
_RECORD_BYTES = 8 * 2**10
_SIMPLE = (bool, int, float, str, type(None))
# numpy kinds stored: booleans, integers, floats, complex numbers, strings
_ARRAY_KINDS = "biufcU"
_SCALAR_KINDS = "biufU"  # those whose item() is a JSON value
_BUILTIN_TYPES = {t.__name__: t for t in (bool, int, float, complex, str)}
_NUMPY_TYPES = {t.__name__: t for t in (np.dtype(code).type for code in "?bhilqBHILQefdFDU")}
# scikit-learn modules never imported on load: test suites and their fixtures, and the
# experimental switches that change scikit-learn's namespace when imported
_UNIMPORTED = {"tests", "conftest", "_testing", "estimator_checks", "experimental"}
_MODULE_NAME = re.compile(r"sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+")


def _is_count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_array(value, kinds, ndim=1):
    return isinstance(value, np.ndarray) and value.dtype.kind in kinds and value.ndim == ndim


_COUNT = ("a non-negative integer", _is_count)
_POSITIVE = ("a positive integer", lambda v: _is_count(v) and v > 0)
_REAL = ("a real number", _is_real)
_REALS = ("a list of real numbers", lambda v: isinstance(v, list) and all(map(_is_real, v)))
_FLOATS = ("a 1-D array of finite floats",
           lambda v: _is_array(v, "f") and bool(np.isfinite(v).all()))
_SEEDS = ("a list of 4 integers in [0, 2**64)",
          lambda v: isinstance(v, list) and len(v) == 4
          and all(_is_count(s) and s < 2**64 for s in v))


def _is_stopper_state(value):
    """An early-stopping state as checkpoints store it (``EarlyStopping.state`` as data)."""
    return (isinstance(value, dict)
            and value.keys() == {"best_value", "best_epoch", "stale", "best_weights"}
            and (value["best_value"] is None or _is_real(value["best_value"]))
            and _is_count(value["best_epoch"]) and _is_count(value["stale"])
            and isinstance(value["best_weights"], dict)
            and all(isinstance(w, np.ndarray) and w.dtype.kind in "biuf"
                    for w in value["best_weights"].values()))


def _is_checkpoint_state(value):
    """What ``fit(checkpoint=...)`` stores beside the model to resume it (see
    ``_BaseHybridNet._run``)."""
    keys = {"fingerprint", "epochs", "scheduler_steps", "stopper", "call_start_usage",
            "complete"}
    if not (isinstance(value, dict) and value.keys() == keys):
        return False
    stopper, usage = value["stopper"], value["call_start_usage"]
    return (isinstance(value["fingerprint"], str) and _is_count(value["epochs"])
            and _is_count(value["scheduler_steps"]) and isinstance(value["complete"], bool)
            and _is_stopper_state(stopper)
            and isinstance(usage, list) and len(usage) == 3 and _is_count(usage[0])
            and _is_count(usage[1]) and (usage[2] is None or _is_real(usage[2])))


def _is_pinn_checkpoint_state(value):
    """What ``PINNSolver.fit(checkpoint=...)`` stores beside the solver to resume it (see
    ``PINNSolver._write_checkpoint``)."""
    keys = {"fingerprint", "descriptions", "scheduler_steps", "stopper", "window", "points",
            "steps_complete", "lbfgs_rounds", "complete"}
    if not (isinstance(value, dict) and value.keys() == keys):
        return False
    stopper, points, descriptions = value["stopper"], value["points"], value["descriptions"]
    return (isinstance(value["fingerprint"], str) and isinstance(descriptions, dict)
            and all(isinstance(text, str) for text in descriptions.values())
            and _is_count(value["scheduler_steps"]) and _REALS[1](value["window"])
            and isinstance(value["steps_complete"], bool) and _is_count(value["lbfgs_rounds"])
            and isinstance(value["complete"], bool)
            and _is_stopper_state(stopper)
            and (points is None or isinstance(points, dict)
                 and points.keys() == {"candidates", "probabilities"}
                 and _is_array(points["candidates"], "f", ndim=2)
                 and bool(np.isfinite(points["candidates"]).all())
                 and _FLOATS[1](points["probabilities"])
                 and bool((points["probabilities"] >= 0).all())
                 and bool(points["probabilities"].sum() > 0)))


def _optional(check):
    return (f"{check[0]} or None", lambda v: v is None or check[1](v))


def _labels(value):
    if not _is_array(value, "biufUO") or len(value) < 2:
        return False
    try:  # np.unique sorts: classes_ is sorted, and labels of mixed types do not sort
        return np.array_equal(np.unique(value), value)
    except TypeError:
        return False


# The fitted attributes of each estimator: what each must be (a description and a test), and
# which ones predict or rebuilding the network needs.
_FITTED = {
    "n_features_in_": _POSITIVE,
    "feature_names_in_": ("a 1-D array of strings", lambda v: _is_array(v, "UO")
                          and all(isinstance(name, str) for name in v)),
    "loss_curve_": _REALS,
    "n_iter_": _COUNT,
    "fit_time_": _REAL,
    "_seed": _COUNT,
}
_FITTED_BY_CLASS = {
    "HybridNetClassifier": {"classes_": ("a sorted 1-D array of 2 or more distinct labels",
                                         _labels)},
    "HybridNetRegressor": {"n_outputs_": _POSITIVE, "_y_mean": _FLOATS,
                           "_y_scale": ("a 1-D array of positive finite floats",
                                        lambda v: _FLOATS[1](v) and bool((v > 0).all())),
                           "_single_output": ("a boolean", lambda v: isinstance(v, bool))},
    "PINNSolver": {"n_network_evaluations_": _COUNT,
                   "loss_weights_": ("a 1-D array of floats", lambda v: _is_array(v, "f")),
                   "parameters_": ("a dict of names to real numbers",
                                   lambda v: isinstance(v, dict) and all(map(_is_real,
                                                                             v.values()))),
                   "n_lbfgs_iter_": _COUNT,
                   "_checkpoint_state": ("a checkpoint's state (fingerprint, descriptions, "
                                         "scheduler steps, early-stopping state, window of "
                                         "losses, adaptive points, progress, completeness)",
                                         _is_pinn_checkpoint_state)},
}
_FITTED_HYBRID = {
    "best_loss_": _optional(_REAL), "validation_scores_": _optional(_REALS),
    "n_device_queries_": _COUNT, "n_device_settings_": _COUNT,
    "device_seconds_": _optional(_REAL), "n_calibration_queries_": _COUNT,
    "n_device_retries_": _COUNT,
    "n_loss_evaluations_": _COUNT, "switched_at_": _optional(_COUNT), "_stream_seeds": _SEEDS,
    "_checkpoint_state": ("a checkpoint's state (fingerprint, epochs, scheduler steps, "
                          "early-stopping state, usage at the call's start, completeness)",
                          lambda v: _is_checkpoint_state(v)),
}
_REQUIRED = {
    "HybridNetClassifier": {"n_features_in_", "_seed", "_stream_seeds", "classes_"},
    "HybridNetRegressor": {"n_features_in_", "_seed", "_stream_seeds", "n_outputs_", "_y_mean",
                           "_y_scale", "_single_output"},
    "PINNSolver": {"n_features_in_", "_seed"},
}


def _fitted_schema(name):
    return {**_FITTED, **_FITTED_BY_CLASS[name],
            **({} if name == "PINNSolver" else _FITTED_HYBRID)}


class ModelFileError(ValueError):
    """A file that :func:`load` refuses: not a hybridnet model, damaged, or tampered with.

    The message names the file and what is wrong with it. Nothing from the file was executed
    and no estimator is returned. It is a :class:`ValueError`, so ``except ValueError`` also
    catches it.

    Examples
    --------
    >>> import os, tempfile
    >>> import hybridnet
    >>> from hybridnet.persistence import ModelFileError
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.hnet")
    >>> with open(path, "w") as file:
    ...     _ = file.write("not a model")
    >>> try:
    ...     hybridnet.load(path)
    ... except ModelFileError as error:
    ...     print(str(error).replace(path, "notes.hnet"))  # doctest: +ELLIPSIS
    cannot load notes.hnet: it is not a zip archive written by hybridnet.save (...)
    """


class _Invalid(Exception):
    """What is wrong with a file; :func:`load` adds the file's name (a ModelFileError)."""


class _Unstorable(ValueError):
    """A value that has no data form: where it is in the tree, and what it is."""

    def __init__(self, where, what):
        super().__init__(where, what)
        self.where, self.what = where, what
        self.owner = None  # the innermost estimator's attribute holding it


@contextlib.contextmanager
def _owned_by(owner):
    """Name ``owner`` (``"FunctionTransformer.func"``) in an _Unstorable raised inside."""
    try:
        yield
    except _Unstorable as error:
        error.owner = error.owner or owner
        raise


@contextlib.contextmanager
def _refusing(problem):
    """Turn the errors that code checking or rebuilding from the file's data raises into a
    refusal of the file."""
    try:
        yield
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as error:
        raise _Invalid(f"{problem}: {error}") from None


def _describe(value):
    """``value`` in a message: a plain value as it is, anything else by its kind."""
    if isinstance(value, _SIMPLE):
        shown = repr(value)
        return shown if len(shown) <= 40 else f"{shown[:37]}..."
    if callable(value) and not isinstance(value, type):
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        if name is not None:
            return f"a function ({getattr(value, '__module__', None) or 'builtins'}.{name})"
    kind = value if isinstance(value, type) else type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(value, type):
        return f"the class {name}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _sklearn_class(name):
    """The scikit-learn estimator class of this fully qualified name, or None.

    Only modules of scikit-learn are imported, and only a :class:`BaseEstimator` subclass
    defined under that very name is returned (not a function, not a class imported there).
    """
    module, _, qualname = name.rpartition(".")
    if (not _MODULE_NAME.fullmatch(module) or not qualname.isidentifier()
            or _UNIMPORTED.intersection(module.split("."))):
        return None
    try:
        cls = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        return None
    if (isinstance(cls, type) and issubclass(cls, BaseEstimator)
            and (cls.__module__, cls.__qualname__) == (module, qualname)):
        return cls
    return None


def _kind(value):
    """bool, int, real or str: a stored plain attribute must keep the kind it has."""
    for kind, types in (("bool", bool), ("int", numbers.Integral), ("real", numbers.Real)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _hides(obj, key):
    """Whether ``vars(obj)[key]`` would hide a method or property of the class, or a torch
    module's parameter, buffer or submodule."""
    attribute = inspect.getattr_static(type(obj), key, None)
    if hasattr(type(attribute), "__get__"):
        return True
    return isinstance(obj, nn.Module) and any(
        key in table for table in (obj._parameters, obj._buffers, obj._modules))


def _simple_attributes(obj):
    return {key: value for key, value in vars(obj).items() if isinstance(value, _SIMPLE)}


def _set_plain_attributes(obj, values, where, network=False):
    """Set the saved plain attributes (counters, flags) of a rebuilt ``obj``; none may hide a
    method or a tensor, and each must keep the kind of the rebuilt value it replaces.

    ``network``: ``obj`` is a module of the network, whose other attributes (sizes, a
    device's physics) come from the hyperparameters: a saved value may then differ from the
    rebuilt one only as a fit changes it, a flag (a bool, where the rebuilt has a bool or
    None) or a counter (an int where the rebuilt has 0).
    """
    if not isinstance(values, dict):
        raise _Invalid(f"{where} is {_describe(values)}, not a dict of attributes")
    current = vars(obj)
    for key, value in values.items():
        if not isinstance(value, _SIMPLE):
            raise _Invalid(f"{where}[{key!r}] is {_describe(value)}, not a plain value")
        if key not in current:
            if _hides(obj, key):
                raise _Invalid(f"{where}[{key!r}] would hide {type(obj).__name__}.{key}")
            continue
        old = current[key]
        same_kind = isinstance(old, _SIMPLE) and (
            old is None or value is not None and _kind(old) == _kind(value))
        if network and not (value == old and same_kind):
            same_kind = (isinstance(value, bool) and (old is None or isinstance(old, bool))
                         or _kind(old) == "int" and old == 0 and _is_count(value))
        if not same_kind:
            raise _Invalid(f"{where}[{key!r}] is {value!r:.40}, where the rebuilt "
                           f"{type(obj).__name__} has {old!r:.40}")
    current.update(values)


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


class _Writer:
    """A tree of estimators as JSON, and the zip members holding its arrays and tensors."""

    def __init__(self):
        self.members = {}

    def _member(self, folder, suffix, data):
        name = f"{folder}/{len(self.members)}{suffix}"
        self.members[name] = data
        return name

    def node(self, estimator, where, depth):
        cls = type(estimator)
        if ESTIMATORS.get(cls.__name__) is cls:
            return self._hybridnet(estimator, cls.__name__, where, depth)
        name = f"{cls.__module__}.{cls.__qualname__}"
        if _sklearn_class(name) is not cls:
            raise TypeError(f"cannot save {where}: {name} is neither a hybridnet estimator "
                            f"({', '.join(ESTIMATORS)}) nor a scikit-learn estimator; use "
                            "pickle for this model (trusted files only)")
        state = {}
        for key, value in vars(estimator).items():
            with _owned_by(f"{cls.__name__}.{key}"):
                if key.startswith("__"):
                    raise _Unstorable(f"{where}.{key}", "an attribute named with '__'")
                state[key] = self.value(value, f"{where}.{key}", depth + 1)
        return {"__sklearn__": name, "state": state}

    def value(self, value, where, depth):
        """``value`` as JSON; arrays become members, tuples and other types are tagged."""
        if depth > MAX_DEPTH:
            raise _Unstorable(where, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, BaseEstimator):
            return self.node(value, where, depth)
        # before the plain types: np.float64 and np.str_ are float and str too
        if isinstance(value, np.generic):
            if value.dtype.kind not in _SCALAR_KINDS or not isinstance(value.item(), _SIMPLE):
                raise _Unstorable(where, f"a numpy {value.dtype} scalar")
            return {"__scalar__": value.item(), "dtype": value.dtype.str}
        if isinstance(value, _SIMPLE):
            return value
        if isinstance(value, torch.device):
            return str(value)
        if isinstance(value, tuple | list):
            items = [self.value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
            return {"__tuple__": items} if isinstance(value, tuple) else items
        if isinstance(value, dict):
            if not all(isinstance(key, str) and not key.startswith("__") for key in value):
                raise _Unstorable(where, "a dict whose keys are not all strings (or start "
                                         "with '__')")
            return {key: self.value(v, f"{where}[{key!r}]", depth + 1)
                    for key, v in value.items()}
        if isinstance(value, slice) and all(
                v is None or isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return {"__slice__": [value.start, value.stop, value.step]}
        if isinstance(value, pathlib.PurePath):  # a checkpoint's path
            return {"__path__": str(value)}
        if type(value) is np.ndarray:  # not a subclass: a masked array would lose its mask
            return self._array(value, where)
        if isinstance(value, np.dtype) and value.kind in _ARRAY_KINDS:
            return {"__dtype__": value.str}
        if _BUILTIN_TYPES.get(getattr(value, "__name__", None)) is value:
            return {"__type__": f"builtins.{value.__name__}"}
        if _NUMPY_TYPES.get(getattr(value, "__name__", None)) is value:
            return {"__type__": f"numpy.{value.__name__}"}
        raise _Unstorable(where, _describe(value))

    def _array(self, array, where):
        if array.dtype.kind in _ARRAY_KINDS:
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            return {"__npy__": self._member("arrays", ".npy", buffer.getvalue())}
        # strings and numbers in an object array (a DataFrame's column names) are JSON
        if array.dtype == object and all(isinstance(v, _SIMPLE) for v in array.flat):
            return {"__array__": array.tolist(), "dtype": "|O"}
        kinds = sorted({type(v).__name__ for v in array.flat}) if array.dtype == object \
            else array.dtype
        raise _Unstorable(where, f"an array of {kinds}")

    def _parameter(self, key, value, where, depth):
        """A hyperparameter as JSON, a built-in problem by name, or a note that it must be
        passed back at load."""
        builtin = getattr(value, "builtin", None) if key == "pde" else None
        if builtin is not None:
            factory, arguments = builtin
            return {"__problem__": factory, "arguments": self.value(arguments, where, depth)}
        members = dict(self.members)
        try:
            return self.value(value, where, depth)
        except _Unstorable:
            self.members = members  # forget arrays of the part stored before the failure
            shown = getattr(value, "name", None) or type(value).__name__
            return {"__pass_at_load__": f"{type(value).__name__} {shown!r}"}

    def _hybridnet(self, estimator, name, where, depth):
        params = {key: self._parameter(key, value, f"{where}.{key}", depth + 1)
                  for key, value in estimator.get_params(deep=False).items()}
        node = {"__hybridnet__": name, "params": params, "fitted": None, "tensors": None}
        if hasattr(estimator, "module_"):
            node["fitted"], tensors = self._fitted(estimator, name, where, depth)
            buffer = io.BytesIO()
            torch.save(tensors, buffer)
            node["tensors"] = self._member("tensors", ".pt", buffer.getvalue())
        return node

    def _fitted(self, estimator, name, where, depth):
        fitted = {}
        for key in _fitted_schema(name):
            if key in vars(estimator):
                with _owned_by(f"{name}.{key}"):
                    fitted[key] = self.value(getattr(estimator, key), f"{where}.{key}",
                                             depth + 1)
        fitted["history_"] = self.value(list(estimator.history_), f"{where}.history_",
                                        depth + 1)
        network = estimator._loss_module if name == "PINNSolver" else estimator.module_
        fitted["module_attributes"], generators = _module_state(network)
        tensors = {"module": {key: value.detach().cpu() for key, value in
                              network.state_dict().items()},
                   "generators": generators}
        if name == "PINNSolver":
            if "_checkpoint_state" in vars(estimator):
                plan = estimator._checkpoint_plan
                tensors["optimizer"] = _to_cpu(plan.optimizer.state_dict())
                fitted["optimizer_attributes"] = _simple_attributes(plan.optimizer)
                if isinstance(getattr(plan.optimizer, "generator", None), torch.Generator):
                    tensors["optimizer_generator"] = plan.optimizer.generator.get_state()
                tensors["points_generator"] = plan.generator.get_state()
                if plan.switch is not None:
                    fitted["switch"] = _simple_attributes(plan.switch)
        else:
            optimizer = estimator._optimizer
            tensors["optimizer"] = _to_cpu(optimizer.state_dict())
            fitted["optimizer_attributes"] = _simple_attributes(optimizer)
            if isinstance(getattr(optimizer, "generator", None), torch.Generator):
                tensors["optimizer_generator"] = optimizer.generator.get_state()
            tensors["batch_generator"] = estimator._batch_generator.get_state()
            if estimator._switch is not None:
                fitted["switch"] = _simple_attributes(estimator._switch)
        return fitted, tensors


def save(estimator, path):
    """Write ``estimator`` (fitted or not) to ``path`` as data only (no pickle).

    Parameters
    ----------
    estimator : estimator
        A :class:`HybridNetClassifier`, :class:`HybridNetRegressor` or :class:`PINNSolver`, a
        scikit-learn estimator (a scaler, ``PCA``, ``LogisticRegression``, ...), or a
        scikit-learn composition of these (``Pipeline``, ``ColumnTransformer``,
        ``FeatureUnion``, ``TransformedTargetRegressor``, a search's ``best_estimator_``).
    path : str or path-like
        Destination file (a zip archive; any extension, e.g. ``.hnet``).

    Raises
    ------
    TypeError
        When ``estimator``, or an estimator inside it, is neither a hybridnet nor a
        scikit-learn estimator.
    ValueError
        When an attribute has no data form (a function, such as ``FunctionTransformer``'s
        ``func``; an array of objects); the message gives its place in the tree, for instance
        ``Pipeline.steps[0][1].func``. Nothing is written then.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import hybridnet
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = hybridnet.HybridNetClassifier((8, 8), physical_layer="mrr", max_iter=5,
    ...                                     random_state=0)
    >>> model = make_pipeline(StandardScaler(), clf).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "iris.hnet")
    >>> hybridnet.save(model, path)
    >>> (hybridnet.load(path).predict(X) == model.predict(X)).all()
    np.True_
    """
    if not isinstance(estimator, BaseEstimator):
        raise TypeError(f"save stores estimators (hybridnet's {', '.join(ESTIMATORS)} and "
                        f"scikit-learn's), got {_describe(estimator)}")
    writer = _Writer()
    where = type(estimator).__name__
    try:
        root = writer.node(estimator, where, 0)
    except _Unstorable as error:
        owner = f" ({error.owner})" if error.owner and not error.where.endswith(
            error.owner) else ""
        raise ValueError(f"cannot save {error.where}{owner}: it is {error.what}, which has no "
                         "data form; use pickle for this model (trusted files only)") from None
    config = {"format": FORMAT, "version": VERSION, "sklearn_version": sklearn.__version__,
              "estimator": root}
    with zipfile.ZipFile(path, "w") as archive:
        # Compact: json's C encoder serves only dumps without indent, and checkpoints write
        # the config (with the whole history) over and over.
        archive.writestr("config.json", json.dumps(config, separators=(",", ":")),
                         compress_type=zipfile.ZIP_DEFLATED)
        # uncompressed: a data member then cannot inflate beyond the file's own size on load
        for name, data in writer.members.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)


class _Reader:
    """The members of an open model file, each read once, after its declared size passed the
    bounds, in chunks that stop past that size."""

    def __init__(self, archive):
        self.archive = archive
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _Invalid(f"it has {len(infos):,} members, more than the {MAX_MEMBERS:,} "
                           "allowed (MAX_MEMBERS)")
        names = [info.filename for info in infos]
        repeated = sorted(name for name, count in collections.Counter(names).items()
                          if count > 1)
        if repeated:
            raise _Invalid(f"it holds several members named {repeated}")
        self.infos = {info.filename: info for info in infos}
        if "config.json" not in self.infos:
            raise _Invalid("it has no config.json, so it is not a model written by "
                           "hybridnet.save")
        for info in infos:
            if info.flag_bits & 0x1:
                raise _Invalid(f"{info.filename} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _Invalid(f"{info.filename} uses compression method "
                               f"{info.compress_type}, which hybridnet.save never writes")
        data = sum(info.file_size for info in infos if info.filename != "config.json")
        if data > MAX_DATA_BYTES:
            raise _Invalid(f"its arrays and tensors declare {data:,} bytes, more than the "
                           f"{MAX_DATA_BYTES:,} allowed (MAX_DATA_BYTES)")
        self.unread = set(names)

    def read(self, name, limit, stored):
        """The bytes of member ``name``, at most ``limit``; ``stored``: it must not be
        compressed."""
        if not isinstance(name, str) or name not in self.infos:
            raise _Invalid(f"it has no member {name!r}")
        if name not in self.unread:
            raise _Invalid(f"{name} is used twice")
        self.unread.discard(name)
        info = self.infos[name]
        if info.file_size > limit:
            raise _Invalid(f"{name} declares {info.file_size:,} bytes, more than the "
                           f"{limit:,} allowed")
        if stored and (info.compress_type != zipfile.ZIP_STORED
                       or info.compress_size != info.file_size):
            raise _Invalid(f"{name} is compressed ({info.compress_size:,} bytes for "
                           f"{info.file_size:,}), but hybridnet.save stores it uncompressed")
        chunks, size = [], 0
        try:
            with self.archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > info.file_size:
                        raise _Invalid(f"{name} holds more than the {info.file_size:,} bytes "
                                       "it declares")
                    chunks.append(chunk)
        # what zipfile and zlib raise on damaged headers and data (NotImplementedError and
        # RuntimeError: flags of features hybridnet.save never uses)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError, RuntimeError) as error:
            raise _Invalid(f"{name} is damaged ({error})") from None
        return b"".join(chunks)


class _Loader:
    """Rebuilds the tree of a model file, checking each part before it is used."""

    def __init__(self, reader, version, objects, path):
        self.reader, self.version, self.objects, self.path = reader, version, objects, path
        self.used = set()  # the names of ``objects`` that matched a hyperparameter
        self.sklearn = False  # whether the tree has scikit-learn objects

    def estimator(self, data, where, depth):
        if isinstance(data, dict) and "__hybridnet__" in data:
            return self._hybridnet(data, where, depth)
        if isinstance(data, dict) and "__sklearn__" in data:
            return self._sklearn(data, where, depth)
        raise _Invalid(f"{where} is not an estimator")

    def value(self, data, where, depth):
        """The object that :meth:`_Writer.value` stored as ``data``."""
        if depth > MAX_DEPTH:
            raise _Invalid(f"{where} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(data, list):
            return [self.value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data)]
        if not isinstance(data, dict):
            return data
        tags = [key for key in data if key.startswith("__")]
        if not tags:
            return {key: self.value(v, f"{where}[{key!r}]", depth + 1)
                    for key, v in data.items()}
        if tags[0] in ("__hybridnet__", "__sklearn__"):
            return self.estimator(data, where, depth)
        decode = {"__tuple__": self._tuple, "__npy__": self._npy, "__array__": self._json_array,
                  "__scalar__": self._scalar, "__slice__": self._slice, "__path__": self._path,
                  "__dtype__": self._dtype, "__type__": self._type}.get(tags[0])
        if decode is None:
            raise _Invalid(f"{where} has an unknown tag {tags[0]!r}")
        return decode(data, where, depth)

    def _tuple(self, data, where, depth):
        items = _field(data, "__tuple__", list, where)
        return tuple(self.value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items))

    def _npy(self, data, where, depth):
        name = _field(data, "__npy__", str, where)
        raw = self.reader.read(name, MAX_DATA_BYTES, stored=True)
        stream = io.BytesIO(raw)
        # The header is checked before numpy allocates the array it declares.
        try:
            if np.lib.format.read_magic(stream) != (1, 0):
                raise ValueError("not of .npy format version 1.0")
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        except ValueError as error:
            raise _Invalid(f"{name} is not an array written by numpy.save: {error}") from None
        if dtype.kind not in _ARRAY_KINDS or dtype.names:
            raise _Invalid(f"{name} holds an array of {dtype}, not of numbers or strings")
        size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if size != len(raw) - stream.tell():
            raise _Invalid(f"{name} declares {size:,} bytes of data but holds "
                           f"{len(raw) - stream.tell():,}")
        return np.frombuffer(raw, dtype, offset=stream.tell()).reshape(
            shape, order="F" if fortran else "C").copy(order="K")  # writable

    def _json_array(self, data, where, depth):
        items = _field(data, "__array__", list, where, extra={"dtype"})
        dtype = self._dtype({"__dtype__": data["dtype"]}, where, depth, kinds=_ARRAY_KINDS + "O")
        try:
            # strings as objects first: the width of a string dtype is checked before numpy
            # reserves it for every element
            array = np.asarray(items, dtype=object if dtype.kind in "UO" else dtype)
        except (ValueError, TypeError, OverflowError) as error:
            raise _Invalid(f"{where} is not an array of {dtype}: {error}") from None
        if dtype.kind in "UO" and not all(isinstance(v, _SIMPLE) for v in array.flat):
            raise _Invalid(f"{where} is an array of objects other than numbers and strings")
        if dtype.kind == "U":
            longest = max((len(v) for v in array.flat if isinstance(v, str)), default=1)
            if dtype.itemsize > 4 * max(longest, 1):
                raise _Invalid(f"{where} names the dtype {dtype}, wider than its strings")
            array = array.astype(dtype)
        return array

    def _scalar(self, data, where, depth):
        item = _field(data, "__scalar__", (bool, int, float, str), where, extra={"dtype"})
        dtype = self._dtype({"__dtype__": data["dtype"]}, where, depth, kinds=_SCALAR_KINDS)
        try:
            return dtype.type(item)
        except (ValueError, TypeError, OverflowError) as error:
            raise _Invalid(f"{where} is not a {dtype}: {error}") from None

    def _path(self, data, where, depth):
        return pathlib.Path(_field(data, "__path__", str, where))

    def _slice(self, data, where, depth):
        bounds = _field(data, "__slice__", list, where)
        if len(bounds) != 3 or not all(
                v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in bounds):
            raise _Invalid(f"{where} is not a slice of integers")
        return slice(*bounds)

    def _dtype(self, data, where, depth, kinds=_ARRAY_KINDS):
        name = _field(data, "__dtype__", str, where)
        try:
            dtype = np.dtype(name)
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.kind not in kinds or dtype.names:
            raise _Invalid(f"{where} names the dtype {name!r}, not one of numbers or strings")
        return dtype

    def _type(self, data, where, depth):
        name = _field(data, "__type__", str, where)
        module, _, short = name.partition(".")
        found = {"builtins": _BUILTIN_TYPES, "numpy": _NUMPY_TYPES}.get(module, {}).get(short)
        if found is None:
            raise _Invalid(f"{where} names the type {name!r}, not a numeric or string type")
        return found

    def _sklearn(self, data, where, depth):
        name = _field(data, "__sklearn__", str, where, extra={"state"})
        cls = _sklearn_class(name)
        if cls is None:
            raise _Invalid(f"{where} names {name!r}, which is not a scikit-learn estimator "
                           "class; only those and hybridnet's estimators are loaded")
        state = data["state"]
        if not isinstance(state, dict):
            raise _Invalid(f"{where}.state is {_describe(state)}, not a dict of attributes")
        missing = sorted(set(cls._get_param_names()) - set(state))
        if missing:
            raise _Invalid(f"{where} ({cls.__name__}) lacks the hyperparameter(s) {missing}")
        estimator = cls.__new__(cls)
        for key, value in state.items():
            if key.startswith("__") or _hides(estimator, key):
                raise _Invalid(f"{where}.{key} would hide {cls.__name__}.{key}")
            vars(estimator)[key] = self.value(value, f"{where}.{key}", depth + 1)
        if hasattr(cls, "_parameter_constraints"):
            with _refusing(f"{where} ({cls.__name__}) has an invalid hyperparameter"):
                estimator._validate_params()
        self.sklearn = True
        return estimator

    def _parameter(self, key, stored, where, depth):
        if isinstance(stored, dict) and "__pass_at_load__" in stored:
            note = _field(stored, "__pass_at_load__", str, where)
            if key not in self.objects:
                raise ValueError(f"{self.path} was saved with {key}={note}, which cannot be "
                                 "stored as data; pass it back: "
                                 f"hybridnet.load(path, {key}=...)")
        if key in self.objects:
            self.used.add(key)
            return self.objects[key]
        if isinstance(stored, dict) and "__problem__" in stored:
            factory = _field(stored, "__problem__", str, where, extra={"arguments"})
            if factory not in problems.BUILTIN:
                raise _Invalid(f"{where} names an unknown built-in problem {factory!r}; pass "
                               "the problem: hybridnet.load(path, pde=...)")
            arguments = self.value(stored["arguments"], f"{where}.arguments", depth + 1)
            if not isinstance(arguments, dict):
                raise _Invalid(f"{where}.arguments is not a dict")
            with _refusing(f"{where}: the built-in problem {factory} refuses its arguments"):
                return problems.BUILTIN[factory](**arguments)
        return self.value(stored, where, depth)

    def _hybridnet(self, data, where, depth):
        name = _field(data, "__hybridnet__", str, where, extra={"params", "fitted", "tensors"})
        cls = ESTIMATORS.get(name)
        if cls is None:
            raise _Invalid(f"{where} names an unknown estimator class {name!r}")
        params = data["params"]
        if not isinstance(params, dict):
            raise _Invalid(f"{where}.params is {_describe(params)}, not a dict")
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise _Invalid(f"{where} has no hyperparameter(s) {unknown}")
        estimator = cls(**{key: self._parameter(key, stored, f"{where}.{key}", depth + 1)
                           for key, stored in params.items()})
        with _refusing(f"{where} has an invalid hyperparameter"):
            estimator._validate_params()
        fitted = data["fitted"]
        if fitted is None:
            if data["tensors"] is not None:
                raise _Invalid(f"{where} is unfitted but has tensors")
            return estimator
        if not isinstance(fitted, dict):
            raise _Invalid(f"{where}.fitted is {_describe(fitted)}, not a dict")
        attributes = self._fitted(name, fitted, where, depth)
        # Rebuilding the network needs some attributes (n_features_in_, classes_) and resets
        # others (counters, history), so they are set before and after.
        vars(estimator).update(attributes)
        with _refusing(f"{where}: its hyperparameters and fitted attributes do not rebuild "
                       "a network"):
            network = (_rebuild_solver if cls is PINNSolver else _rebuild_network)(estimator)
        tensors = _load_tensors(self.reader.read(data["tensors"], _tensor_bound(network),
                                                 stored=self.version > 1))
        where = f"{where} ({data['tensors']})"
        _expect_keys(tensors, _tensor_keys(estimator), where)
        _restore_network(network, fitted, tensors, where)
        if cls is not PINNSolver:
            _restore_training(estimator, fitted, tensors, where)
        elif "_checkpoint_state" in attributes:
            _restore_solver_training(estimator._checkpoint_plan, fitted, tensors, where)
        vars(estimator).update(attributes)
        estimator.history_ = History(attributes["history_"])
        return estimator

    def _fitted(self, name, fitted, where, depth):
        """The fitted attributes of a hybridnet estimator, each checked against the schema."""
        schema = _fitted_schema(name)
        # a PINNSolver keeps its optimizer only in a checkpoint
        structure = {"history_", "module_attributes"} | (
            set() if name == "PINNSolver" and "_checkpoint_state" not in fitted
            else {"optimizer_attributes"})
        unknown = sorted(set(fitted) - set(schema) - structure - {"switch"})
        missing = sorted((_REQUIRED[name] | structure) - set(fitted))
        if unknown or missing:
            raise _Invalid(f"{where} has {'unknown' if unknown else 'no'} fitted attribute(s) "
                           f"{unknown or missing}")
        attributes = {key: self.value(fitted[key], f"{where}.{key}", depth + 1)
                      for key in fitted if key in schema}
        for key, value in attributes.items():
            kind, check = schema[key]
            if not check(value):
                raise _Invalid(f"{where}.{key} should be {kind}, got {value!r:.80}")
        for key, length in (("feature_names_in_", "n_features_in_"), ("_y_mean", "n_outputs_"),
                            ("_y_scale", "n_outputs_")):
            if key in attributes and len(attributes[key]) != attributes[length]:
                raise _Invalid(f"{where}.{key} has {len(attributes[key])} entries for "
                               f"{length} = {attributes[length]}")
        history = self.value(fitted["history_"], f"{where}.history_", depth + 1)
        if not (isinstance(history, list) and all(isinstance(r, dict) for r in history)):
            raise _Invalid(f"{where}.history_ should be a list of dicts")
        attributes["history_"] = history
        return attributes


def _field(data, tag, types, where, extra=frozenset()):
    """``data[tag]``, where ``data`` must have exactly the keys ``tag`` and ``extra``."""
    if set(data) != {tag, *extra}:
        raise _Invalid(f"{where} should have the keys {sorted({tag, *extra})}, got "
                       f"{sorted(data)}")
    if not isinstance(data[tag], types):
        raise _Invalid(f"{where}[{tag!r}] is {_describe(data[tag])}")
    return data[tag]


def _rebuild_network(estimator):
    hidden_sizes, device = estimator._check_hyperparameters(require_device=False)
    estimator._initialize(estimator.n_features_in_, estimator._n_outputs(None), hidden_sizes,
                          device)
    return estimator.module_


def _rebuild_solver(estimator):
    plan = estimator._settings(require_device=False)
    plan.streams = _streams(estimator._seed)
    loss = estimator._build(plan)
    estimator._device, estimator._dtype = plan.device, plan.dtype
    estimator._loss_module = loss
    estimator.module_ = loss.network
    if isinstance(getattr(estimator, "loss_weights_", None), np.ndarray):
        estimator.loss_weights_ = estimator.loss_weights_.astype(np.float64)
    if hasattr(estimator, "_checkpoint_state"):
        # A checkpoint: the fit's optimizer, schedule, switch and points generator as at its
        # first step, for _restore_solver_training to put back where they were.
        plan.loss, plan.generator = loss, torch.Generator()
        plan.optimizer, plan.schedule, plan.switch = estimator._optimization(plan)
        estimator._checkpoint_plan = plan
    return loss


def _tensor_bound(network):
    """The most bytes the tensors of an estimator with this (rebuilt) network may take.

    Saved, they are the weights, an optimizer's moments (Adam's two: 3 times the weights in
    all, measured) and each record's overhead; 6 times leaves room for a third moment.
    """
    state = network.state_dict()
    weights = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    n_generators = len(_module_state(network)[1])
    return 6 * weights + _RECORD_BYTES * (3 * len(state) + n_generators + 4) + 2**20


def _load_tensors(data):
    """``torch.load(weights_only=True)`` of a tensors member, refusing what is not a torch
    archive of uncompressed records."""
    # \x80 is pickle's PROTO opcode: a pickle on its own, not torch's zip archive
    if data[:1] == b"\x80":
        raise _Invalid("its tensors member holds executable pickle data, not a torch "
                       "archive; it was not loaded")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        raise _Invalid(f"its tensors member is not an archive written by torch.save "
                       f"({error})") from None
    # torch reserves a compressed record's declared size before inflating it; torch.save
    # writes them uncompressed, so that their sizes are bounded by the member's
    if any(r.compress_type != zipfile.ZIP_STORED or r.compress_size != r.file_size
           for r in records):
        raise _Invalid("its tensors member has compressed records, which torch.save never "
                       "writes")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        named = re.search(r"GLOBAL (\S+)", str(error))
        if named:
            raise _Invalid(f"its tensors member holds executable pickle data (naming "
                           f"{named[1]}), not only tensors; it was not loaded") from None
        raise _Invalid("its tensors member holds pickle data other than tensors (damaged "
                       "or tampered with); it was not loaded") from None
    except (RuntimeError, ValueError, EOFError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError) as error:
        raise _Invalid(f"its tensors member is damaged ({error})") from None


def _tensor_keys(estimator):
    """What :meth:`_Writer._fitted` puts in the tensors member of this estimator."""
    if isinstance(estimator, PINNSolver):
        if not hasattr(estimator, "_checkpoint_state"):
            return {"module", "generators"}
        keys = {"module", "generators", "optimizer", "points_generator"}
        if isinstance(getattr(estimator._checkpoint_plan.optimizer, "generator", None),
                      torch.Generator):
            keys.add("optimizer_generator")
        return keys
    keys = {"module", "generators", "optimizer", "batch_generator"}
    if isinstance(getattr(estimator._optimizer, "generator", None), torch.Generator):
        keys.add("optimizer_generator")
    return keys


def _expect_keys(tensors, keys, where):
    if not isinstance(tensors, dict) or set(tensors) != keys:
        shown = sorted(map(str, tensors)) if isinstance(tensors, dict) else _describe(tensors)
        raise _Invalid(f"{where} should hold {sorted(keys)}, holds {shown}")


def _check_tensor(tensor, reference, where):
    """``tensor`` must be a dense tensor of the shape and dtype of ``reference``; checked
    before anything reads it (a saved view can declare any shape over a tiny storage)."""
    if not (isinstance(tensor, torch.Tensor) and tensor.layout == torch.strided
            and tensor.shape == reference.shape and tensor.dtype == reference.dtype):
        shown = (f"{tensor.dtype} {tuple(tensor.shape)}" if isinstance(tensor, torch.Tensor)
                 else _describe(tensor))
        raise _Invalid(f"{where} is {shown}, where the network rebuilt from its "
                       f"hyperparameters has {reference.dtype} {tuple(reference.shape)}")


def _set_generator(generator, state, where):
    _check_tensor(state, generator.get_state(), where)
    with _refusing(f"{where} is not a random generator's state"):
        generator.set_state(state)


def _restore_network(network, fitted, tensors, where):
    """The network's tensors, plain attributes and generators from the file."""
    saved, expected = tensors["module"], network.state_dict()
    if not isinstance(saved, dict) or saved.keys() != expected.keys():
        names = sorted(map(str, saved)) if isinstance(saved, dict) else _describe(saved)
        raise _Invalid(f"{where}: the saved network does not match the one rebuilt from its "
                       f"hyperparameters (tensors {names}, rebuilt {sorted(expected)}); pass "
                       "the same module / physical_layer it was fitted with")
    for key, tensor in saved.items():
        _check_tensor(tensor, expected[key], f"{where}: {key}")
        # NaN never, and an infinity only where the rebuilt network has it too (a mask)
        if (tensor.is_floating_point() or tensor.is_complex()) and bool(
                (~torch.isfinite(tensor) & (tensor != expected[key].cpu())).any()):
            raise _Invalid(f"{where}: {key} holds NaN or infinite values")
    with _refusing(f"{where}: the saved network does not match the one rebuilt from its "
                   "hyperparameters"):
        network.load_state_dict(saved)
    attributes, submodules = fitted["module_attributes"], dict(network.named_modules())
    if not isinstance(attributes, dict) or attributes.keys() != submodules.keys():
        raise _Invalid(f"{where}: the saved network does not match the one rebuilt from its "
                       "hyperparameters (different layers); pass the same module / "
                       "physical_layer it was fitted with")
    for name, values in attributes.items():
        _set_plain_attributes(submodules[name], values, f"module_attributes[{name!r}]",
                              network=True)
    generators, rebuilt = tensors["generators"], _module_state(network)[1]
    if not isinstance(generators, dict) or generators.keys() != rebuilt.keys():
        raise _Invalid(f"{where}: the saved random generators do not match the network's")
    for key, state in generators.items():
        name, attribute = key.split(":")
        _set_generator(getattr(submodules[name], attribute), state, f"{where}: {key}")


def _restore_optimizer(optimizer, switch, fitted, tensors, where):
    """The optimizer's state, attributes and generator, and the hybrid switch's state, from
    the file (a classifier's, a regressor's or a PINNSolver's)."""
    _check_optimizer_state(optimizer, tensors["optimizer"], f"{where}: optimizer")
    with _refusing(f"{where}: the optimizer's state does not fit the network"):
        optimizer.load_state_dict(tensors["optimizer"])
    _set_plain_attributes(optimizer, fitted["optimizer_attributes"], "optimizer_attributes")
    if "optimizer_generator" in tensors:
        _set_generator(optimizer.generator, tensors["optimizer_generator"],
                       f"{where}: optimizer_generator")
    if ("switch" in fitted) != (switch is not None):
        raise _Invalid(f"{where}: the hybrid schedule's state is "
                       f"{'there' if 'switch' in fitted else 'missing'}, but the "
                       f"hyperparameters {'do not ' if 'switch' in fitted else ''}use it")
    if switch is not None:
        _set_plain_attributes(switch, fitted["switch"], "switch")


def _restore_training(estimator, fitted, tensors, where):
    """The optimizer's state and attributes, the batch order's generator and the hybrid
    schedule of a classifier or regressor, from the file."""
    _restore_optimizer(estimator._optimizer, estimator._switch, fitted, tensors, where)
    _set_generator(estimator._batch_generator, tensors["batch_generator"],
                   f"{where}: batch_generator")


def _restore_solver_training(plan, fitted, tensors, where):
    """The optimizer's state and attributes, the hybrid switch and the points generator of a
    PINNSolver checkpoint, into ``plan`` (from :func:`_rebuild_solver`)."""
    _restore_optimizer(plan.optimizer, plan.switch, fitted, tensors, where)
    _set_generator(plan.generator, tensors["points_generator"], f"{where}: points_generator")


def _check_optimizer_state(optimizer, saved, where):
    """A saved ``optimizer.state_dict()`` must map each state to a parameter of the shape of
    its tensors, with finite values and groups of the rebuilt optimizer's kinds of values."""
    _expect_keys(saved, {"state", "param_groups"}, where)
    groups, state = saved["param_groups"], saved["state"]
    rebuilt = optimizer.param_groups
    if not (isinstance(groups, list) and len(groups) == len(rebuilt)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                    and all(isinstance(i, int) for i in g["params"]) for g in groups)
            and isinstance(state, dict)):
        raise _Invalid(f"{where} does not have the rebuilt optimizer's parameter groups")
    parameters = {}
    for group, current in zip(groups, rebuilt, strict=True):
        if len(group["params"]) != len(current["params"]):
            raise _Invalid(f"{where} does not have the rebuilt optimizer's parameter groups")
        parameters.update(zip(group["params"], current["params"], strict=True))
        for key, value in group.items():
            old = current.get(key)
            if key != "params" and old is not None and value is not None and (
                    _kind(old) != _kind(value)):
                raise _Invalid(f"{where}: {key} is {value!r:.40}, where the rebuilt "
                               f"optimizer has {old!r}")
    for index, values in state.items():
        if index not in parameters or not isinstance(values, dict):
            raise _Invalid(f"{where} has a state for an unknown parameter {index!r:.40}")
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                if value.layout != torch.strided or value.shape not in (
                        torch.Size(), parameters[index].shape):
                    raise _Invalid(f"{where}: {key} of parameter {index} has shape "
                                   f"{tuple(value.shape)}, its parameter "
                                   f"{tuple(parameters[index].shape)}")
                if value.is_floating_point() and not torch.isfinite(value).all():
                    raise _Invalid(f"{where}: {key} of parameter {index} holds NaN or "
                                   "infinite values")
            elif not isinstance(value, numbers.Real):
                raise _Invalid(f"{where}: {key} of parameter {index} is {_describe(value)}")


def _open_archive(path):
    """The model file as a zip archive, or a ModelFileError saying it is not one."""
    try:
        return zipfile.ZipFile(path)
    # what zipfile raises on a damaged central directory (NotImplementedError: an unknown
    # "version needed"); a missing or unreadable file is an OSError, raised as it is
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as error:
        raise ModelFileError(f"cannot load {path}: it is not a zip archive written by "
                             f"hybridnet.save ({error})") from None


def load(path, **objects):
    """Read an estimator written by :func:`save`; never executes code from the file.

    Parameters
    ----------
    path : str or path-like
        The file.
    **objects
        Hyperparameters of hybridnet estimators that could not be stored as data (the error
        says which), passed back by name: ``physical_layer=`` a device instance, ``module=``
        a network, ``pde=`` a problem of your own, ``random_state=`` a RandomState. A given
        object replaces the stored value of that hyperparameter in every hybridnet
        estimator of the file.

    Returns
    -------
    estimator
        The saved estimator or pipeline, fitted as saved (predictions and continued training
        are those of the saved model), or unfitted if it was saved unfitted.

    Raises
    ------
    ModelFileError
        When the file is not a hybridnet model file, or is damaged or tampered with (a
        :class:`ValueError` naming the file and what is wrong; see the module's notes for the
        bounds on sizes).
    ValueError
        When an object the model needs was not given.
    TypeError
        When an object is given for a hyperparameter that no hybridnet estimator of the file
        has.

    Warns
    -----
    sklearn.exceptions.InconsistentVersionWarning
        When the file holds scikit-learn objects saved with another scikit-learn version.

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
    with _open_archive(path) as archive:
        try:
            estimator, loader, saved_with = _load_tree(_Reader(archive), objects, path)
        except _Invalid as error:
            raise ModelFileError(f"cannot load {path}: {error}") from None
    unused = sorted(set(objects) - loader.used)
    if unused:
        raise TypeError(f"no hybridnet estimator in {path} has the hyperparameter(s) {unused} "
                        "given to load")
    if loader.sklearn and saved_with != sklearn.__version__:
        warnings.warn(InconsistentVersionWarning(
            estimator_name=type(estimator).__name__,
            current_sklearn_version=sklearn.__version__,
            original_sklearn_version=saved_with), stacklevel=2)
    return estimator


def _stored_settings(path):
    """The class name, hyperparameters and checkpoint state of the estimator a model file
    holds, read within the bounds of :func:`load` and without rebuilding anything: what
    :class:`PINNSolver` compares with a fit before it loads that fit's checkpoint, whose network
    another problem or module may not rebuild.

    Returns
    -------
    name : str or None
        The class of the file's root (a scikit-learn one by its qualified name), None when it
        is not an estimator.
    params : dict
        The hyperparameters stored as data (not those passed back to :func:`load`, nor a
        built-in problem).
    state : dict or None
        The JSON of the checkpoint state (``fit(checkpoint=...)``'s), else None.
    """
    with _open_archive(path) as archive:
        try:
            reader = _Reader(archive)
            config = json.loads(reader.read("config.json", MAX_CONFIG_BYTES, stored=False))
            # version 1: a hybridnet estimator at the root of config.json itself
            root = config.get("estimator", config) if isinstance(config, dict) else None
            if not isinstance(root, dict):
                return None, {}, None
            name = root.get("__hybridnet__") or root.get("__sklearn__") or root.get("class")
            params, fitted = root.get("params"), root.get("fitted")
            loader = _Loader(reader, VERSION, {}, path)
            stored = {key: loader.value(value, f"params.{key}", 1)
                      for key, value in params.items()
                      if not (isinstance(value, dict)
                              and {"__pass_at_load__", "__problem__"} & value.keys())
                      } if isinstance(params, dict) else {}
        except _Invalid as error:
            raise ModelFileError(f"cannot load {path}: {error}") from None
        except (ValueError, RecursionError) as error:  # JSON, Unicode or nesting errors
            raise ModelFileError(f"cannot load {path}: config.json is not valid JSON "
                                 f"({error})") from None
    state = fitted.get("_checkpoint_state") if isinstance(fitted, dict) else None
    return (name if isinstance(name, str) else None), stored, state


def _load_tree(reader, objects, path):
    """The estimator of a model file, its loader, and the scikit-learn version it was saved
    with."""
    try:
        config = json.loads(reader.read("config.json", MAX_CONFIG_BYTES, stored=False))
    except (ValueError, RecursionError) as error:  # JSON, Unicode or nesting errors
        raise _Invalid(f"config.json is not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or type(
            config.get("version")) is not int or config["version"] not in (1, VERSION):
        shown = config if not isinstance(config, dict) else (config.get("format"),
                                                              config.get("version"))
        raise _Invalid(f"it is not a hybridnet model of format version 1 or {VERSION} "
                       f"(format and version {shown!r:.80})")
    loader = _Loader(reader, config["version"], objects, path)
    if config["version"] == 1:
        # one hybridnet estimator at the root, its tensors (even unfitted) in tensors.pt
        fields = {"format", "version", "class", "params", "fitted"}
        if set(config) != fields:
            raise _Invalid(f"config.json should have the keys {sorted(fields)}")
        root = {"__hybridnet__": config["class"], "params": config["params"],
                "fitted": config["fitted"],
                "tensors": "tensors.pt" if config["fitted"] is not None else None}
        if root["tensors"] is None:
            reader.unread.discard("tensors.pt")
        saved_with = None
    else:
        _field(config, "estimator", dict, "config.json",
               extra={"format", "version", "sklearn_version"})
        root, saved_with = config["estimator"], config["sklearn_version"]
        if not isinstance(saved_with, str):
            raise _Invalid("config.json's sklearn_version is not a string")
    # labels in messages: the root's class, as in Pipeline.steps[0][1]
    shown = root.get("__hybridnet__") or root.get("__sklearn__")
    where = str(shown).rpartition(".")[2] if shown else "config.json['estimator']"
    estimator = loader.estimator(root, where, 0)
    if reader.unread:
        raise _Invalid(f"it holds members the model does not use: {sorted(reader.unread)}")
    return estimator, loader, saved_with
