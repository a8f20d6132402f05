"""``PINNSolver``: a scikit-learn estimator that solves a PDE with a physics-informed network.

The network (dense, tensor-train or with black-box physical layers, from
:func:`hybridnet.network.build_mlp`) is trained first-order (Adam, then optional L-BFGS) or
back-propagation-free (:class:`hybridnet.optim.ZerothOrderOptimizer`), with any derivative back
end of :mod:`hybridnet.pinn.derivatives`.
"""

import copy
import math
import numbers
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ..network import ACTIVATIONS, DEVICES, build_mlp
from ..optim import BatchedLoss, ZerothOrderOptimizer
from ..physical import BlackBox
from ..training import EarlyStopping, History, ProgressBar, train_epochs
from ..zeroth_order import ESTIMATORS
from .derivatives import BACKENDS, make_backend
from .problem import PDE

TRAININGS = ("backprop", "bp_free")
BALANCINGS = ("auto", "gradient_norm", "none")
# Loss balancing: how often the factors are re-estimated and how much of the old value stays.
BALANCE_EVERY = 10
BALANCE_MEMORY = 0.9


class PINNLoss(nn.Module):
    """The physics-informed loss of ``network`` for ``pde`` as a module.

    Being a module whose only parameters are the network's lets ``torch.func.functional_call``
    and ``torch.vmap`` evaluate the whole loss at many parameter points at once
    (back-propagation-free training). All random draws (points, Stein directions) are inputs.

    Parameters
    ----------
    network : torch.nn.Module
        Maps (n, D) points to (n, 1).
    pde : PDE
        The problem.
    backend : DerivativeBackend
        How derivatives are computed.
    data_weight : float
        Weight of the data-fit term.

    Attributes
    ----------
    balance : torch.Tensor
        Factors on each condition's weight and on ``data_weight``, in that order (buffer;
        ones unless the solver balances the terms).
    """

    def __init__(self, network, pde, backend, data_weight=1.0):
        super().__init__()
        self.network = network
        self.pde = pde
        self.backend = backend
        self.data_weight = data_weight
        # Factors on the condition and data weights, set by loss balancing (1: as given).
        self.register_buffer("balance", torch.ones(len(pde.conditions) + 1))

    def field(self, x):
        """u at x (n,): the network's output, through ``output_transform`` when set."""
        out = self.network(x)[:, 0]
        if self.pde.output_transform is not None:
            out = self.pde.output_transform(x, out)
        return out

    def values(self, x, noise=None):
        """u at x as the back end defines it (Stein: the smoothed u)."""
        return self.backend.values(self.field, x, noise)

    def terms(self, collocation, noise, condition_draws, data_x=None, data_y=None):
        """The unweighted loss terms: mean squared residual, then each condition, then data.

        Returns
        -------
        torch.Tensor
            Shape ``(1 + len(pde.conditions) + (data_x is not None),)``.
        """
        space_axes = self.pde.domain.space_axes
        derivatives = self.backend.evaluate(self.field, collocation, noise, space_axes)
        residual = self.pde.residual(collocation, derivatives)
        if not isinstance(residual, torch.Tensor) or residual.shape != (len(collocation),):
            shape = tuple(residual.shape) if isinstance(residual, torch.Tensor) else \
                type(residual).__name__
            raise ValueError(f"residual(x, d) must return a tensor of shape "
                             f"({len(collocation)},), got {shape}")
        terms = [residual.square().mean()]
        for condition, (points, condition_noise) in zip(self.pde.conditions, condition_draws,
                                                        strict=True):
            if condition.needs_derivatives:
                d = self.backend.evaluate(self.field, points, condition_noise, space_axes)
                u = d.u
            else:
                d, u = None, self.values(points, condition_noise)
            terms.append(condition.residual(points, u, d, self.pde.domain).square().mean())
        if data_x is not None:
            terms.append((self.values(data_x[0], data_x[1]) - data_y).square().mean())
        return torch.stack(terms)

    def weights(self, with_data):
        """Weight of each term: 1 for the residual, user weight x balance for the others."""
        user = [condition.weight for condition in self.pde.conditions]
        user += [self.data_weight] if with_data else []
        balance = self.balance[:len(user)]
        return torch.cat([balance.new_ones(1), balance.new_tensor(user) * balance])

    def forward(self, collocation, noise, condition_draws, data_x=None, data_y=None):
        terms = self.terms(collocation, noise, condition_draws, data_x, data_y)
        return terms @ self.weights(data_x is not None).to(terms.dtype)


class PINNSolver(RegressorMixin, BaseEstimator):
    """Solve a PDE with a physics-informed neural network.

    Parameters
    ----------
    pde : PDE
        The problem (domain, residual, conditions, optional exact solution).
    hidden_layer_sizes : sequence of int, default=(64, 64)
        Hidden widths of the network.
    activation : {"tanh", "sin", "relu", "logistic", "identity"}, default="tanh"
        Activation of the hidden layers (must be twice differentiable for the residual).
    derivatives : {"autograd", "finite_difference", "stein", "sparse_grid"}, default="autograd"
        Derivative back end, see :mod:`hybridnet.pinn.derivatives`.
    smoothing : float, optional
        Step h of finite differences, or std s of the Stein / sparse-grid smoothing. Default
        ``0.01`` times the domain's mean side.
    stein_samples : int, default=64
        Monte Carlo pairs per point of the Stein back end.
    training : {"backprop", "bp_free"}, default="backprop"
        First-order (Adam, then ``lbfgs_iter`` L-BFGS steps) or back-propagation-free
        (zeroth-order optimizer; needs a derivative back end other than "autograd").
    tt_rank : int, optional
        Make the digital linear layers :class:`~hybridnet.TTLinear` of this rank.
    physical_layer : {"mzi", "mrr", "slm"}, BlackBox or None, default=None
        A device between the hidden layers (needs a derivative back end other than autograd
        unless its layers train as digital twins).
    zo_estimator : {"rge", "central_rge", "sign_rge", "cge"}, default="rge"
        Zeroth-order estimator: of the device parameters (backprop), of every parameter
        (bp_free).
    zo_samples : int, default=10
        Random directions per step.
    zo_smoothing : float, default=1e-2
        Parameter perturbation of the zeroth-order estimates.
    n_collocation : int, default=256
        Interior points per step (fresh each step).
    n_boundary : int, default=128
        Points per condition per step.
    max_iter : int, default=2000
        Optimisation steps.
    learning_rate : float, default=3e-3
        Adam's initial learning rate, decayed exponentially to a twentieth at ``max_iter``.
    lbfgs_iter : int, default=0
        L-BFGS iterations after Adam (first-order training with a deterministic back end;
        on one fixed draw of points).
    loss_balancing : {"auto", "gradient_norm", "none"}, default="auto"
        "gradient_norm" rescales the weight of every condition (and of the data term) during
        first-order training so that its gradient norm matches the residual's: every 10 steps,
        ``factor <- 0.9 factor + 0.1 ||grad residual loss|| / ||grad term||`` (the
        learning-rate annealing of Wang, Teng and Perdikaris, 2021, in gradient-norm form;
        the factor multiplies the weight you gave). A soft boundary loss is otherwise
        outweighed by a residual whose scale is set by the source term: on the built-in
        Poisson problem it cuts the error about 20x at 3,000 steps. It costs one extra
        backward pass per term every 10 steps. "none" keeps the weights as given; "auto" is
        "gradient_norm" for ``training="backprop"`` and "none" for "bp_free", which has no
        gradients to compare.
    data_weight : float, default=1.0
        Weight of the data-fit term when ``fit`` gets ``y``.
    random_state : int, RandomState instance or None, default=None
        Seeds the network, the points and all random draws.
    device : {"cpu", "cuda"}, default="cpu"
        Where the network runs.
    verbose : bool, default=False
        tqdm progress bar.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (input D, output 1, before ``output_transform``).
    n_features_in_ : int
        D, the domain's dimension.
    loss_curve_ : list of float
        Loss per step.
    n_iter_ : int
        Steps run (Adam or zeroth-order; L-BFGS iterations not included).
    n_network_evaluations_ : int
        Points pushed through the network during training (each shifted point counts).
    loss_weights_ : ndarray
        Final weight of each condition, then of the data term when ``y`` was given (the
        weights you set, times the balancing factors).
    history_ : History
        Per-step records.

    Examples
    --------
    >>> from hybridnet import PINNSolver
    >>> from hybridnet.pinn import problems
    >>> solver = PINNSolver(problems.poisson_2d(hard_constraint=True),
    ...                     hidden_layer_sizes=(16, 16), max_iter=200, random_state=0).fit()
    >>> solver.relative_l2_error() < 0.2
    True
    """

    def __init__(self, pde, hidden_layer_sizes=(64, 64), activation="tanh", *,
                 derivatives="autograd", smoothing=None, stein_samples=64, training="backprop",
                 tt_rank=None, physical_layer=None, zo_estimator="rge", zo_samples=10,
                 zo_smoothing=1e-2, n_collocation=256, n_boundary=128, max_iter=2000,
                 learning_rate=3e-3, lbfgs_iter=0, loss_balancing="auto", data_weight=1.0,
                 random_state=None,
                 device="cpu", verbose=False):
        self.pde = pde
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.derivatives = derivatives
        self.smoothing = smoothing
        self.stein_samples = stein_samples
        self.training = training
        self.tt_rank = tt_rank
        self.physical_layer = physical_layer
        self.zo_estimator = zo_estimator
        self.zo_samples = zo_samples
        self.zo_smoothing = zo_smoothing
        self.n_collocation = n_collocation
        self.n_boundary = n_boundary
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.lbfgs_iter = lbfgs_iter
        self.loss_balancing = loss_balancing
        self.data_weight = data_weight
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _validate(self):
        if not isinstance(self.pde, PDE):
            raise TypeError(f"pde must be a hybridnet.pinn.PDE, got {type(self.pde).__name__}")
        choices = (("activation", self.activation, ACTIVATIONS),
                   ("derivatives", self.derivatives, BACKENDS),
                   ("training", self.training, TRAININGS),
                   ("loss_balancing", self.loss_balancing, BALANCINGS),
                   ("zo_estimator", self.zo_estimator, ESTIMATORS))
        for name, value, allowed in choices:
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
        if not (self.physical_layer is None or isinstance(self.physical_layer, BlackBox)
                or self.physical_layer in DEVICES):
            raise ValueError(f"physical_layer must be None, one of {tuple(DEVICES)} or a "
                             f"BlackBox, got {self.physical_layer!r}")
        sizes = self.hidden_layer_sizes
        if (not isinstance(sizes, list | tuple) or not sizes
                or not all(isinstance(s, numbers.Integral) and s >= 1 for s in sizes)):
            raise ValueError(f"hidden_layer_sizes must be a non-empty sequence of positive ints, "
                             f"got {sizes!r}")
        for name in ("stein_samples", "zo_samples", "n_collocation", "n_boundary", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if (isinstance(self.lbfgs_iter, bool) or not isinstance(self.lbfgs_iter, numbers.Integral)
                or self.lbfgs_iter < 0):
            raise ValueError(f"lbfgs_iter must be an int >= 0, got {self.lbfgs_iter!r}")
        if self.tt_rank is not None and (not isinstance(self.tt_rank, numbers.Integral)
                                         or self.tt_rank < 1):
            raise ValueError(f"tt_rank must be an int >= 1 or None, got {self.tt_rank!r}")
        positive = ("learning_rate", "zo_smoothing") + (
            ("smoothing",) if self.smoothing is not None else ())
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.data_weight, numbers.Real) and self.data_weight >= 0):
            raise ValueError(f"data_weight must be a non-negative number, got "
                             f"{self.data_weight!r}")
        if self.training == "bp_free" and self.derivatives == "autograd":
            raise ValueError("training='bp_free' never differentiates, so derivatives='autograd' "
                             "cannot be used; choose 'finite_difference', 'stein' or "
                             "'sparse_grid'")
        if (self.physical_layer is not None and self.derivatives == "autograd"
                and self.training == "backprop"):
            raise ValueError("derivatives='autograd' differentiates the network twice, which an "
                             "in-situ BlackBoxLayer cannot; choose 'finite_difference', 'stein' "
                             "or 'sparse_grid'")
        if self.loss_balancing == "gradient_norm" and self.training != "backprop":
            raise ValueError("loss_balancing='gradient_norm' compares gradients, which "
                             "training='bp_free' never computes; use 'auto' or 'none'")
        if self.lbfgs_iter and (self.training != "backprop"
                                or not make_backend(self.derivatives, scale=1.0).deterministic):
            raise ValueError("lbfgs_iter needs training='backprop' and a deterministic "
                             "derivative back end (not 'stein')")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but CUDA is not available here")
        return device

    # ------------------------------------------------------------------ set-up
    def _dtype(self):
        # The sparse grid's large mixed-sign weights amplify float32 rounding about
        # sum |w (|z|^2 - D)| / s^2 times: above D = 3 it needs float64.
        high_dimension = self.pde.domain.dim > 3
        return torch.float64 if self.derivatives == "sparse_grid" and high_dimension \
            else torch.float32

    def _build(self, seed):
        domain = self.pde.domain
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layer_options = dict(zo_estimator=self.zo_estimator, zo_samples=self.zo_samples,
                                 surrogate_rank=max(1, min(self.hidden_layer_sizes) // 2))
            network = build_mlp(domain.dim, 1, tuple(self.hidden_layer_sizes), self.activation,
                                physical_layer=self.physical_layer, layer_options=layer_options,
                                tt_rank=self.tt_rank, seed=seed)
        backend = make_backend(self.derivatives, scale=domain.scale, smoothing=self.smoothing,
                               stein_samples=self.stein_samples)
        return PINNLoss(network.to(self._device, self._dtype()), self.pde, backend,
                        self.data_weight).to(self._device)

    def _draw(self, generator, data):
        """Points and random draws of one step (all made before the loss is evaluated)."""
        domain, backend = self.pde.domain, self._loss_module.backend
        dtype, device = self._dtype(), self._device
        options = dict(dtype=dtype, device=device)
        if data is not None and data[1] is None:  # X supplies the collocation points
            pick = torch.randperm(len(data[0]), generator=generator)[:self.n_collocation]
            collocation = data[0][pick]
        else:
            collocation = domain.sample_interior(self.n_collocation, generator, dtype).to(device)
        draws = [collocation, backend.draw(len(collocation), domain.dim, generator, **options)]
        conditions = []
        for condition in self.pde.conditions:
            points = condition.sample(domain, self.n_boundary, generator, dtype).to(device)
            conditions.append((points, backend.draw(len(points), domain.dim, generator,
                                                    **options)))
        draws.append(conditions)
        if data is not None and data[1] is not None:
            X, y = data
            draws += [(X, backend.draw(len(X), domain.dim, generator, **options)), y]
        return draws

    def _evaluations_per_loss(self, draws):
        backend, dim = self._loss_module.backend, self.pde.domain.dim
        count = len(draws[0]) * backend.evaluations_per_point(dim)
        for condition, (points, _) in zip(self.pde.conditions, draws[2], strict=True):
            per_point = backend.evaluations_per_point(dim) if condition.needs_derivatives \
                else backend.value_evaluations_per_point()
            count += len(points) * per_point
        if len(draws) > 3:
            count += len(draws[3][0]) * backend.value_evaluations_per_point()
        return count

    def _check_problem(self, draws):
        """Evaluate the loss once, turning a broken problem definition into a clear error."""
        with torch.no_grad() if self.derivatives != "autograd" else torch.enable_grad():
            loss = self._loss_module(*draws)
        if not torch.isfinite(loss):
            raise ValueError("the loss is not finite at the initial network: the residual, a "
                             "condition's value or the data returned NaN or inf")

    # ------------------------------------------------------------------ fit
    def fit(self, X=None, y=None):
        """Train the network on the PDE (and on data, when ``y`` is given).

        Parameters
        ----------
        X : array-like of shape (n_points, D), optional
            Points in the domain. Without ``y`` they replace the random collocation points
            (a random subset of ``n_collocation`` per step); with ``y`` they are data points.
        y : array-like of shape (n_points,), optional
            Values of u at X: adds ``data_weight * mean((u(X) - y)^2)`` to the loss
            (data-assisted and inverse problems).

        Returns
        -------
        self
        """
        self._device = self._validate()
        domain = self.pde.domain
        data = None
        if X is not None:
            if y is None:
                X = validate_data(self, X, dtype=np.float64)
            else:
                X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
            if X.shape[1] != domain.dim:
                raise ValueError(f"X must have {domain.dim} columns (the domain's dimension), "
                                 f"got {X.shape[1]}")
            X_t = torch.as_tensor(X, dtype=self._dtype(), device=self._device)
            outside = ~domain.contains(X_t)
            if outside.any():
                raise ValueError(f"{int(outside.sum())} rows of X lie outside {domain!r}")
            y_t = None if y is None else torch.as_tensor(y, dtype=self._dtype(),
                                                         device=self._device)
            data = (X_t, y_t)
        self.n_features_in_ = domain.dim
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        self._seed = seed
        self._loss_module = self._build(seed)
        self.module_ = self._loss_module.network
        generator = torch.Generator().manual_seed(seed)
        first_draw = self._draw(generator, data)
        self._check_problem(first_draw)
        evaluations_per_loss = self._evaluations_per_loss(first_draw)
        self.history_ = History()
        self._evaluations = 0
        if self.training == "backprop":
            step = self._adam_step(generator, data)
        else:
            step = self._bp_free_step(generator, data, evaluations_per_loss)
        callbacks = [EarlyStopping("train_loss", patience=self.max_iter + 1)]
        if self.verbose:
            callbacks.append(ProgressBar(self.max_iter))
        start = time.perf_counter()
        train_epochs(self._loss_module, step, lambda: [None], self.max_iter,
                     callbacks=callbacks, history=self.history_)
        if self.lbfgs_iter:
            self._lbfgs(generator, data)
        self.fit_time_ = time.perf_counter() - start
        self.n_iter_ = len(self.history_)
        self.loss_curve_ = self.history_[:, "train_loss"]
        self.n_network_evaluations_ = self._evaluations
        weights = self._loss_module.weights(data is not None and data[1] is not None)
        self.loss_weights_ = weights[1:].double().cpu().numpy()
        return self

    def _adam_step(self, generator, data):
        optimizer = torch.optim.Adam(self._loss_module.parameters(), lr=self.learning_rate)
        schedule = torch.optim.lr_scheduler.ExponentialLR(
            optimizer, gamma=(1 / 20) ** (1 / self.max_iter))
        has_data = data is not None and data[1] is not None
        # Hard constraints alone leave nothing to balance against the residual.
        balancing = self.loss_balancing != "none" and (len(self.pde.conditions) > 0 or has_data)

        def step(_):
            draws = self._draw(generator, data)
            optimizer.zero_grad()
            terms = self._loss_module.terms(*draws)
            if balancing and len(self.history_) % BALANCE_EVERY == 0:
                self._balance(terms)
            loss = terms @ self._loss_module.weights(has_data).to(terms.dtype)
            self._evaluations += self._evaluations_per_loss(draws)
            if not torch.isfinite(loss):
                return loss.item(), 1.0
            loss.backward()
            optimizer.step()
            schedule.step()
            return loss.item(), 1.0

        return step

    def _balance(self, terms):
        """Move each term's factor towards ||grad residual loss|| / ||grad term||."""
        parameters = [p for p in self._loss_module.parameters() if p.requires_grad]
        norms = []
        for term in terms:
            # Some parameters may not reach a term (the last bias never reaches a Laplacian).
            grads = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True,
                                        materialize_grads=True)
            norms.append(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads])))
        balance = self._loss_module.balance
        for index, norm in enumerate(norms[1:]):
            # Only ever raise a weight: lowering an initial or boundary condition below what the
            # user set let the residual fit a wrong solution (heat, Burgers, Black-Scholes).
            target = torch.clamp(norms[0] / norm, min=1.0)
            if torch.isfinite(target):  # a satisfied term keeps its factor
                balance[index] = BALANCE_MEMORY * balance[index] + (1 - BALANCE_MEMORY) * target

    def _bp_free_step(self, generator, data, evaluations_per_loss):
        # Perturbed losses per vectorised call: about 2e5 network evaluations at once keeps
        # memory in bounds (HJB-20d's sparse grid alone costs 92,500 per loss).
        optimizer = ZerothOrderOptimizer(
            self._loss_module.parameters(), lr=self.learning_rate, estimator=self.zo_estimator,
            n_samples=self.zo_samples, smoothing=self.zo_smoothing, update="adam",
            chunk_size=max(1, 200_000 // evaluations_per_loss), seed=self._seed)
        self._zo_optimizer = optimizer

        def step(_):
            draws = self._draw(generator, data)
            before = optimizer.n_evaluations
            loss = optimizer.step(BatchedLoss(self._loss_module, lambda value: value, tuple(draws)))
            self._evaluations += (optimizer.n_evaluations - before) * \
                self._evaluations_per_loss(draws)
            return float(loss), 1.0

        return step

    def _lbfgs(self, generator, data):
        draws = self._draw(generator, data)
        optimizer = torch.optim.LBFGS(self._loss_module.parameters(), max_iter=self.lbfgs_iter,
                                      line_search_fn="strong_wolfe")
        per_loss = self._evaluations_per_loss(draws)

        def closure():
            optimizer.zero_grad()
            loss = self._loss_module(*draws)
            loss.backward()
            self._evaluations += per_loss
            return loss

        optimizer.step(closure)

    # ------------------------------------------------------------------ predict
    def predict(self, X):
        """u at the points X, shape (n_points,).

        Parameters
        ----------
        X : array-like of shape (n_points, D)

        Returns
        -------
        ndarray of shape (n_points,)
        """
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        x = torch.as_tensor(X, dtype=self._dtype(), device=self._device)
        backend = self._loss_module.backend
        # A fixed stream: Stein's smoothed predictions are the same at every call.
        generator = torch.Generator().manual_seed(self._seed)
        noise = backend.draw(len(x), x.shape[1], generator, dtype=x.dtype, device=x.device)
        self._loss_module.eval()
        with torch.no_grad():
            return self._loss_module.values(x, noise).double().cpu().numpy()

    def relative_l2_error(self, X=None, n_points=10000):
        """``||u - u_exact|| / ||u_exact||`` against the problem's exact solution.

        Parameters
        ----------
        X : array-like of shape (n_points, D), optional
            Where to compare; default ``n_points`` uniform points of the domain (fixed seed).
        n_points : int, default=10000
            Number of uniform points when X is None.

        Returns
        -------
        float
        """
        if self.pde.solution is None:
            raise ValueError("this PDE has no exact solution: give PDE(..., solution=...)")
        if X is None:
            X = self.pde.domain.sample_interior(n_points, torch.Generator().manual_seed(12345),
                                                torch.float64).numpy()
        X = np.asarray(X, dtype=np.float64)
        exact = np.asarray(self.pde.solution(torch.as_tensor(X)), dtype=np.float64).ravel()
        return float(np.linalg.norm(self.predict(X) - exact) / np.linalg.norm(exact))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        return tags

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_zo_optimizer", None)
        if "_loss_module" in state:
            state["_loss_module"] = copy.deepcopy(state["_loss_module"]).cpu()
            state["module_"] = state["_loss_module"].network
            state["_device"] = torch.device("cpu")
        return state
