"""Any callable as a black box: the way a real device driver plugs into hybridnet."""

import numpy as np
import torch

from .base import BlackBox, BlackBoxError

BACKENDS = ("torch", "numpy")


class FunctionBlackBox(BlackBox):
    """Wrap a user callable ``fn(x, params)`` as a black box.

    ``fn`` receives one batch of inputs (batch x in_features) and one parameter vector
    (n_params,) and returns outputs (batch x out_features). It may be linear in ``x`` or not,
    noisy or not, and written with torch or numpy: this is how a driver of a real device, which
    only answers queries, plugs into :class:`~hybridnet.BlackBoxLayer`.

    Parameters
    ----------
    fn : callable
        ``fn(x, params) -> y``.
    in_features : int
        Length of one input vector.
    out_features : int
        Length of one output vector.
    init_params : array-like
        Initial parameter vector; its length defines ``n_params``.
    backend : {"torch", "numpy"}, default="torch"
        What ``fn`` receives: torch tensors (on the inputs' device), or float64 numpy arrays.
        It may return a tensor or anything ``numpy.asarray`` accepts.
    batched : bool, default=False
        True when ``fn`` also accepts several settings at once: x (settings x batch x
        in_features) with params (settings x n_params), returning (settings x batch x
        out_features); ``settings_per_call`` is then None (set it to the most your driver
        takes, if it has a limit). Otherwise ``settings_per_call`` is 1: a request with several
        settings calls ``fn`` once per setting (one device call each), and
        :class:`~hybridnet.BlackBoxLayer` retries each call on its own.
    linear : bool or None, default=None
        Whether ``fn`` is linear in ``x``. None lets :class:`~hybridnet.BlackBoxLayer` detect it
        with a few queries.
    cancel : callable, optional
        ``cancel()``, called from another thread while ``fn`` runs, makes ``fn`` stop soon
        (raise, or return early): your driver's abort. With it, a call that runs past
        :class:`~hybridnet.BlackBoxLayer`'s ``device_timeout`` is cancelled; without it, the
        layer waits for the call to end and then discards its late answer.
    name : str, optional
        Name used in error messages; defaults to the function's name.
    settle_time, vector_time : float, optional
        Your device's chip-time model: seconds to apply one parameter setting, and per input
        vector at a setting; the estimators then report ``device_seconds_`` (see
        :class:`BlackBox`). None: not modelled.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridnet.physical import FunctionBlackBox
    >>> def device(x, params):  # a numpy "driver" of a 3 x 2 linear device
    ...     return x @ params.reshape(3, 2)
    >>> box = FunctionBlackBox(device, 2, 3, init_params=np.zeros(6), backend="numpy")
    >>> box.n_params, box.differentiable, box.settings_per_call, box.cancellable
    (6, False, 1, False)
    """

    def __init__(self, fn, in_features, out_features, init_params, *, backend="torch",
                 batched=False, linear=None, cancel=None, name=None, settle_time=None,
                 vector_time=None):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if cancel is not None and not callable(cancel):
            raise TypeError(f"cancel must be callable or None, got {type(cancel).__name__}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(init_params, torch.Tensor):
            init_params = init_params.detach().cpu()
        try:
            init = torch.as_tensor(np.asarray(init_params, dtype=np.float64)).flatten()
        except (TypeError, ValueError) as error:
            raise TypeError(f"init_params must be a numeric array, got {init_params!r}") from error
        if init.numel() == 0 or not bool(torch.isfinite(init).all()):
            raise ValueError("init_params must be a non-empty vector of finite numbers")
        super().__init__(in_features, out_features, init.numel(),
                         name=name or getattr(fn, "__name__", type(fn).__name__),
                         settle_time=settle_time, vector_time=vector_time)
        self.fn = fn
        self.backend = backend
        self.batched = bool(batched)
        self.settings_per_call = None if self.batched else 1
        self.linear = linear
        self.cancel_fn = cancel
        self.cancellable = cancel is not None
        self.differentiable = backend == "torch"
        self.register_buffer("init_params", init.to(torch.get_default_dtype()))

    def initial_params(self, generator=None):
        """The ``init_params`` given at construction (``generator`` is not used)."""
        return self.init_params.clone()

    def cancel(self):
        """Call the ``cancel`` given at construction; False when there is none.

        See :meth:`BlackBox.cancel`.
        """
        if self.cancel_fn is None:
            return False
        self.cancel_fn()
        return True

    def _call(self, x, params):
        if self.backend == "numpy":
            x = x.detach().cpu().numpy().astype(np.float64)
            params = params.detach().cpu().numpy().astype(np.float64)
        return self.fn(x, params)

    def _as_tensor(self, y, like):
        """The device's answer as a real tensor like ``like``; refuse what cannot be one."""
        if not isinstance(y, torch.Tensor):
            try:
                y = torch.as_tensor(np.asarray(y))
            except (TypeError, ValueError, RuntimeError) as error:
                raise BlackBoxError(f"{self.name} returned {type(y).__name__}, which is not a "
                                    "numeric array") from error
        if y.is_complex():
            self._check_output(y, ())
        if not (y.dtype.is_floating_point or y.dtype in (torch.int32, torch.int64, torch.bool,
                                                          torch.int16, torch.int8, torch.uint8)):
            raise BlackBoxError(f"{self.name} returned values of type {y.dtype}, which are not "
                                "numbers")
        return y.to(dtype=like.dtype, device=like.device)

    def _query(self, x, params):
        if self.batched:
            return self._as_tensor(self._call(x, params), x)
        outputs = [self._as_tensor(self._call(x[k], params[k]), x) for k in range(len(params))]
        for y in outputs:
            self._check_output(y.unsqueeze(0), (1, x.shape[1], self.out_features),
                               shown_shape=tuple(y.shape))
        return torch.stack(outputs)
