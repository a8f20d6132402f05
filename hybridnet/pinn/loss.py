"""The physics-informed loss: a network, a PDE and a derivative back end, as one module.

:class:`PINNLoss` turns the network's values at the points of one step (collocation points,
each condition's points, data points) into the loss terms: one per equation of the PDE's
residual, one per condition, one for the data. It draws nothing itself; the solver
(:class:`~hybridnet.PINNSolver`) draws the points and trains it. As DeepXDE keeps ``data/``
apart from ``geometry/``, ``icbc/`` and the model, this module knows neither how points are
drawn nor how the parameters move.
"""

import torch
from torch import nn

from .derivatives import AutogradDerivatives, Derivatives, shifted_points

# Candidate points per network call when the residual is evaluated for adaptive sampling.
RESIDUAL_CHUNK = 8192


def network_input_size(pde, dtype=torch.float32):
    """The width of the network's input: D, or the features of ``pde.input_transform``.

    Parameters
    ----------
    pde : PDE
        The problem.
    dtype : torch.dtype, default=torch.float32
        The precision the transform is probed in (the network's).

    Returns
    -------
    int

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import PDE, Interval
    >>> from hybridnet.pinn.loss import network_input_size
    >>> periodic = PDE(Interval(0, 1), lambda x, d: d.diff2(0),
    ...                input_transform=lambda x: torch.cat([torch.cos(x), torch.sin(x)], dim=1))
    >>> network_input_size(periodic)
    2
    """
    if pde.input_transform is None:
        return pde.domain.dim
    probe = pde.domain.sample_interior(2, torch.Generator().manual_seed(0), dtype)
    features = pde.input_transform(probe)
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or len(features) != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else \
            type(features).__name__
        raise ValueError(f"input_transform(x) must return a tensor of shape (n, F) for x of "
                         f"shape (n, {pde.domain.dim}), got {shape} for n = 2")
    return features.shape[1]


def _data_term(u, y):
    """``mean((u - y)^2)`` over the entries of y that were measured (NaN: not measured)."""
    measured = ~torch.isnan(y)
    # Multiplying by the mask (not indexing) keeps the shape fixed, as vmap needs.
    return ((u - y.nan_to_num()) * measured).square().sum() / measured.sum()


class PINNLoss(nn.Module):
    """The physics-informed loss of ``network`` for ``pde`` as a module.

    Its parameters are the network's and the PDE's unknown coefficients (``coefficients``), so
    any optimizer trains both; ``torch.func.functional_call`` and ``torch.vmap`` can evaluate
    the whole loss at many parameter points at once. All random draws (points, Stein
    directions) are inputs. :meth:`network_inputs` and :meth:`terms_from_outputs` split the
    loss at the network for back-propagation-free training.

    The terms are, in order: the mean squared residual of each equation the PDE's residual
    returns (one for a single equation), of each condition, then the data term of measured
    values (``mean((u(X) - y)^2)`` over the entries of y that are not NaN).

    Parameters
    ----------
    network : torch.nn.Module
        Maps (n, F) inputs to (n, k): F is D, or the width of ``pde.input_transform``'s
        features (:func:`network_input_size`); k is ``pde.n_outputs``.
    pde : PDE
        The problem.
    backend : DerivativeBackend
        How derivatives are computed.
    data_weight : float
        Weight of the data-fit term.
    dtype : torch.dtype, default=torch.float32
        Precision of the coefficients (the network's).

    Attributes
    ----------
    balance : torch.Tensor
        Factors on each condition's weight and on ``data_weight``, in that order (buffer;
        ones unless the solver balances the terms).
    coefficients : torch.nn.ParameterDict
        The PDE's unknown coefficients (``pde.parameters``), scalars starting at their initial
        values.
    n_equations : int
        How many equations the residual returns: 0 until the first evaluation sets it (a
        count, so :func:`hybridnet.save` restores it), which later ones must match.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from hybridnet.pinn import problems
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives
    >>> from hybridnet.pinn.loss import PINNLoss

    The loss of a tiny network on Poisson's problem, at points drawn for the residual and for
    the boundary condition:

    >>> pde = problems.poisson_2d()
    >>> _ = torch.manual_seed(0)
    >>> network = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    >>> loss = PINNLoss(network, pde, AutogradDerivatives())
    >>> g = torch.Generator().manual_seed(0)
    >>> collocation = pde.domain.sample_interior(32, g)
    >>> draws = [(condition.sample(pde.domain, 16, g), None) for condition in pde.conditions]
    >>> loss.terms(collocation, None, draws).shape
    torch.Size([2])
    >>> loss.term_names(with_data=False), loss.n_equations
    (['the PDE residual', 'condition 0 (DirichletBC)'], 1)
    >>> value = loss(collocation, None, draws)
    >>> value.shape, bool(torch.isfinite(value))
    (torch.Size([]), True)
    >>> value.backward()
    >>> network[0].weight.grad.shape
    torch.Size([8, 2])
    """

    def __init__(self, network, pde, backend, data_weight=1.0, dtype=torch.float32):
        super().__init__()
        self.network = network
        self.pde = pde
        self.backend = backend
        self.data_weight = data_weight
        self.coefficients = nn.ParameterDict({
            name: nn.Parameter(torch.tensor(value, dtype=dtype))
            for name, value in pde.parameters.items()})
        # Factors on the condition and data weights, set by loss balancing (1: as given).
        self.register_buffer("balance", torch.ones(len(pde.conditions) + 1))
        self.n_equations = 0

    # ------------------------------------------------------------------ the field u
    def network_output(self, x):
        """The network's raw output (n, k) at x; it sees ``input_transform(x)`` when set.

        Examples
        --------
        >>> import torch
        >>> from torch import nn
        >>> from hybridnet.pinn import PDE, Interval
        >>> from hybridnet.pinn.derivatives import AutogradDerivatives
        >>> from hybridnet.pinn.loss import PINNLoss
        >>> pde = PDE(Interval(0, 1), lambda x, d: d.diff2(0), n_outputs=2,
        ...           input_transform=lambda x: torch.cat([x, x**2], dim=1))
        >>> loss = PINNLoss(nn.Linear(2, 2), pde, AutogradDerivatives())
        >>> x = torch.rand(5, 1)
        >>> loss.network_output(x).shape, loss.field(x).shape
        (torch.Size([5, 2]), torch.Size([5, 2]))
        """
        transform = self.pde.input_transform
        return self.network(x if transform is None else transform(x))

    def _field_from(self, x, out):
        """u at x from the network's output (n, k) there: (n,) for one output, then through
        ``output_transform`` when set."""
        k = self.pde.n_outputs
        if out.ndim != 2 or out.shape[1] != k:
            raise ValueError(f"the network must output (n, {k}) for a PDE of {k} output(s), "
                             f"got {tuple(out.shape)}")
        if k == 1:
            out = out[:, 0]
        if self.pde.output_transform is not None:
            out = self.pde.output_transform(x, out)
            expected = (len(x),) if k == 1 else (len(x), k)
            if not isinstance(out, torch.Tensor) or out.shape != expected:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else \
                    type(out).__name__
                raise ValueError(f"output_transform(x, network_output) must return shape "
                                 f"{expected}, got {shape}")
        return out

    def field(self, x):
        """u at x, (n,) or (n, k): the network's output, through the transforms when set.

        Derivatives of the field are with respect to x: ``input_transform`` is applied inside
        it, after any back end has shifted the points.
        """
        return self._field_from(x, self.network_output(x))

    def values(self, x, noise=None):
        """u at x as the back end defines it (Stein: the smoothed u)."""
        return self.backend.values(self.field, x, noise)

    # ------------------------------------------------------------------ residual
    def _equations(self, x, d):
        """The residual's equations at x, a list of (n,) tensors, checked."""
        out = self.pde.residual(x, d)
        equations = list(out) if isinstance(out, list | tuple) else [out]
        for index, equation in enumerate(equations):
            if not isinstance(equation, torch.Tensor) or equation.shape != (len(x),):
                shape = tuple(equation.shape) if isinstance(equation, torch.Tensor) else \
                    type(equation).__name__
                which = f"equation {index} is" if isinstance(out, list | tuple) else "got"
                raise ValueError(f"residual(x, d) must return a tensor of shape ({len(x)},) "
                                 f"or a list of them (one per equation); {which} {shape}")
        if not equations:
            raise ValueError("residual(x, d) returned an empty list: it needs at least one "
                             "equation")
        if not self.n_equations:
            self.n_equations = len(equations)
        elif len(equations) != self.n_equations:
            raise ValueError(f"residual(x, d) returned {len(equations)} equations, but "
                             f"{self.n_equations} before: the number of equations must not "
                             "change")
        return equations

    def residuals(self, x, noise=None):
        """The residual's size at x (n,), detached, in chunks (for adaptive sampling).

        ``|r|`` for one equation, the Euclidean norm over the equations of a system.
        """
        space_axes = self.pde.domain.space_axes
        needs_grad = isinstance(self.backend, AutogradDerivatives)
        pieces = []
        for start in range(0, len(x), RESIDUAL_CHUNK):
            points = x[start:start + RESIDUAL_CHUNK]
            piece_noise = None if noise is None else noise[start:start + RESIDUAL_CHUNK]
            with torch.enable_grad() if needs_grad else torch.no_grad():
                d = self.backend.evaluate(self.field, points, piece_noise, space_axes)
                d.parameters = dict(self.coefficients)
                equations = self._equations(points, d)
                pieces.append(torch.stack(equations).norm(dim=0).detach())
        return torch.cat(pieces)

    # ------------------------------------------------------------------ terms
    def _uses(self, collocation, noise, condition_draws, data_x):
        """Each use of the network the loss makes, in order: (needs derivatives, x, noise)."""
        uses = [(True, collocation, noise)]
        uses += [(condition.needs_derivatives, points, condition_noise)
                 for condition, (points, condition_noise)
                 in zip(self.pde.conditions, condition_draws, strict=True)]
        if data_x is not None:
            uses.append((False, *data_x))
        return uses

    def network_inputs(self, collocation, noise, condition_draws, data_x=None, data_y=None):
        """Every input the loss feeds the network, as one batch.

        The shifted points of the derivative back end for the residual and for each condition,
        then those of the data term, in the order :meth:`terms_from_outputs` reads them,
        through ``input_transform`` when the PDE has one. Needs a back end with shifted points
        (not autograd).

        Returns
        -------
        torch.Tensor
            Shape (R, F), R the network evaluations of one loss.
        """
        points = torch.cat([self._points(*use)
                            for use in self._uses(collocation, noise, condition_draws, data_x)])
        transform = self.pde.input_transform
        return points if transform is None else transform(points)

    def _points(self, derivatives, x, noise):
        """The points one use evaluates the network at: shifted for derivatives or values."""
        backend = self.backend
        shifts = backend.shifts(x, noise) if derivatives else backend.value_shifts(x, noise)
        return shifted_points(x, shifts)

    def terms_from_outputs(self, outputs, collocation, noise, condition_draws, data_x=None,
                           data_y=None, coefficients=None):
        """:meth:`terms` from the network's outputs at :meth:`network_inputs`, shape (R, k).

        ``coefficients`` (a dict of the PDE's unknown coefficients) replaces their current
        values, as back-propagation-free training evaluates them perturbed.
        """
        backend, pieces, start = self.backend, [], 0
        space_axes = self.pde.domain.space_axes
        for derivatives, x, n in self._uses(collocation, noise, condition_draws, data_x):
            # The raw points, not the network's inputs: derivatives are with respect to x.
            points = self._points(derivatives, x, n)
            u = self._field_from(points, outputs[start:start + len(points)])
            start += len(points)
            values = u.reshape(len(x), -1, *u.shape[1:])
            pieces.append(backend.from_values(values, x, n, space_axes) if derivatives
                          else backend.values_from(values, x, n))
        return torch.stack(self._terms(pieces, collocation, condition_draws, data_y,
                                       coefficients))

    def terms(self, collocation, noise, condition_draws, data_x=None, data_y=None):
        """The unweighted loss terms: each equation's mean squared residual, then each
        condition's, then the data term's.

        Returns
        -------
        torch.Tensor
            Shape ``(n_equations + len(pde.conditions) + (data_x is not None),)``.
        """
        return torch.stack(self._term_list(collocation, noise, condition_draws, data_x, data_y))

    def _term_list(self, collocation, noise, condition_draws, data_x=None, data_y=None):
        """:meth:`terms` as a list of 0-d tensors. The gradient of one of them runs backward
        through its own graph only; through the stacked tensor it would also run through
        every other term's graph (with zeros), the residual's second derivatives included."""
        space_axes = self.pde.domain.space_axes
        pieces = [self.backend.evaluate(self.field, x, n, space_axes) if derivatives
                  else self.values(x, n)
                  for derivatives, x, n in self._uses(collocation, noise, condition_draws,
                                                      data_x)]
        return self._terms(pieces, collocation, condition_draws, data_y)

    def _terms(self, pieces, collocation, condition_draws, data_y, coefficients=None):
        """The terms (a list) from each use's :class:`Derivatives` or values, in :meth:`_uses`
        order."""
        parameters = dict(self.coefficients) if coefficients is None else coefficients
        for piece in pieces:
            if isinstance(piece, Derivatives):  # the conditions' residuals may read them too
                piece.parameters = parameters
        terms = [equation.square().mean()
                 for equation in self._equations(collocation, pieces[0])]
        n_conditions = len(self.pde.conditions)
        for condition, (points, _), piece in zip(self.pde.conditions, condition_draws,
                                                 pieces[1:1 + n_conditions], strict=True):
            d, u = (piece, piece.u) if condition.needs_derivatives else (None, piece)
            terms.append(condition.residual(points, u, d, self.pde.domain).square().mean())
        if data_y is not None:
            terms.append(_data_term(pieces[-1], data_y))
        return terms

    def _equation_count(self):
        if not self.n_equations:
            raise RuntimeError("the residual has not been evaluated yet, so the number of its "
                               "equations is unknown: call terms() first")
        return self.n_equations

    def term_names(self, with_data):
        """Names of the terms, in the order of :meth:`terms` (for error messages)."""
        count = self._equation_count()
        names = ["the PDE residual"] if count == 1 else \
            [f"equation {index} of the PDE residual" for index in range(count)]
        names += [f"condition {index} ({type(condition).__name__})"
                  for index, condition in enumerate(self.pde.conditions)]
        return names + ["the data term"] if with_data else names

    def weights(self, with_data):
        """Weight of each term: 1 for each equation, user weight x balance for the others."""
        user = [condition.weight for condition in self.pde.conditions]
        user += [self.data_weight] if with_data else []
        balance = self.balance[:len(user)]
        return torch.cat([balance.new_ones(self._equation_count()),
                          balance.new_tensor(user) * balance])

    def forward(self, collocation, noise, condition_draws, data_x=None, data_y=None):
        terms = self.terms(collocation, noise, condition_draws, data_x, data_y)
        return terms @ self.weights(data_x is not None).to(terms.dtype)
