"""scikit-learn estimators over the engine: ``HybridNetClassifier`` and ``HybridNetRegressor``.

They only validate, build the network (:func:`hybridnet.network.build_mlp`) and drive the shared
loop (:func:`hybridnet.training.train_epochs`). Every engine option is an ordinary
hyperparameter, so ``GridSearchCV`` tunes ``surrogate_rank``, ``zo_estimator`` or ``tt_rank`` like
any other.

Decisions where scikit-learn's own networks give no answer:

- Inputs are cast to float32 inside the network (what the devices and torch default to); outputs
  are float64 numpy arrays.
- The regressor standardises its targets internally (per output) and undoes it in ``predict``;
  ``loss_curve_`` is the mean squared error in standardised units.
- Every ``fit`` and ``partial_fit`` call starts from ``learning_rate`` and
  ``device_learning_rate``: ``fit`` (also a warm-started one) decays both by a cosine to 0 over
  its ``max_iter`` epochs, ``partial_fit`` keeps them constant. A continued network therefore
  always trains, and a changed learning rate applies to it.
- A call that fails validation (data, hyperparameters, a warm start that cannot continue) leaves
  the estimator exactly as it was. Once training has started, an exception (a device that keeps
  failing, Ctrl-C) leaves it fitted with the epochs that finished, the best weights restored
  when ``early_stopping`` tracked them.
- ``warm_start`` and ``partial_fit`` continue the network only while the hyperparameters that
  built it (``ARCHITECTURE_PARAMETERS``) are unchanged; otherwise they raise before any epoch.
- Sparse input is refused (the devices take dense vectors).
"""

import copy
import hashlib
import inspect
import math
import numbers
import os
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from torch import nn

from ._random import spawn_seeds
from .layers import SMOOTHING_FLOOR, BlackBoxLayer, auto_smoothing, split_parameters
from .modes import MODES, TRAININGS
from .network import ACTIVATIONS, DEVICES, build_mlp
from .physical import BlackBox, BlackBoxError
from .surrogate import UPDATES
from .training import (
    Checkpoint,
    DeviceBudget,
    DeviceUsage,
    EarlyStopping,
    History,
    ProgressBar,
    ValidationScore,
    device_usage,
    restored_on_error,
    train_epochs,
)
from .zeroth_order import ESTIMATORS

# "hybrid" (signRGE, then CGE on a plateau) trains whole networks, so only with bp_free.
BP_FREE_ESTIMATORS = (*ESTIMATORS, "hybrid")
ZO_UPDATES = ("auto", "sgd", "adam")
TWINS = ("calibrated", "nominal")
# training="calibrated_twin": epochs of in-situ fine-tuning after the twin phase.
FINE_TUNE_ITER = 0
FINE_TUNE_LR_FACTOR = 0.1
# Hyperparameters that shape the network, its layers or its optimizer: a warm start or a
# partial_fit cannot continue a network built with other values. The rest (learning rates,
# batch size, epochs, stopping rule, device retries, the torch device the network runs on)
# apply to a continued network as well.
ARCHITECTURE_PARAMETERS = (
    "hidden_layer_sizes", "activation", "physical_layer", "physical_positions", "device_options",
    "training", "surrogate_rank", "surrogate_probes", "surrogate_update_every",
    "surrogate_rebuild_every", "surrogate_update", "zo_estimator", "zo_samples", "zo_smoothing",
    "zo_batch_rank", "zo_update", "tt_rank", "module", "twin")

# Hyperparameters a checkpoint may be resumed with changed: where it is written, how often,
# and the progress bar.
RESUMABLE_CHANGES = ("checkpoint", "checkpoint_every", "verbose")
# A fit whose device queries per training step exceed this multiple of what the default
# zeroth-order settings would spend on the same network warns once, naming the settings.
QUERY_COST_WARNING_FACTOR = 100
# The settings that multiply a step's device queries.
QUERY_COST_PARAMETERS = ("zo_estimator", "zo_samples", "zo_batch_rank")

_POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")
_POSITIVE_REAL = Interval(numbers.Real, 0, None, closed="neither")


def _normalized(value):
    """A hyperparameter as plain Python values, for comparing two settings of it."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_normalized(v) for v in value)
    if isinstance(value, torch.device):
        return str(value)
    return value


def _same_setting(a, b):
    if isinstance(a, nn.Module) or isinstance(b, nn.Module):
        return a is b  # a device or network instance: the very object the network was built from
    return a == b


def _fingerprint(*arrays):
    """A digest of the training data (shapes, types and values) that a checkpoint belongs to."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _to_cpu(value):
    """``value`` (nested dicts, lists and tuples of tensors) with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(item) for item in value)
    return value


class _BaseHybridNet(BaseEstimator):
    """Shared validation, network construction and training; see the public subclasses."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", _POSITIVE_INT],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "physical_layer": [StrOptions(set(DEVICES)), BlackBox, None],
        "physical_positions": ["array-like", None],
        "device_options": [dict, None],
        "training": [StrOptions(set(TRAININGS))],
        "surrogate_rank": [_POSITIVE_INT, None],
        "surrogate_probes": [_POSITIVE_INT, None],
        "surrogate_update_every": [_POSITIVE_INT],
        "surrogate_rebuild_every": [_POSITIVE_INT, None],
        "surrogate_update": [StrOptions(set(UPDATES))],
        "zo_estimator": [StrOptions(set(BP_FREE_ESTIMATORS))],
        "zo_samples": [_POSITIVE_INT],
        "zo_smoothing": [_POSITIVE_REAL, StrOptions({"auto"})],
        "zo_batch_rank": [_POSITIVE_INT, None],
        "zo_update": [StrOptions(set(ZO_UPDATES))],
        "tt_rank": [_POSITIVE_INT, None],
        "twin": [StrOptions(set(TWINS))],
        "calibration_queries": [_POSITIVE_INT, None],
        "fine_tune_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "recalibrate_every": [_POSITIVE_INT, None],
        "learning_rate": [_POSITIVE_REAL],
        "device_learning_rate": [_POSITIVE_REAL],
        "batch_size": [_POSITIVE_INT],
        "max_iter": [_POSITIVE_INT],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [_POSITIVE_INT],
        "warm_start": ["boolean"],
        "device_retries": [Interval(numbers.Integral, 0, None, closed="left")],
        "device_timeout": [_POSITIVE_REAL, None],
        "max_device_queries": [_POSITIVE_INT, None],
        "max_device_seconds": [_POSITIVE_REAL, None],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "module": [nn.Module, None],
        "checkpoint": [str, os.PathLike, None],
        "checkpoint_every": [_POSITIVE_INT],
    }

    def __init__(self, hidden_layer_sizes=(64, 64), activation="relu", *, physical_layer="mzi",
                 physical_positions=None, device_options=None, training="surrogate",
                 surrogate_rank=None, surrogate_probes=None, surrogate_update_every=4,
                 surrogate_rebuild_every=10, surrogate_update="auto", zo_estimator="rge",
                 zo_samples=10, zo_smoothing="auto", zo_batch_rank=16, zo_update="auto",
                 tt_rank=None, twin="calibrated", calibration_queries=None,
                 fine_tune_iter=FINE_TUNE_ITER, recalibrate_every=None,
                 learning_rate=3e-3, device_learning_rate=1e-2, batch_size=64,
                 max_iter=50, tol=1e-4, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, warm_start=False, device_retries=2, device_timeout=None,
                 max_device_queries=None, max_device_seconds=None, random_state=None,
                 device="cpu", verbose=False, module=None, checkpoint=None,
                 checkpoint_every=1):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.physical_layer = physical_layer
        self.physical_positions = physical_positions
        self.device_options = device_options
        self.training = training
        self.surrogate_rank = surrogate_rank
        self.surrogate_probes = surrogate_probes
        self.surrogate_update_every = surrogate_update_every
        self.surrogate_rebuild_every = surrogate_rebuild_every
        self.surrogate_update = surrogate_update
        self.zo_estimator = zo_estimator
        self.zo_samples = zo_samples
        self.zo_smoothing = zo_smoothing
        self.zo_batch_rank = zo_batch_rank
        self.zo_update = zo_update
        self.tt_rank = tt_rank
        self.twin = twin
        self.calibration_queries = calibration_queries
        self.fine_tune_iter = fine_tune_iter
        self.recalibrate_every = recalibrate_every
        self.learning_rate = learning_rate
        self.device_learning_rate = device_learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.device_retries = device_retries
        self.device_timeout = device_timeout
        self.max_device_queries = max_device_queries
        self.max_device_seconds = max_device_seconds
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.module = module
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    # ----------------------------------------------------------------- validation
    def _check_hyperparameters(self, require_device=True):
        """Checks beyond ``_parameter_constraints``; returns the hidden sizes and the device.

        ``require_device=False`` (loading a saved model) falls back to the CPU where CUDA is
        missing instead of refusing.
        """
        self._validate_params()
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else sizes
        if (isinstance(sizes, str) or len(sizes) == 0
                or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                           for s in sizes)):
            raise ValueError("hidden_layer_sizes must be a positive int or a non-empty sequence "
                             f"of positive ints, got {self.hidden_layer_sizes!r}")
        if self.device_options is not None and (not isinstance(self.physical_layer, str)
                                                or self.module is not None):
            built_by = ("module is given" if self.module is not None else
                        "physical_layer is None" if self.physical_layer is None else
                        "physical_layer is an instance")
            raise ValueError(f"device_options={self.device_options!r} would be ignored: it "
                             f"configures the device built from a physical_layer name, and "
                             f"{built_by}. Configure the device instance itself, or drop "
                             "device_options.")
        self._mode.check(self)
        if self.recalibrate_every is not None and self.training != "physics_aware":
            raise ValueError(f"recalibrate_every={self.recalibrate_every!r} would be ignored: "
                             "it refits the twins of training='physics_aware' from the "
                             f"device's answers, and training={self.training!r}")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device must be 'cpu', 'cuda' or a torch.device, got "
                             f"{self.device!r}") from error
        if device.type == "cuda" and not torch.cuda.is_available():
            if require_device:
                raise ValueError("device='cuda' was requested but CUDA is not available here")
            device = torch.device("cpu")
        return tuple(int(s) for s in sizes), device

    @property
    def _mode(self):
        """The :class:`~hybridnet.modes.TrainingMode` of ``training``."""
        return MODES[self.training]

    def _architecture(self):
        return {name: _normalized(getattr(self, name)) for name in ARCHITECTURE_PARAMETERS}

    def _check_can_continue(self):
        """Refuse to continue a network built with other architecture hyperparameters."""
        changed = [f"{name} ({built!r} -> {now!r})"
                   for (name, built), now in zip(self._built_with.items(),
                                                 self._architecture().values(), strict=True)
                   if not _same_setting(built, now)]
        if changed:
            raise ValueError("cannot continue training the fitted network (warm_start=True or "
                             "partial_fit): these hyperparameters changed since it was built: "
                             f"{', '.join(changed)}. Set them back, or fit afresh "
                             "(warm_start=False).")

    # ----------------------------------------------------------------- network
    def _layer_options(self, hidden_sizes):
        rank = self.surrogate_rank
        if rank is None:
            rank = max(1, min(hidden_sizes) // 2)
        zo_estimator = "rge" if self.zo_estimator == "hybrid" else self.zo_estimator
        return dict(training=self._mode.layer_training, surrogate_rank=rank,
                    surrogate_probes=self.surrogate_probes,
                    surrogate_update_every=self.surrogate_update_every,
                    surrogate_rebuild_every=self.surrogate_rebuild_every,
                    surrogate_update=self.surrogate_update,
                    zo_estimator=zo_estimator, zo_samples=self.zo_samples,
                    zo_smoothing=self._layer_smoothing(), zo_batch_rank=self.zo_batch_rank)

    def _layer_smoothing(self):
        return "auto" if self.zo_smoothing == "auto" else float(self.zo_smoothing)

    def _network_smoothing(self, module):
        """The step of whole-network (bp_free) estimates: the largest a device of the network
        asks for ("auto"), 1e-3 for an all-digital one."""
        if self.zo_smoothing != "auto":
            return float(self.zo_smoothing)
        steps = [auto_smoothing(layer.black_box) for layer in module.modules()
                 if isinstance(layer, BlackBoxLayer)]
        return max(steps, default=SMOOTHING_FLOOR)

    def _build_module(self, n_inputs, n_outputs, hidden_sizes, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.module is not None:
                return copy.deepcopy(self.module)
            return build_mlp(n_inputs, n_outputs, hidden_sizes, self.activation,
                             physical_layer=self.physical_layer,
                             physical_positions=self.physical_positions,
                             device_options=self.device_options,
                             layer_options=self._layer_options(hidden_sizes),
                             tt_rank=self.tt_rank, seed=seed)

    def _check_module_output(self, module, X, n_outputs):
        try:
            with torch.no_grad():
                out = module(X[:2])
        except RuntimeError as error:
            if isinstance(error, BlackBoxError):  # the device failed, not the shapes
                raise
            raise ValueError(f"module cannot take inputs of shape (n_samples, {X.shape[1]}) "
                             f"(X has {X.shape[1]} features): {error}") from error
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != n_outputs:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"module must map (n_samples, {X.shape[1]}) inputs to "
                             f"(n_samples, {n_outputs}) outputs, got {shape}")

    def _device_layers(self):
        return [layer for layer in self.module_.modules() if isinstance(layer, BlackBoxLayer)]

    # ----------------------------------------------------------------- training
    def _tensors(self, *arrays):
        return [torch.as_tensor(a, device=self._device) for a in arrays]

    def _make_optimizer(self, module, zo_seed):
        digital, device = split_parameters(module)
        groups = [{"params": digital, "lr": self.learning_rate}]
        if device:
            groups.append({"params": device, "lr": self.device_learning_rate})
        return self._mode.make_optimizer(self, module, groups, zo_seed)

    def _draw_seeds(self):
        """One seed from ``random_state``, and from it an independent seed per random stream:
        network (initialisation, devices, layers), batch order, zeroth-order directions of
        bp_free, validation split."""
        self._seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        self._stream_seeds = spawn_seeds(self._seed, 4)

    def _initialize(self, n_inputs, n_outputs, hidden_sizes, device):
        """A new network and optimizer from the seeds of :meth:`_draw_seeds`."""
        self._device = device
        network_seed, batch_seed, zo_seed, _ = self._stream_seeds
        self.module_ = self._build_module(n_inputs, n_outputs, hidden_sizes, network_seed)
        self.module_.to(device)
        self._built_with = self._architecture()
        self._optimizer = self._make_optimizer(self.module_, zo_seed)
        self._batch_generator = torch.Generator().manual_seed(batch_seed)
        self.history_ = History()
        self.n_device_queries_ = 0
        self.n_device_settings_ = 0
        self.device_seconds_ = None
        self.n_calibration_queries_ = 0
        self.n_device_retries_ = 0
        self._switch = self._mode.make_switch(self, self._optimizer)

    def _start_learning_rates(self, factor=1.0):
        """Every fit or partial_fit call starts from the rates the hyperparameters give.

        The cosine schedule of ``fit`` ends at 0, so keeping the last rate would freeze a
        continued network; a new ``learning_rate`` also applies to a warm start this way.
        The hybrid schedule goes on where it was, from the new base rates. ``factor`` scales
        both (the gentler fine-tune of ``training="calibrated_twin"``).
        """
        groups = self._optimizer.param_groups
        rates = [factor * float(self.learning_rate),
                 factor * float(self.device_learning_rate)][:len(groups)]
        schedule = 1.0
        if self._switch is not None:
            self._switch.base_lrs = rates
            schedule = self._switch.factor()
        for group, rate in zip(groups, rates, strict=True):
            group["lr"] = group["initial_lr"] = rate * schedule

    def _move_to(self, device):
        """Run a continued network on another torch device (a GPU model continued on a CPU)."""
        self.module_.to(device)
        # Loading its own state casts the optimizer's moments to the parameters' new device.
        self._optimizer.load_state_dict(self._optimizer.state_dict())
        self._device = device

    def _weighted_loss(self, output, targets, weights):
        # clamp: a batch whose weights are all zero has loss 0, not NaN
        return (self._loss(output, targets) * weights).sum() / weights.sum().clamp_min(1e-12)

    def _warn_query_cost(self, n_samples):
        """Warn when the zeroth-order settings cost over ``QUERY_COST_WARNING_FACTOR`` times the
        defaults' device queries per step (the twin of ``training="backprop"`` spends none on
        them)."""
        defaults = inspect.signature(type(self).__init__).parameters
        chosen = {name: getattr(self, name) for name in QUERY_COST_PARAMETERS}
        default = {name: defaults[name].default for name in QUERY_COST_PARAMETERS}
        batch = min(int(self.batch_size), n_samples)
        queries = self._mode.step_queries(self, batch, chosen)
        if queries is None:  # the step spends no query on zeroth-order estimates
            return
        reference = self._mode.step_queries(self, batch, default)
        if queries > QUERY_COST_WARNING_FACTOR * reference:
            named = ", ".join(f"{name}={value!r}" for name, value in chosen.items()
                              if value != default[name])
            when = " once it switches to CGE" if self.zo_estimator == "hybrid" else ""
            warnings.warn(f"{named} costs about {queries:,} device queries per training step"
                          f"{when}, {queries / reference:,.0f}x the {reference:,} of the default "
                          f"zeroth-order settings; see the cost table of the user guide "
                          f"(in-situ training)", UserWarning, stacklevel=4)

    def _configure_device_layers(self):
        """Give every device layer the estimator's retry and timeout settings."""
        for layer in self._device_layers():
            layer.device_retries = int(self.device_retries)
            layer.device_timeout = None if self.device_timeout is None \
                else float(self.device_timeout)

    def _usage(self):
        """What the network's devices served so far (a ``DeviceUsage``)."""
        return device_usage(self.module_)

    def _training_usage(self):
        """What the devices served during training so far: the fitted counters."""
        return DeviceUsage(self.n_device_queries_, self.n_device_settings_,
                           self.device_seconds_)

    def _add_training_usage(self, usage):
        total = self._training_usage() + usage
        self.n_device_queries_, self.n_device_settings_, self.device_seconds_ = total

    def _budget(self):
        """The :class:`~hybridnet.training.DeviceBudget` of this fit call, or None."""
        if self.max_device_queries is None and self.max_device_seconds is None:
            return None
        return DeviceBudget(
            None if self.max_device_queries is None else int(self.max_device_queries),
            None if self.max_device_seconds is None else float(self.max_device_seconds),
            spent=self._training_usage() - self._call_start_usage)

    def _run(self, X, y, sample_weight, n_epochs, *, validation=None, schedule=False,
             start=None, rate_factor=1.0, resume=None, fingerprint=None):
        """Train for up to n_epochs; keep the fitted attributes in step even if a device fails.

        ``fit_time_`` counts from ``start`` (default: now); the learning rates start at
        ``rate_factor`` times the hyperparameters', or, with ``resume`` (a checkpoint's state),
        go on from where the checkpoint left them. With ``fingerprint`` (the training data's)
        the epochs are checkpointed to ``checkpoint``."""
        X_t, y_t, w_t = self._tensors(X, y, sample_weight)
        batch_size = int(self.batch_size)
        done = 0 if resume is None else resume["epochs"]
        if resume is None:
            self._start_learning_rates(rate_factor)
        self._configure_device_layers()
        scheduler = None
        if schedule and self._mode.scheduled():
            steps = (done + n_epochs) * -(-len(X_t) // batch_size)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self._optimizer, steps)
            if resume is not None:  # the rates themselves came back with the optimizer
                scheduler.last_epoch = resume["scheduler_steps"]
        step = self._mode.step(self, X_t, y_t, w_t, scheduler)

        def batches():
            order = torch.randperm(len(X_t), generator=self._batch_generator)
            return order.to(self._device).split(batch_size)

        callbacks = []
        if validation is not None:
            X_val, y_val = validation
            callbacks.append(ValidationScore(lambda: self._score_arrays(X_val, y_val)))
            stopper = EarlyStopping("valid_score", lower_is_better=False, tol=self.tol,
                                    patience=self.n_iter_no_change, restore_best=True)
        else:
            stopper = EarlyStopping("train_loss", tol=self.tol, patience=self.n_iter_no_change)
        if resume is not None:
            stopper.resume(self._stopper_from_checkpoint(resume["stopper"]))
        callbacks.append(stopper)
        callbacks += self._mode.callbacks(self, validation)
        budget = self._budget()
        if budget is not None:
            callbacks.append(budget)
        if self.verbose:
            callbacks.append(ProgressBar(n_epochs))
        usage_before = self._usage()
        retries_before = sum(layer.n_device_retries for layer in self._device_layers())
        start = time.perf_counter() if start is None else start

        def sync():
            """Bring the fitted attributes up to date with the epochs run so far."""
            nonlocal usage_before, retries_before
            usage, retries = self._usage(), sum(layer.n_device_retries
                                                for layer in self._device_layers())
            self._add_training_usage(usage - usage_before)
            self.n_device_retries_ += retries - retries_before
            usage_before, retries_before = usage, retries
            self._record(start)

        if fingerprint is not None:
            first = len(self.history_) - done  # this fit's first epoch, from 0

            def save(state, complete):
                sync()
                self._write_checkpoint({
                    "fingerprint": fingerprint, "epochs": len(self.history_) - first,
                    "scheduler_steps": 0 if scheduler is None else scheduler.last_epoch,
                    "stopper": self._stopper_to_checkpoint(stopper.state()),
                    "call_start_usage": list(self._call_start_usage), "complete": complete})

            callbacks.append(Checkpoint(save, int(self.checkpoint_every)))
        try:
            train_epochs(self.module_, step, batches, n_epochs, callbacks=callbacks,
                         history=self.history_, usage_before=self._training_usage())
        finally:
            sync()

    # ----------------------------------------------------------------- checkpoints
    def _write_checkpoint(self, state):
        """Save the estimator with ``state`` to ``checkpoint`` atomically: written beside it,
        then renamed over it, so a process killed while writing leaves the last one whole."""
        from .persistence import save

        path = os.fspath(self.checkpoint)
        partial = f"{path}.{os.getpid()}.partial"
        self._checkpoint_state = state
        try:
            save(self, partial)
            os.replace(partial, path)
        finally:
            del self._checkpoint_state
            if os.path.exists(partial):
                os.remove(partial)

    @staticmethod
    def _stopper_to_checkpoint(state):
        """:meth:`EarlyStopping.state` as data: the best weights as arrays, an infinite best
        value (none seen yet) as None."""
        best = state["best_value"]
        return {**state, "best_value": best if np.isfinite(best) else None,
                "best_weights": {key: value.detach().cpu().numpy()
                                 for key, value in state["best_weights"].items()}}

    def _stopper_from_checkpoint(self, state):
        current = self.module_.state_dict()
        weights = state["best_weights"]
        if weights.keys() != current.keys() or any(
                tuple(weights[key].shape) != tuple(current[key].shape) for key in current):
            raise ValueError(f"checkpoint={os.fspath(self.checkpoint)!r} is damaged: its best "
                             "weights do not fit the network; remove it to start afresh")
        best = state["best_value"]
        lower_is_better = not self.early_stopping  # training loss; else validation score
        return {**state, "best_value": (math.inf if lower_is_better else -math.inf)
                if best is None else best,
                "best_weights": {key: torch.as_tensor(value, dtype=current[key].dtype,
                                                      device=current[key].device)
                                 for key, value in state["best_weights"].items()}}

    def _resume(self, fingerprint):
        """Load ``checkpoint`` into the estimator when the file exists; return its state.

        The file must hold a checkpoint of this estimator class, written with the same
        hyperparameters (``RESUMABLE_CHANGES`` aside) on the same training data;
        otherwise the fit is refused, naming what differs.
        """
        from .persistence import load

        path = os.fspath(self.checkpoint)
        if not os.path.exists(path):
            return None
        params = self.get_params(deep=False)
        # Objects the file cannot hold as data are passed back, as hybridnet.load asks.
        objects = {name: params[name] for name in ("physical_layer", "module", "random_state")
                   if isinstance(params[name], nn.Module | np.random.RandomState)}
        saved = load(path, **objects)
        state = getattr(saved, "_checkpoint_state", None)
        if type(saved) is not type(self) or state is None:
            raise ValueError(f"checkpoint={path!r} is not a checkpoint of a "
                             f"{type(self).__name__} fit (it holds a {type(saved).__name__}"
                             f"{'' if state is None else ' checkpoint'}); remove it or choose "
                             "another path")
        changed = sorted(name for name, value in saved.get_params(deep=False).items()
                         if name not in RESUMABLE_CHANGES
                         and not _same_setting(_normalized(value), _normalized(params[name])))
        if changed:
            shown = ", ".join(f"{name}={getattr(saved, name)!r} (now {params[name]!r})"
                              for name in changed)
            raise ValueError(f"checkpoint={path!r} was written by a fit with other "
                             f"hyperparameters: {shown}; set them back to resume it, or remove "
                             "the file to start afresh")
        if state["fingerprint"] != fingerprint:
            raise ValueError(f"checkpoint={path!r} was written by a fit on other training data "
                             "(X, y and sample_weight differ); remove the file to start "
                             "afresh")
        vars(self).update({key: value for key, value in vars(saved).items()
                           if key not in params and key != "_checkpoint_state"})
        return state

    def _record(self, start):
        history = self.history_
        self.n_iter_ = len(history)
        self.loss_curve_ = history[:, "train_loss"]
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else None
        scores = [r["valid_score"] for r in history if "valid_score" in r]
        self.validation_scores_ = scores if scores else None
        self._mode.record(self)
        self.fit_time_ = time.perf_counter() - start

    def _fit(self, X, y, sample_weight, *, incremental=False, classes=None):
        """Validate everything, then train: a call that fails validation changes nothing, nor
        does a new network's training that fails before its first epoch ends."""
        before = dict(self.__dict__)
        start = time.perf_counter()
        with restored_on_error(self):
            hidden_sizes, device = self._check_hyperparameters()
            continuing = hasattr(self, "module_") and (incremental or self.warm_start)
            if continuing:
                self._check_can_continue()
            elif incremental and classes is None and isinstance(self, ClassifierMixin):
                raise ValueError("classes must be given on the first call to partial_fit")
            X, y = self._encode(X, y, reset=not continuing, classes=classes)
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32,
                                                 ensure_non_negative=True)
            fingerprint = resumed = None
            if self.checkpoint is not None and not incremental:
                if self.training == "calibrated_twin":
                    raise ValueError("checkpoint is not supported with "
                                     "training='calibrated_twin' (its twin phase is not saved); "
                                     "use training='physics_aware', or fit without checkpoint")
                fingerprint = _fingerprint(X, y, sample_weight)
                resumed = self._resume(fingerprint)
                continuing = continuing or resumed is not None
            if not continuing:
                self._draw_seeds()
            validation = None
            if self.early_stopping and not incremental:
                stratify = y if isinstance(self, ClassifierMixin) else None
                X, X_val, y, y_val, sample_weight, _ = train_test_split(
                    X, y, sample_weight, test_size=float(self.validation_fraction),
                    stratify=stratify, random_state=self._stream_seeds[3] % 2**32)
                validation = (X_val, y_val)
            if not continuing:
                self._initialize(X.shape[1], self._n_outputs(y), hidden_sizes, device)
                self._mode.check_network(self, self.module_)
                if self.module is not None:
                    self._check_module_output(self.module_,
                                              torch.as_tensor(X[:2], device=device),
                                              self._n_outputs(y))
            if self.max_device_seconds is not None and self._usage().seconds is None:
                raise ValueError(f"max_device_seconds={self.max_device_seconds!r} needs a "
                                 "device cost model, but no device of the network declares "
                                 "settle_time or vector_time; set them on the device, or "
                                 "budget with max_device_queries")
            self._call_start_usage = self._training_usage() if resumed is None \
                else DeviceUsage(*resumed["call_start_usage"])
            prepared = None
            if not (continuing or incremental):
                # Part of the set-up: a device that fails here leaves the estimator as it was.
                usage = self._usage()
                prepared = self._mode.prepare(self)
                self._add_training_usage(self._usage() - usage)
        if not (incremental and continuing):  # once per fit, and on partial_fit's first call
            self._warn_query_cost(len(X))
        if device != self._device:
            self._move_to(device)
        try:
            if incremental:
                self._run(X, y, sample_weight, 1, start=start)
            elif resumed is not None:
                if not resumed["complete"]:
                    self._run(X, y, sample_weight, int(self.max_iter) - resumed["epochs"],
                              validation=validation, schedule=True, start=start,
                              resume=resumed, fingerprint=fingerprint)
            elif continuing:
                self._run(X, y, sample_weight, int(self.max_iter), validation=validation,
                          schedule=True, start=start, fingerprint=fingerprint)
            else:
                self._mode.fit(self, prepared, X, y, sample_weight, validation, start,
                               fingerprint)
        except BaseException:
            # A new network without a finished epoch is no model: keep the one there was (the
            # replaced attributes still hold it; the new network never touched them).
            if not continuing and not self.history_:
                self.__dict__.clear()
                self.__dict__.update(before)
            raise
        return self

    def _validated_inputs(self, X, y="no_validation", reset=False, **options):
        """``validate_data``, then refuse values that overflow float32 (the network's dtype)."""
        with_y = not (isinstance(y, str) and y == "no_validation")
        if with_y and sp.issparse(y):  # the multi-output regressor's validation would take it
            raise TypeError("Sparse data was passed for y, but dense data is required; use "
                            "y.toarray() to convert it to a dense numpy array")
        if with_y:
            X, y = validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64],
                                 **options)
        else:
            X = validate_data(self, X, reset=reset, dtype=[np.float32, np.float64])
        if X.dtype == np.float64 and X.size and np.abs(X).max() > np.finfo(np.float32).max:
            raise ValueError(f"X has values up to {np.abs(X).max():.3g}, beyond float32's range "
                             f"(±{np.finfo(np.float32).max:.3g}) in which the network computes; "
                             "rescale the features (e.g. StandardScaler)")
        X = X.astype(np.float32, copy=False)
        return (X, y) if with_y else X

    def _forward(self, X):
        check_is_fitted(self, "module_")
        X = self._validated_inputs(X)
        self.module_.eval()
        with torch.no_grad():
            return self.module_(torch.as_tensor(X, device=self._device)).double().cpu().numpy()

    # ----------------------------------------------------------------- persistence
    def __getstate__(self):
        # A model trained on a GPU must load on a CPU-only machine: pickle the network and the
        # optimizer's state on the CPU. The optimizer is rebuilt on load; its counters and its
        # random stream (bp_free directions) travel beside its state_dict.
        state = self.__dict__.copy()
        if "module_" in state:
            module = copy.deepcopy(state["module_"]).cpu()
            state["module_"] = module
            state["_device"] = torch.device("cpu")
            optimizer = state.pop("_optimizer")
            generator = getattr(optimizer, "generator", None)
            state["_optimizer_state"] = (
                _to_cpu(optimizer.state_dict()),
                {key: value for key, value in vars(optimizer).items()
                 if isinstance(value, int | float)},
                generator.get_state() if isinstance(generator, torch.Generator) else None)
            if state.get("_switch") is not None:  # re-attached to the new optimizer on load
                state["_switch"] = copy.copy(state["_switch"])
                state["_switch"].optimizer = None
        return state

    def __setstate__(self, state):
        optimizer_state = state.pop("_optimizer_state", None)
        self.__dict__.update(state)
        if "module_" in state:
            wanted = torch.device(self.device) if isinstance(self.device, str | torch.device) \
                else torch.device("cpu")
            if wanted.type == "cuda" and torch.cuda.is_available():
                self.module_.to(wanted)
                self._device = wanted
            self._optimizer = self._make_optimizer(self.module_, self._stream_seeds[2])
            state_dict, counters, generator_state = optimizer_state
            self._optimizer.load_state_dict(state_dict)
            vars(self._optimizer).update(counters)
            if generator_state is not None:
                self._optimizer.generator.set_state(generator_state)
            if getattr(self, "_switch", None) is not None:
                self._switch.optimizer = self._optimizer

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(64, 64)
        Widths of the hidden layers.
    activation : {"relu", "tanh", "logistic", "identity", "sin"}, default="relu"
        Activation after each hidden layer.
    physical_layer : {"mzi", "mrr", "slm", "usv"}, BlackBox or None, default="mzi"
        The device in the network: a simulated MZI mesh (a unitary), microring bank, SLM or
        U Sigma V MZI device (a general matrix, :class:`~hybridnet.physical.USVMesh`), an
        instance of any :class:`~hybridnet.physical.BlackBox` (``FunctionBlackBox`` for a real
        device), or None for the all-digital network.
    physical_positions : sequence of int, optional
        Which linear maps are devices, from 0 (input map) to ``len(hidden_layer_sizes)``
        (output map). Default: every map between two hidden layers.
    device_options : dict, optional
        Keyword arguments of the device class: non-idealities such as ``phase_bits``,
        ``phase_noise``, ``crosstalk``, ``detector_noise``, ``fabrication_error``.
    training : {"surrogate", "backprop", "bp_free", "calibrated_twin", "physics_aware"}, \
default="surrogate"
        "surrogate" trains the devices in situ from queries (low-rank surrogate plus
        zeroth-order updates); "backprop" is the digital twin, exact autograd through the
        simulator; "bp_free" trains the whole network without back-propagation (zeroth-order
        estimates of every parameter's gradient, see ``zo_estimator``); "calibrated_twin"
        takes each device's ``twin`` (calibrated with ``calibration_queries`` queries, or the
        nominal design), trains ``max_iter`` epochs by autograd through the twins (no device
        query), then fine-tunes ``fine_tune_iter`` epochs in situ; the fitted network runs on
        the devices. "physics_aware" (Wright et al., Nature 2022) runs every forward pass on the
        devices and back-propagates through each device's ``twin`` (its vector-Jacobian
        product at the device's inputs and parameters): one setting and a batch of vectors per
        step, no zeroth-order queries. The twin-based modes need devices with a
        ``nominal_twin()`` (the simulated ones), or a ``module`` whose layers carry their
        twins. Continued training (``warm_start``, ``partial_fit``) of "calibrated_twin" is in
        situ, of "physics_aware" physics-aware.
    surrogate_rank : int, optional
        Rank of each device's surrogate; default half the narrowest hidden layer.
    surrogate_probes : int, optional
        Probes per surrogate update; default ``max(surrogate_rank, 32)``.
    surrogate_update_every : int, default=4
        Update each surrogate only every this many training steps (input gradients in between
        use a surrogate up to k - 1 steps old), for (k - 1) / k fewer surrogate queries.
    surrogate_rebuild_every : int or None, default=10
        Rebuild each integrator-updated surrogate from scratch every this many updates, which
        bounds its drift; None never does. See :class:`~hybridnet.BlackBoxLayer`.
    surrogate_update : {"auto", "psi", "requery"}, default="auto"
        How each surrogate follows its device after a step: the projector-splitting integrator
        (``2 (rank + probes)`` queries), a full re-query of the matrix (``in_features``
        queries, exact), or "auto", whichever costs fewer queries.
    zo_estimator : {"rge", "central_rge", "sign_rge", "cge", "hybrid"}, default="rge"
        Zeroth-order estimator of the device parameters' gradient (of every parameter's with
        ``training="bp_free"``). "hybrid" needs ``training="bp_free"`` and runs the
        tensor-train BP-free paper's schedule: signRGE with the learning rates decayed x0.8
        per epoch; once the monitored quantity (validation score with ``early_stopping``,
        else training loss) has not improved for ``max(1, n_iter_no_change // 4)`` epochs, or
        after 10 epochs, CGE skipping half the coordinates at 0.2x the base rates (with
        ``zo_update="sgd"`` x0.1 ten epochs later, as in the paper; ``switched_at_`` records
        the switch epoch). Cost: "central_rge" and "sign_rge" take
        twice the queries of "rge"; "cge" perturbs every device parameter one at a time,
        ``2 n_params`` evaluations (on the default 64 x 64 MZI mesh about 129,000 device
        queries per step against about 240 for "rge"). With ``training="bp_free"`` every
        evaluation runs the batch through every device: per step and device, "cge" costs
        ``2 d`` x batch queries over the network's d parameters, "hybrid" ``d`` x batch once it
        switches (half the coordinates). A fit whose settings cost over 100x the default
        step's device queries warns once.
    zo_samples : int, default=10
        Random directions per step; the zeroth-order queries grow in proportion
        (``zo_samples=100``: about 1,600 device queries per step on the default network,
        7x the default's).
    zo_smoothing : float or "auto", default="auto"
        Finite-difference step of the zeroth-order estimates. "auto" derives each device's step
        from its declared phase quantization and noise
        (:func:`~hybridnet.layers.auto_smoothing`: 1e-3 on a clean device, about one DAC level
        on a quantized one, larger under noise); ``training="bp_free"`` takes the largest of
        the network's devices, 1e-3 without devices.
    zo_update : {"auto", "sgd", "adam"}, default="auto"
        How ``training="bp_free"`` turns the estimate into a step: SGD with heavy-ball
        momentum 0.9, or Adam. "auto" is Adam (the signRGE phase of ``zo_estimator="hybrid"``
        steps by the sign either way): in the hybrid schedule's CGE phase the paper's SGD
        trailed Adam, 0.678 against 0.902 test accuracy on digits after 30 epochs, 0.9306
        against 0.9661 on MNIST.
    zo_batch_rank : int or None, default=16
        Directions of ``G^T X`` (upstream gradient times layer input) each device is queried
        with per zeroth-order perturbation, instead of the whole batch; None queries all of
        them (``min(batch_size, in, out)``, the exact objective). See
        :class:`~hybridnet.BlackBoxLayer`.
    tt_rank : int, optional
        Make the digital linear maps :class:`~hybridnet.TTLinear` of this rank; None keeps
        them dense.
    twin : {"calibrated", "nominal"}, default="calibrated"
        The model of each device that "calibrated_twin" and "physics_aware" train through:
        calibrated before the first epoch (:func:`hybridnet.calibrate`, its queries counted
        in the fit's), or the nominal design as built (no query; "calibrated_twin" with
        "nominal" is the nominal twin deployed on the chip).
    calibration_queries : int, optional
        Device queries per device for the calibration of ``twin="calibrated"``. Default
        (None): what :func:`hybridnet.calibrate` chooses, 8 x the device's input width (the
        whole matrix at 8 parameter settings), or the twin's own probes where it has them (a
        U Sigma V mesh: 32 x its input width, which it needs at large offsets). A number
        forces random queries.
    fine_tune_iter : int, default=0
        Epochs of in-situ training after the twin phase of ``training="calibrated_twin"``.
    recalibrate_every : int, optional
        With ``training="physics_aware"``: every this many epochs, refit each device's twin
        (:func:`hybridnet.calibrate` from its current state) to the device's answers of that
        epoch's training steps (8 of them, spread over the epoch), so the backward pass
        follows a drifting chip at no extra device query. The epoch's history record gets
        ``twin_error_before`` and ``twin_error`` (the twin's relative RMS error on those
        answers before and after the refit). None never recalibrates.
    learning_rate : float, default=3e-3
        Adam learning rate of the digital parameters.
    device_learning_rate : float, default=1e-2
        Adam learning rate of the device parameters.
    batch_size : int, default=64
        Minibatch size.
    max_iter : int, default=50
        Maximum number of epochs.
    tol : float, default=1e-4
        Improvement of the monitored quantity (training loss, or validation score with
        ``early_stopping``) below which an epoch counts as no improvement.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when its score stalls for
        ``n_iter_no_change`` epochs and restore the best weights.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without improvement before training stops.
    warm_start : bool, default=False
        Continue from the previous fit's network instead of starting afresh (with the learning
        rates restarted and decayed again over ``max_iter`` epochs). The hyperparameters that
        shape the network (sizes, devices, training mode, surrogate and zeroth-order settings,
        ``module``) must be those it was built with, else ``fit`` raises before any epoch;
        learning rates, batch size, epochs, stopping rule and ``device`` may change.
    device_retries : int, default=2
        Times a failed device query (the device raised, returned NaN / inf or the wrong shape,
        or exceeded ``device_timeout``) is repeated with the same inputs and parameters before
        ``fit`` stops with a :class:`~hybridnet.physical.BlackBoxError`. A transient failure
        rate p per call ends a fit of n calls with probability about
        ``n p^(device_retries + 1)``. Applies to every device layer, also in a custom
        ``module``.
    device_timeout : float, optional
        Seconds a device call may take before it counts as failed (and is retried); None
        waits for ever. See :class:`~hybridnet.BlackBoxLayer`.
    max_device_queries : int, optional
        Budget of device queries (vectors) for one ``fit`` or ``partial_fit`` call, its
        calibration included: the fit stops at the step after which one more step of the
        last step's cost would exceed it, with a warning, and keeps the best weights seen
        (:class:`~hybridnet.training.DeviceBudget`); the epoch it stops in is recorded with
        the steps that ran. None: no budget.
    max_device_seconds : float, optional
        The same budget in modelled device seconds (``device_seconds_``); needs devices
        that declare a cost model (``settle_time``, ``vector_time``).
    random_state : int, RandomState instance or None, default=None
        Draws one seed from which independent streams are derived (``SeedSequence.spawn``)
        for initialisation, each device (fabrication offsets, noise), each device layer
        (initial phases, surrogate probes, zeroth-order directions), batch order, the
        zeroth-order directions of ``bp_free`` and the validation split.
    device : {"cpu", "cuda"} or torch.device, default="cpu"
        Where the network runs.
    verbose : bool, default=False
        Show a tqdm progress bar (loss, validation score, device queries, modelled chip
        seconds).
    module : torch.nn.Module, optional
        A network of your own (it may contain :class:`~hybridnet.BlackBoxLayer` modules) used
        in place of the built-in MLP; it must map (n_samples, n_features) to (n_samples, n_outputs).
        It is copied, never modified.
    checkpoint : str or path-like, optional
        Where ``fit`` saves the model (:func:`hybridnet.save`) every ``checkpoint_every``
        epochs and when it ends, atomically (written beside the file, then renamed over it).
        A ``fit`` started again with the same path, hyperparameters and data resumes from the
        last checkpoint as if uninterrupted (learning-rate schedule, optimizer moments, random
        streams, early-stopping state and counters); the checkpoint of a finished fit returns
        that model without training; one written with other hyperparameters or data is
        refused, naming what differs. Not with ``training="calibrated_twin"``; ``partial_fit``
        writes none. None: no checkpoints.
    checkpoint_every : int, default=1
        Epochs between two checkpoints.
"""

_ATTRIBUTES_DOC = """
    module_ : torch.nn.Module
        The trained network.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` had them (pandas).
    loss_curve_ : list of float
        Training loss per epoch.
    validation_scores_ : list of float or None
        Validation score per epoch with ``early_stopping``, else None.
    best_loss_ : float
        Lowest training loss.
    n_iter_ : int
        Epochs run.
    n_device_queries_ : int
        Black-box queries (input vectors) the devices served during training (forward,
        surrogate, zeroth-order and calibration), summed over ``partial_fit`` calls and
        warm-started fits; predictions are not counted. Exact in every training mode: what
        the devices served, not an estimate.
    n_device_settings_ : int
        Parameter settings the devices applied during training, counted likewise (one per
        setting of a request, however many vectors it carries): on a thermo-optic chip the
        settling after each setting, not the vectors, is most of the chip time.
    device_seconds_ : float or None
        Modelled device seconds of training, ``settings x settle_time + vectors x
        vector_time`` summed over the devices; None when no device declares a cost model.
    n_calibration_queries_ : int
        Of ``n_device_queries_``, those spent calibrating twins (``twin="calibrated"`` with
        "calibrated_twin" or "physics_aware"; 0 otherwise).
    n_device_retries_ : int
        Failed device calls that were retried during training (summed likewise).
    history_ : History
        Per-epoch records: ``epoch``, ``train_loss``, ``seconds``, ``device_queries``,
        ``device_settings`` and ``device_seconds`` (cumulative; the last only with a cost
        model) and ``valid_score``; ``history_[:, "train_loss"]`` gives a column.
    fit_time_ : float
        Seconds spent in the last ``fit`` or ``partial_fit``.
"""


class HybridNetClassifier(ClassifierMixin, _BaseHybridNet):
    __doc__ = """A neural-network classifier with black-box physical layers, trained in situ.
""" + _PARAMETERS_DOC + """
    Attributes
    ----------
    classes_ : ndarray
        Class labels.""" + _ATTRIBUTES_DOC + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from hybridnet import HybridNetClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = HybridNetClassifier((16, 16), physical_layer="mrr", max_iter=30,
    ...                           random_state=0).fit(X, y)
    >>> clf.predict(X[:3])
    array([0, 0, 0])
    >>> clf.n_device_queries_ > 0
    True
    """

    def _n_outputs(self, y):
        return len(self.classes_)

    def _loss(self, logits, targets):
        # Cross-entropy as logsumexp minus the target's logit: torch's cross_entropy pays per
        # row, and a bp_free step scores thousands of perturbed copies of a batch (10 classes:
        # 3.5x this form's time on one thread).
        return logits.logsumexp(-1) - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    def _encode(self, X, y, reset, classes=None):
        X, y = self._validated_inputs(X, y, reset=reset)
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; "
                                 f"got 1 class: {self.classes_.tolist()}")
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not in classes_: {unseen.tolist()}")
        return X, np.searchsorted(self.classes_, y).astype(np.int64)

    def fit(self, X, y, sample_weight=None):
        """Train the network on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Labels of any type.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights of the loss.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on (X, y), initialising on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like, optional
            All labels; required on the first call.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        logits = self._forward(X)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """Log class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order.

        Computed from the logits directly (a log-softmax), so classes far below the top keep a
        finite log-probability where ``np.log(predict_proba(X))`` would give ``-inf``.
        """
        logits = self._forward(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict(self, X):
        """Predicted labels, shape (n_samples,)."""
        indices = self._forward(X).argmax(axis=1)
        return self.classes_[indices]

    def _score_arrays(self, X, y):
        with torch.no_grad():
            logits = self.module_(torch.as_tensor(X, device=self._device))
        return (logits.argmax(1).cpu().numpy() == y).mean()


class HybridNetRegressor(RegressorMixin, _BaseHybridNet):
    __doc__ = """A neural-network regressor with black-box physical layers, trained in situ.

    Targets are standardised per output during training and the scaling is undone in
    ``predict``; multi-output targets are supported.
""" + _PARAMETERS_DOC + """
    Attributes
    ----------""" + _ATTRIBUTES_DOC + """
    n_outputs_ : int
        Number of targets.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridnet import HybridNetRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = HybridNetRegressor((16, 16), physical_layer="slm", max_iter=200,
    ...                          random_state=0).fit(X, X.ravel() ** 2)
    >>> reg.score(X, X.ravel() ** 2) > 0.8
    True
    """

    def _n_outputs(self, y):
        return self.n_outputs_

    def _loss(self, predictions, targets):
        return (predictions - targets).square().mean(dim=1)

    def _encode(self, X, y, reset, classes=None):
        X, y = self._validated_inputs(X, y, reset=reset, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        self._single_output = y.ndim == 1 if reset else self._single_output
        y = y.reshape(len(y), -1)
        if reset:
            self.n_outputs_ = y.shape[1]
            self._y_mean = y.mean(axis=0)
            scale = y.std(axis=0)
            self._y_scale = np.where(scale > 0, scale, 1.0)
        elif y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} outputs, the model was fitted with "
                             f"{self.n_outputs_}")
        return X, ((y - self._y_mean) / self._y_scale).astype(np.float32)

    def fit(self, X, y, sample_weight=None):
        """Train the network on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights of the loss.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight)

    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch on (X, y), initialising on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predictions, shape (n_samples,) or (n_samples, n_outputs)."""
        predictions = self._forward(X) * self._y_scale + self._y_mean
        return predictions.ravel() if self._single_output else predictions

    def _score_arrays(self, X, y):
        with torch.no_grad():
            predictions = self.module_(torch.as_tensor(X, device=self._device)).cpu().numpy()
        residual = ((predictions - y) ** 2).sum()
        total = ((y - y.mean(axis=0)) ** 2).sum()
        return 1 - residual / total if total > 0 else -residual

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

