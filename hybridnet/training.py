"""One training loop for every estimator, with optional behaviour as callbacks.

:func:`train_epochs` runs epochs of a user-supplied ``step(batch) -> loss`` and records each
epoch in a :class:`History`. Early stopping, validation scoring and the progress bar are
:class:`Callback` objects, so the loop has no flags threaded through it.

A step that returns a non-finite loss must not have touched the weights (the estimators check
the loss before ``backward``); the loop then stops with a ``ConvergenceWarning``, and
:class:`EarlyStopping` puts back the best weights it saw. A step that raises (a device that keeps
failing, Ctrl-C) ends training too: the callbacks' ``on_train_end`` still runs, so the best
weights are restored where :class:`EarlyStopping` tracked them, and the exception propagates.
A callback may also end training in the middle of an epoch, after any step
(:meth:`Callback.on_step_end`, as :class:`DeviceBudget` does): the epoch is then recorded with
the steps that ran.
"""

import contextlib
import copy
import math
import time
import warnings
from typing import NamedTuple

import torch
from sklearn.exceptions import ConvergenceWarning

from .layers import BlackBoxLayer


class History(list):
    """Per-epoch records (dicts), indexable by column like skorch's history.

    Examples
    --------
    >>> history = History([{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.3}])
    >>> history[:, "train_loss"]
    [0.5, 0.3]
    >>> history[-1, "epoch"]
    2
    """

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, column = key
            selected = super().__getitem__(rows)
            if isinstance(rows, slice):
                return [record[column] for record in selected]
            return selected[column]
        return super().__getitem__(key)


class TrainingState:
    """What callbacks see and may change: the module, the history and the stop flag.

    Attributes
    ----------
    module : torch.nn.Module
        The network being trained.
    history : History
        Records of the finished epochs; callbacks may add keys to ``history[-1]``.
    stop : bool
        Set to True to end training after this epoch.
    diverged : bool
        True when a step returned a non-finite loss.
    interrupted : bool
        True when a step raised (device failure, ``KeyboardInterrupt``); ``on_train_end``
        then runs before the exception propagates.
    budget_reached : str or None
        Why a :class:`DeviceBudget` ended training, or None.

    Examples
    --------
    >>> import math
    >>> import warnings
    >>> import torch
    >>> from hybridnet.training import History, TrainingState, train_epochs
    >>> state = TrainingState(torch.nn.Linear(2, 1), History())
    >>> state.stop, state.diverged, state.interrupted
    (False, False, False)
    >>> losses = iter([1.0, 0.5, math.nan])  # the third epoch's step diverges
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     state = train_epochs(torch.nn.Linear(2, 1), lambda batch: (next(losses), 1),
    ...                          lambda: [0], n_epochs=5)
    >>> state.diverged, len(state.history), caught[0].category.__name__
    (True, 2, 'ConvergenceWarning')
    """

    def __init__(self, module, history):
        self.module = module
        self.history = history
        self.stop = False
        self.diverged = False
        self.interrupted = False
        self.budget_reached = None
        # Added to the devices' own counts to give the records' cumulative training usage.
        self.usage_offset = DeviceUsage(0, 0, None)

    def usage(self):
        """The devices' cumulative training usage, as the records count it."""
        return self.usage_offset + device_usage(self.module)


class Callback:
    """Base class of training callbacks; override any of the three hooks.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.training import Callback, train_epochs
    >>> class StopAt(Callback):  # doubles the loss into the record; stops after epoch `last`
    ...     def __init__(self, last):
    ...         self.last = last
    ...     def on_epoch_end(self, state):
    ...         record = state.history[-1]
    ...         record["double_loss"] = 2 * record["train_loss"]
    ...         state.stop = record["epoch"] >= self.last
    >>> state = train_epochs(torch.nn.Linear(2, 1), lambda batch: (0.25, 1), lambda: [0, 1],
    ...                      n_epochs=10, callbacks=[StopAt(3)])
    >>> state.history[:, "epoch"], state.history[-1]["double_loss"]
    ([1, 2, 3], 0.5)
    """

    def on_train_begin(self, state):
        """Called once before the first epoch."""

    def on_step_end(self, state):
        """Called after each training step; setting ``state.stop`` ends the epoch there."""

    def on_epoch_end(self, state):
        """Called after each epoch, once its record is in ``state.history``."""

    def on_train_end(self, state):
        """Called once after the last epoch, also after divergence."""


class ValidationScore(Callback):
    """Add ``valid_score`` (higher is better) to each epoch's record.

    Parameters
    ----------
    score : callable
        ``score() -> float``, evaluated with the module in eval mode and without gradients.

    Examples
    --------
    Gradient descent on ``y = 3 x`` from ``w = 0``; each step takes ``w`` half way to 3:

    >>> import torch
    >>> from hybridnet.training import ValidationScore, train_epochs
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = torch.nn.init.zeros_(model.weight)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> X, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [6.0]])
    >>> def step(batch):
    ...     optimizer.zero_grad()
    ...     loss = (model(X) - y).square().mean()
    ...     loss.backward()
    ...     optimizer.step()
    ...     return loss.item(), len(X)
    >>> def score():  # negative mean squared error, higher is better
    ...     return -(model(X) - y).square().mean().item()
    >>> state = train_epochs(model, step, lambda: [0], n_epochs=3,
    ...                      callbacks=[ValidationScore(score)])
    >>> [round(value, 3) for value in state.history[:, "valid_score"]]  # w = 1.5, 2.25, 2.625
    [-5.625, -1.406, -0.352]
    """

    def __init__(self, score):
        self.score = score

    def on_epoch_end(self, state):
        state.module.eval()
        with torch.no_grad():
            state.history[-1]["valid_score"] = float(self.score())
        state.module.train()


class Monitor(Callback):
    """Pass one record value to ``fn`` after each epoch (for plateau-driven schedules).

    Parameters
    ----------
    fn : callable
        Receives ``sign * record[key]``, for example ``scheduler.step``.
    key : str
        Record key.
    sign : float, default=1
        -1 turns a score (higher is better) into a loss.

    Examples
    --------
    Halve the learning rate whenever the training loss does not improve:

    >>> import torch
    >>> from hybridnet.training import Monitor, train_epochs
    >>> model = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    >>> plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    >>> losses = iter([1.0, 0.5, 0.5, 0.5])
    >>> state = train_epochs(model, lambda batch: (next(losses), 1), lambda: [0], n_epochs=4,
    ...                      callbacks=[Monitor(plateau.step, "train_loss")])
    >>> optimizer.param_groups[0]["lr"]  # halved after epochs 3 and 4
    0.25
    >>> seen = []
    >>> scores = iter([0.5, 0.75])
    >>> state = train_epochs(model, lambda batch: (next(scores), 1), lambda: [0], n_epochs=2,
    ...                      callbacks=[Monitor(seen.append, "train_loss", sign=-1)])
    >>> seen
    [-0.5, -0.75]
    """

    def __init__(self, fn, key, sign=1.0):
        self.fn = fn
        self.key = key
        self.sign = sign

    def on_epoch_end(self, state):
        self.fn(self.sign * state.history[-1][self.key])


class EarlyStopping(Callback):
    """Stop when a monitored quantity stops improving; optionally restore the best weights.

    Parameters
    ----------
    monitor : str, default="train_loss"
        Record key to watch.
    lower_is_better : bool, default=True
        Direction of improvement.
    tol : float, default=1e-4
        Improvement smaller than this does not count.
    patience : int, default=10
        Epochs without improvement before stopping.
    restore_best : bool, default=False
        Load the best epoch's weights at the end of training, also when training ends by an
        exception (a failing device, Ctrl-C). Weights are always restored after divergence
        and when a :class:`DeviceBudget` ended training.

    Attributes
    ----------
    best_value : float
        Best monitored value seen.
    best_epoch : int
        Epoch (1-based) where it was seen.

    Examples
    --------
    The loss stops improving after epoch 3; with ``patience=2`` training stops after epoch 5
    and the weights of epoch 3 come back:

    >>> import torch
    >>> from hybridnet.training import EarlyStopping, train_epochs
    >>> model = torch.nn.Linear(1, 1)
    >>> _ = torch.nn.init.zeros_(model.weight)
    >>> losses = iter([1.0, 0.5, 0.25, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    >>> def step(batch):
    ...     with torch.no_grad():
    ...         model.weight += 1  # the weight counts the epochs
    ...     return next(losses), 1
    >>> stopper = EarlyStopping(patience=2, restore_best=True)
    >>> state = train_epochs(model, step, lambda: [0], n_epochs=10, callbacks=[stopper])
    >>> len(state.history), stopper.best_epoch, stopper.best_value
    (5, 3, 0.25)
    >>> model.weight.item()  # restored from epoch 3
    3.0
    """

    def __init__(self, monitor="train_loss", lower_is_better=True, tol=1e-4, patience=10,
                 restore_best=False):
        self.monitor = monitor
        self.lower_is_better = lower_is_better
        self.tol = tol
        self.patience = patience
        self.restore_best = restore_best

    def on_train_begin(self, state):
        resumed, self._resumed = getattr(self, "_resumed", None), None
        if resumed is not None:
            self.best_value, self.best_epoch = resumed["best_value"], resumed["best_epoch"]
            self._best_state, self._stale = resumed["best_weights"], resumed["stale"]
            return
        self.best_value = math.inf if self.lower_is_better else -math.inf
        self.best_epoch = 0
        self._best_state = copy.deepcopy(state.module.state_dict())
        self._stale = 0

    def state(self):
        """What resuming needs: best value and epoch, epochs without improvement, best weights.

        Returns
        -------
        dict
        """
        return {"best_value": self.best_value, "best_epoch": self.best_epoch,
                "stale": self._stale, "best_weights": self._best_state}

    def resume(self, state):
        """Continue from ``state`` (from :meth:`state`) at the next ``on_train_begin``.

        Parameters
        ----------
        state : dict
        """
        self._resumed = state

    def on_epoch_end(self, state):
        value = state.history[-1][self.monitor]
        gain = self.best_value - value if self.lower_is_better else value - self.best_value
        if gain > 0:
            self.best_value = value
            self.best_epoch = state.history[-1]["epoch"]
            self._best_state = copy.deepcopy(state.module.state_dict())
        self._stale = 0 if gain > self.tol else self._stale + 1
        if self._stale >= self.patience:
            state.stop = True

    def on_train_end(self, state):
        if self.restore_best or state.diverged or state.budget_reached:
            state.module.load_state_dict(self._best_state)


class Checkpoint(Callback):
    """Call ``save(state, complete)`` every ``every`` epochs, on the epoch training stops in,
    and once more at its end (``complete=True``, after the callbacks before it have run their
    ``on_train_end``: :class:`EarlyStopping` has restored the best weights). Nothing is saved
    when a step raised: the last checkpoint stays the last complete epoch's.

    Parameters
    ----------
    save : callable
        ``save(state, complete)``; the estimators write the model with
        :func:`hybridnet.save`, atomically.
    every : int, default=1
        Epochs between two checkpoints.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.training import Checkpoint, train_epochs
    >>> saved = []
    >>> checkpoint = Checkpoint(lambda state, complete: saved.append(
    ...     (state.history[-1]["epoch"], complete)), every=2)
    >>> _ = train_epochs(torch.nn.Linear(2, 1), lambda batch: (0.5, 1), lambda: [0],
    ...                  n_epochs=5, callbacks=[checkpoint])
    >>> saved
    [(2, False), (4, False), (5, True)]
    """

    def __init__(self, save, every=1):
        self.save = save
        self.every = every

    def on_epoch_end(self, state):
        if state.history[-1]["epoch"] % self.every == 0 or state.stop:
            self.save(state, False)

    def on_train_end(self, state):
        if not state.interrupted:
            self.save(state, True)


class ProgressBar(Callback):
    """A tqdm progress bar over epochs showing loss, validation score, device queries and,
    for devices with a cost model, modelled device seconds.

    Parameters
    ----------
    total : int
        Number of epochs planned.

    Examples
    --------
    The bar writes to ``sys.stderr``:

    >>> import contextlib
    >>> import io
    >>> import torch
    >>> from hybridnet.training import ProgressBar, train_epochs
    >>> output = io.StringIO()
    >>> with contextlib.redirect_stderr(output):
    ...     state = train_epochs(torch.nn.Linear(2, 1), lambda batch: (0.25, 1), lambda: [0],
    ...                          n_epochs=3, callbacks=[ProgressBar(3)])
    >>> text = output.getvalue()
    >>> "3/3" in text, "loss=0.25" in text, "queries=0" in text
    (True, True, True)
    """

    def __init__(self, total):
        self.total = total

    def on_train_begin(self, state):
        try:
            from tqdm.auto import tqdm
        except ImportError as error:
            raise ImportError("verbose=True needs tqdm: pip install 'hybridnet[progress]'") \
                from error
        self._bar = tqdm(total=self.total, unit="epoch")

    def on_epoch_end(self, state):
        record = state.history[-1]
        postfix = {"loss": f"{record['train_loss']:.4g}", "queries": record["device_queries"]}
        if "device_seconds" in record:
            postfix["chip_s"] = f"{record['device_seconds']:.4g}"
        if "valid_score" in record:
            postfix["valid"] = f"{record['valid_score']:.4g}"
        self._bar.set_postfix(postfix)
        self._bar.update()

    def on_train_end(self, state):
        self._bar.close()


def _add_seconds(a, b):
    return b if a is None else a if b is None else a + b


class DeviceUsage(NamedTuple):
    """What devices served: input vectors, parameter settings and modelled seconds (None when
    no device declares a cost model). Adds and subtracts field by field.

    Examples
    --------
    >>> from hybridnet.training import DeviceUsage
    >>> DeviceUsage(100, 4, 0.5) - DeviceUsage(40, 1, 0.125)
    DeviceUsage(queries=60, settings=3, seconds=0.375)
    >>> DeviceUsage(1, 1, None) + DeviceUsage(2, 1, None)
    DeviceUsage(queries=3, settings=2, seconds=None)
    """

    queries: int
    settings: int
    seconds: float | None

    def __add__(self, other):
        return DeviceUsage(self.queries + other.queries, self.settings + other.settings,
                           _add_seconds(self.seconds, other.seconds))

    def __sub__(self, other):
        negated = None if other.seconds is None else -other.seconds
        return self + DeviceUsage(-other.queries, -other.settings, negated)


def device_usage(module):
    """What the devices of every BlackBoxLayer in ``module`` served so far (a twin that a layer
    is :meth:`~hybridnet.BlackBoxLayer.using`, or the twin of ``training="physics_aware"``,
    is not a device).

    Parameters
    ----------
    module : torch.nn.Module
        Any network.

    Returns
    -------
    DeviceUsage

    Examples
    --------
    >>> import torch
    >>> from hybridnet import BlackBoxLayer
    >>> from hybridnet.physical import MZIMesh
    >>> from hybridnet.training import device_usage
    >>> layer = BlackBoxLayer(MZIMesh(4, 4, seed=0), seed=0)
    >>> with torch.no_grad():
    ...     _ = layer(torch.randn(5, 4))
    >>> usage = device_usage(layer)  # 5 vectors at one setting: 100 us + 5 ns (nominal model)
    >>> usage.queries, usage.settings, round(usage.seconds, 9)
    (5, 1, 0.000100005)
    """
    usage = DeviceUsage(0, 0, None)
    for layer in module.modules():
        if isinstance(layer, BlackBoxLayer):
            usage += DeviceUsage(layer.device_queries(), layer.device_settings(),
                                 layer.device_seconds())
    return usage


def count_device_queries(module):
    """Total queries served by the devices of every BlackBoxLayer in ``module`` (a twin that a
    layer is :meth:`~hybridnet.BlackBoxLayer.using` is not a device).

    Examples
    --------
    >>> import torch
    >>> from hybridnet import BlackBoxLayer
    >>> from hybridnet.physical import SLM
    >>> from hybridnet.training import count_device_queries
    >>> model = torch.nn.Sequential(BlackBoxLayer(SLM(4, 3, seed=0), seed=0), torch.nn.ReLU(),
    ...                             BlackBoxLayer(SLM(3, 2, seed=1), seed=1))
    >>> count_device_queries(model)
    0
    >>> with torch.no_grad():
    ...     _ = model(torch.randn(5, 4))
    >>> count_device_queries(model)  # 5 vectors through each of the two devices
    10
    """
    return device_usage(module).queries


class DeviceBudget(Callback):
    """End training before the devices exceed a budget of queries or modelled seconds.

    After every step it compares what the devices served during training, plus ``spent``
    before it (a calibration), with the budget, and stops at the step after which one more
    step of the last step's cost would exceed it: the usage stays within the budget unless a
    step costs more than the one before it. The epoch ends there and is recorded with the
    steps that ran; :class:`EarlyStopping` then restores the best weights it saw, and a
    ``UserWarning`` says what was reached.

    Parameters
    ----------
    max_queries : int, optional
        Input vectors the devices may serve.
    max_seconds : float, optional
        Modelled device seconds (needs devices with a cost model,
        :attr:`~hybridnet.physical.BlackBox.device_seconds`).
    spent : DeviceUsage, optional
        Usage already spent toward the budget before training.

    Examples
    --------
    >>> import warnings
    >>> import torch
    >>> from hybridnet import BlackBoxLayer
    >>> from hybridnet.physical import MZIMesh
    >>> from hybridnet.training import DeviceBudget, train_epochs
    >>> layer = BlackBoxLayer(MZIMesh(4, 4, seed=0), training="backprop", seed=0)
    >>> def step(batch):  # a forward pass of 8 vectors: 8 queries
    ...     layer(torch.randn(8, 4))
    ...     return 1.0, 1
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     state = train_epochs(layer, step, lambda: range(10), n_epochs=5,
    ...                          callbacks=[DeviceBudget(max_queries=100)])
    >>> state.history[:, "device_queries"], state.budget_reached
    ([80, 96], 'max_device_queries=100')
    """

    def __init__(self, max_queries=None, max_seconds=None, spent=None):
        self.max_queries = max_queries
        self.max_seconds = max_seconds
        self.spent = DeviceUsage(0, 0, None) if spent is None else spent

    def on_train_begin(self, state):
        self._start = device_usage(state.module)
        self._last = self.spent

    def on_step_end(self, state):
        used = self.spent + (device_usage(state.module) - self._start)
        step = used - self._last
        self._last = used
        if self.max_queries is not None and used.queries + step.queries > self.max_queries:
            state.budget_reached = f"max_device_queries={self.max_queries}"
        elif (self.max_seconds is not None and used.seconds is not None
              and used.seconds + step.seconds > self.max_seconds):
            state.budget_reached = f"max_device_seconds={self.max_seconds:g}"
        if state.budget_reached:
            state.stop = True
            self.used = used

    def on_train_end(self, state):
        if state.budget_reached:
            seconds = "" if self.used.seconds is None else f", {self.used.seconds:.4g} s"
            warnings.warn(f"stopped training at the device budget {state.budget_reached}: the "
                          f"devices served {self.used.queries:,} queries at "
                          f"{self.used.settings:,} settings{seconds}, and one more step would "
                          "exceed it; the best weights seen were kept", UserWarning,
                          stacklevel=4)


def train_epochs(module, step, batches, n_epochs, *, callbacks=(), history=None,
                 explain_divergence=None, usage_before=None):
    """Run up to ``n_epochs`` epochs of ``step`` over ``batches()``.

    Parameters
    ----------
    module : torch.nn.Module
        The network (put in train mode; callbacks may read or restore its weights).
    step : callable
        ``step(batch) -> (loss, weight)``: one optimisation step; ``loss`` a float, ``weight``
        the batch's total sample weight (for the epoch average). A non-finite loss stops
        training, so ``step`` must not update the weights when it sees one.
    batches : callable
        ``batches()`` returns an iterable of batches for one epoch.
    n_epochs : int
        Upper bound on the epochs to run.
    callbacks : sequence of Callback
        Run in order after each epoch.
    history : History, optional
        Records to append to (continued training); a new one by default.
    explain_divergence : callable, optional
        ``explain_divergence() -> str``, called when a step returns a non-finite loss; its
        text replaces the generic advice of the ``ConvergenceWarning``.
    usage_before : DeviceUsage, optional
        Device usage already spent on the model when ``history`` is empty (a calibration).

    Each record's ``device_queries`` and ``device_settings`` (and ``device_seconds``, for
    devices with a cost model) are the cumulative usage of the devices during training: this
    call's added to the last record's (or ``usage_before``), so queries made between two calls
    (``predict``) are not in it.

    Returns
    -------
    TrainingState

    Examples
    --------
    Least squares with SGD over mini-batches of 16 of 64 samples:

    >>> import torch
    >>> from hybridnet.training import train_epochs
    >>> _ = torch.manual_seed(0)
    >>> X = torch.randn(64, 3)
    >>> y = X @ torch.tensor([1.0, -2.0, 0.5])
    >>> model = torch.nn.Linear(3, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> def step(batch):
    ...     optimizer.zero_grad()
    ...     loss = (model(X[batch]).squeeze(1) - y[batch]).square().mean()
    ...     if not torch.isfinite(loss):  # leave the weights alone; the loop stops
    ...         return loss.item(), len(batch)
    ...     loss.backward()
    ...     optimizer.step()
    ...     return loss.item(), len(batch)
    >>> def batches():
    ...     return torch.randperm(len(X)).split(16)
    >>> state = train_epochs(model, step, batches, n_epochs=20)
    >>> len(state.history), state.stop, state.diverged
    (20, False, False)
    >>> state.history[-1]["train_loss"] < 0.01 * state.history[0]["train_loss"]
    True
    >>> state = train_epochs(model, step, batches, n_epochs=5, history=state.history)
    >>> state.history[-1]["epoch"]  # continued training appends epochs 21 to 25
    25
    """
    state = TrainingState(module, History() if history is None else history)
    if state.history:
        last = state.history[-1]
        # Records of files saved before settings were counted have none.
        usage_before = DeviceUsage(last["device_queries"], last.get("device_settings", 0),
                                   last.get("device_seconds"))
    state.usage_offset = (DeviceUsage(0, 0, None) if usage_before is None
                          else usage_before) - device_usage(module)
    first_epoch = len(state.history) + 1
    module.train()
    for callback in callbacks:
        callback.on_train_begin(state)
    try:
        for epoch in range(first_epoch, first_epoch + n_epochs):
            _run_epoch(state, epoch, step, batches, callbacks, explain_divergence)
            if state.stop or state.diverged:
                break
    except BaseException:
        state.interrupted = True
        raise
    finally:
        for callback in callbacks:
            callback.on_train_end(state)
        module.eval()
    return state


def _run_epoch(state, epoch, step, batches, callbacks, explain_divergence):
    start = time.perf_counter()
    total_loss = total_weight = 0.0
    for batch in batches():
        loss, weight = step(batch)
        for callback in callbacks:
            callback.on_step_end(state)
        if not math.isfinite(loss):
            state.diverged = True
            advice = ("Try a smaller learning rate." if explain_divergence is None
                      else explain_divergence())
            warnings.warn(f"training diverged in epoch {epoch} (non-finite loss); stopped and "
                          f"kept the best weights seen. {advice}", ConvergenceWarning,
                          stacklevel=4)
            return
        total_loss += loss * weight
        total_weight += weight
        if state.stop:
            break
    usage = state.usage()
    record = {"epoch": epoch, "train_loss": total_loss / max(total_weight, 1e-300),
              "seconds": time.perf_counter() - start, "device_queries": usage.queries,
              "device_settings": usage.settings}
    if usage.seconds is not None:
        record["device_seconds"] = usage.seconds
    state.history.append(record)
    for callback in callbacks:
        callback.on_epoch_end(state)


@contextlib.contextmanager
def restored_on_error(estimator):
    """Put every attribute of ``estimator`` back as it was if the block raises.

    The block (validation and set-up of a fit) only ever replaces attributes, never changes
    an attribute's object in place, so a shallow copy of ``__dict__`` is a full snapshot.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from hybridnet.training import restored_on_error
    >>> estimator = SimpleNamespace(alpha=1.0)
    >>> try:
    ...     with restored_on_error(estimator):
    ...         estimator.alpha = 2.0
    ...         estimator.coef_ = [0.5]
    ...         raise ValueError("bad input")
    ... except ValueError as error:
    ...     print(error)
    bad input
    >>> estimator.alpha, hasattr(estimator, "coef_")  # as before the block
    (1.0, False)
    >>> with restored_on_error(estimator):  # without an exception the changes stay
    ...     estimator.alpha = 3.0
    >>> estimator.alpha
    3.0
    """
    snapshot = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(snapshot)
        raise
