"""Training modes: what each value of the estimators' ``training=`` does.

The estimators (``hybridnet.estimators``) validate, build the network and drive the shared
loop (:func:`~hybridnet.training.train_epochs`). Everything that differs between the ways of
training with a device lives in one small object per mode, chosen by ``training=``, as skorch's
net delegates to its callbacks:

- how the device layers are built (``TrainingMode.layer_training``);
- the optimizer, and the checks of the hyperparameters and of the network the mode needs;
- the set-up before training (calibrating twins) and the phases of a fit;
- what one training step does, the callbacks it adds, what it records, and the device
  queries a step costs (for the cost warning).

The modes hold no state: what they set up lives on the estimator (``_optimizer``, ``_switch``,
the layers' twins), so pickling and :func:`hybridnet.save` see one place.

``"surrogate"``
    In situ from queries: each device's input gradient from a low-rank surrogate, its
    parameters' from zeroth-order estimates (:class:`~hybridnet.BlackBoxLayer`).
``"backprop"``
    Autograd through each simulator: the digital-twin upper bound.
``"bp_free"``
    Zeroth-order estimates of every parameter's gradient (:class:`~hybridnet.optim.\
ZerothOrderOptimizer`), with the hybrid signRGE -> CGE schedule.
``"calibrated_twin"``
    Calibrate (or take nominal) twins, train through them with no device query, deploy on the
    devices and optionally fine-tune in situ.
``"physics_aware"``
    The forward pass on the devices, the backward pass through the twins (Wright et al.,
    Nature 601, 549-555, 2022).
"""

import contextlib
import math
import warnings

import torch

from ._random import spawn_seeds
from .calibration import MeasurementLog, calibrate
from .layers import BlackBoxLayer, _zo_batch_vectors
from .optim import BatchedLoss, PlateauSwitch, ZerothOrderOptimizer, pointwise_unsafe_layers
from .training import Callback, Monitor
from .zeroth_order import ESTIMATORS, n_evaluations

# The hybrid schedule of the tensor-train BP-free paper (its MNIST settings relative to the
# signRGE rate of 5e-3): signRGE decayed x0.8 per epoch; on a plateau, or after 10 epochs
# (the paper's length; the rate is then a tenth), CGE at 0.2x the base rate (1e-3) skipping
# half the coordinates; with the paper's heavy-ball SGD (momentum 0.9), x0.1 ten epochs later.
HYBRID_SIGN_DECAY = 0.8
HYBRID_CGE_LR_FACTOR = 0.2
HYBRID_CGE_SKIP = 0.5
HYBRID_CGE_MOMENTUM = 0.9
HYBRID_DROP_AFTER = 10
HYBRID_DROP_FACTOR = 0.1
HYBRID_SIGN_EPOCHS = 10
# training="calibrated_twin": the in-situ fine-tune's learning rates relative to the
# hyperparameters' (at full rates 3 epochs dropped digits 0.978 -> 0.960: the twin's network
# only needs its last errors corrected).
FINE_TUNE_LR_FACTOR = 0.1
# recalibrate_every: the training steps of an epoch a recalibration fits, spread over it
# (calibrate's own default number of settings), and its L-BFGS iterations. It starts from the
# last twin: on a 64 x 64 MZI mesh at 0.3 rad drifting 0.003 rad a step, 50 iterations took
# 2.4 s and left a relative error of 0.054 on the epoch's answers (before: 0.124), 300 took
# 17 s for 0.040.
RECALIBRATION_SETTINGS = 8
RECALIBRATION_MAX_ITER = 50


class TrainingMode:
    """First-order training: one step is a forward pass, ``backward`` and an Adam step.

    Subclasses override what differs; see the module docstring.

    Attributes
    ----------
    name : str
        The ``training=`` value.
    layer_training : str
        The ``training`` of the :class:`~hybridnet.BlackBoxLayer` modules the network is
        built with.

    Examples
    --------
    >>> from hybridnet.modes import MODES
    >>> mode = MODES["physics_aware"]  # what HybridNetClassifier(training="physics_aware") uses
    >>> mode.name, mode.layer_training, mode.scheduled()
    ('physics_aware', 'physics_aware', True)
    >>> MODES["bp_free"].scheduled()  # bp_free keeps its rates: the hybrid schedule sets them
    False
    """

    name = None
    layer_training = "surrogate"

    def check(self, net):
        """Refuse hyperparameters the mode cannot use (after ``_validate_params``)."""
        if net.zo_estimator == "hybrid":
            raise ValueError("zo_estimator='hybrid' (signRGE, then CGE) trains whole networks, "
                             f"so it needs training='bp_free'; with training={self.name!r} "
                             f"choose one of {ESTIMATORS}")

    def check_network(self, net, module):
        """Refuse a built network the mode cannot train."""

    def make_optimizer(self, net, module, groups, zo_seed):
        """The optimizer of the parameter ``groups`` (digital, then device)."""
        return torch.optim.Adam(groups)

    def make_switch(self, net, optimizer):
        """The hybrid schedule's :class:`~hybridnet.optim.PlateauSwitch`, or None."""
        return None

    def prepare(self, net):
        """Set-up of a new fit before its first epoch, part of its validation: a device that
        fails here leaves the estimator as it was. Returns what :meth:`fit` needs."""
        return None

    def fit(self, net, prepared, X, y, sample_weight, validation, start, fingerprint):
        """The epochs of a new, non-incremental fit (``max_iter`` of them, one phase);
        ``fit_time_`` counts from ``start``; ``fingerprint`` (of the training data, None
        without ``checkpoint``) turns checkpoints on."""
        net._run(X, y, sample_weight, int(net.max_iter), validation=validation, schedule=True,
                 start=start, fingerprint=fingerprint)

    def step(self, net, X_t, y_t, w_t, scheduler):
        """``step(batch) -> (loss, weight)`` for :func:`~hybridnet.training.train_epochs`."""
        optimizer, module = net._optimizer, net.module_

        def step(batch):
            optimizer.zero_grad()
            weights = w_t[batch]
            loss = net._weighted_loss(module(X_t[batch]), y_t[batch], weights)
            value = loss.item()  # one read of the loss, for the test and the record
            if not math.isfinite(value):
                return value, 0.0
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            return value, weights.sum().item()

        return step

    def scheduled(self):
        """Whether ``fit`` decays the learning rates by a cosine over its epochs."""
        return True

    def callbacks(self, net, validation):
        """Callbacks the mode adds to the training loop."""
        return []

    def record(self, net):
        """Fitted attributes of the mode, set after every training call."""

    def step_queries(self, net, batch, settings):
        """Device queries of one training step on ``batch`` samples with the zeroth-order
        ``settings`` (forward pass and estimates; a surrogate's upkeep is small beside them),
        or None when the step spends none on zeroth-order estimates."""
        total = 0
        for layer in net._device_layers():
            rows = batch
            if layer.batch_compression:  # see BlackBoxLayer: K = G^T X's directions
                rows = _zo_batch_vectors(batch, layer.in_features, layer.out_features,
                                        settings["zo_batch_rank"])
            total += batch + rows * n_evaluations(settings["zo_estimator"],
                                                  settings["zo_samples"],
                                                  layer.params.numel(), value_known=True)
        return total


class _SurrogateMode(TrainingMode):
    """``training="surrogate"``: in situ, surrogate input gradients and zeroth-order device
    gradients."""

    name = "surrogate"


class _BackpropMode(TrainingMode):
    """``training="backprop"``: autograd through each device's simulator."""

    name = "backprop"
    layer_training = "backprop"

    def step_queries(self, net, batch, settings):
        return None


class _BPFreeMode(TrainingMode):
    """``training="bp_free"``: zeroth-order estimates of every parameter's gradient.

    The devices are simply queried (their layers are built as "surrogate", which never builds
    a surrogate without an input gradient to compute). The learning rates stay constant:
    the hybrid schedule changes them itself when it switches.
    """

    name = "bp_free"

    def check(self, net):
        """Every estimator, "hybrid" included, trains a whole network."""

    def check_network(self, net, module):
        unsafe = pointwise_unsafe_layers(module)
        if unsafe:
            raise ValueError(f"training='bp_free' evaluates the loss at many parameter points "
                             f"at once, which {', '.join(unsafe)} cannot take part in during "
                             "training (a random mask or batch statistics per point); remove "
                             "them from the module or use training='surrogate'")

    def make_optimizer(self, net, module, groups, zo_seed):
        hybrid = net.zo_estimator == "hybrid"
        # "auto" is Adam (the signRGE phase steps by the sign whatever the update): the
        # paper's heavy-ball SGD in the CGE phase trailed it at the same rates, on digits
        # (default network, 30 epochs, both with the x0.1 drop) 0.678 against 0.902, on MNIST
        # 0.9306 against 0.9661 (benchmarks/results/mnist_bp_free.md).
        sgd = net.zo_update == "sgd"
        return ZerothOrderOptimizer(groups, estimator="sign_rge" if hybrid else net.zo_estimator,
                                    n_samples=int(net.zo_samples),
                                    smoothing=net._network_smoothing(module),
                                    update="sgd" if sgd else "adam",
                                    momentum=HYBRID_CGE_MOMENTUM if sgd else 0.0,
                                    chunk_size=512, seed=zo_seed)

    def make_switch(self, net, optimizer):
        if net.zo_estimator != "hybrid":
            return None
        # The paper's x0.1 drop suits its SGD; Adam scales its own steps, and the drop cut it
        # short on digits (default network, 50 epochs: 0.9178 with it, 0.9667 without).
        drop_after = HYBRID_DROP_AFTER if net.zo_update == "sgd" else None
        return PlateauSwitch(optimizer, patience=max(1, net.n_iter_no_change // 4),
                             lr_factor=HYBRID_CGE_LR_FACTOR, decay=HYBRID_SIGN_DECAY,
                             drop_after=drop_after, drop_factor=HYBRID_DROP_FACTOR,
                             switch_after=HYBRID_SIGN_EPOCHS, coordinate_skip=HYBRID_CGE_SKIP)

    def step(self, net, X_t, y_t, w_t, scheduler):
        def step(batch):
            closure = BatchedLoss(net.module_, net._weighted_loss, X_t[batch], y_t[batch],
                                  w_t[batch])
            return net._optimizer.step(closure).item(), w_t[batch].sum().item()

        return step

    def scheduled(self):
        return False

    def callbacks(self, net, validation):
        if net._switch is None:
            return []
        monitor = ("valid_score", -1.0) if validation is not None else ("train_loss", 1.0)
        return [Monitor(net._switch.step, *monitor)]

    def record(self, net):
        net.n_loss_evaluations_ = net._optimizer.n_evaluations
        net.switched_at_ = None if net._switch is None else net._switch.switched_at

    def step_queries(self, net, batch, settings):
        # Every evaluation runs the batch through every device.
        estimator, skip = settings["zo_estimator"], 0.0
        if estimator == "hybrid":  # its costly phase: CGE skipping half the coordinates
            estimator, skip = "cge", HYBRID_CGE_SKIP
        dim = sum(p.numel() for p in net.module_.parameters() if p.requires_grad)
        return (n_evaluations(estimator, settings["zo_samples"], dim, coordinate_skip=skip)
                * batch * len(net._device_layers()))


class _TwinMode(TrainingMode):
    """A mode that models each device by a twin: nominal (the design) or calibrated."""

    def check_network(self, net, module):
        layers = [layer for layer in module.modules() if isinstance(layer, BlackBoxLayer)]
        if not layers:
            raise ValueError(f"training={self.name!r} needs a device in the network "
                             "(physical_layer, or a module with BlackBoxLayers)")
        return layers

    def twins(self, net, models):
        """``models`` (nominal twins, one per device layer), calibrated when ``twin=
        "calibrated"``; the calibration queries count as training queries of the fit."""
        if net.twin == "nominal":
            return models
        layers = net._device_layers()
        net._configure_device_layers()
        seeds = spawn_seeds(spawn_seeds(net._seed, 5)[4], len(layers))  # a fifth stream
        before = [layer.device_queries() for layer in layers]
        calibrated = [calibrate(layer.black_box, model, n_queries=net.calibration_queries,
                                params=layer.params.detach(), seed=seed,
                                query=layer.query_device).to(net._device)
                      for layer, model, seed in zip(layers, models, seeds, strict=True)]
        net.n_calibration_queries_ = sum(layer.device_queries() - b
                                         for layer, b in zip(layers, before, strict=True))
        return calibrated

    def prepare(self, net):
        return self.twins(net, self.nominal_twins(net))


class _CalibratedTwinMode(_TwinMode):
    """``training="calibrated_twin"``: train through twins with no device query, deploy on the
    devices, then optionally fine-tune in situ (the layers are built as "surrogate" for it)."""

    name = "calibrated_twin"

    def nominal_twins(self, net):
        models = []
        for layer in net._device_layers():
            if not callable(getattr(layer.black_box, "nominal_twin", None)):
                raise ValueError(f"training='calibrated_twin' needs a simulator of each device, "
                                 f"but {layer.black_box.name} has no nominal_twin(); calibrate "
                                 "your own twin with hybridnet.calibrate and train it with "
                                 "BlackBoxLayer.using, or use training='surrogate'")
            models.append(layer.black_box.nominal_twin())
        return models

    def fit(self, net, twins, X, y, sample_weight, validation, start, fingerprint):
        with contextlib.ExitStack() as stack:
            for layer, twin in zip(net._device_layers(), twins, strict=True):
                stack.enter_context(layer.using(twin))
            net._run(X, y, sample_weight, int(net.max_iter), validation=validation,
                     schedule=True, start=start)
        if net.fine_tune_iter:
            net._run(X, y, sample_weight, int(net.fine_tune_iter), validation=validation,
                     schedule=True, start=start, rate_factor=FINE_TUNE_LR_FACTOR)


class _PhysicsAwareMode(_TwinMode):
    """``training="physics_aware"``: each device layer answers from the device and takes its
    gradients from its twin (``BlackBoxLayer(training="physics_aware")``)."""

    name = "physics_aware"
    layer_training = "physics_aware"

    def check_network(self, net, module):
        for layer in super().check_network(net, module):
            if layer.training_mode != "physics_aware":
                raise ValueError(f"training='physics_aware' trains device layers built with "
                                 f"training='physics_aware', but a layer of module has "
                                 f"training={layer.training_mode!r}")

    def nominal_twins(self, net):
        return [layer.twin for layer in net._device_layers()]

    def fit(self, net, twins, X, y, sample_weight, validation, start, fingerprint):
        for layer, twin in zip(net._device_layers(), twins, strict=True):
            layer.set_twin(twin)
        super().fit(net, twins, X, y, sample_weight, validation, start, fingerprint)

    def callbacks(self, net, validation):
        if net.recalibrate_every is None:
            return []
        return [_Recalibration(net._device_layers(), int(net.recalibrate_every))]

    def step_queries(self, net, batch, settings):
        return None


class _Recalibration(Callback):
    """``recalibrate_every=K``: at the end of every K-th epoch, fit each device layer's twin to
    the forward measurements of that epoch's steps (:class:`~hybridnet.MeasurementLog`), with
    no device query, and train through the refitted twins from then on. The records of those
    epochs get ``twin_error_before`` and ``twin_error``, the largest over the layers of the
    relative RMS error of the twin on the epoch's measurements before and after the fit.

    The logs are emptied at every epoch's end, so a checkpoint (written after this callback)
    holds everything a resumed fit needs: the refitted twins are in the network's state."""

    def __init__(self, layers, every):
        self.layers, self.every = layers, every

    def on_train_begin(self, state):
        self.recording = contextlib.ExitStack()
        self.logs = [self.recording.enter_context(
            layer.recording(MeasurementLog(RECALIBRATION_SETTINGS))) for layer in self.layers]

    def on_epoch_end(self, state):
        record = state.history[-1]
        if record["epoch"] % self.every == 0 and all(len(log) for log in self.logs):
            before, after = [], []
            for layer, log in zip(self.layers, self.logs, strict=True):
                with warnings.catch_warnings():
                    # A twin that stays far from the chip warns that a network trained on it
                    # will not transfer; physics-aware training never deploys the twin, and
                    # the record keeps the error.
                    warnings.filterwarnings("ignore", message="calibrating", category=UserWarning)
                    twin = calibrate(layer.black_box, layer.twin, measurements=log,
                                     max_iter=RECALIBRATION_MAX_ITER)
                layer.set_twin(twin)
                before.append(twin.calibration_error_before)
                after.append(twin.calibration_error)
            record["twin_error_before"], record["twin_error"] = max(before), max(after)
        for log in self.logs:
            log.clear()

    def on_train_end(self, state):
        self.recording.close()


MODES = {mode.name: mode for mode in (_SurrogateMode(), _BackpropMode(), _BPFreeMode(),
                                      _CalibratedTwinMode(), _PhysicsAwareMode())}
TRAININGS = tuple(MODES)
