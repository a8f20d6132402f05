"""``BlackBoxLayer``: a torch module that trains a black-box device inside a network.

Forward queries the device. Backward needs two gradients the device cannot give:

- the input gradient ``dL/dx``: for a device linear in x, through the low-rank surrogate
  ``U S V`` of :mod:`hybridnet.surrogate`; for a device that is not, per sample, either by a
  forward-difference Jacobian (``"jacobian"``: ``batch x in_features`` extra queries, exact up to
  O(mu)) or by a zeroth-order vector-Jacobian product (``"zo"``: ``batch x zo_samples`` queries,
  unbiased but noisy). One shared linear surrogate points gradients the wrong way when the
  Jacobian changes from sample to sample, so it is never used for such devices.
- the parameter gradient ``dL/dw``: the zeroth-order estimate (:mod:`hybridnet.zeroth_order`) of
  the gradient of ``phi(w) = sum_i <G_i, f(x_i, w)>`` with the upstream gradient G held fixed,
  every perturbation of the step evaluated in one device request. For a linear device ``f(x, w)
  = A(w) x``, ``phi(w) = <A(w), K>`` with ``K = G^T X`` (m x n), so the device need not see the
  batch (batch compression): the rows of K serve when m < B, or, when K's rank is lower still,
  its top ``zo_batch_rank`` directions: with Q (m x q) an orthonormal basis of K's dominant
  column space (a randomized range finder with one power iteration), ``phi(w) ~ <A(w), Q Q^T K>
  = sum_l <q_l, f(K^T q_l, w)>``, q queries per perturbation instead of B. The upstream gradient
  G of a classifier has about the rank of the class count, so K's energy sits in a few
  directions. ``phi`` at the unperturbed ``w`` comes from the forward pass's output, with no
  query: ``<A, Q Q^T K> = trace(Q^T G^T Y Q)``.

``training="physics_aware"`` (Wright et al., Nature 601, 549-555, 2022) takes both from a
differentiable model of the device instead: the forward pass is the device's answer, the
backward pass the vector-Jacobian product of the ``twin`` at the same inputs and parameters, so
the loss sees what the chip really does while the twin only supplies the direction.

The device parameters are an ordinary ``nn.Parameter``, so any torch optimizer, ``state_dict``,
pickling and ``nn.Sequential`` work.
"""

import contextlib
import math
import numbers
import threading
import time

import torch
from torch import nn

from ._random import make_generator, randn, spawn_seeds
from .calibration import MeasurementLog
from .physical.base import BlackBox, BlackBoxError, DeviceTimeoutError, _coordinate_settings
from .surrogate import UPDATES, LowRankSurrogate
from .zeroth_order import DISTRIBUTIONS, ESTIMATORS, zo_gradient

TRAININGS = ("surrogate", "backprop", "digital", "physics_aware")
INPUT_GRADIENTS = ("auto", "surrogate", "jacobian", "zo")
DEFAULT_SURROGATE_RANK = 10


def detect_linearity(black_box, params, generator, rtol=1e-3, query=None):
    """Test with five queries whether ``black_box`` is linear in its input at ``params``.

    Checks additivity ``f(x1 + x2) = f(x1) + f(x2)`` and homogeneity ``f(2.5 x1) = 2.5 f(x1)``
    on random inputs, with a tolerance of ``rtol`` times the output scale plus ten times the
    spread of a repeated query (so that detector noise is not mistaken for non-linearity).

    Parameters
    ----------
    black_box : BlackBox
        The device.
    params : torch.Tensor
        Its parameters (n_params,).
    generator : torch.Generator
        Source of the random inputs.
    rtol : float, default=1e-3
        Relative tolerance.
    query : callable, optional
        ``query(x, params)``, how to call the device; default ``black_box`` itself
        (:class:`BlackBoxLayer` passes its retrying query).

    Returns
    -------
    bool

    Examples
    --------
    >>> import torch
    >>> from hybridnet.layers import detect_linearity
    >>> from hybridnet.physical import MZIMesh
    >>> generator = torch.Generator().manual_seed(0)
    >>> coherent = MZIMesh(4, 4, seed=0)  # reads Re(U x): linear in x
    >>> detect_linearity(coherent, coherent.initial_params(generator), generator)
    True
    >>> coherent.n_queries  # five input vectors, one device call
    5
    >>> intensity = MZIMesh(4, 4, output="intensity", seed=0)  # reads |U x|^2
    >>> detect_linearity(intensity, intensity.initial_params(generator), generator)
    False
    """
    x1, x2 = randn((2, black_box.in_features), generator, dtype=params.dtype,
                   device=params.device)
    query = black_box if query is None else query
    out = query(torch.stack([x1, x2, x1 + x2, 2.5 * x1, x1]), params)
    tolerance = rtol * out.abs().max() + 10 * (out[4] - out[0]).abs().max() + 1e-12
    additive = (out[2] - out[0] - out[1]).abs().max() <= tolerance
    homogeneous = (out[3] - 2.5 * out[0]).abs().max() <= tolerance
    return bool(additive and homogeneous)


# zo_smoothing="auto": the floor (a clean device) and the factors of the rule in auto_smoothing.
SMOOTHING_FLOOR = 1e-3
PARAMETER_NOISE_FACTOR = 3.0
OUTPUT_NOISE_FACTOR = 0.3


def auto_smoothing(black_box):
    """The zeroth-order step ``zo_smoothing="auto"`` picks for ``black_box``.

    ``mu = max(1e-3, delta, 3 sigma_w, 0.3 sqrt(sigma_y))``, capped at the device's
    ``max_smoothing`` (never below 1e-3), from what the device declares: its DAC level
    ``delta = parameter_resolution`` (a step under one level mostly rounds to no change at all),
    its parameter noise ``sigma_w`` and its relative output noise ``sigma_y`` (a forward
    difference of noisy values balances its O(mu) bias against an O(sigma_y / mu) noise term).
    The factors come from the measured cosines of one M = 10 estimate with the true gradient
    on 64-wide MZI, MRR and SLM devices (``benchmarks/zo_smoothing.py``, doc/engine.md).

    Parameters
    ----------
    black_box : BlackBox
        The device.

    Returns
    -------
    float

    Examples
    --------
    >>> from hybridnet.layers import auto_smoothing
    >>> from hybridnet.physical import MZIMesh
    >>> auto_smoothing(MZIMesh(8, 8)), round(auto_smoothing(MZIMesh(8, 8, phase_bits=8)), 4)
    (0.001, 0.0245)
    """
    resolution = black_box.parameter_resolution or 0.0
    step = max(SMOOTHING_FLOOR, resolution, PARAMETER_NOISE_FACTOR * black_box.parameter_noise,
               OUTPUT_NOISE_FACTOR * math.sqrt(black_box.output_noise))
    if black_box.max_smoothing is not None:
        step = max(SMOOTHING_FLOOR, min(step, black_box.max_smoothing))
    return float(step)


class _BlackBoxFunction(torch.autograd.Function):
    """Forward: one device query. Backward: surrogate or per-sample input gradient, ZO params.

    The ``vmap`` rule lets ``torch.vmap`` (with ``torch.func.functional_call``) evaluate a
    network at many parameter points at once: the device then receives every setting in one
    request instead of one call per point.
    """

    @staticmethod
    def forward(x, params, layer):
        return layer.query_device(x, params)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, params, layer = inputs
        ctx.layer = layer
        ctx.save_for_backward(x, params, output)

    @staticmethod
    def backward(ctx, grad_output):
        layer = ctx.layer
        x, params, y = ctx.saved_tensors
        grad_x = grad_params = None
        if ctx.needs_input_grad[0]:
            grad_x = layer._input_gradient(x, params, y, grad_output)
        if ctx.needs_input_grad[1]:
            grad_params = layer._params_gradient(x, params, y, grad_output)
        return grad_x, grad_params, None

    @staticmethod
    def vmap(info, in_dims, x, params, layer):
        x_dim, params_dim, _ = in_dims
        if params_dim is None:  # one setting, a stack of batches: one bigger batch
            x = x.movedim(x_dim, 0)
            y = layer.query_device(x.reshape(-1, x.shape[-1]), params)
            return y.reshape(*x.shape[:-1], layer.out_features), 0
        params = params.movedim(params_dim, 0)
        if x_dim is not None:
            x = x.movedim(x_dim, 0)
        return layer.query_device(x, params), 0


def _zo_batch_vectors(batch, in_features, out_features, zo_batch_rank):
    """Input vectors per zeroth-order evaluation of a linear device under batch compression:
    ``min(batch, in_features, out_features, zo_batch_rank)`` (None: no rank cap)."""
    exact = min(batch, in_features, out_features)
    return exact if zo_batch_rank is None else min(zo_batch_rank, exact)


def _check_int(name, value, minimum=1):
    """``value`` as a Python int (numpy integers accepted) if it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_positive(name, value, allow_none=False):
    """``value`` as a float if it is a finite number > 0 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 < value < math.inf):
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a finite number > 0{none}, got {value!r}")
    return float(value)


class BlackBoxLayer(nn.Module):
    """A network layer whose forward pass is a black-box device.

    Parameters
    ----------
    black_box : BlackBox
        The device (``MZIMesh``, ``MRRBank``, ``SLM``, ``FunctionBlackBox``, ...).
    training : {"surrogate", "backprop", "digital", "physics_aware"}, default="surrogate"
        How the layer trains. "surrogate": in situ, from queries only (surrogate input gradient,
        zeroth-order parameter gradient). "backprop": exact autograd through the simulator, the
        digital-twin upper bound only a simulator allows (refused for a device that autograd
        cannot differentiate). "digital": the device is replaced by a plain trainable
        linear map of the same shape, the all-digital baseline. "physics_aware": the forward
        pass queries the device, the backward pass is the vector-Jacobian product of ``twin``
        (for the inputs and the parameters), with no further device query.
    surrogate_rank : int, optional
        Rank r of the surrogate, at most ``min(in_features, out_features)`` (a larger one is
        refused). Default: 10, or that minimum for a narrower device.
    surrogate_init : {"svd", "randomized"}, default="svd"
        Surrogate initialisation: full query plus truncated SVD (in_features queries), or a
        randomized range finder (fewer queries for wide layers, see
        :mod:`hybridnet.surrogate`).
    surrogate_probes : int, optional
        Gaussian probes per surrogate update; default ``max(surrogate_rank, 32)``.
    surrogate_update_every : int, default=4
        Bring the surrogate up to date only on every k-th training step that moved the
        parameters; in between, input gradients come from a surrogate up to k - 1 steps old.
        Saves (k - 1) / k of the surrogate's queries; the device moves little per step.
    surrogate_rebuild_every : int or None, default=10
        Rebuild an integrator-updated surrogate (``surrogate_update="psi"``) from scratch every
        this many updates, which bounds its drift; None never does. Training a 128-wide MZI
        in situ on digits, the rank-10 surrogate's error rose from 0.93 to 1.00 over 54
        updates (best rank-10 error 0.92); every 10 updates it stayed at 0.93 on average (at
        most 0.97) for 9 % more surrogate queries (``benchmarks/surrogate_drift.py``).
    surrogate_update : {"auto", "psi", "requery"}, default="auto"
        How the surrogate follows the device after each step: the projector-splitting
        integrator (2 (r + M) queries), a full re-query and SVD (in_features queries, exact), or
        "auto", whichever costs fewer queries (see :mod:`hybridnet.surrogate`).
    zo_estimator : {"rge", "central_rge", "sign_rge", "cge"}, default="rge"
        Zeroth-order estimator of the device parameters' gradient.
    zo_samples : int, default=10
        Random directions per step (also the per-sample count of ``input_gradient="zo"``).
    zo_smoothing : float or "auto", default="auto"
        Finite-difference step (radians for phases; a float is also the input step of the
        per-sample input gradients). "auto" derives it from the device's declared phase
        quantization and noise (:func:`~hybridnet.layers.auto_smoothing`: 1e-3 on a clean
        device, about one DAC level on a quantized one, larger under noise) and takes ``max(1e-3,
        0.3 sqrt(output_noise))`` as the input step.
    zo_distribution : {"gaussian", "sphere", "rademacher"}, default="gaussian"
        Law of the random directions.
    input_gradient : {"auto", "surrogate", "jacobian", "zo"}, default="auto"
        How ``dL/dx`` is computed. "auto": the surrogate for a device linear in x, the
        per-sample Jacobian otherwise. Linearity comes from ``black_box.linear``, or is
        detected with five queries when that is None.
    batch_compression : bool, default=True
        For linear devices, let the zeroth-order step query the device with ``G^T X`` (its
        rows, or its top ``zo_batch_rank`` directions) instead of the batch when that is fewer
        queries. Turn off for a device that only accepts inputs like the training data (for
        example non-negative intensities).
    zo_batch_rank : int or None, default=16
        With batch compression, query at most this many directions of ``G^T X`` per
        perturbation (the dominant ones, found by a randomized range finder). None keeps all
        ``min(batch, in_features, out_features)``: the exact objective. For a 10-class
        classifier the top 16 directions hold over 99 % of ``G^T X``'s energy, for a quarter of
        the queries of a 64-wide layer.
    device_retries : int, default=2
        How many times a device call that fails (the device raises, returns NaN / inf or the
        wrong shape, or times out) is repeated, with the same inputs and parameters, before the
        failure ends training as a :class:`~hybridnet.physical.BlackBoxError`. A request with
        more parameter settings than the device takes per call (its ``settings_per_call``: a
        driver that takes one at a time) is split into calls, each retried on its own. Before a
        retry the device's noise stream is rewound
        (:meth:`~hybridnet.physical.BlackBox.noise_state`), so a failed call shifts no later
        draw. With a transient failure rate p per call, a run of n calls fails with
        probability about ``n p^(device_retries + 1)``.
    device_timeout : float, optional
        Seconds one device call may take; a call that takes longer counts as failed
        (:class:`~hybridnet.physical.DeviceTimeoutError`) and is retried. No call is ever left
        running: a device that can cancel a call (``black_box.cancellable``, e.g.
        ``FunctionBlackBox(..., cancel=abort)``) is called in a worker thread and, once the
        time is up, cancelled and waited for; any other device is called in the calling
        thread, waited for however long it takes, and its late answer discarded. None waits
        for ever.
    seed : int, optional
        Root seed of the layer's random streams (initial parameters, surrogate probes,
        zeroth-order directions: three independent streams derived from it); None draws one
        from torch's global RNG.
    twin : BlackBox, optional
        The differentiable model of the device that ``training="physics_aware"`` takes its
        gradients from: a simulator of the same shape and parameter count (a calibrated one,
        :func:`hybridnet.calibrate`, for a chip that differs from its design). Default: the
        device's ``nominal_twin()``. Only used with ``training="physics_aware"``.

    Attributes
    ----------
    params : torch.nn.Parameter
        The device parameters (absent when ``training="digital"``).
    zo_smoothing, input_smoothing : float
        The zeroth-order step of the parameters and of the inputs ("auto" resolved).
    weight : torch.nn.Parameter
        The digital stand-in's matrix (only when ``training="digital"``).
    surrogate : LowRankSurrogate or None
        The input-gradient surrogate of ``training="surrogate"`` (built on the first training
        step that needs it).
    linear : bool or None
        Whether the device is linear in x (None until known).
    n_device_retries : int
        Failed device calls that were retried so far.
    twin : BlackBox or None
        The model of ``training="physics_aware"`` (a submodule, so its calibrated state is
        in ``state_dict``); None in the other modes.

    Inputs may have any leading shape, ``(..., in_features)`` as for ``nn.Linear``: a
    transformer's (batch, time, features) is pushed through the device as batch x time
    vectors, each counted as one query, and the surrogate and the zeroth-order estimate work
    on that flattened batch (``zo_batch_rank`` keeps the estimate's queries per perturbation
    at 16 however many vectors there are).

    Examples
    --------
    >>> import torch
    >>> from hybridnet import BlackBoxLayer
    >>> from hybridnet.physical import MRRBank
    >>> layer = BlackBoxLayer(MRRBank(8, 4, seed=0), surrogate_rank=4, seed=0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), layer, torch.nn.Linear(4, 2))
    >>> loss = model(torch.randn(16, 3)).square().mean()
    >>> loss.backward()
    >>> layer.params.grad.shape
    torch.Size([32])
    """

    def __init__(self, black_box, training="surrogate", surrogate_rank=None, *,
                 surrogate_init="svd", surrogate_probes=None, surrogate_update_every=4,
                 surrogate_rebuild_every=10,
                 surrogate_update="auto", zo_estimator="rge", zo_samples=10, zo_smoothing="auto",
                 zo_distribution="gaussian", input_gradient="auto", batch_compression=True,
                 zo_batch_rank=16, device_retries=2, device_timeout=None, seed=None,
                 twin=None):
        super().__init__()
        if not isinstance(black_box, BlackBox):
            raise TypeError("black_box must be a hybridnet.physical.BlackBox (wrap a plain "
                            f"callable in FunctionBlackBox), got {type(black_box).__name__}")
        for name, value, allowed in (("training", training, TRAININGS),
                                     ("surrogate_update", surrogate_update, UPDATES),
                                     ("zo_estimator", zo_estimator, ESTIMATORS),
                                     ("zo_distribution", zo_distribution, DISTRIBUTIONS),
                                     ("input_gradient", input_gradient, INPUT_GRADIENTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if surrogate_rank is None:
            surrogate_rank = min(DEFAULT_SURROGATE_RANK, black_box.in_features,
                                 black_box.out_features)
        surrogate_rank = _check_int("surrogate_rank", surrogate_rank)
        zo_samples = _check_int("zo_samples", zo_samples)
        if zo_batch_rank is not None:
            zo_batch_rank = _check_int("zo_batch_rank", zo_batch_rank)
        if surrogate_probes is not None:
            surrogate_probes = _check_int("surrogate_probes", surrogate_probes)
        surrogate_update_every = _check_int("surrogate_update_every", surrogate_update_every)
        if surrogate_rebuild_every is not None:
            surrogate_rebuild_every = _check_int("surrogate_rebuild_every",
                                                 surrogate_rebuild_every)
        if isinstance(zo_smoothing, str) and zo_smoothing == "auto":
            zo_smoothing = auto_smoothing(black_box)
            # The inputs pass no DAC: only the output noise sets their step.
            input_smoothing = max(SMOOTHING_FLOOR,
                                  OUTPUT_NOISE_FACTOR * math.sqrt(black_box.output_noise))
        else:
            zo_smoothing = input_smoothing = _check_positive("zo_smoothing", zo_smoothing)
        self.device_retries = _check_int("device_retries", device_retries, minimum=0)
        self.device_timeout = _check_positive("device_timeout", device_timeout, allow_none=True)
        self.n_device_retries = 0
        if training == "backprop" and not black_box.differentiable:
            raise ValueError(f"training='backprop' needs a differentiable simulator, but "
                             f"{black_box.name} is not (a numpy FunctionBlackBox, or a real "
                             "device); use training='surrogate'")
        if twin is not None and training != "physics_aware":
            raise ValueError(f"twin is only used with training='physics_aware', not "
                             f"training={training!r}")
        if training == "physics_aware" and twin is None:
            if not callable(getattr(black_box, "nominal_twin", None)):
                raise ValueError(f"training='physics_aware' needs a differentiable model of the "
                                 f"device, but {black_box.name} has no nominal_twin(); pass "
                                 "twin=<a simulator of it>")
            twin = black_box.nominal_twin()
        self.black_box = black_box
        self.training_mode = training
        self.in_features, self.out_features = black_box.in_features, black_box.out_features
        self.twin = None
        if twin is not None:
            self.set_twin(twin)
        self.zo_estimator = zo_estimator
        self.zo_samples = zo_samples
        self.zo_smoothing = zo_smoothing
        self.input_smoothing = input_smoothing
        self.zo_distribution = zo_distribution
        self.input_gradient = input_gradient
        self.batch_compression = batch_compression
        self.zo_batch_rank = zo_batch_rank
        init_seed, probe_seed, direction_seed = spawn_seeds(seed, 3)
        # The zeroth-order directions (and the other draws made while training).
        self.generator = make_generator(direction_seed)
        self.linear = black_box.linear
        init_generator = make_generator(init_seed)
        if training == "digital":
            bound = 1 / math.sqrt(self.in_features)
            weight = (torch.rand(self.out_features, self.in_features, generator=init_generator)
                      * 2 - 1) * bound
            self.weight = nn.Parameter(weight)
        else:
            init = black_box.initial_params(init_generator).to(torch.get_default_dtype())
            self.params = nn.Parameter(init)
        self.surrogate = None
        if training == "surrogate":
            self.surrogate = LowRankSurrogate(
                self.in_features, self.out_features, surrogate_rank, n_probes=surrogate_probes,
                init=surrogate_init, rebuild_every=surrogate_rebuild_every,
                update=surrogate_update, generator=make_generator(probe_seed))
            self.surrogate_update_every = surrogate_update_every
            # The parameters the surrogate was last brought up to date with, those of the last
            # sync call, and the steps taken since the surrogate was.
            self.register_buffer("surrogate_params", torch.zeros(black_box.n_params))
            self.register_buffer("seen_params", torch.zeros(black_box.n_params))
            self.stale_steps = 0

    @contextlib.contextmanager
    def using(self, black_box, training="backprop"):
        """Run the layer on another device, say a calibrated twin, inside a ``with`` block.

        Inside the block the layer queries ``black_box`` and trains with ``training``
        ("backprop": autograd through a differentiable twin, no device query); on leaving it,
        the layer is back on its own device and training mode, with the parameters the block
        trained. The surrogate, if any, follows the device again on the next in-situ step.

        Parameters
        ----------
        black_box : BlackBox
            A device of the same shape and parameter count.
        training : {"backprop", "surrogate"}, default="backprop"
            How the layer trains inside the block.

        Examples
        --------
        >>> import torch
        >>> from hybridnet import BlackBoxLayer, calibrate
        >>> from hybridnet.physical import MZIMesh
        >>> chip = MZIMesh(4, 4, fabrication_error=0.3, seed=0)
        >>> layer = BlackBoxLayer(chip, seed=0)
        >>> twin = calibrate(chip, chip.nominal_twin(), params=layer.params, seed=0)
        >>> with layer.using(twin):
        ...     layer(torch.randn(8, 4)).square().sum().backward()
        >>> chip.n_queries == twin.calibration_queries  # the twin's training cost none
        True
        """
        self._check_like_device("black_box", black_box)
        if training not in ("backprop", "surrogate"):
            raise ValueError(f"training must be 'backprop' or 'surrogate', got {training!r}")
        if training == "surrogate" and self.surrogate is None:
            raise ValueError("training='surrogate' needs a layer built with training='surrogate'")
        if training == "backprop" and not black_box.differentiable:
            raise ValueError(f"training='backprop' needs a differentiable simulator, but "
                             f"{black_box.name} is not")
        saved = self.black_box, self.training_mode, self.linear
        # Kept outside nn.Module's registry: the layer's own device, whose queries count.
        self.__dict__["_own_device"] = saved[0]
        self.black_box, self.training_mode, self.linear = black_box, training, black_box.linear
        try:
            yield self
        finally:
            self.black_box, self.training_mode, self.linear = saved
            del self.__dict__["_own_device"]

    def _check_like_device(self, name, box):
        if not isinstance(box, BlackBox) or (
                (box.in_features, box.out_features, box.n_params)
                != (self.in_features, self.out_features, self.black_box.n_params)):
            raise ValueError(f"{name} must be a BlackBox of the layer's shape and parameter "
                             f"count ({self.in_features}, {self.out_features}, "
                             f"{self.black_box.n_params})")

    def set_twin(self, twin):
        """Take gradients from ``twin`` from now on (``training="physics_aware"``), say a
        twin calibrated during training.

        Parameters
        ----------
        twin : BlackBox
            A differentiable model of the device, of its shape and parameter count.

        Examples
        --------
        >>> from hybridnet import BlackBoxLayer, calibrate
        >>> from hybridnet.physical import MZIMesh
        >>> chip = MZIMesh(4, 4, fabrication_error=0.3, seed=0)
        >>> layer = BlackBoxLayer(chip, training="physics_aware", seed=0)  # nominal twin
        >>> layer.set_twin(calibrate(chip, layer.twin, params=layer.params, seed=0))
        >>> float(layer.twin.calibration_error) < 0.01
        True
        """
        self._check_like_device("twin", twin)
        if not twin.differentiable:
            raise ValueError(f"twin {twin.name} is not differentiable, so it cannot give "
                             "training='physics_aware' its gradients")
        self.twin = twin

    @contextlib.contextmanager
    def recording(self, log):
        """Keep the forward measurements of physics-aware training steps in ``log`` inside a
        ``with`` block, for :func:`hybridnet.calibrate` to recalibrate the twin from (no
        extra device query).

        Parameters
        ----------
        log : MeasurementLog
            Where the steps' inputs, parameter settings and device answers go.

        Examples
        --------
        >>> import torch
        >>> from hybridnet import BlackBoxLayer, MeasurementLog, calibrate
        >>> from hybridnet.physical import MZIMesh
        >>> chip = MZIMesh(4, 4, fabrication_error=0.3, seed=0)
        >>> layer = BlackBoxLayer(chip, training="physics_aware", seed=0)  # nominal twin
        >>> optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
        >>> log = MeasurementLog(n_settings=8)
        >>> with layer.recording(log):
        ...     for _ in range(8):
        ...         optimizer.zero_grad()
        ...         layer(torch.randn(16, 4)).square().sum().backward()
        ...         optimizer.step()
        >>> queries = chip.n_queries
        >>> twin = calibrate(chip, layer.twin, measurements=log)
        >>> chip.n_queries == queries, twin.calibration_error < twin.calibration_error_before
        (True, True)
        """
        if not isinstance(log, MeasurementLog):
            raise TypeError(f"log must be a hybridnet.MeasurementLog, got {type(log).__name__}")
        if self.training_mode != "physics_aware":
            raise ValueError(f"recording keeps the device answers of training='physics_aware'; "
                             f"this layer has training={self.training_mode!r}")
        # A plain attribute outside the module's state: a saved model holds no measurements.
        self.__dict__["_measurement_log"] = log
        try:
            yield log
        finally:
            self.__dict__.pop("_measurement_log", None)

    def _served_device(self):
        return self.__dict__.get("_own_device", self.black_box)

    def device_queries(self):
        """Queries (input vectors) served so far by the layer's own device (not by a twin it
        is :meth:`using`, nor the ``twin`` of ``training="physics_aware"``)."""
        return self._served_device().n_queries

    def device_settings(self):
        """Parameter settings applied so far to the layer's own device (its ``n_settings``,
        see :class:`~hybridnet.physical.BlackBox`)."""
        return self._served_device().n_settings

    def device_seconds(self):
        """Modelled seconds of the layer's own device so far, or None where it declares no
        cost model (see :attr:`~hybridnet.physical.BlackBox.device_seconds`)."""
        return self._served_device().device_seconds

    def device_parameters(self):
        """The device's trainable parameters (empty for ``training="digital"``)."""
        return [] if self.training_mode == "digital" else [self.params]

    def query_device(self, x, params):
        """Query the device, retrying failed calls; see ``device_retries`` and ``device_timeout``.

        A request with more parameter settings than the device takes per call
        (``black_box.settings_per_call``) is sent as several calls, each retried (and timed
        out) on its own, and their answers stacked. Every attempt counts in the device's
        ``n_queries`` and ``n_calls``, failed ones included, and no call is still running when
        this returns or raises.

        Parameters
        ----------
        x : torch.Tensor
            Inputs, any shape the device accepts (see :class:`~hybridnet.physical.BlackBox`).
        params : torch.Tensor
            Parameters, (n_params,) or (settings, n_params).

        Returns
        -------
        torch.Tensor
            The device's answer.

        Raises
        ------
        BlackBoxError
            When every one of the ``1 + device_retries`` attempts of a call failed; for a
            request split into calls, the message names the failing settings by their index
            (from 0) in ``params``.

        Examples
        --------
        A driver that takes one setting at a time and drops every third call:

        >>> import torch
        >>> from hybridnet import BlackBoxLayer
        >>> from hybridnet.physical import FunctionBlackBox
        >>> def driver(x, params):
        ...     driver.calls += 1
        ...     if driver.calls % 3 == 0:
        ...         raise OSError("frame dropped")
        ...     return x * params
        >>> driver.calls = 0
        >>> layer = BlackBoxLayer(FunctionBlackBox(driver, 2, 2, init_params=[1.0, 1.0]), seed=0)
        >>> settings = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
        >>> layer.query_device(torch.ones(1, 2), settings)[:, 0].tolist()
        [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]
        >>> driver.calls, layer.black_box.n_calls, layer.n_device_retries
        (5, 5, 1)
        """
        size = self.black_box.settings_per_call
        n_settings = len(params) if params.dim() == 2 else 1
        one_batch_each = x.dim() == 3 and len(x) == n_settings
        if size is None or n_settings <= size or not (x.dim() == 2 or one_batch_each):
            return self._query_with_retries(lambda: self.black_box(x, params))  # checks shapes
        answers = []
        for start in range(0, n_settings, size):
            part = slice(start, min(start + size, n_settings))
            x_part = x[part] if one_batch_each else x
            answers.append(self._query_with_retries(
                lambda x_part=x_part, part=part: self.black_box(x_part, params[part]),
                part, n_settings))
        return torch.cat(answers)

    def query_device_coordinates(self, x, coordinates, step):
        """The device's outputs at the layer's parameters with coordinate c moved by ``step``,
        for each c: a coordinate-wise request (see
        :meth:`~hybridnet.physical.BlackBox.query_coordinates`), retried and timed out as
        :meth:`query_device` does.

        Parameters
        ----------
        x : torch.Tensor
            Inputs, (batch, in_features).
        coordinates : torch.Tensor
            (P,) long.
        step : float

        Returns
        -------
        torch.Tensor
            (P, batch, out_features).
        """
        params = self.params.detach()
        size = self.black_box.settings_per_call
        if size is not None and len(coordinates) > size:  # split by query_device
            return self.query_device(x, _coordinate_settings(params, coordinates, step))
        return self._query_with_retries(
            lambda: self.black_box.query_coordinates(x, params, coordinates, step))

    def _query_with_retries(self, call, part=None, n_settings=None):
        """One device call, ``call()``, retried; ``part`` (a slice of a request of
        ``n_settings`` settings) names the settings in the error."""
        box = self.black_box
        noise = box.noise_state()
        for attempt in range(self.device_retries + 1):
            try:
                return self._call_device(call)
            except BlackBoxError as error:
                box.set_noise_state(noise)  # as if the failed call had never drawn any noise
                if attempt == self.device_retries:
                    if part is None:
                        where = "the same query"
                    else:
                        last = part.stop - 1
                        settings = (f"setting {part.start}" if last == part.start
                                    else f"settings {part.start}-{last}")
                        where = f"{settings} of a request of {n_settings} settings"
                    raise BlackBoxError(f"{box.name} failed {attempt + 1} time(s) in a row on "
                                        f"{where} (device_retries={self.device_retries}); "
                                        f"last error: {error}") from error
                self.n_device_retries += 1

    def _call_device(self, call):
        box, timeout = self.black_box, self.device_timeout
        if timeout is None:
            return call()
        if not box.cancellable:
            # A call that cannot be cancelled is waited for anyway: running it here keeps every
            # call of the device (and every noise draw) in order, one after the other.
            start = time.monotonic()
            try:
                y = call()
            except BlackBoxError as error:
                if time.monotonic() - start > timeout:
                    raise self._timeout_error() from error
                raise
            if time.monotonic() - start > timeout:
                raise self._timeout_error()
            return y
        answer = {}
        grad_enabled = torch.is_grad_enabled()  # grad mode is per thread

        def run():
            try:
                with torch.set_grad_enabled(grad_enabled):
                    answer["y"] = call()
            except BaseException as error:  # handed to the waiting thread
                answer["error"] = error

        worker = threading.Thread(target=run, name=f"{box.name} query", daemon=True)
        worker.start()
        try:
            worker.join(timeout)
        finally:
            # Also on KeyboardInterrupt: never return while the call still drives the device.
            timed_out = worker.is_alive()
            if timed_out:
                try:
                    box.cancel()
                finally:
                    worker.join()
        if timed_out:
            raise self._timeout_error() from answer.get("error")
        if "error" in answer:
            raise answer["error"]
        return answer["y"]

    def _timeout_error(self):
        return DeviceTimeoutError(f"{self.black_box.name} did not answer within "
                                  f"device_timeout={self.device_timeout} s")

    def _device_query(self, inputs):
        return self.query_device(inputs, self.params.detach())

    def _is_linear(self):
        if self.linear is None:
            self.linear = detect_linearity(self.black_box, self.params.detach(), self.generator,
                                           query=self.query_device)
        return self.linear

    def _input_gradient_mode(self):
        if self.input_gradient != "auto":
            return self.input_gradient
        return "surrogate" if self._is_linear() else "jacobian"

    @torch.no_grad()
    def sync_surrogate(self):
        """Bring the surrogate up to date with the device parameters.

        Builds it on first use; afterwards updates it (see ``surrogate_update``) when the
        parameters moved since the last sync, on every ``surrogate_update_every``-th such call
        (or rebuilds it, on the ``surrogate_rebuild_every`` schedule). Called automatically
        before every training forward pass that needs an input gradient, so training loops
        need not call it.
        """
        params = self.params.detach()
        if not bool(self.surrogate.built):
            self.surrogate.build(self._device_query)
        elif torch.equal(params, self.surrogate_params):
            return
        else:
            if not torch.equal(params, self.seen_params):  # a step since the last call
                self.stale_steps += 1
                self.seen_params.copy_(params)
            if self.stale_steps < self.surrogate_update_every:
                return
            self.surrogate.update(self._device_query)
        self.stale_steps = 0
        self.surrogate_params.copy_(params)
        self.seen_params.copy_(params)

    def forward(self, x):
        """Apply the layer to ``x`` (..., in_features); returns (..., out_features)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{type(self).__name__}({self.black_box.name}) expects inputs with "
                             f"{self.in_features} features, got shape {tuple(x.shape)}")
        leading = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        if self.training_mode == "digital":
            y = x @ self.weight.T
        elif self.training_mode == "physics_aware" and torch.is_grad_enabled():
            with torch.no_grad():
                measured = self.query_device(x, self.params.detach())
            log = self.__dict__.get("_measurement_log")
            if log is not None:
                log.add(x, self.params, measured)
            modelled = self.twin(x, self.params)
            # The device's value exactly (m - m is 0), the twin's vector-Jacobian product.
            y = measured.to(modelled.dtype) + (modelled - modelled.detach())
        elif self.training_mode == "backprop" and torch.is_grad_enabled():
            y = self.query_device(x, self.params)
            if torch.is_grad_enabled() and self.params.requires_grad and not y.requires_grad:
                raise BlackBoxError(f"{self.black_box.name} returned outputs autograd cannot "
                                    "differentiate, so training='backprop' cannot train it")
        else:
            if (torch.is_grad_enabled() and x.requires_grad
                    and self._input_gradient_mode() == "surrogate"):
                self.sync_surrogate()
            y = _BlackBoxFunction.apply(x, self.params, self)
            if torch.is_grad_enabled():
                # A copy for the layers after: an in-place one (ReLU(inplace=True)) must not
                # write into the output the backward pass reads.
                y = y.clone()
        return y.reshape(*leading, self.out_features)

    def _input_gradient(self, x, params, y, grad_output):
        mode = self._input_gradient_mode()
        if mode == "surrogate":
            return self.surrogate.input_gradient(grad_output.to(self.surrogate.U.dtype)).to(x.dtype)
        batch, n = x.shape
        step = self.input_smoothing
        if mode == "jacobian":
            shifts = step * torch.eye(n, dtype=x.dtype, device=x.device)
        else:
            shifts = step * randn((batch, self.zo_samples, n), self.generator, dtype=x.dtype,
                                  device=x.device)
        shifted = (x.unsqueeze(1) + shifts).reshape(-1, n)
        responses = self.query_device(shifted, params).reshape(batch, -1, self.out_features)
        # Directional derivatives of <G_i, f(x_i)> along each shift.
        slopes = ((responses - y.unsqueeze(1)) * grad_output.unsqueeze(1)).sum(-1) / step
        if mode == "jacobian":
            return slopes
        return torch.einsum("bk,bkn->bn", slopes, shifts / step) / self.zo_samples

    def _zo_queries(self, x, y, grad_output):
        """Inputs Z, output weights W and ``phi(w)`` with ``phi = sum(f(Z, w) * W)``.

        See the module docstring: the batch itself, the rows of ``K = G^T X`` (or the identity
        with K's columns as weights, for a narrow input), or K's dominant directions.
        """
        batch, (n_out, n_in) = len(x), (self.out_features, self.in_features)
        exact = min(batch, n_out, n_in)
        rank = _zo_batch_vectors(batch, n_in, n_out, self.zo_batch_rank)
        if rank == batch or not (self.batch_compression and self._is_linear()):
            return x, grad_output, (grad_output * y).sum()
        compressed = grad_output.T @ x
        if rank < exact:  # K's dominant directions
            sketch = randn((n_in, rank), self.generator, dtype=x.dtype, device=x.device)
            basis, _ = torch.linalg.qr(compressed @ (compressed.T @ (compressed @ sketch)))
            return basis.T @ compressed, basis.T, ((grad_output @ basis) * (y @ basis)).sum()
        value = (grad_output * y).sum()  # every exact form has the forward pass's value
        if rank == n_out:
            return compressed, torch.eye(n_out, dtype=x.dtype, device=x.device), value
        return torch.eye(n_in, dtype=x.dtype, device=x.device), compressed.T, value

    def _params_gradient(self, x, params, y, grad_output):
        inputs, weights, value = self._zo_queries(x, y, grad_output)

        def phi(settings):
            return (self.query_device(inputs, settings) * weights).sum(dim=(1, 2))

        def at_coordinates(coordinates, step):  # what CGE asks, in the device's fast form
            outputs = self.query_device_coordinates(inputs, coordinates, step)
            return (outputs * weights).sum(dim=(1, 2))

        phi.at_coordinates = at_coordinates

        estimate = zo_gradient(phi, params.detach(), estimator=self.zo_estimator,
                               n_samples=self.zo_samples, smoothing=self.zo_smoothing,
                               distribution=self.zo_distribution, generator=self.generator,
                               value_at_point=value)
        return estimate.gradient

    def extra_repr(self):
        rank = self.surrogate.rank if self.surrogate is not None else None
        return (f"training={self.training_mode!r}, surrogate_rank={rank}, "
                f"zo_estimator={self.zo_estimator!r}, zo_samples={self.zo_samples}, "
                f"zo_smoothing={self.zo_smoothing}, zo_batch_rank={self.zo_batch_rank}")


def split_parameters(module):
    """Split a network's trainable parameters into digital ones and device ones.

    Device parameters are those of every :class:`BlackBoxLayer` inside ``module``; they usually
    want their own learning rate.

    Parameters
    ----------
    module : torch.nn.Module
        Any network, possibly containing BlackBoxLayers.

    Returns
    -------
    digital, device : list of torch.nn.Parameter

    Examples
    --------
    >>> import torch
    >>> from hybridnet import BlackBoxLayer, split_parameters
    >>> from hybridnet.physical import SLM
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), BlackBoxLayer(SLM(4, 2), seed=0))
    >>> digital, device = split_parameters(model)
    >>> [p.shape for p in digital], [p.shape for p in device]
    ([torch.Size([4, 3]), torch.Size([4])], [torch.Size([8])])
    """
    device = [p for layer in module.modules() if isinstance(layer, BlackBoxLayer)
              for p in layer.device_parameters() if p.requires_grad]
    device_ids = {id(p) for p in device}
    digital = [p for p in module.parameters() if p.requires_grad and id(p) not in device_ids]
    return digital, device
