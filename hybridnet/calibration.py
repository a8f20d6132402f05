"""Calibrate a digital twin to a device: fit its hidden chip state to a few queries.

A simulator knows a chip's design but not its fabrication: the phase offsets of its heaters,
the losses of its MZIs. :func:`calibrate` measures the device at a few parameter settings
(system identification), fits the twin's hidden state (the buffers its
``calibration_buffers()`` names) to the answers by least squares through autograd, and returns
the calibrated twin. Training on that twin then costs no device queries; a short in-situ
fine-tune on the device can follow (``HybridNetClassifier(training="calibrated_twin")``). A twin
may design the queries and a staged start of the fit itself (``calibration_probes()``), as the
U Sigma V mesh does: its two meshes in series do not fit from random queries at large offsets.
"""

import copy
import numbers
import warnings

import torch
from torch.func import functional_call

from ._random import make_generator, randn, spawn_seeds
from .physical.base import BlackBox

# Relative RMS error on the calibration queries above which the fit is reported as failed: the
# simulated chips calibrate to 0.01-0.06 under 1 % detector noise, while a fit stuck in a local
# minimum stays near 0.5 (a 64 x 64 USVMesh at 0.3 rad from random queries), where a network
# trained on the twin scores at chance on the chip.
CALIBRATION_WARNING_ERROR = 0.1
# A loss (dB) that cannot be negative is fitted as r^2, r starting at the square root of the
# twin's value or of this floor, whichever is larger: r = 0 is a stationary point of r^2.
NONNEGATIVE_START = 0.01


def _check_twin(black_box, twin):
    for name, box in (("black_box", black_box), ("twin", twin)):
        if not isinstance(box, BlackBox):
            raise TypeError(f"{name} must be a hybridnet.physical.BlackBox, got "
                            f"{type(box).__name__}")
    if not callable(getattr(twin, "calibration_buffers", None)):
        raise TypeError(f"twin {twin.name} has no calibration_buffers() naming the hidden state "
                        "to fit; the simulated devices (MZIMesh, USVMesh, MRRBank, SLM) have "
                        "one")
    if not twin.differentiable:
        raise ValueError(f"twin {twin.name} is not differentiable, so it cannot be fitted")
    shapes = [(box.in_features, box.out_features, box.n_params) for box in (black_box, twin)]
    if shapes[0] != shapes[1]:
        raise ValueError(f"the twin must match the device: device (in, out, n_params) = "
                         f"{shapes[0]}, twin {shapes[1]}")


def _device_of(module):
    return next((buffer.device for buffer in module.buffers()), torch.device("cpu"))


STRATEGIES = ("auto", "probes", "random")


class MeasurementLog:
    """Device answers kept during training, for :func:`calibrate` to fit a twin from.

    :meth:`hybridnet.BlackBoxLayer.recording` adds the forward measurement of every
    physics-aware training step: the step's inputs, the device's parameter setting and its
    answers. The log keeps at most ``n_settings`` of them, evenly spaced over the steps seen:
    once full it drops every other record and keeps only every second step from then on, so
    however long it records it holds settings spread over the whole period, at a memory cost
    of ``n_settings`` batches. Recalibrating from it spends no device query
    (``HybridNetClassifier(training="physics_aware", recalibrate_every=K)``).

    Parameters
    ----------
    n_settings : int, default=8
        Settings (training steps) to keep, at least 1.

    Attributes
    ----------
    n_seen : int
        Measurements offered so far.
    stride : int
        Steps between two kept records.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.calibration import MeasurementLog
    >>> log = MeasurementLog(n_settings=4)
    >>> for step in range(10):
    ...     log.add(torch.randn(5, 3), torch.full((2,), float(step)), torch.randn(5, 3))
    >>> len(log), log.stride, log.tensors()[1][:, 0].tolist()  # steps 0, 4 and 8
    (3, 4, [0.0, 4.0, 8.0])
    """

    def __init__(self, n_settings=8):
        if isinstance(n_settings, bool) or not isinstance(n_settings, numbers.Integral) \
                or n_settings < 1:
            raise ValueError(f"n_settings must be an int >= 1, got {n_settings!r}")
        self.n_settings = int(n_settings)
        self.clear()

    def __len__(self):
        return len(self.records)

    def clear(self):
        """Forget every record, as a new log."""
        self.n_seen, self.stride, self.records = 0, 1, []

    def add(self, x, params, answers):
        """Offer one measurement: inputs (B, in), the setting (n_params,), answers (B, out).

        Copies are kept: the parameters move in place after the step."""
        if self.n_seen % self.stride == 0:
            self.records.append(tuple(t.detach().clone() for t in (x, params, answers)))
            if len(self.records) > self.n_settings:
                self.records = self.records[::2]
                self.stride *= 2
        self.n_seen += 1

    def tensors(self):
        """The kept records as ``(inputs (S, B, in), settings (S, n_params), answers (S, B,
        out))``, :func:`calibrate`'s ``measurements``; records of a smaller batch than the
        largest (an epoch's last, partial batch) are left out."""
        if not self.records:
            raise ValueError("the MeasurementLog holds no measurement: record a training "
                             "step first (BlackBoxLayer.recording)")
        batch = max(x.shape[0] for x, _, _ in self.records)
        kept = [record for record in self.records if record[0].shape[0] == batch]
        return tuple(torch.stack(parts) for parts in zip(*kept, strict=True))


def _measured(measurements, twin):
    """``measurements`` (a :class:`MeasurementLog` or a tuple) as float64 tensors, checked."""
    if isinstance(measurements, MeasurementLog):
        measurements = measurements.tensors()
    if not (isinstance(measurements, tuple | list) and len(measurements) == 3
            and all(isinstance(t, torch.Tensor) for t in measurements)):
        raise TypeError("measurements must be a MeasurementLog or a tuple of three tensors "
                        "(inputs, settings, answers)")
    inputs, settings, answers = (t.detach().to(torch.float64) for t in measurements)
    if settings.dim() != 2 or settings.shape[1] != twin.n_params:
        raise ValueError(f"measurements: settings must have shape (S, {twin.n_params}), got "
                         f"{tuple(settings.shape)}")
    count = settings.shape[0]
    if inputs.dim() != 3 or inputs.shape[0] != count or inputs.shape[2] != twin.in_features:
        raise ValueError(f"measurements: inputs must have shape ({count}, B, "
                         f"{twin.in_features}) for {count} settings, got {tuple(inputs.shape)}")
    if answers.shape != (count, inputs.shape[1], twin.out_features):
        raise ValueError(f"measurements: answers must have shape ({count}, {inputs.shape[1]}, "
                         f"{twin.out_features}), got {tuple(answers.shape)}")
    for name, tensor in (("inputs", inputs), ("settings", settings), ("answers", answers)):
        if not torch.isfinite(tensor).all():
            raise ValueError(f"measurements: {name} holds NaN or infinite values")
    return inputs, settings, answers


def _query(black_box, twin, fitted, n_queries, n_settings, params, seed, query, strategy):
    """Query the device for a calibration: ``(inputs, settings, answers, stages, strategy)``
    in float64 (see :func:`calibrate`)."""
    setting_seed, input_seed = spawn_seeds(seed, 2)
    setting_generator = make_generator(setting_seed)
    settings = [twin.initial_params(setting_generator) for _ in range(n_settings)]
    if params is not None:
        params = torch.as_tensor(params).detach().cpu()
        if params.shape != (twin.n_params,):
            raise ValueError(f"params must have shape ({twin.n_params},), got "
                             f"{tuple(params.shape)}")
        settings[0] = params
    settings = torch.stack(settings).to(torch.float64)
    chip_device, twin_device = _device_of(black_box), _device_of(twin)
    probes = None
    if strategy != "random" and n_queries is None and callable(
            getattr(fitted, "calibration_probes", None)):
        probes = fitted.calibration_probes(settings.to(twin_device), make_generator(input_seed))
    if strategy == "probes" and probes is None:
        raise ValueError(f"strategy='probes' needs n_queries=None and a twin whose "
                         f"calibration_probes() offers probes for its shape; {twin.name} "
                         f"({twin.in_features} -> {twin.out_features}) does not")
    if probes is None:
        batch = (n_settings * black_box.in_features if n_queries is None
                 else int(n_queries)) // n_settings
        inputs = randn((n_settings, batch, twin.in_features), make_generator(input_seed),
                       dtype=torch.float64, device="cpu")
    else:
        inputs, settings, make_stages = probes
    with torch.no_grad():
        answers = (black_box if query is None else query)(
            inputs.to(chip_device), settings.to(chip_device))
    answers = answers.to(twin_device, torch.float64)
    stages = [] if probes is None else make_stages(answers)
    return inputs, settings, answers, stages, "random" if probes is None else "probes"


def calibrate(black_box, twin, n_queries=None, *, n_settings=8, params=None, max_iter=300,
              seed=None, query=None, strategy="auto", measurements=None):
    """Fit ``twin``'s hidden state to queries of ``black_box``.

    The device is queried once, at ``n_settings`` parameter settings (``params`` first when
    given, the others drawn from ``twin.initial_params``). A copy of the twin, in float64, then
    fits the buffers its ``calibration_buffers()`` names (phase offsets; MZI losses) to minimise
    the relative squared error of its answers by L-BFGS, starting from the twin's values.

    Two designs of the queries (``strategy``):

    - "random": ``n_queries // n_settings`` Gaussian inputs at each setting, and the fit above.
    - "probes": the queries and a staged start that the twin designs for itself, through
      its ``calibration_probes(settings, generator)`` method (see
      :meth:`~hybridnet.physical.USVMesh.calibration_probes`): it returns the inputs and the
      settings to query (built around the ``n_settings`` settings) and a function that turns
      the answers into stages, ``(loss, max_iter, move)``: ``loss``, a function of the
      buffers' values, is minimised by L-BFGS for up to ``max_iter`` iterations, then
      ``move(values)``, when not None, gives the values to go on from (a step L-BFGS cannot
      take, such as folding an MZI's phase back by pi). The fit above then follows on all the
      answers.

    A :class:`~hybridnet.physical.USVMesh`, two meshes in series, needs its probes at large
    offsets. On a 64 x 64 chip with 0.3 rad offsets, 0.2 dB +- 0.05 dB losses and 1 % detector
    noise (chip seeds 0, 1, 2; ``benchmarks/usv_calibration.py``), random queries leave the fit
    in a local minimum: relative error 0.47, 0.47 and 0.48 on the calibration queries and 1.31,
    1.29 and 1.32 at fresh settings (the nominal twin: 1.44, 1.39 and 1.40) from 512 queries,
    0.56, 0.56 and 0.57 and 1.24, 1.24 and 1.25 from 2,048. Its probes read each mesh apart,
    and each alone fits: 0.0098, 0.0117 and 0.0098 on the calibration queries (the detector
    noise is 0.01) and 0.0050, 0.0137 and 0.0047 at fresh settings, from 2,048 queries, in
    5-6 minutes on one thread (45 s for the random queries).

    The buffers its ``nonnegative_buffers()`` names (MZI losses in dB: an MZI cannot amplify)
    are fitted as squares ``r^2``, so they stay at or above 0 and one the data would push below
    settles at exactly 0. Unconstrained, detector noise made some losses negative: on an
    8-mode mesh (28 MZIs, 0.1 +- 0.05 dB, 0.2 rad offsets, 2 % detector noise, chip seeds 0
    and 1) 3 and 1 MZIs fitted below 0 dB (down to -0.11 dB); fitted as squares, none, and the
    twin's error at fresh settings stayed 0.019 and 0.009. The losses of a lossless design's
    twin (all 0 dB) start at 0.01 dB: an all-zero start never moved, and on the same chips
    with 0 +- 0.05 dB losses that error fell from 0.029 and 0.021 to 0.015 and 0.008.

    Parameters
    ----------
    black_box : BlackBox
        The device (a real chip, or a simulated one with fabrication error).
    twin : BlackBox
        Its simulator, usually ``black_box.nominal_twin()``; left unchanged.
    n_queries : int, optional
        Input vectors to spend on the device with random queries; default ``n_settings *
        in_features`` (as many as reading the whole matrix at every setting). At least
        ``n_settings``. The probes set their own count (a USVMesh's: ``4 * n_settings *
        in_features``), so they are used only when it is None.
    n_settings : int, default=8
        Parameter settings to measure at: several settings tell the offsets apart from the
        commanded phases. On a 64 x 64 MZI mesh with 0.3 rad offsets the calibrated twin's
        error at fresh settings was 0.58 with 4 settings, 0.061 with 8 and 0.057 with 16
        (nominal twin: 1.31).
    params : torch.Tensor, optional
        A setting to include (the network's current device parameters): the twin is then
        exact where training starts.
    max_iter : int, default=300
        L-BFGS iterations of the fit of all the answers (the probes' stages set their own).
    seed : int, optional
        Seed of the settings and inputs.
    query : callable, optional
        ``query(x, params)``, how to call the device; default ``black_box`` itself
        (:class:`~hybridnet.BlackBoxLayer` passes its retrying ``query_device``).
    strategy : {"auto", "probes", "random"}, default="auto"
        "auto" uses the twin's probes when it has them (and offers them for its shape) and
        ``n_queries`` is None, random queries otherwise.
    measurements : MeasurementLog or tuple of torch.Tensor, optional
        Answers the device already gave, to fit instead of querying it: a
        :class:`MeasurementLog` kept during training, or ``(inputs, settings, answers)`` of
        shapes (S, B, in_features), (S, n_params) and (S, B, out_features). No device query is
        made (``n_queries``, ``params`` and ``query`` are then refused, and ``n_settings``,
        ``seed`` and ``strategy`` unused); the fit starts from ``twin``'s state, so a twin
        calibrated earlier follows a drifting chip from the queries of training.

    Returns
    -------
    BlackBox
        The calibrated twin, with attributes ``calibration_queries`` (device queries spent),
        ``calibration_strategy`` ("probes", "random" or "measurements"),
        ``calibration_error_before`` and
        ``calibration_error`` (relative RMS error of the twin's answers on the calibration
        queries before and after the fit).

    Warns
    -----
    UserWarning
        When ``calibration_error`` stays above 0.1: the fit is stuck in a local minimum
        (simulated chips reach 0.01-0.06 under 1 % detector noise), as that of a 64 x 64
        :class:`~hybridnet.physical.USVMesh` with 0.3 rad offsets is with random queries.

    Examples
    --------
    >>> from hybridnet import calibrate
    >>> from hybridnet.physical import MZIMesh
    >>> chip = MZIMesh(6, 6, fabrication_error=0.2, seed=0)
    >>> twin = calibrate(chip, chip.nominal_twin(), seed=0)
    >>> twin.calibration_queries, twin.calibration_error < 0.01 < twin.calibration_error_before
    (48, True)
    """
    _check_twin(black_box, twin)
    for name, value, minimum in (("n_settings", n_settings, 1), ("max_iter", max_iter, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if n_queries is not None and (isinstance(n_queries, bool)
                                  or not isinstance(n_queries, numbers.Integral)
                                  or n_queries < n_settings):
        raise ValueError(f"n_queries must be an int >= n_settings={n_settings}, got "
                         f"{n_queries!r}")
    fitted = copy.deepcopy(twin).double()
    twin_device = _device_of(twin)
    if measurements is None:
        inputs, settings, answers, stages, used = _query(
            black_box, twin, fitted, n_queries, n_settings, params, seed, query, strategy)
    else:
        given = [name for name, value in (("n_queries", n_queries), ("params", params),
                                          ("query", query)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} would be ignored: calibrating from "
                             "measurements queries no device")
        inputs, settings, answers = _measured(measurements, twin)
        stages, used = [], "measurements"
    inputs, settings, answers = (t.to(twin_device) for t in (inputs, settings, answers))

    names = list(fitted.calibration_buffers())
    nonnegative = set(getattr(fitted, "nonnegative_buffers", list)())
    buffers = dict(fitted.named_buffers())
    # What L-BFGS moves: the buffers themselves, or the square roots of the nonnegative ones.
    variables = {}
    for name in names:
        start = buffers[name].detach().clone()
        if name in nonnegative:
            start = start.clamp(min=NONNEGATIVE_START).sqrt()
        variables[name] = start.requires_grad_(True)

    def values():
        return {name: variables[name].square() if name in nonnegative else variables[name]
                for name in names}

    scale = answers.square().mean()

    def relative_error(buffer_values):
        predicted = functional_call(fitted, buffer_values, (inputs, settings))
        return (predicted - answers).square().mean() / scale

    with torch.no_grad():
        before = float(relative_error({}).sqrt())  # the twin's own buffers
    for loss, iterations, move in [*stages, (relative_error, max_iter, None)]:
        optimizer = torch.optim.LBFGS(list(variables.values()), max_iter=iterations,
                                      line_search_fn="strong_wolfe")

        def closure(loss=loss, optimizer=optimizer):
            optimizer.zero_grad()
            value = loss(values())
            value.backward()
            return value

        optimizer.step(closure)
        if move is not None:
            with torch.no_grad():
                for name, value in move(values()).items():
                    variables[name].copy_(value.sqrt() if name in nonnegative else value)
    with torch.no_grad():
        after = float(relative_error(values()).sqrt())
        for name, value in values().items():
            buffers[name].copy_(value)
    if after > CALIBRATION_WARNING_ERROR:
        warnings.warn(f"calibrating {twin.name} left a relative error of {after:.2f} on the "
                      f"calibration queries (before: {before:.2f}); the fit is stuck and a "
                      "network trained on this twin will not transfer to the device. Measure "
                      "more settings (n_settings), or train in situ", UserWarning, stacklevel=2)
    calibrated = fitted.to(dict(twin.named_buffers())[names[0]].dtype)  # the twin's dtype
    calibrated.reset_counters()
    calibrated.calibration_queries = 0 if used == "measurements" else (
        inputs.shape[0] * inputs.shape[1])
    calibrated.calibration_strategy = used
    calibrated.calibration_error_before = before
    calibrated.calibration_error = after
    return calibrated
