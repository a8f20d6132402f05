"""A black box that injects the faults of a real lab bench into another one.

Simulators answer every query, at once, with the same device. A bench does not: frames drop and
drivers throw, a detector glitch returns NaN, a busy instrument answers late, and the heaters
drift slowly away from the phases they were set to. :class:`FaultyBlackBox` adds these faults to
any black box, so that a training set-up (retries, timeouts, robustness to drift) can be
rehearsed on a simulator before it meets the bench.
"""

import math
import numbers
import threading

import torch

from .._random import make_generator, spawn_seeds
from .base import BlackBox
from .photonic import _check_nonnegative


class TransientDeviceError(RuntimeError):
    """An injected transient fault: the request was lost (dropped frame, driver error).

    Raised inside ``FaultyBlackBox._query``; calling the box turns it into a
    :class:`~hybridnet.physical.BlackBoxError`, like any exception of a device.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import (BlackBoxError, FaultyBlackBox, MZIMesh,
    ...                                 TransientDeviceError)
    >>> bench = FaultyBlackBox(MZIMesh(2, 2, seed=0), fail_rate=1.0, seed=0)
    >>> try:
    ...     bench(torch.ones(1, 2), bench.initial_params())
    ... except BlackBoxError as error:
    ...     print(isinstance(error.__cause__, TransientDeviceError))
    ...     print(error)
    True
    Faulty(MZIMesh) raised TransientDeviceError: transient fault on MZIMesh (injected; failure 1)
    >>> bench.n_failures, bench.device.n_calls  # the request never reached the mesh
    (1, 0)
    """


def _check_rate(name, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 <= value <= 1):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


class FaultyBlackBox(BlackBox):
    """Wrap a black box and inject transient failures, NaN answers, delays and drift.

    Every request (one device call: a call of the box, or, when the wrapped device takes
    ``settings_per_call`` settings at a time, each call the box splits a larger request into)
    draws its faults independently of the others:

    * with probability ``fail_rate`` it raises :class:`TransientDeviceError` without querying
      the wrapped device (a :class:`~hybridnet.physical.BlackBoxError` once through the box's
      call);
    * with probability ``nan_rate`` the wrapped device's answer comes back with NaN in a random
      subset of its entries (at least one), which the base class refuses as a
      :class:`~hybridnet.physical.BlackBoxError`;
    * with probability ``delay_rate`` the answer (or the failure) comes ``delay`` seconds late.
      The delay can be cancelled (:meth:`cancel`, as :class:`~hybridnet.BlackBoxLayer` does
      once ``device_timeout`` has passed): the request then raises at once, without querying
      the wrapped device.

    Drift is a random walk of hidden parameter offsets: every request, failed or not, first adds
    a step ~ N(0, drift^2) to each offset, then the wrapped device receives the commanded
    parameters plus the offsets (the same for every setting of the request), so after k requests
    an offset has variance ``k drift^2``. With every rate and ``drift`` at zero the answers are
    exactly the wrapped device's.

    The box's own ``n_queries`` and ``n_calls`` count every request made to it, failed ones
    included (what the bench would have been asked); the wrapped device, queried through its
    own call, counts only the requests that reached it. All randomness of a request is drawn
    when it starts, before any delay.

    Noise and retries: :meth:`noise_state` and :meth:`set_noise_state` are the wrapped device's,
    so a layer that restores the noise before retrying a failed request gets the noise the
    first try would have had, and training through injected failures, NaN answers and
    cancelled delays ends exactly where training on the bare device does. The fault and drift
    streams are the bench's own and are never rewound: a retry draws new faults (else a
    failed request would fail again on every retry) and the heaters drift on meanwhile.

    Parameters
    ----------
    device : BlackBox
        The device to wrap. Its shape, ``linear``, ``differentiable``, ``initial_params``,
        ``settings_per_call`` and noise stream are the wrapper's.
    fail_rate : float, default=0
        Probability that a request raises.
    nan_rate : float, default=0
        Probability that a request's answer contains NaN.
    drift : float, default=0
        Std of one random-walk step of the parameter offsets, in parameter units (radians for
        phases).
    delay : float, default=0
        Seconds a delayed request waits before answering.
    delay_rate : float, default=0
        Probability that a request is delayed.
    seed : int, optional
        Root seed of the fault, NaN-position and drift streams (three independent streams);
        None draws one from torch's global RNG.

    Attributes
    ----------
    device : BlackBox
        The wrapped device.
    drift_offsets : torch.Tensor
        Current hidden offsets, shape (n_params,), float64 (a buffer).
    n_failures : int
        Failures injected so far.
    n_nan_answers : int
        Answers corrupted with NaN so far.
    n_delays : int
        Delays injected so far.
    n_queries, n_calls : int
        Input vectors and device calls requested from the wrapper, failed requests included.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import BlackBoxError, FaultyBlackBox, MZIMesh
    >>> mesh = MZIMesh(4, 4, seed=0)
    >>> bench = FaultyBlackBox(mesh, fail_rate=0.3, seed=0)
    >>> bench.name
    'Faulty(MZIMesh)'
    >>> x, params = torch.ones(2, 4), mesh.initial_params(torch.Generator().manual_seed(0))
    >>> answered = 0
    >>> for _ in range(100):
    ...     try:
    ...         y = bench(x, params)
    ...         answered += 1
    ...     except BlackBoxError:
    ...         pass
    >>> answered + bench.n_failures, mesh.n_calls == answered
    (100, True)
    >>> torch.equal(y, mesh(x, params))  # no drift: the answers are the mesh's own
    True
    """

    def __init__(self, device, *, fail_rate=0.0, nan_rate=0.0, drift=0.0, delay=0.0,
                 delay_rate=0.0, seed=None):
        if not isinstance(device, BlackBox):
            raise TypeError(f"device must be a BlackBox, got {type(device).__name__}")
        super().__init__(device.in_features, device.out_features, device.n_params,
                         name=f"Faulty({device.name})")
        self.device = device
        self.linear = device.linear
        self.differentiable = device.differentiable
        self.fail_rate = _check_rate("fail_rate", fail_rate)
        self.nan_rate = _check_rate("nan_rate", nan_rate)
        self.delay_rate = _check_rate("delay_rate", delay_rate)
        self.drift = _check_nonnegative("drift", drift)
        self.delay = _check_nonnegative("delay", delay)
        self.seed = seed
        # Separate streams keep the fault schedule of a seed the same whatever the drift and
        # the output shape (which set how many numbers the other two streams draw).
        fault_seed, nan_seed, drift_seed = spawn_seeds(seed, 3)
        self._fault_generator = make_generator(fault_seed)
        self._nan_generator = make_generator(nan_seed)
        self._drift_generator = make_generator(drift_seed)
        self.register_buffer("drift_offsets", torch.zeros(device.n_params, dtype=torch.float64))
        self.n_failures = self.n_nan_answers = self.n_delays = 0
        # The cancel event of the delay now running, if any (None between requests, so the
        # box pickles).
        self._pending_delay = None

    def initial_params(self, generator=None):
        """The wrapped device's initial parameters."""
        return self.device.initial_params(generator)

    @property
    def parameter_resolution(self):
        """The wrapped device's."""
        return self.device.parameter_resolution

    @property
    def parameter_noise(self):
        """The wrapped device's."""
        return self.device.parameter_noise

    @property
    def output_noise(self):
        """The wrapped device's."""
        return self.device.output_noise

    @property
    def max_smoothing(self):
        """The wrapped device's."""
        return self.device.max_smoothing

    def nominal_twin(self):
        """The wrapped device's nominal twin: the faults are the bench's, not the design's."""
        return self.device.nominal_twin()

    @property
    def settings_per_call(self):
        """The wrapped device's."""
        return self.device.settings_per_call

    @property
    def settle_time(self):
        """The wrapped device's."""
        return self.device.settle_time

    @property
    def vector_time(self):
        """The wrapped device's."""
        return self.device.vector_time

    @property
    def cancellable(self):
        """True when delays are injected (they can be cancelled) or the wrapped device is."""
        return self.delay_rate > 0 or self.device.cancellable

    def cancel(self):
        """Cancel the injected delay of the request now running, or else pass the call on to
        the wrapped device's :meth:`~hybridnet.physical.BlackBox.cancel`.

        Returns
        -------
        bool
            True when a delay was cancelled or the wrapped device accepted.

        Examples
        --------
        >>> import threading
        >>> import torch
        >>> from hybridnet.physical import BlackBoxError, FaultyBlackBox, MZIMesh
        >>> bench = FaultyBlackBox(MZIMesh(2, 2, seed=0), delay=60.0, delay_rate=1.0, seed=0)
        >>> failure = []
        >>> def request():
        ...     try:
        ...         bench(torch.ones(1, 2), bench.initial_params())
        ...     except BlackBoxError as error:
        ...         failure.append(str(error))
        >>> worker = threading.Thread(target=request)
        >>> worker.start()
        >>> while not bench.cancel():  # until the request is in its delay
        ...     pass
        >>> worker.join()
        >>> failure
        ['Faulty(MZIMesh) raised InterruptedError: request cancelled during its injected delay']
        >>> bench.device.n_calls  # the mesh was never queried
        0
        """
        delay = self._pending_delay
        if delay is not None:
            delay.set()
            return True
        return self.device.cancel()

    def noise_state(self):
        """The wrapped device's (see :meth:`~hybridnet.physical.BlackBox.noise_state`)."""
        return self.device.noise_state()

    def set_noise_state(self, state):
        """Restore the wrapped device's noise; the fault and drift streams go on."""
        self.device.set_noise_state(state)

    def reset_counters(self):
        """Zero the query, call and fault counters, and the wrapped device's counters."""
        super().reset_counters()
        self.device.reset_counters()
        self.n_failures = self.n_nan_answers = self.n_delays = 0

    def _query(self, x, params):
        fail, corrupt, late = (u < rate for u, rate in zip(
            torch.rand(3, generator=self._fault_generator, dtype=torch.float64).tolist(),
            (self.fail_rate, self.nan_rate, self.delay_rate), strict=True))
        if corrupt:
            n_entries = x.shape[0] * x.shape[1] * self.out_features
            count = int(torch.randint(1, n_entries + 1, (1,), generator=self._nan_generator))
            where = torch.randperm(n_entries, generator=self._nan_generator)[:count]
        if self.drift:
            step = torch.randn(self.n_params, generator=self._drift_generator,
                               dtype=torch.float64) * self.drift
            self.drift_offsets = self.drift_offsets + step.to(self.drift_offsets)
            params = params + self.drift_offsets.to(params)
        if late:
            self.n_delays += 1
            cancelled = threading.Event()
            self._pending_delay = cancelled
            try:
                if cancelled.wait(self.delay):
                    raise InterruptedError("request cancelled during its injected delay")
            finally:
                self._pending_delay = None
        if fail:
            self.n_failures += 1
            raise TransientDeviceError(f"transient fault on {self.device.name} (injected; "
                                       f"failure {self.n_failures})")
        y = self.device(x, params)
        if corrupt:
            self.n_nan_answers += 1
            y = y.flatten().index_fill(0, where.to(y.device), math.nan).view_as(y)
        return y

    def extra_repr(self):
        options = [f"{key}={getattr(self, key)}" for key in
                   ("fail_rate", "nan_rate", "drift", "delay", "delay_rate")
                   if getattr(self, key)]
        return ", ".join(options)
