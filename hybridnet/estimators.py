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

import contextlib
import copy
import inspect
import numbers
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
from .calibration import calibrate
from .layers import (
    SMOOTHING_FLOOR,
    BlackBoxLayer,
    _zo_batch_vectors,
    auto_smoothing,
    split_parameters,
)
from .network import ACTIVATIONS, DEVICES, build_mlp
from .optim import BatchedLoss, PlateauSwitch, ZerothOrderOptimizer, pointwise_unsafe_layers
from .physical import BlackBox, BlackBoxError
from .surrogate import UPDATES
from .training import (
    EarlyStopping,
    History,
    Monitor,
    ProgressBar,
    ValidationScore,
    count_device_queries,
    restored_on_error,
    train_epochs,
)
from .zeroth_order import ESTIMATORS, n_evaluations

TRAININGS = ("surrogate", "backprop", "bp_free", "calibrated_twin")
# "hybrid" (signRGE, then CGE on a plateau) trains whole networks, so only with bp_free.
BP_FREE_ESTIMATORS = (*ESTIMATORS, "hybrid")
# The hybrid schedule of the tensor-train BP-free paper (its MNIST settings relative to the
# signRGE rate of 5e-3): signRGE decayed x0.8 per epoch; on a plateau CGE at 0.2x the base rate
# (1e-3) skipping half the coordinates, with heavy-ball momentum 0.9; x0.1 ten epochs later.
HYBRID_SIGN_DECAY = 0.8
HYBRID_CGE_LR_FACTOR = 0.2
HYBRID_CGE_SKIP = 0.5
HYBRID_CGE_MOMENTUM = 0.9
HYBRID_DROP_AFTER = 10
HYBRID_DROP_FACTOR = 0.1
ZO_UPDATES = ("auto", "sgd", "adam")
# training="calibrated_twin": epochs of in-situ fine-tuning after the twin phase, and its
# learning rates relative to the hyperparameters'.
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
    "zo_batch_rank", "zo_update", "tt_rank", "module")

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
        "calibration_queries": [_POSITIVE_INT, None],
        "fine_tune_iter": [Interval(numbers.Integral, 0, None, closed="left")],
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
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "module": [nn.Module, None],
    }

    def __init__(self, hidden_layer_sizes=(64, 64), activation="relu", *, physical_layer="mzi",
                 physical_positions=None, device_options=None, training="surrogate",
                 surrogate_rank=None, surrogate_probes=None, surrogate_update_every=4,
                 surrogate_rebuild_every=10, surrogate_update="auto", zo_estimator="rge",
                 zo_samples=10, zo_smoothing="auto", zo_batch_rank=16, zo_update="auto",
                 tt_rank=None, calibration_queries=None, fine_tune_iter=FINE_TUNE_ITER,
                 learning_rate=3e-3, device_learning_rate=1e-2, batch_size=64,
                 max_iter=50, tol=1e-4, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, warm_start=False, device_retries=2, device_timeout=None,
                 random_state=None, device="cpu", verbose=False, module=None):
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
        self.calibration_queries = calibration_queries
        self.fine_tune_iter = fine_tune_iter
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
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.module = module

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
        if self.zo_estimator == "hybrid" and self.training != "bp_free":
            raise ValueError("zo_estimator='hybrid' (signRGE, then CGE) trains whole networks, "
                             f"so it needs training='bp_free'; with training={self.training!r} "
                             f"choose one of {ESTIMATORS}")
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
        # bp_free never differentiates, so its devices are simply queried (no surrogate is
        # built); a calibrated twin's layers sit on the device, for the in-situ fine-tune.
        training = ("surrogate" if self.training in ("bp_free", "calibrated_twin")
                    else self.training)
        zo_estimator = "rge" if self.zo_estimator == "hybrid" else self.zo_estimator
        return dict(training=training, surrogate_rank=rank,
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
        if self.training != "bp_free":
            return torch.optim.Adam(groups)
        hybrid = self.zo_estimator == "hybrid"
        # "auto": the paper's heavy-ball SGD for the hybrid schedule (its signRGE phase steps
        # by the sign whatever the update), Adam for a single estimator.
        sgd = self.zo_update == "sgd" or (self.zo_update == "auto" and hybrid)
        return ZerothOrderOptimizer(groups, estimator="sign_rge" if hybrid else self.zo_estimator,
                                    n_samples=int(self.zo_samples),
                                    smoothing=self._network_smoothing(module),
                                    update="sgd" if sgd else "adam",
                                    momentum=HYBRID_CGE_MOMENTUM if sgd else 0.0,
                                    chunk_size=512, seed=zo_seed)

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
        self.n_calibration_queries_ = 0
        self.n_device_retries_ = 0
        self._switch = None
        if self.zo_estimator == "hybrid" and self.training == "bp_free":
            self._switch = PlateauSwitch(
                self._optimizer, patience=max(1, self.n_iter_no_change // 4),
                lr_factor=HYBRID_CGE_LR_FACTOR, decay=HYBRID_SIGN_DECAY,
                drop_after=HYBRID_DROP_AFTER, drop_factor=HYBRID_DROP_FACTOR,
                coordinate_skip=HYBRID_CGE_SKIP)

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

    def _first_order_step(self, X_t, y_t, w_t, scheduler):
        optimizer = self._optimizer

        def step(batch):
            optimizer.zero_grad()
            loss = self._weighted_loss(self.module_(X_t[batch]), y_t[batch], w_t[batch])
            if not torch.isfinite(loss):
                return loss.item(), 0.0
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            return loss.item(), w_t[batch].sum().item()

        return step

    def _bp_free_step(self, X_t, y_t, w_t):
        def step(batch):
            closure = BatchedLoss(self.module_, self._weighted_loss, X_t[batch], y_t[batch],
                                  w_t[batch])
            return self._optimizer.step(closure).item(), w_t[batch].sum().item()

        return step

    def _step_queries(self, batch, **settings):
        """Device queries of one training step on ``batch`` samples (forward pass and
        zeroth-order estimates; the surrogate's upkeep is small beside them), with the
        ``QUERY_COST_PARAMETERS`` given in ``settings``."""
        layers = self._device_layers()
        estimator, skip = settings["zo_estimator"], 0.0
        if estimator == "hybrid":  # its costly phase: CGE skipping half the coordinates
            estimator, skip = "cge", HYBRID_CGE_SKIP
        if self.training == "bp_free":  # every evaluation runs the batch through every device
            dim = sum(p.numel() for p in self.module_.parameters() if p.requires_grad)
            return n_evaluations(estimator, settings["zo_samples"], dim,
                                 coordinate_skip=skip) * batch * len(layers)
        total = 0
        for layer in layers:
            rows = batch
            if layer.batch_compression:  # see BlackBoxLayer: K = G^T X's directions
                rows = _zo_batch_vectors(batch, layer.in_features, layer.out_features,
                                        settings["zo_batch_rank"])
            total += batch + rows * n_evaluations(estimator, settings["zo_samples"],
                                                  layer.params.numel(), value_known=True)
        return total

    def _warn_query_cost(self, n_samples):
        """Warn when the zeroth-order settings cost over ``QUERY_COST_WARNING_FACTOR`` times the
        defaults' device queries per step (the twin of ``training="backprop"`` spends none on
        them)."""
        if self.training == "backprop":
            return
        defaults = inspect.signature(type(self).__init__).parameters
        chosen = {name: getattr(self, name) for name in QUERY_COST_PARAMETERS}
        default = {name: defaults[name].default for name in QUERY_COST_PARAMETERS}
        batch = min(int(self.batch_size), n_samples)
        queries, reference = self._step_queries(batch, **chosen), \
            self._step_queries(batch, **default)
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

    def _run(self, X, y, sample_weight, n_epochs, *, validation=None, schedule=False,
             start=None, rate_factor=1.0):
        """Train for up to n_epochs; keep the fitted attributes in step even if a device fails.

        ``fit_time_`` counts from ``start`` (default: now); the learning rates start at
        ``rate_factor`` times the hyperparameters'."""
        X_t, y_t, w_t = self._tensors(X, y, sample_weight)
        batch_size = int(self.batch_size)
        self._start_learning_rates(rate_factor)
        self._configure_device_layers()
        if self.training == "bp_free":
            # Constant step sizes: the hybrid schedule changes them itself when it switches.
            step = self._bp_free_step(X_t, y_t, w_t)
        else:
            scheduler = None
            if schedule:
                steps = n_epochs * -(-len(X_t) // batch_size)
                scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self._optimizer, steps)
            step = self._first_order_step(X_t, y_t, w_t, scheduler)

        def batches():
            order = torch.randperm(len(X_t), generator=self._batch_generator)
            return order.to(self._device).split(batch_size)

        callbacks = []
        if validation is not None:
            X_val, y_val = validation
            callbacks.append(ValidationScore(lambda: self._score_arrays(X_val, y_val)))
            callbacks.append(EarlyStopping("valid_score", lower_is_better=False, tol=self.tol,
                                           patience=self.n_iter_no_change, restore_best=True))
        else:
            callbacks.append(EarlyStopping("train_loss", tol=self.tol,
                                           patience=self.n_iter_no_change))
        if self._switch is not None:
            monitor = ("valid_score", -1.0) if validation is not None else ("train_loss", 1.0)
            callbacks.append(Monitor(self._switch.step, *monitor))
        if self.verbose:
            callbacks.append(ProgressBar(n_epochs))
        queries_before = count_device_queries(self.module_)
        retries_before = sum(layer.n_device_retries for layer in self._device_layers())
        start = time.perf_counter() if start is None else start
        try:
            train_epochs(self.module_, step, batches, n_epochs, callbacks=callbacks,
                         history=self.history_, queries_before=self.n_device_queries_)
        finally:
            self.n_device_retries_ += sum(
                layer.n_device_retries for layer in self._device_layers()) - retries_before
            self._record(queries_before, start)

    def _record(self, queries_before, start):
        history = self.history_
        self.n_iter_ = len(history)
        self.loss_curve_ = history[:, "train_loss"]
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else None
        scores = [r["valid_score"] for r in history if "valid_score" in r]
        self.validation_scores_ = scores if scores else None
        self.n_device_queries_ += count_device_queries(self.module_) - queries_before
        if self.training == "bp_free":
            self.n_loss_evaluations_ = self._optimizer.n_evaluations
            self.switched_at_ = None if self._switch is None else self._switch.switched_at
        self.fit_time_ = time.perf_counter() - start

    def _fit(self, X, y, sample_weight, *, incremental=False, classes=None):
        """Validate everything, then train: a call that fails validation changes nothing, nor
        does a new network's training that fails before its first epoch ends."""
        before = dict(self.__dict__)
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
                unsafe = pointwise_unsafe_layers(self.module_)
                if self.training == "bp_free" and unsafe:
                    raise ValueError(f"training='bp_free' evaluates the loss at many parameter "
                                     f"points at once, which {', '.join(unsafe)} cannot take "
                                     "part in during training (a random mask or batch "
                                     "statistics per point); remove them from the module or "
                                     "use training='surrogate'")
                if self.module is not None:
                    self._check_module_output(self.module_,
                                              torch.as_tensor(X[:2], device=device),
                                              self._n_outputs(y))
                if self.training == "calibrated_twin" and not incremental:
                    # Part of the set-up: a device that fails here leaves the estimator as it was.
                    calibration_start = time.perf_counter()
                    twins = self._calibrated_twins()
        if not (incremental and continuing):  # once per fit, and on partial_fit's first call
            self._warn_query_cost(len(X))
        if device != self._device:
            self._move_to(device)
        try:
            if incremental:
                self._run(X, y, sample_weight, 1)
            elif self.training == "calibrated_twin" and not continuing:
                self._fit_on_twins(twins, X, y, sample_weight, validation, calibration_start)
            else:
                self._run(X, y, sample_weight, int(self.max_iter), validation=validation,
                          schedule=True)
        except BaseException:
            # A new network without a finished epoch is no model: keep the one there was (the
            # replaced attributes still hold it; the new network never touched them).
            if not continuing and not self.history_:
                self.__dict__.clear()
                self.__dict__.update(before)
            raise
        return self

    def _calibrated_twins(self):
        """A calibrated twin of every device of the network (``training="calibrated_twin"``)."""
        layers = self._device_layers()
        if not layers:
            raise ValueError("training='calibrated_twin' needs a device in the network "
                             "(physical_layer, or a module with BlackBoxLayers)")
        for layer in layers:
            if not callable(getattr(layer.black_box, "nominal_twin", None)):
                raise ValueError(f"training='calibrated_twin' needs a simulator of each device, "
                                 f"but {layer.black_box.name} has no nominal_twin(); calibrate "
                                 "your own twin with hybridnet.calibrate and train it with "
                                 "BlackBoxLayer.using, or use training='surrogate'")
        self._configure_device_layers()
        seeds = spawn_seeds(spawn_seeds(self._seed, 5)[4], len(layers))  # a fifth stream
        twins = [calibrate(layer.black_box, layer.black_box.nominal_twin(),
                           n_queries=self.calibration_queries, params=layer.params.detach(),
                           seed=seed, query=layer.query_device).to(self._device)
                 for layer, seed in zip(layers, seeds, strict=True)]
        self.n_calibration_queries_ = sum(twin.calibration_queries for twin in twins)
        self.n_device_queries_ += self.n_calibration_queries_
        return twins

    def _fit_on_twins(self, twins, X, y, sample_weight, validation, start):
        """Train on the calibrated twins (no device query), then put the network back on the
        devices and fine-tune in situ for ``fine_tune_iter`` epochs; ``fit_time_`` counts from
        ``start``, the calibration's."""
        with contextlib.ExitStack() as stack:
            for layer, twin in zip(self._device_layers(), twins, strict=True):
                stack.enter_context(layer.using(twin))
            self._run(X, y, sample_weight, int(self.max_iter), validation=validation,
                      schedule=True, start=start)
        if self.fine_tune_iter:
            # Gentler than the first phase: the twin's network only needs its last errors
            # corrected (at full rates 3 epochs dropped digits 0.978 -> 0.960).
            self._run(X, y, sample_weight, int(self.fine_tune_iter), validation=validation,
                      schedule=True, start=start, rate_factor=FINE_TUNE_LR_FACTOR)

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
    training : {"surrogate", "backprop", "bp_free", "calibrated_twin"}, default="surrogate"
        "surrogate" trains the devices in situ from queries (low-rank surrogate plus
        zeroth-order updates); "backprop" is the digital twin, exact autograd through the
        simulator; "bp_free" trains the whole network without back-propagation (zeroth-order
        estimates of every parameter's gradient, see ``zo_estimator``); "calibrated_twin"
        measures each device with ``calibration_queries`` queries, fits its twin's hidden
        state (phase offsets, MZI losses; :func:`hybridnet.calibrate`), trains ``max_iter``
        epochs by autograd through the calibrated twins (no device query), then fine-tunes
        ``fine_tune_iter`` epochs in situ; the fitted network runs on the devices. It needs
        devices with a ``nominal_twin()`` (the simulated ones). Continued training
        (``warm_start``, ``partial_fit``) is in situ.
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
        else training loss) has not improved for ``max(1, n_iter_no_change // 4)`` epochs,
        CGE skipping half the coordinates at 0.2x the base rates, x0.1 ten epochs later
        (``switched_at_`` records the switch epoch). Cost: "central_rge" and "sign_rge" take
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
        momentum 0.9, or Adam. "auto": the paper's SGD with momentum for
        ``zo_estimator="hybrid"`` (its signRGE phase steps by the sign), Adam otherwise.
    zo_batch_rank : int or None, default=16
        Directions of ``G^T X`` (upstream gradient times layer input) each device is queried
        with per zeroth-order perturbation, instead of the whole batch; None queries all of
        them (``min(batch_size, in, out)``, the exact objective). See
        :class:`~hybridnet.BlackBoxLayer`.
    tt_rank : int, optional
        Make the digital linear maps :class:`~hybridnet.TTLinear` of this rank; None keeps
        them dense.
    calibration_queries : int, optional
        Device queries per device for ``training="calibrated_twin"``'s calibration; default
        8 x the device's input width (the whole matrix at 8 parameter settings).
    fine_tune_iter : int, default=0
        Epochs of in-situ training after the twin phase of ``training="calibrated_twin"``.
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
    random_state : int, RandomState instance or None, default=None
        Draws one seed from which independent streams are derived (``SeedSequence.spawn``)
        for initialisation, each device (fabrication offsets, noise), each device layer
        (initial phases, surrogate probes, zeroth-order directions), batch order, the
        zeroth-order directions of ``bp_free`` and the validation split.
    device : {"cpu", "cuda"} or torch.device, default="cpu"
        Where the network runs.
    verbose : bool, default=False
        Show a tqdm progress bar (loss, validation score, device queries).
    module : torch.nn.Module, optional
        A network of your own (it may contain :class:`~hybridnet.BlackBoxLayer` modules) used
        in place of the built-in MLP; it must map (n_samples, n_features) to (n_samples, n_outputs).
        It is copied, never modified.
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
        Black-box queries made during training (forward, surrogate and zeroth-order), summed
        over ``partial_fit`` calls and warm-started fits; predictions are not counted.
    n_calibration_queries_ : int
        Of ``n_device_queries_``, those spent calibrating twins (``training="calibrated_twin"``;
        0 otherwise).
    n_device_retries_ : int
        Failed device calls that were retried during training (summed likewise).
    history_ : History
        Per-epoch records: ``epoch``, ``train_loss``, ``seconds``, ``device_queries``
        (cumulative) and ``valid_score``; ``history_[:, "train_loss"]`` gives a column.
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
        return nn.functional.cross_entropy(logits, targets, reduction="none")

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

