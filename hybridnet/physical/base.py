"""The black-box interface every physical layer implements.

A black box maps a batch of inputs ``x`` (batch x in_features) and a flat parameter vector
``params`` (n_params) to outputs (batch x out_features). It may also receive several parameter
settings at once, ``params`` of shape (settings x n_params) with ``x`` of shape
(settings x batch x in_features) or (batch x in_features) shared by every setting, and then
returns (settings x batch x out_features): this is how the engine evaluates all zeroth-order
perturbations of a step in one request. Simulated devices answer such a request with one
vectorised computation; a real device driver may take one setting at a time
(``settings_per_call``), and the request is then served by one device call per setting.

The engine relies on nothing else: ``in_features``, ``out_features``, ``n_params``,
``initial_params``, calling the box (and :meth:`BlackBox.query_coordinates`, which by default
calls it), the flags ``linear`` and ``differentiable``, the
counters ``n_queries`` (input vectors served), ``n_settings`` (parameter settings applied) and
``n_calls`` (device invocations), the optional cost model ``settle_time`` and ``vector_time``
(:attr:`BlackBox.device_seconds`), the
declared non-idealities ``parameter_resolution``, ``parameter_noise``, ``output_noise`` and
``max_smoothing``, from which ``zo_smoothing="auto"`` picks the zeroth-order step, and what
:class:`~hybridnet.BlackBoxLayer` needs to retry and time out calls: ``settings_per_call``,
``cancellable`` with :meth:`BlackBox.cancel`, and :meth:`BlackBox.noise_state` with
:meth:`BlackBox.set_noise_state`.
"""

import abc
import math
import numbers

import torch
from torch import nn


def _check_seconds(name, value):
    """``value`` as a float if it is a finite number >= 0, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            0 <= value < math.inf):
        raise ValueError(f"{name} must be a finite number of seconds >= 0 or None, got "
                         f"{value!r}")
    return float(value)


class BlackBoxError(RuntimeError):
    """A black box raised, or returned something unusable (wrong shape, NaN or inf).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import BlackBoxError, FunctionBlackBox
    >>> def driver(x, params):
    ...     raise OSError("detector not connected")
    >>> box = FunctionBlackBox(driver, 2, 2, init_params=[0.0])
    >>> try:
    ...     box(torch.ones(1, 2), box.initial_params())
    ... except BlackBoxError as error:
    ...     print(error)
    driver raised OSError: detector not connected
    >>> blind = FunctionBlackBox(lambda x, params: x * float("nan"), 2, 2, init_params=[0.0],
    ...                          name="blind")
    >>> blind(torch.ones(1, 2), blind.initial_params())
    Traceback (most recent call last):
        ...
    hybridnet.physical.base.BlackBoxError: blind returned 2 NaN and 0 infinite values out of 2
    """


class DeviceTimeoutError(BlackBoxError):
    """A device did not answer a query within ``device_timeout`` seconds.

    Examples
    --------
    :class:`~hybridnet.BlackBoxLayer` raises it for a call that takes longer than its
    ``device_timeout``; once ``device_retries`` more tries have failed too, it is the cause of
    the layer's :class:`BlackBoxError`. A driver that can abort a call plugs its abort in as
    ``cancel``; the layer calls it when the time is up and waits for the call to end.

    >>> import threading
    >>> import torch
    >>> from hybridnet import BlackBoxLayer
    >>> from hybridnet.physical import BlackBoxError, DeviceTimeoutError, FunctionBlackBox
    >>> abort = threading.Event()
    >>> def busy_instrument(x, params):  # answers after 10 s, unless aborted
    ...     if abort.wait(10.0):
    ...         raise InterruptedError("measurement aborted")
    ...     return x * params
    >>> box = FunctionBlackBox(busy_instrument, 2, 2, init_params=[1.0, 1.0], cancel=abort.set)
    >>> layer = BlackBoxLayer(box, device_timeout=0.05, device_retries=0, seed=0)
    >>> try:
    ...     layer.query_device(torch.ones(1, 2), layer.params.detach())
    ... except BlackBoxError as error:
    ...     print(isinstance(error.__cause__, DeviceTimeoutError))
    ...     print(error.__cause__)
    True
    busy_instrument did not answer within device_timeout=0.05 s
    """


class BlackBox(nn.Module, abc.ABC):
    """Base class of a queryable, non-differentiable (to the trainer) device.

    Subclasses implement ``_query`` on the batched form (settings x batch x in_features,
    settings x n_params) and :meth:`initial_params`. The base class normalises shapes and dtypes,
    splits a request into calls of at most ``settings_per_call`` settings, counts queries, and
    turns exceptions and garbage outputs into :class:`BlackBoxError`.

    Parameters
    ----------
    in_features : int
        Length of one input vector.
    out_features : int
        Length of one output vector.
    n_params : int
        Number of tunable device parameters (phases, heater settings, ...).
    name : str, optional
        Name used in error messages; defaults to the class name.
    settle_time : float, optional
        Seconds the device takes to apply one parameter setting (heaters settling, a frame of
        a spatial light modulator). With ``vector_time`` it gives :attr:`device_seconds`.
        Default: the class's declared value (None, not modelled, for the base class; the
        simulated chips declare nominal ones); assign None to the attribute to drop it.
    vector_time : float, optional
        Seconds one more input vector takes at a setting already applied. Default: the
        class's declared value, as for ``settle_time``.

    Attributes
    ----------
    n_queries : int
        Input vectors asked of the device so far (one per row of ``x`` per parameter setting),
        the calls that failed included.
    n_settings : int
        Parameter settings applied so far: one per setting of a request, however many input
        vectors it carries, the calls that failed included. On a thermo-optic chip a setting
        costs microseconds to milliseconds of settling and a vector nanoseconds, so this,
        not ``n_queries``, is what chip time mostly pays for.
    n_calls : int
        Device invocations so far, failed ones included: one per call of ``_query``. Each is
        counted when it is made, so a request that fails midway counts the calls it made.
    settings_per_call : int or None
        The most parameter settings one device call takes: None (the default) for any number
        (simulators, batched drivers), 1 for a driver that takes one setting at a time. The
        box serves a larger request by several calls, and :class:`~hybridnet.BlackBoxLayer`
        retries each of them on its own.
    cancellable : bool
        True when :meth:`cancel` can stop a running call early (False by default).
    linear : bool or None
        True when the output is linear in ``x`` (``f(x, w) = A(w) x``), False when not, None
        when unknown (``BlackBoxLayer`` then tests it with a few queries).
    differentiable : bool
        True when autograd can differentiate the box's output with respect to ``params`` (only
        simulators); needed for ``BlackBoxLayer(training="backprop")``.
    parameter_resolution : float or None
        The smallest parameter change the device resolves (one DAC level), None when
        continuous.
    parameter_noise : float
        Std of the random error added to the parameters on every call (0 when none).
    output_noise : float
        Relative std of the noise on the outputs (0 when none).
    max_smoothing : float or None
        The largest zeroth-order step before the device's response bends enough to spoil the
        estimate (its parameters' curvature scale); None when unknown.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.physical import BlackBox
    >>> class Gains(BlackBox):  # one tunable gain per channel: y = w * x
    ...     def __init__(self, n):
    ...         super().__init__(n, n, n)
    ...     def initial_params(self, generator=None):
    ...         return torch.ones(self.n_params)
    ...     def _query(self, x, params):  # x (settings, batch, n), params (settings, n)
    ...         return x * params[:, None, :]
    >>> box = Gains(3)
    >>> box(torch.ones(2, 3), torch.tensor([1.0, 2.0, 3.0])).tolist()
    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    >>> box(torch.ones(2, 3), torch.ones(4, 3)).shape  # four parameter settings in one request
    torch.Size([4, 2, 3])
    >>> box.n_queries, box.n_settings, box.n_calls
    (10, 5, 2)
    >>> box.settings_per_call = 1  # as if its driver took one setting at a time
    >>> box(torch.ones(2, 3), torch.ones(4, 3)).shape
    torch.Size([4, 2, 3])
    >>> box.n_queries, box.n_settings, box.n_calls  # the same 8 inputs, in four calls
    (18, 9, 6)
    >>> box.settle_time, box.vector_time = 1e-3, 1e-6  # a cost model: 1 ms a setting
    >>> round(box.device_seconds, 6)  # 9 settings and 18 vectors
    0.009018
    """

    linear = True
    differentiable = True
    settings_per_call = None
    cancellable = False
    parameter_resolution = None
    parameter_noise = 0.0
    output_noise = 0.0
    max_smoothing = None
    settle_time = None
    vector_time = None

    def __init__(self, in_features, out_features, n_params, *, name=None, settle_time=None,
                 vector_time=None):
        super().__init__()
        for arg, value in (("in_features", in_features), ("out_features", out_features),
                           ("n_params", n_params)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.n_params = n_params
        self.name = name or type(self).__name__
        # None keeps the class's declared cost model (a simulated chip's nominal one).
        if settle_time is not None:
            self.settle_time = _check_seconds("settle_time", settle_time)
        if vector_time is not None:
            self.vector_time = _check_seconds("vector_time", vector_time)
        self.n_queries = 0
        self.n_settings = 0
        self.n_calls = 0

    @property
    def device_seconds(self):
        """Modelled device time of the requests so far: ``n_settings * settle_time +
        n_queries * vector_time`` (an undeclared one counts 0); None when neither is declared.
        """
        if self.settle_time is None and self.vector_time is None:
            return None
        return (self.n_settings * (self.settle_time or 0.0)
                + self.n_queries * (self.vector_time or 0.0))

    @abc.abstractmethod
    def initial_params(self, generator=None):
        """Return a flat tensor of ``n_params`` initial parameter values.

        Parameters
        ----------
        generator : torch.Generator, optional
            Source of randomness for the draw.

        Returns
        -------
        torch.Tensor
            Shape (n_params,).
        """

    @abc.abstractmethod
    def _query(self, x, params):
        """Evaluate the device on x (settings, batch, in) for params (settings, n_params)."""

    def cancel(self):
        """Ask the device to stop the call now running in another thread.

        :class:`~hybridnet.BlackBoxLayer` calls it when a call runs past ``device_timeout``
        and the box is ``cancellable``; it then waits for the call to end, so the call must
        end soon after (raising, or returning an answer the layer discards). A device that
        cannot stop a call leaves ``cancellable`` False and this default, which returns False;
        the layer then never runs its calls in another thread but waits each one out.

        Returns
        -------
        bool
            True when a running call was asked to stop.

        Examples
        --------
        >>> from hybridnet.physical import MZIMesh
        >>> mesh = MZIMesh(2, 2, seed=0)  # a simulator answers at once: nothing to cancel
        >>> mesh.cancellable, mesh.cancel()
        (False, False)
        """
        return False

    def noise_state(self):
        """The state of the device's random noise, to be restored by :meth:`set_noise_state`.

        :class:`~hybridnet.BlackBoxLayer` takes it before a call and restores it before
        retrying a failed one, so the answer that succeeds carries the noise the first call
        would have had and a failure shifts no later draw. A device without a noise stream it
        can replay (a real device, a driver) returns None, as this default does.

        Returns
        -------
        object or None
            Opaque; pass it back to :meth:`set_noise_state` unchanged.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.physical import MZIMesh
        >>> mesh = MZIMesh(2, 2, detector_noise=0.1, seed=0)
        >>> x, params = torch.ones(1, 2), mesh.initial_params()
        >>> state = mesh.noise_state()
        >>> first = mesh(x, params)
        >>> torch.equal(mesh(x, params), first)  # fresh noise on every call
        False
        >>> mesh.set_noise_state(state)
        >>> torch.equal(mesh(x, params), first)  # the same noise once more
        True
        """
        return None

    def set_noise_state(self, state):
        """Restore a state returned by :meth:`noise_state` (None: nothing to restore).

        Parameters
        ----------
        state : object or None
            What :meth:`noise_state` returned.

        Examples
        --------
        >>> from hybridnet.physical import FunctionBlackBox
        >>> box = FunctionBlackBox(lambda x, params: x * params, 2, 2, init_params=[1.0, 1.0])
        >>> print(box.noise_state())  # a driver's noise is the bench's: nothing to replay
        None
        >>> box.set_noise_state(None)
        """
        if state is not None:
            raise ValueError(f"{self.name} has no noise stream, so it cannot restore the noise "
                             f"state {state!r}")

    def reset_counters(self):
        """Set ``n_queries``, ``n_settings`` and ``n_calls`` back to zero."""
        self.n_queries = 0
        self.n_settings = 0
        self.n_calls = 0

    def forward(self, x, params):
        """Query the device: one call, or one per ``settings_per_call`` settings.

        Parameters
        ----------
        x : torch.Tensor
            Inputs, (batch, in_features), or (settings, batch, in_features) with one batch per
            parameter setting.
        params : torch.Tensor
            Parameters, (n_params,) for one setting or (settings, n_params).

        Returns
        -------
        torch.Tensor
            (batch, out_features) for one setting, (settings, batch, out_features) otherwise.
        """
        given_x, given_params = tuple(x.shape), tuple(params.shape)
        single = params.dim() == 1
        params = params.unsqueeze(0) if single else params
        if params.dim() != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"{self.name}: params must have shape (n_params={self.n_params},) or "
                             f"(settings, {self.n_params}), got {given_params}")
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(params.shape[0], -1, -1)
        if x.dim() != 3 or x.shape[0] != params.shape[0] or x.shape[2] != self.in_features:
            raise ValueError(f"{self.name}: x must have shape (batch, {self.in_features}) or "
                             f"({params.shape[0]}, batch, {self.in_features}), got {given_x}")
        dtype = torch.promote_types(x.dtype, params.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        x, params = x.to(dtype), params.to(dtype)
        n_settings, batch = x.shape[0], x.shape[1]
        size = self.settings_per_call or n_settings
        answers = []
        for start in range(0, n_settings, size):
            x_part, params_part = x[start:start + size], params[start:start + size]
            answers.append(self._serve(len(params_part), batch,
                                       lambda x=x_part, p=params_part: self._query(x, p)))
        y = answers[0] if len(answers) == 1 else torch.cat(answers)
        return y[0] if single else y

    def _serve(self, n_settings, batch, compute):
        """One device call of ``n_settings`` settings of ``batch`` vectors each: counted when it
        is made, ``compute()`` run, its exceptions and garbage turned into BlackBoxError."""
        self.n_queries += n_settings * batch
        self.n_settings += n_settings
        self.n_calls += 1
        try:
            y = compute()
        except BlackBoxError:
            raise
        except Exception as error:
            raise BlackBoxError(f"{self.name} raised {type(error).__name__}: {error}") from error
        self._check_output(y, (n_settings, batch, self.out_features))
        return y

    def query_coordinates(self, x, params, coordinates, step):
        """The outputs at ``params + step e_c`` for each coordinate c: one request of
        ``len(coordinates)`` settings, counted as such.

        This is what a coordinate-wise zeroth-order estimate (CGE) asks. This default builds
        the settings and queries them (:meth:`forward`); a simulator that knows its structure
        answers faster (:class:`~hybridnet.physical.MZIMesh`: each setting moves one MZI),
        with the same counts and the same outputs.

        Parameters
        ----------
        x : torch.Tensor
            Inputs, (batch, in_features), shared by every setting.
        params : torch.Tensor
            The unperturbed parameters, (n_params,).
        coordinates : torch.Tensor
            (P,) long: the parameter each setting moves.
        step : float
            How far it moves.

        Returns
        -------
        torch.Tensor
            (P, batch, out_features), a tensor of its own: the caller may overwrite it.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.physical import MZIMesh
        >>> mesh = MZIMesh(4, 4, seed=0)
        >>> x, params = torch.randn(3, 4), mesh.initial_params()
        >>> moved = mesh.query_coordinates(x, params, torch.tensor([0, 5]), 0.1)
        >>> settings = params.repeat(2, 1)
        >>> settings[0, 0] += 0.1
        >>> settings[1, 5] += 0.1
        >>> torch.allclose(moved, mesh(x, settings), atol=1e-6)
        True
        >>> mesh.n_settings  # 2 + 2: the structure saves time, not settings
        4
        """
        # A copy: a device's answer may be a view of what it keeps, or of x.
        return self(x, _coordinate_settings(params, coordinates, step)).clone()

    def _check_output(self, y, expected_shape, shown_shape=None):
        """Refuse anything but a finite real tensor of ``expected_shape``.

        ``shown_shape`` is the shape to report (what the device itself returned), when the
        caller has already reshaped its answer.
        """
        if not isinstance(y, torch.Tensor):
            raise BlackBoxError(f"{self.name} returned {type(y).__name__}, expected a tensor")
        if y.is_complex():
            raise BlackBoxError(f"{self.name} returned complex values ({y.dtype}); a black box "
                                "must return real outputs (take .real or abs()**2 in the device)")
        if tuple(y.shape) != expected_shape:
            shown = tuple(y.shape) if shown_shape is None else shown_shape
            expected = expected_shape if shown_shape is None else expected_shape[1:]
            raise BlackBoxError(f"{self.name} returned shape {shown}, expected {expected}")
        # One sum is finite for any finite answer short of overflow, and reads the answer once
        # without a mask the size of it; only a suspect answer gets the exact test.
        if bool(torch.isfinite(y.sum())):
            return
        finite = torch.isfinite(y)
        if not bool(finite.all()):
            n_nan = int(torch.isnan(y).sum())
            n_inf = int((~finite).sum()) - n_nan
            raise BlackBoxError(f"{self.name} returned {n_nan} NaN and {n_inf} infinite values "
                                f"out of {y.numel()}")

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"n_params={self.n_params}")


def _coordinate_settings(params, coordinates, step):
    """The settings of a coordinate-wise request: ``params`` (n_params,) with entry
    ``coordinates[r]`` moved by ``step`` in row r; (len(coordinates), n_params)."""
    settings = params.reshape(1, -1).repeat(len(coordinates), 1)
    settings[torch.arange(len(coordinates)), coordinates] += step
    return settings
