"""Zeroth-order optimizers: train any ``nn.Module`` from loss values alone, no back-propagation.

:class:`ZerothOrderOptimizer` is a ``torch.optim.Optimizer`` driven by a closure, as
``torch.optim.LBFGS`` is; it never calls ``backward`` and never writes ``.grad``. Its gradient is
:func:`hybridnet.zeroth_order.zo_gradient` over all its parameters at once (RGE with Gaussian,
sphere or Rademacher directions, forward or central differences, signRGE, CGE with coordinate
sampling), followed by an SGD-with-momentum or Adam update.

The closure decides how the perturbed losses are evaluated:

- a plain callable ``closure() -> loss`` is evaluated once per perturbation, with the parameters
  overwritten in place (works for any model);
- a :class:`BatchedLoss` evaluates all perturbations of a step in one ``torch.vmap`` over
  ``torch.func.functional_call``; :class:`~hybridnet.BlackBoxLayer` devices in the model then
  receive every parameter setting in a single request.

:class:`PlateauSwitch` implements the hybrid schedule of the tensor-train BP-free paper: signRGE
for coarse training, then CGE once the monitored loss stops improving.
"""

import math

import torch
from torch import nn
from torch.func import functional_call

from ._random import make_generator
from .perturbation import (
    CoordinateEvaluator,
    _in_place,
    batched_forward,
    supports_batched_forward,
)
from .zeroth_order import DISTRIBUTIONS, ESTIMATORS, zo_gradient

UPDATES = ("sgd", "adam")
# Settings of the gradient estimate itself: one estimate spans every parameter group.
ESTIMATE_SETTINGS = ("estimator", "n_samples", "smoothing", "distribution", "coordinate_skip")
_POINTWISE_UNSAFE = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


def pointwise_unsafe_layers(module):
    """Layers of ``module`` that cannot be evaluated at many parameter points at once in train
    mode: dropout (a random mask per call) and batch normalisation (statistics of the batch,
    running averages updated in place).

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    list of str
        ``"name (Type)"`` of each such layer that is in train mode.

    Examples
    --------
    >>> from torch import nn
    >>> from hybridnet.optim import pointwise_unsafe_layers
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 1))
    >>> pointwise_unsafe_layers(model)
    ['1 (Dropout)']
    >>> pointwise_unsafe_layers(model.eval())
    []
    """
    return [f"{name} ({type(layer).__name__})" for name, layer in module.named_modules()
            if isinstance(layer, _POINTWISE_UNSAFE) and layer.training]


def _refuse_pointwise_unsafe(module):
    unsafe = pointwise_unsafe_layers(module)
    if unsafe:
        raise ValueError(f"BatchedLoss evaluates many parameter points at once, which "
                         f"{', '.join(unsafe)} in train mode cannot take part in (a random "
                         "mask or batch statistics per point); put them in eval mode "
                         "(layer.eval()) or pass a plain closure")


class BatchedLoss:
    """A loss closure that can also evaluate many parameter points in one vectorised call.

    Parameters
    ----------
    module : torch.nn.Module
        The model.
    loss_fn : callable
        ``loss_fn(output, *targets) -> scalar tensor``; with ``loss_parameters``,
        ``loss_fn(output, *targets, values)``, ``values`` a dict of their current values.
    inputs : torch.Tensor or tuple of torch.Tensor
        Positional inputs of ``module``.
    *targets
        Extra arguments passed to ``loss_fn`` after the output.
    loss_parameters : dict of str to torch.nn.Parameter, optional
        Trainable parameters of the loss itself, outside ``module`` (the unknown coefficients
        of an inverse PDE problem): the optimizer may hold them beside the module's.
    workspace : hybridnet.perturbation.Workspace, optional
        Buffers for the batched forward of layered networks, kept across steps when the same
        workspace is passed to each step's closure (saves mapping fresh memory every step;
        matters for wide batches such as PINN losses).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.optim import BatchedLoss
    >>> model = torch.nn.Linear(3, 1)
    >>> closure = BatchedLoss(model, lambda out, y: (out - y).square().mean(),
    ...                       torch.ones(4, 3), torch.zeros(4, 1))
    >>> stacked = {model.weight: torch.zeros(5, 1, 3), model.bias: torch.arange(5.0)[:, None]}
    >>> closure.evaluate_batch(stacked)
    tensor([ 0.,  1.,  4.,  9., 16.])
    """

    def __init__(self, module, loss_fn, inputs, *targets, loss_parameters=None,
                 workspace=None):
        self.module = module
        self.loss_fn = loss_fn
        self.inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        self.targets = targets
        self.loss_parameters = dict(loss_parameters or {})
        self.workspace = workspace
        self._names = {id(p): name for name, p in module.named_parameters()}
        self._loss_names = {id(p): name for name, p in self.loss_parameters.items()}
        self._evaluator = None
        self._evaluator_state = []

    def _loss(self, output, values):
        if self.loss_parameters:
            return self.loss_fn(output, *self.targets, values)
        return self.loss_fn(output, *self.targets)

    def _current_loss_values(self):
        return {name: p.detach() for name, p in self.loss_parameters.items()}

    def evaluate_coordinates(self, params, coordinates, step, chunk_size=None):
        """Losses at ``theta + step e_c`` for flat coordinates c of ``params`` concatenated.

        For an ``nn.Sequential`` of linear, TT and elementwise layers with one input tensor,
        :class:`~hybridnet.perturbation.CoordinateEvaluator` computes them from the network's
        structure (same values, far less work), all coordinates in as few batched calls as its
        memory budget allows; any other network is evaluated whole at each point, at most
        ``chunk_size`` points per call, and a loss parameter's coordinates reuse the
        unperturbed output. Either way each value counts as one loss evaluation. The evaluator
        keeps the activations at the parameters it was built for; it is rebuilt whenever the
        module's parameters, the loss parameters or the inputs hold other values than then, so
        one closure can serve every step of an optimizer.

        Parameters
        ----------
        params : sequence of torch.nn.Parameter
            The parameters whose concatenation the coordinates index.
        coordinates : torch.Tensor
            Flat indices (long).
        step : float
            The perturbation.
        chunk_size : int, optional
            Points per call of the whole-network path (bounds its memory); None: all at once.

        Returns
        -------
        torch.Tensor
            Shape (len(coordinates),).
        """
        params = list(params)
        _refuse_pointwise_unsafe(self.module)
        if not CoordinateEvaluator.supports(self.module, self.inputs):
            return self._plain_coordinates(params, coordinates, step, chunk_size)
        in_loss = torch.repeat_interleave(
            torch.tensor([id(p) in self._loss_names for p in params]),
            torch.tensor([p.numel() for p in params])).to(coordinates.device)
        module_params = [p for p in params if id(p) not in self._loss_names]
        # The evaluator holds the activations at the values it was built with: rebuild it once
        # anything they depend on moved (a closure reused across optimizer steps).
        state = [t.detach() for t in (*self.module.parameters(),
                                      *self.loss_parameters.values(), self.inputs[0])]
        if (self._evaluator is None or self._evaluator.params != module_params
                or not all(torch.equal(now, then)
                           for now, then in zip(state, self._evaluator_state, strict=True))):
            current = self._current_loss_values()
            self._evaluator = CoordinateEvaluator(
                self.module, lambda output: self._loss(output, current), self.inputs[0], (),
                module_params, workspace=self.workspace)
            self._evaluator_state = [t.clone() for t in state]
        of_loss = in_loss[coordinates]
        # flat index of each module coordinate among the module's parameters alone
        module_index = torch.cumsum(~in_loss, 0) - 1
        values = torch.empty(len(coordinates), dtype=self._evaluator.activations[-1].dtype,
                             device=coordinates.device)
        values[~of_loss] = self._evaluator.evaluate(module_index[coordinates[~of_loss]], step)
        if bool(of_loss.any()):
            values[of_loss] = self._plain_coordinates(params, coordinates[of_loss], step,
                                                      chunk_size)
        return values

    def _plain_coordinates(self, params, coordinates, step, chunk_size=None):
        point = torch.cat([p.detach().reshape(-1) for p in params])
        sizes = [p.numel() for p in params]
        values = []
        for part in coordinates.split(chunk_size or max(1, len(coordinates))):
            points = point.expand(len(part), -1).clone()
            points[torch.arange(len(part)), part] += step
            stacked = {p: piece.reshape(len(points), *p.shape)
                       for p, piece in zip(params, points.split(sizes, dim=1), strict=True)}
            values.append(self.evaluate_batch(stacked))
        return torch.cat(values)

    def _module_inputs(self):
        """The inputs, copied when the module holds an in-place op that could overwrite them."""
        if any(_in_place(layer) for layer in self.module.modules()):
            return tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in self.inputs)
        return self.inputs

    def __call__(self):
        """The loss at the module's current parameters."""
        return self._loss(self.module(*self._module_inputs()), dict(self.loss_parameters))

    def evaluate_batch(self, stacked):
        """Losses at P points: ``stacked`` maps parameters to ``(P, *shape)`` tensors; returns (P,).
        """
        _refuse_pointwise_unsafe(self.module)
        count = len(next(iter(stacked.values())))
        named = {}
        loss_values = {name: p.detach().expand(count, *p.shape)
                       for name, p in self.loss_parameters.items()}
        for p, value in stacked.items():
            if id(p) in self._names:
                named[self._names[id(p)]] = value
            elif id(p) in self._loss_names:
                loss_values[self._loss_names[id(p)]] = value
            else:
                raise ValueError("the optimizer holds a parameter that is neither in the module "
                                 "of this BatchedLoss nor among its loss_parameters")
        if not named:  # only the loss's own parameters move
            with torch.no_grad():
                output = self.module(*self._module_inputs())
            outputs = output.expand(count, *output.shape)
        elif supports_batched_forward(self.module, self.inputs):
            outputs = batched_forward(self.module, named, self.inputs[0], self.workspace)
        else:
            inputs = self._module_inputs()
            outputs = torch.vmap(lambda params: functional_call(self.module, params,
                                                                inputs))(named)
        return torch.vmap(self._loss)(outputs, loss_values)


class ZerothOrderOptimizer(torch.optim.Optimizer):
    """Optimise parameters from loss values alone.

    Parameters
    ----------
    params : iterable of torch.Tensor or dict
        Parameters or parameter groups (each group may set its own ``lr``).
    lr : float, default=1e-3
        Learning rate.
    estimator : {"rge", "central_rge", "sign_rge", "cge"}, default="central_rge"
        Gradient estimator (see :mod:`hybridnet.zeroth_order`); "sign_rge" steps by the sign.
    n_samples : int, default=10
        Random directions per step (RGE estimators).
    smoothing : float, default=1e-3
        Finite-difference step.
    distribution : {"gaussian", "sphere", "rademacher"}, default="gaussian"
        Law of the directions.
    coordinate_skip : float, default=0
        CGE: probability of skipping each coordinate in a step.
    momentum : float, default=0
        Heavy-ball momentum ``m <- momentum m + g`` of the "sgd" update.
    update : {"sgd", "adam"}, default="sgd"
        How the estimate moves the parameters.
    betas : tuple of float, default=(0.9, 0.999)
        Adam's averaging constants.
    chunk_size : int, optional
        Evaluate at most this many perturbed points per vectorised call (bounds memory).
    seed : int, optional
        Seed of the directions; None draws one from torch's global RNG.

    Attributes
    ----------
    n_evaluations : int
        Loss evaluations (points) spent so far.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.optim import BatchedLoss, ZerothOrderOptimizer
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Linear(2, 1)
    >>> x, y = torch.randn(64, 2), torch.randn(64, 1)
    >>> optimizer = ZerothOrderOptimizer(model.parameters(), lr=0.05, n_samples=20, seed=0)
    >>> closure = BatchedLoss(model, torch.nn.functional.mse_loss, x, y)
    >>> first = optimizer.step(closure)
    >>> for _ in range(200):
    ...     last = optimizer.step(closure)
    >>> bool(last < first), model.weight.grad is None
    (True, True)
    """

    def __init__(self, params, lr=1e-3, *, estimator="central_rge", n_samples=10,
                 smoothing=1e-3, distribution="gaussian", coordinate_skip=0.0, momentum=0.0,
                 update="sgd", betas=(0.9, 0.999), chunk_size=None, seed=None):
        if not (isinstance(lr, int | float) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        for name, value, allowed in (("estimator", estimator, ESTIMATORS),
                                     ("distribution", distribution, DISTRIBUTIONS),
                                     ("update", update, UPDATES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
        if not (isinstance(smoothing, int | float) and smoothing > 0):
            raise ValueError(f"smoothing must be a positive number, got {smoothing!r}")
        if not 0 <= coordinate_skip < 1:
            raise ValueError(f"coordinate_skip must lie in [0, 1), got {coordinate_skip!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        defaults = dict(lr=lr, estimator=estimator, n_samples=n_samples, smoothing=smoothing,
                        distribution=distribution, coordinate_skip=coordinate_skip,
                        momentum=momentum, update=update, betas=betas)
        super().__init__(params, defaults)
        self.chunk_size = chunk_size
        self.generator = make_generator(seed)
        self.n_evaluations = 0

    def switch(self, **settings):
        """Change estimator settings (and ``lr``) of every group, e.g. signRGE -> CGE.

        Momentum and Adam statistics are reset, since they describe the previous estimator.
        """
        for group in self.param_groups:
            group.update(settings)
        self.state.clear()

    def _shared_settings(self):
        """The estimator settings, which must be the same in every group.

        One estimate covers all parameters at once (random directions span every group), so
        per-group estimators, sample counts or steps cannot be honoured; ``lr``, ``update``,
        ``momentum`` and ``betas`` may differ per group.
        """
        first = self.param_groups[0]
        for index, group in enumerate(self.param_groups[1:], start=1):
            differing = [key for key in ESTIMATE_SETTINGS if group[key] != first[key]]
            if differing:
                raise ValueError(f"ZerothOrderOptimizer estimates one gradient over all "
                                 f"parameter groups, so {differing} must be the same in every "
                                 f"group; group {index} has "
                                 f"{ {key: group[key] for key in differing} }, group 0 "
                                 f"{ {key: first[key] for key in differing} }. Only lr, update, "
                                 "momentum and betas may differ per group.")
        return first

    def _parameters(self):
        return [p for group in self.param_groups for p in group["params"]]

    def _loss_function(self, closure, params):
        shapes = [p.shape for p in params]
        sizes = [p.numel() for p in params]
        if hasattr(closure, "evaluate_batch"):
            def losses(points):
                pieces = points.split(sizes, dim=1)
                stacked = {p: piece.reshape(len(points), *shape)
                           for p, piece, shape in zip(params, pieces, shapes, strict=True)}
                return closure.evaluate_batch(stacked)

            if getattr(closure, "evaluate_coordinates", None) is not None:
                def at_coordinates(coordinates, step):
                    if not len(coordinates):
                        return params[0].new_empty(0)
                    # chunk_size bounds the memory of the whole-network path only
                    return closure.evaluate_coordinates(params, coordinates, step,
                                                        chunk_size=self.chunk_size)
                losses.at_coordinates = at_coordinates
            return losses

        def losses(points):
            saved = [p.detach().clone() for p in params]
            values = []
            try:
                for point in points:
                    for p, piece in zip(params, point.split(sizes), strict=True):
                        p.copy_(piece.reshape(p.shape))
                    values.append(torch.as_tensor(closure()).reshape(()))
            finally:
                for p, old in zip(params, saved, strict=True):
                    p.copy_(old)
            return torch.stack(values)
        return losses

    @torch.no_grad()
    def step(self, closure):
        """One zeroth-order step.

        Parameters
        ----------
        closure : callable or BatchedLoss
            Returns the loss at the current parameters (see the module docstring).

        Returns
        -------
        torch.Tensor
            The loss at the parameters before the step (estimated from the symmetric pairs
            for central estimators).
        """
        params = self._parameters()
        group = self._shared_settings()
        point = torch.cat([p.detach().reshape(-1) for p in params])
        estimate = zo_gradient(self._loss_function(closure, params), point,
                               estimator=group["estimator"], n_samples=group["n_samples"],
                               smoothing=group["smoothing"], distribution=group["distribution"],
                               generator=self.generator,
                               coordinate_skip=group["coordinate_skip"],
                               chunk_size=self.chunk_size)
        if not bool(torch.isfinite(estimate.gradient).all()):
            return torch.full((), math.nan)  # never apply a poisoned step
        self.n_evaluations += estimate.n_evaluations
        offset = 0
        for group in self.param_groups:
            for p in group["params"]:
                gradient = estimate.gradient[offset:offset + p.numel()].reshape(p.shape)
                offset += p.numel()
                p.add_(self._direction(p, gradient, group), alpha=-group["lr"])
        return estimate.value

    def _direction(self, p, gradient, group):
        if group["estimator"] == "sign_rge":
            return gradient
        state = self.state[p]
        if group["update"] == "sgd":
            if not group["momentum"]:
                return gradient
            buffer = state.setdefault("momentum_buffer", torch.zeros_like(p))
            return buffer.mul_(group["momentum"]).add_(gradient)
        beta1, beta2 = group["betas"]
        state["step"] = state.get("step", 0) + 1
        mean = state.setdefault("exp_avg", torch.zeros_like(p)).lerp_(gradient, 1 - beta1)
        square = state.setdefault("exp_avg_sq", torch.zeros_like(p))
        square.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
        corrected_mean = mean / (1 - beta1 ** state["step"])
        corrected_square = square / (1 - beta2 ** state["step"])
        return corrected_mean / (corrected_square.sqrt() + 1e-8)


class PlateauSwitch:
    """The hybrid schedule: signRGE, then CGE once a monitored quantity plateaus.

    signRGE moves fast while estimates are noisy; CGE fine-tunes once progress stalls (the
    tensor-train BP-free paper). Call :meth:`step` once per epoch with the monitored value,
    as with ``torch.optim.lr_scheduler.ReduceLROnPlateau``. The learning rates follow the
    paper's schedule, relative to each group's rate when the switch object is made:

    - before the switch: ``lr = base * decay^epoch`` (the paper: 0.8 per epoch);
    - at the switch: the estimator settings change (default CGE) and ``lr = base * lr_factor``;
    - ``drop_after`` epochs after the switch: ``lr = base * lr_factor * drop_factor``.

    A plateau is ``patience`` epochs in a row without an improvement of ``threshold`` times
    the best value's magnitude (``|best|``, so scores of either sign work), in the direction
    ``mode`` says. With ``switch_after``, the switch also happens after that many epochs
    without a plateau: the paper's signRGE phase lasts 10 epochs, by which its decayed rate
    is a tenth of the base rate.

    Parameters
    ----------
    optimizer : ZerothOrderOptimizer
        The optimizer to switch.
    patience : int, default=2
        Epochs without improvement before switching.
    threshold : float, default=1e-3
        Relative improvement that counts.
    mode : {"min", "max"}, default="min"
        "min" for a loss, "max" for a score (accuracy, R^2).
    lr_factor : float, default=1
        Learning rate after the switch, relative to the base rate.
    decay : float, default=1
        Per-epoch factor of the learning rate before the switch.
    drop_after : int, optional
        Epochs after the switch at which the rate is multiplied by ``drop_factor``; None never.
    drop_factor : float, default=0.1
        See ``drop_after``.
    switch_after : int, optional
        The most epochs before the switch; None: only a plateau switches.
    **settings
        What to switch to (see :meth:`ZerothOrderOptimizer.switch`); default
        ``estimator="cge"``. The paper's CGE: ``coordinate_skip=0.5, update="sgd",
        momentum=0.9``.

    Attributes
    ----------
    switched_at : int or None
        The epoch (count of ``step`` calls) at which the switch happened.
    best : float
        Best monitored value before the switch.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.optim import PlateauSwitch, ZerothOrderOptimizer
    >>> optimizer = ZerothOrderOptimizer([torch.zeros(3)], lr=5e-3, estimator="sign_rge")
    >>> schedule = PlateauSwitch(optimizer, patience=2, mode="max", decay=0.8, lr_factor=0.2)
    >>> for accuracy in [0.5, 0.7, 0.7, 0.7]:
    ...     schedule.step(accuracy)
    >>> schedule.switched_at, optimizer.param_groups[0]["estimator"]
    (4, 'cge')
    >>> round(optimizer.param_groups[0]["lr"], 6)
    0.001
    """

    def __init__(self, optimizer, patience=2, threshold=1e-3, lr_factor=1.0, *, mode="min",
                 decay=1.0, drop_after=None, drop_factor=0.1, switch_after=None, **settings):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.optimizer = optimizer
        self.patience = patience
        self.threshold = threshold
        self.lr_factor = lr_factor
        self.mode = mode
        self.decay = decay
        self.drop_after = drop_after
        self.drop_factor = drop_factor
        self.switch_after = switch_after
        self.settings = {"estimator": "cge", **settings}
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.best = math.inf if mode == "min" else -math.inf
        self.stale = 0
        self.epochs = 0
        self.switched_at = None

    def _improved(self, metric):
        margin = self.threshold * abs(self.best) if math.isfinite(self.best) else 0.0
        if self.mode == "min":
            return metric < self.best - margin
        return metric > self.best + margin

    def factor(self):
        """The learning rate now, relative to the base rate (the schedule above)."""
        if self.switched_at is None:
            return self.decay ** self.epochs
        dropped = self.drop_after is not None and \
            self.epochs - self.switched_at >= self.drop_after
        return self.lr_factor * (self.drop_factor if dropped else 1.0)

    def step(self, metric):
        """Record one epoch's monitored value; switch on a plateau; set the learning rates."""
        self.epochs += 1
        if self.switched_at is None:
            if self._improved(metric):
                self.best = metric
                self.stale = 0
            else:
                self.stale += 1
            if self.stale >= self.patience or self.epochs == self.switch_after:
                self.optimizer.switch(**self.settings)
                self.switched_at = self.epochs
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * self.factor()
