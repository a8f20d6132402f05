"""Derivative back ends: the one swappable piece that turns a network into ``u, du, d2u``.

Each back end evaluates a field ``f`` (the network, after any transforms) at points ``x``
(n x D) and returns a :class:`Derivatives` object. ``f`` returns (n,) values for a scalar
field or (n, k) for k components; the shifted points give every component at once (values
(n, K, k)). Every shifted point of a batch goes through ``f`` in one call. Each back end gives
first derivatives, pure second derivatives and mixed ones ``d2u / dx_i dx_j``:

- ``AutogradDerivatives``: exact, by ``torch.autograd`` on the inputs (one backward pass per
  component's gradient and per row of a component's Hessian that is asked for).
- ``FiniteDifferences``: central differences with step h, ``2D + 1`` evaluations per point,
  plus 2 per mixed pair a residual uses (``x +- h (e_i + e_j)``).
- ``SteinDerivatives``: Monte Carlo over the Gaussian smoothing ``u(x) = E f(x + delta)``,
  ``delta ~ N(0, s^2 I)``, with antithetic pairs: ``grad u = E[delta (f(x+delta) -
  f(x-delta))] / (2 s^2)``, ``d2u/dx_i^2 = E[(delta_i^2 - s^2)(f(x+delta) + f(x-delta) -
  2 f(x))] / (2 s^4)``, ``d2u/dx_i dx_j = E[delta_i delta_j (f(x+delta) + f(x-delta) -
  2 f(x))] / (2 s^4)``; ``2N + 1`` evaluations per point. Unbiased for the smoothed u, noisy.
- ``SparseGridDerivatives``: the same expectations by a Smolyak level-3 Gauss-Hermite rule,
  one-sided (the node set is symmetric): ``2D^2 + 2D + 1`` evaluations per point, exact for
  polynomials up to degree 3 (mixed derivatives included, from the rule's nodes on axis
  pairs), and estimates of the raw network's derivatives to O(s^2); u is the raw network, and
  it runs in float64.

Every back end but autograd is two pieces: the offsets of the points it evaluates around each
point (``shifts``) and the estimates computed from the network's values there
(``from_values``). The Monte Carlo directions are drawn by :meth:`DerivativeBackend.draw`
*before* evaluation. So a caller can collect the shifted points of a whole loss, push them through
the network at many parameter settings in one batched call and turn each setting's values into
derivatives with no randomness inside (back-propagation-free training,
:meth:`hybridnet.pinn.loss.PINNLoss.network_inputs`).
"""

import functools
import math
import operator

import torch

from .._random import randn


class Derivatives:
    """Values and derivatives of u at n points, computed on first use.

    u is a scalar field (``d.u`` of shape (n,)) or a vector field of k > 1 components (``d.u``
    of shape (n, k), a PDE with ``n_outputs=k``). Every method takes ``component``: an int
    picks one component and gives the scalar shapes ((n,), and (n, len(axes)) for
    :meth:`grad`); None gives every component, stacked on a last axis for a vector field
    (:meth:`diff`, :meth:`diff2` and :meth:`laplacian` (n, k), :meth:`grad` (n, len(axes),
    k)) and the scalar shapes for one component.

    Axes number the coordinates ``0 .. D - 1``, time included. An axis outside that range
    raises an ``IndexError`` naming the call, the axis and D; so does a component outside
    ``0 .. k - 1``. Negative axes are refused rather than counted from the end: in a PDE an
    axis is a coordinate's number, and ``-1`` is far more often an off-by-one slip than a
    request for the last coordinate (often time), which would silently solve a different PDE.

    Parameters
    ----------
    u : torch.Tensor
        Values, (n,) for a scalar field or (n, k) for k components.
    space_axes : list of int
        The default axes of :meth:`grad` and :meth:`laplacian`.
    gradient : callable, optional
        ``gradient(c) -> (n, D)``: the first derivatives of component c (0 for a scalar field).
        None for values alone.
    second : callable, optional
        ``second(i, j, c) -> (n,)``: ``d2 u_c / dx_i dx_j`` for ``i <= j``.
    dim : int
        D, the domain's dimension (the number of coordinates of a point).

    Attributes
    ----------
    n_outputs : int
        k, the number of components (1 for a scalar field).
    parameters : dict of str to torch.Tensor
        The PDE's unknown coefficients (``PDE(parameters=...)``), set by the solver before the
        residual is called; empty otherwise.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives, FiniteDifferences
    >>> d = FiniteDifferences(1e-3).evaluate(lambda x: x[:, 0] ** 2, torch.ones(4, 1))
    >>> d.diff(1)
    Traceback (most recent call last):
    ...
    IndexError: d.diff(1): axis 1 is out of range for a 1-dimensional domain (valid axes 0..0)

    A vector field ``u = (x y, x^2)``: one component, or all of them on a last axis.

    >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    >>> d = AutogradDerivatives().evaluate(
    ...     lambda p: torch.stack([p[:, 0] * p[:, 1], p[:, 0] ** 2], dim=1), x, space_axes=[0, 1])
    >>> d.u.shape, d.diff(0).shape, d.grad().shape
    (torch.Size([2, 2]), torch.Size([2, 2]), torch.Size([2, 2, 2]))
    >>> d.diff(0, component=0).tolist(), d.diff2(0, 1, component=0).tolist()
    ([2.0, 4.0], [1.0, 1.0])
    >>> d.laplacian(component=1).tolist()
    [2.0, 2.0]
    """

    def __init__(self, u, space_axes, gradient=None, second=None, *, dim):
        self.u = u
        self.dim = int(dim)
        self.n_outputs = 1 if u.ndim == 1 else u.shape[1]
        self.space_axes = list(space_axes)
        self._gradient = gradient
        self._second = second
        self._cache = {}
        self.parameters = {}

    @staticmethod
    def _call(method, *arguments, component=None):
        """How a call is written in error messages: ``d.diff2(0, 1, component=2)``."""
        shown = [repr(argument) for argument in arguments]
        shown += [] if component is None else [f"component={component!r}"]
        return f"d.{method}({', '.join(shown)})"

    def _axis(self, axis, call):
        """``axis`` as an int in ``0 .. dim - 1``, or an error that names ``call``."""
        try:
            index = operator.index(axis)
        except TypeError:
            raise TypeError(f"{call}: an axis must be an int, got "
                            f"{type(axis).__name__}") from None
        if not 0 <= index < self.dim:
            negative = "; negative axes are not accepted" if index < 0 else ""
            raise IndexError(f"{call}: axis {index} is out of range for a {self.dim}-dimensional "
                             f"domain (valid axes 0..{self.dim - 1}{negative})")
        return index

    def _axes(self, axes, call):
        """The checked ``axes`` of ``grad`` or ``laplacian`` (default: the space axes)."""
        if axes is None:
            return self.space_axes
        if not hasattr(axes, "__iter__"):
            raise TypeError(f"{call}: axes must be a sequence of ints; use d.diff(i) or "
                            f"d.diff2(i) for one axis")
        return [self._axis(axis, call) for axis in axes]

    def _component(self, component, call):
        """``component`` as an int in ``0 .. k - 1``, or None for all of them."""
        if component is None:
            return None
        try:
            index = operator.index(component)
        except TypeError:
            raise TypeError(f"{call}: component must be an int or None, got "
                            f"{type(component).__name__}") from None
        if not 0 <= index < self.n_outputs:
            raise IndexError(f"{call}: component {index} is out of range for a u of "
                             f"{self.n_outputs} component(s) (valid components "
                             f"0..{self.n_outputs - 1})")
        return index

    def _each(self, component, of):
        """``of(c)`` for the component asked, or for every one stacked on a last axis."""
        if component is not None or self.n_outputs == 1:
            return of(component or 0)
        return torch.stack([of(c) for c in range(self.n_outputs)], dim=-1)

    def _first(self, c):
        if self._gradient is None:
            raise TypeError("these Derivatives hold values only (a back end without "
                            "derivatives made them)")
        key = ("first", c)
        if key not in self._cache:
            self._cache[key] = self._gradient(c)
        return self._cache[key]

    def _second_of(self, i, j, c):
        i, j = min(i, j), max(i, j)
        if (i, j, c) not in self._cache:
            self._cache[i, j, c] = self._second(i, j, c)
        return self._cache[i, j, c]

    def diff(self, i, component=None):
        """First derivative along coordinate ``i`` (``0 <= i < dim``): (n,), or (n, k)."""
        call = self._call("diff", i, component=component)
        i, component = self._axis(i, call), self._component(component, call)
        return self._each(component, lambda c: self._first(c)[:, i])

    def grad(self, axes=None, component=None):
        """First derivatives along ``axes`` (default: the space coordinates).

        Shape (n, len(axes)), or (n, len(axes), k) for every component of a vector field.
        """
        call = self._call("grad", *([] if axes is None else [axes]), component=component)
        axes, component = self._axes(axes, call), self._component(component, call)
        return self._each(component, lambda c: self._first(c)[:, axes])

    def diff2(self, i, j=None, component=None):
        """Second derivative ``d2u / dx_i dx_j`` (``j`` None: ``d2u / dx_i^2``): (n,), or (n, k).
        """
        call = self._call("diff2", i, *([] if j is None else [j]), component=component)
        i = self._axis(i, call)
        j = i if j is None else self._axis(j, call)
        component = self._component(component, call)
        return self._each(component, lambda c: self._second_of(i, j, c))

    def laplacian(self, axes=None, component=None):
        """Sum of second derivatives over ``axes`` (default: the space coordinates): (n,), or
        (n, k)."""
        call = self._call("laplacian", *([] if axes is None else [axes]), component=component)
        axes, component = self._axes(axes, call), self._component(component, call)
        return self._each(component,
                          lambda c: sum(self._second_of(i, i, c) for i in axes))


def _components(values):
    """Network values (n, K) or (n, K, k) as (n, K, k), and whether they were scalar."""
    return (values[..., None], True) if values.ndim == 2 else (values, False)


def _from_tensors(u, gradient, pure, mixed, space_axes, dim):
    """:class:`Derivatives` from (n, D, k) first and pure second derivatives, and
    ``mixed(i, j) -> (n, k)`` for ``i < j`` (computed once per pair, on first use)."""
    mixed = functools.cache(mixed)
    return Derivatives(u, space_axes, lambda c: gradient[..., c],
                       lambda i, j, c: pure[:, i, c] if i == j else mixed(i, j)[:, c], dim=dim)


class DerivativeBackend:
    """Base class of the back ends that evaluate the network at shifted points.

    Such a back end is two pieces: :meth:`~DerivativeBackend.shifts`, the offsets of the
    points it evaluates around each point, and :meth:`from_values`, the derivatives computed from
    the network's values there. :meth:`evaluate` joins them with one network call. Keeping them
    apart lets a caller push the shifted points of a whole loss, at many parameter settings, through
    the network in one batched call (back-propagation-free training) and hand the values back.

    Attributes
    ----------
    deterministic : bool
        False when the estimates depend on random draws (Stein).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.derivatives import (DerivativeBackend, FiniteDifferences,
    ...                                         shifted_values)

    :meth:`evaluate` in its two pieces, for central differences on ``u = sin(x) t``:

    >>> def f(p):
    ...     return torch.sin(p[:, 0]) * p[:, 1]
    >>> x = torch.tensor([[0.5, 2.0], [1.0, 3.0]], dtype=torch.float64)
    >>> backend = FiniteDifferences(1e-3)
    >>> isinstance(backend, DerivativeBackend), backend.deterministic
    (True, True)
    >>> shifts = backend.shifts(x)
    >>> shifts.shape == (backend.evaluations_per_point(2), 2)
    True
    >>> d = backend.from_values(shifted_values(f, x, shifts), x, space_axes=[0])
    >>> torch.allclose(d.diff(0), torch.cos(x[:, 0]) * x[:, 1], atol=1e-5)
    True
    >>> torch.allclose(backend.values(f, x), f(x))
    True
    """

    deterministic = True

    def evaluations_per_point(self, dim):
        """Network evaluations one point costs in ``evaluate``."""
        return 1

    def value_evaluations_per_point(self):
        """Network evaluations one point costs in :meth:`~DerivativeBackend.values`."""
        return 1

    def draw(self, n_points, dim, generator, *, dtype, device):
        """Random draws an evaluation of ``n_points`` needs (None for deterministic ones)."""
        return None

    def shifts(self, x, noise=None):
        """Offsets of the points :meth:`evaluate` sends through the network around each x.

        Returns
        -------
        torch.Tensor
            Shape (K, D), the same for every point, or (n, K, D): the network is evaluated at
            ``x[:, None] + shifts``, K = :meth:`evaluations_per_point` per point.
        """
        return x.new_zeros(1, x.shape[1])

    def from_values(self, values, x, noise=None, space_axes=()):
        """The :class:`Derivatives` at x from the network's values at the shifted points.

        ``values`` is (n, K) for a scalar field, (n, K, k) for k components.
        """
        return Derivatives(values[:, 0], space_axes, dim=x.shape[1])

    def value_shifts(self, x, noise=None):
        """Offsets of the points :meth:`~DerivativeBackend.values` evaluates.

        Like :meth:`~DerivativeBackend.shifts`.
        """
        return x.new_zeros(1, x.shape[1])

    def values_from(self, values, x, noise=None):
        """u at x, (n,) or (n, k), from the values (n, K) or (n, K, k) at
        :meth:`value_shifts`."""
        return values[:, 0]

    def evaluate(self, f, x, noise=None, space_axes=()):
        """u and its derivatives at x (n, D): ``f`` evaluated once, at every shifted point."""
        return self.from_values(shifted_values(f, x, self.shifts(x, noise)), x, noise,
                                space_axes)

    def values(self, f, x, noise=None):
        """u at x, (n,) or (n, k), as this back end defines it (the raw network unless
        smoothed)."""
        return self.values_from(shifted_values(f, x, self.value_shifts(x, noise)), x, noise)


def shifted_points(x, shifts):
    """The points ``x[:, None] + shifts`` as one (n * K, D) batch, point-major.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0, 0], [10, 20]])
    >>> shifts = torch.tensor([[0, 0], [1, 0], [0, 1]])
    >>> shifted_points(x, shifts).tolist()
    [[0, 0], [1, 0], [0, 1], [10, 20], [11, 20], [10, 21]]
    """
    return (x.unsqueeze(1) + shifts).reshape(-1, x.shape[1])


def shifted_values(f, x, shifts):
    """``f`` at ``x[:, None] + shifts`` in one call, as (n, K), or (n, K, k) when ``f`` gives
    k components.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0, 0], [10, 20]])
    >>> shifts = torch.tensor([[0, 0], [1, 0], [0, 1]])
    >>> shifted_values(lambda p: p.sum(dim=1), x, shifts).tolist()
    [[0, 1, 1], [30, 31, 31]]
    """
    out = f(shifted_points(x, shifts))
    return out.reshape(len(x), -1, *out.shape[1:])


class AutogradDerivatives(DerivativeBackend):
    """Exact derivatives by autograd on the inputs (one evaluation plus backward passes).

    It differentiates the network itself, so it has no shifted points:
    :meth:`~DerivativeBackend.shifts` raises.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives

    The derivatives of ``u = sin(x) t``, columns (x, t):

    >>> x = torch.tensor([[0.5, 2.0], [1.0, 3.0]], dtype=torch.float64)
    >>> d = AutogradDerivatives().evaluate(lambda p: torch.sin(p[:, 0]) * p[:, 1], x,
    ...                                    space_axes=[0])
    >>> s, c, t = torch.sin(x[:, 0]), torch.cos(x[:, 0]), x[:, 1]
    >>> torch.allclose(d.u, s * t), torch.allclose(d.diff(0), c * t)
    (True, True)
    >>> torch.allclose(d.diff(1), s), torch.allclose(d.laplacian(), -s * t)
    (True, True)
    """

    def shifts(self, x, noise=None):
        raise TypeError("autograd derivatives differentiate the network and evaluate it at no "
                        "shifted points; use finite_difference, stein or sparse_grid")

    def evaluate(self, f, x, noise=None, space_axes=()):
        x = x.detach().requires_grad_(True)
        u = f(x)
        columns = u[:, None] if u.ndim == 1 else u

        # One backward pass per component's gradient, and one per row i of a component's
        # Hessian (which gives d2u/dx_i dx_j for every j): only what the residual asks for.
        @functools.cache
        def gradient(c):
            return _gradient(columns[:, c].sum(), x)

        @functools.cache
        def hessian_row(i, c):
            return _gradient(gradient(c)[:, i].sum(), x)

        return Derivatives(u, space_axes, gradient, lambda i, j, c: hessian_row(i, c)[:, j],
                           dim=x.shape[1])


def _gradient(output, x):
    """d output / d x, zero where output does not depend on x (the second derivatives of a
    u that is linear in x, whose gradient autograd leaves without a graph)."""
    if not output.requires_grad:
        return torch.zeros_like(x)
    return torch.autograd.grad(output, x, create_graph=True, materialize_grads=True)[0]


class FiniteDifferences(DerivativeBackend):
    """Central finite differences with step ``step`` along every coordinate.

    First and pure second derivatives come from ``x +- h e_i`` (``2D + 1`` evaluations per
    point). A mixed derivative ``d2u / dx_i dx_j`` (i != j) also needs ``x +- h (e_i + e_j)``:
    ``[f(x + h(e_i + e_j)) + f(x - h(e_i + e_j)) - f(x + h e_i) - f(x - h e_i) - f(x + h e_j)
    - f(x - h e_j) + 2 f(x)] / (2 h^2)``, O(h^2) like the others and 2 more evaluations per
    pair (the 4-point stencil ``x +- h e_i +- h e_j`` would cost 4). The stencil holds these
    diagonal shifts only for the pairs in ``mixed_pairs``, so a PDE without mixed derivatives
    pays nothing for them (every pair would cost ``D^2 + D + 1`` evaluations per point, 463
    instead of 43 at D = 21). :meth:`~DerivativeBackend.evaluate` adds a pair the first time
    its derivatives are asked for it (one extra network call then), and every later evaluation
    and :meth:`~DerivativeBackend.shifts` include it: a solver's first loss evaluation sets the
    stencil its residual needs. :meth:`~DerivativeBackend.from_values` has no network to call,
    and refuses a pair its values lack.

    Parameters
    ----------
    step : float
        h; the error is O(h^2) plus rounding O(eps / h^2) for second derivatives, so float32
        wants h around 1e-2 times the domain size.
    mixed_pairs : sequence of pairs of int, default=()
        Axis pairs (i, j), i != j, whose diagonal shifts the stencil holds from the start.

    Attributes
    ----------
    mixed_pairs : list of tuple of int
        The pairs (i < j) the stencil holds now.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.derivatives import FiniteDifferences

    The derivatives of ``u = sin(x) t``, columns (x, t), to O(h^2):

    >>> fd = FiniteDifferences(1e-3)
    >>> x = torch.tensor([[0.5, 2.0], [1.0, 3.0]], dtype=torch.float64)
    >>> d = fd.evaluate(lambda p: torch.sin(p[:, 0]) * p[:, 1], x, space_axes=[0])
    >>> fd.evaluations_per_point(2)
    5
    >>> s, c, t = torch.sin(x[:, 0]), torch.cos(x[:, 0]), x[:, 1]
    >>> torch.allclose(d.diff(0), c * t, atol=1e-5), torch.allclose(d.diff(1), s, atol=1e-5)
    (True, True)
    >>> torch.allclose(d.diff2(0), -s * t, atol=1e-5)
    True

    Asking for ``d2u / dx dt`` adds the pair to the stencil:

    >>> torch.allclose(d.diff2(0, 1), c, atol=1e-5)
    True
    >>> fd.mixed_pairs, fd.evaluations_per_point(2)
    ([(0, 1)], 7)
    """

    def __init__(self, step, mixed_pairs=()):
        self.step = step
        self.mixed_pairs = []
        for pair in mixed_pairs:
            self._add_pair(pair)

    def _add_pair(self, pair):
        try:
            i, j = (operator.index(axis) for axis in pair)
        except (TypeError, ValueError):
            raise ValueError(f"mixed_pairs must hold pairs of int axes, got {pair!r}") from None
        if i == j or min(i, j) < 0:
            raise ValueError(f"mixed_pairs must hold pairs of two different non-negative axes, "
                             f"got {pair!r}")
        if (min(i, j), max(i, j)) not in self.mixed_pairs:
            self.mixed_pairs.append((min(i, j), max(i, j)))

    def evaluations_per_point(self, dim):
        return 2 * (dim + len(self.mixed_pairs)) + 1

    def shifts(self, x, noise=None):
        dim = x.shape[1]
        if any(j >= dim for _, j in self.mixed_pairs):
            raise ValueError(f"mixed_pairs {self.mixed_pairs} name an axis outside a "
                             f"{dim}-dimensional domain")
        eye = torch.eye(dim, dtype=x.dtype, device=x.device)
        pairs = torch.tensor(self.mixed_pairs, dtype=torch.long, device=x.device).reshape(-1, 2)
        steps = self.step * torch.cat([eye, eye[pairs[:, 0]] + eye[pairs[:, 1]]])
        return torch.cat([x.new_zeros(1, dim), steps, -steps])

    def evaluate(self, f, x, noise=None, space_axes=()):
        pairs = list(self.mixed_pairs)
        return self._derivatives(shifted_values(f, x, self.shifts(x)), x, space_axes, pairs, f)

    def from_values(self, values, x, noise=None, space_axes=()):
        return self._derivatives(values, x, space_axes, list(self.mixed_pairs), None)

    def _derivatives(self, values, x, space_axes, pairs, field):
        """Derivatives from values at the stencil of ``pairs``; ``field`` (or None) evaluates
        the diagonal shifts of a pair the stencil lacks."""
        v, scalar = _components(values)
        dim, h = x.shape[1], self.step
        width = dim + len(pairs)
        if v.shape[1] != 2 * width + 1:
            raise ValueError(f"finite differences need {2 * width + 1} values per point (the "
                             f"stencil of {dim} axes and mixed pairs {pairs}), got "
                             f"{v.shape[1]}")
        center, plus, minus = v[:, :1], v[:, 1:width + 1], v[:, width + 1:]
        # h^2 u_ii + O(h^4) along each axis, h^2 (u_ii + 2 u_ij + u_jj) along each pair.
        even = plus + minus - 2 * center

        def mixed(i, j):
            if (i, j) in pairs:
                diagonal = even[:, dim + pairs.index((i, j))]
            elif field is None:
                raise ValueError(f"d2u/dx{i}dx{j}: these finite-difference values hold no "
                                 f"shifts along e{i} + e{j}; use FiniteDifferences(step, "
                                 f"mixed_pairs=[({i}, {j})]) or evaluate(), which adds the "
                                 "pair")
            else:
                self._add_pair((i, j))
                step = h * (torch.eye(dim, dtype=x.dtype, device=x.device)[[i, j]].sum(dim=0))
                outer, _ = _components(shifted_values(field, x, torch.stack([step, -step])))
                diagonal = outer.sum(dim=1) - 2 * center[:, 0]
            return (diagonal - even[:, i] - even[:, j]) / (2 * h**2)

        return _from_tensors(center[:, 0, 0] if scalar else center[:, 0],
                             (plus[:, :dim] - minus[:, :dim]) / (2 * h), even[:, :dim] / h**2,
                             mixed, space_axes, dim)


STEIN_SAMPLINGS = ("qmc", "mc")


def gaussian_directions(n_points, n_samples, dim, generator, *, sampling="qmc", dtype,
                        device):
    """Standard normal directions (n_points, n_samples, dim) for Stein estimates.

    ``sampling="mc"``: independent draws. ``"qmc"``: randomised quasi-Monte Carlo, one
    scrambled Sobol set of ``n_samples`` points in ``[0, 1)^dim`` (its seed drawn from
    ``generator``), moved by an independent uniform shift modulo 1 for every point (a
    Cranley-Patterson rotation, so each point's set is uniformly distributed and the points'
    errors are independent), then mapped to Gaussians by the inverse normal CDF. Every
    direction is still exactly N(0, I), so the estimates stay unbiased, but the set covers the
    space more evenly: on a random tanh network at N = 64 the Stein gradient's error halves;
    the second derivatives' error barely moves (control variates remove that, see
    :class:`SteinDerivatives`).

    Parameters
    ----------
    n_points, n_samples, dim : int
        Shape of the draw: points, directions per point, coordinates.
    generator : torch.Generator
        The random stream (the Sobol scramble's seed and the shifts come from it).
    sampling : {"qmc", "mc"}, default="qmc"
        Quasi-Monte Carlo or independent draws.
    dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    torch.Tensor
        Shape (n_points, n_samples, dim).

    Examples
    --------
    >>> import torch
    >>> z = gaussian_directions(3, 64, 2, torch.Generator().manual_seed(0),
    ...                         dtype=torch.float64, device="cpu")
    >>> z.shape, bool(abs(float(z.square().mean()) - 1) < 0.05)
    (torch.Size([3, 64, 2]), True)
    """
    if sampling not in STEIN_SAMPLINGS:
        raise ValueError(f"sampling must be one of {STEIN_SAMPLINGS}, got {sampling!r}")
    if sampling == "mc":
        return randn((n_points, n_samples, dim), generator, dtype=dtype, device=device)
    from scipy.stats import qmc

    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    # A power of two keeps Sobol's balance; the first n_samples of it otherwise.
    m = max(0, math.ceil(math.log2(n_samples)))
    base = torch.as_tensor(qmc.Sobol(dim, scramble=True, seed=seed).random_base2(m)[:n_samples])
    shift = torch.rand((n_points, 1, dim), generator=generator, dtype=torch.float64)
    uniform = torch.remainder(base + shift, 1.0).clamp(1e-12, 1 - 1e-12)
    return torch.special.ndtri(uniform).to(device=device, dtype=dtype)


def _control_variate_weights(features, weights, means):
    """Per-sample weights of the regression (control-variate) estimator.

    The plain estimate of ``E[w(z) g(z)]`` is ``mean_k w_k g_k``. With controls
    ``w(z) phi_p(z)`` of known means ``means_p``, and coefficients ``beta`` fitted by least
    squares of ``g_k`` on ``phi_p(z_k)``, the estimate
    ``mean_k w_k g_k - beta . (mean_k w_k phi(z_k) - means)`` is exact whenever g is a
    combination of the features, and its error otherwise comes only from what they miss.
    ``beta`` is linear in g, so the estimator is ``sum_k c_k g_k`` with weights c that depend
    on the directions only: this returns c.

    Parameters
    ----------
    features : torch.Tensor
        phi(z_k), shape (n, N, P).
    weights : torch.Tensor
        w(z_k) for each estimated quantity, shape (n, N, Q).
    means : torch.Tensor
        ``E[w_q(z) phi_p(z)]``, shape (P, Q).

    Returns
    -------
    torch.Tensor
        c, shape (n, N, Q).
    """
    n_samples = features.shape[1]
    gram = features.transpose(1, 2) @ features
    correction = means - features.transpose(1, 2) @ weights / n_samples
    return weights / n_samples + features @ torch.linalg.solve(gram, correction)


class SteinDerivatives(DerivativeBackend):
    """Stein estimates of the Gaussian-smoothed u (antithetic pairs), with variance reduction.

    With ``delta = s z``, ``z ~ N(0, I)``: ``grad u = E[delta (f(x+delta) - f(x-delta))] /
    (2 s^2)``, ``d2u/dx_i^2 = E[(delta_i^2 - s^2)(f(x+delta) + f(x-delta) - 2 f(x))] /
    (2 s^4)`` and, for i != j, ``d2u/dx_i dx_j = E[delta_i delta_j (f(x+delta) + f(x-delta) -
    2 f(x))] / (2 s^4)``, estimated from N pairs per point (``2N + 1`` network evaluations;
    the mixed derivatives from the same values). Two variance reductions, on by default, leave
    that cost unchanged:

    - ``sampling="qmc"``: randomised quasi-Monte Carlo directions
      (:func:`gaussian_directions`) instead of independent ones.
    - ``control_variates=True``: the Taylor terms of the differences (``delta_j`` for the
      odd part, ``delta_j delta_l`` for the even part) as controls with known means, their
      coefficients fitted by least squares over each point's samples (the same controls for
      pure and mixed second derivatives, ``E[z_i z_j z_l z_m] = 1`` only for ``{l, m} = {i,
      j}`` giving the mixed ones' means). The estimate is then
      exact for a network that is quadratic around x, and its error comes only from higher
      orders, which are O(s^2) smaller. The full quadratic basis needs ``N >= D (D + 1)``;
      with fewer samples only the squares ``delta_j^2`` are used (``N >= 2 D``), with fewer
      still none. The weights depend on the directions only, so the estimates stay linear in
      the network's values. Coefficients fitted on the samples they correct make the estimate
      biased by O(1/N), though consistent: for ``sin(3x)`` at s = 0.3 the second derivative's
      mean is off by -1.11 of -5.60 at N = 8, -0.28 at N = 64 and -0.04 at N = 512, while its
      RMS error falls 4.6x, 2.8x and 2.2x against plain Monte Carlo (which is unbiased);
      ``tests/test_pinn.py::test_stein_estimates_the_smoothed_derivatives_of_a_sine``.

    Parameters
    ----------
    smoothing : float
        s, the std of the Gaussian smoothing.
    n_samples : int
        N pairs per point.
    sampling : {"qmc", "mc"}, default="qmc"
        How the directions are drawn.
    control_variates : bool, default=True
        Fit and subtract the Taylor-term controls.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.derivatives import SteinDerivatives
    >>> stein = SteinDerivatives(0.01, 16)
    >>> x = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    >>> noise = stein.draw(1, 2, torch.Generator().manual_seed(0), dtype=x.dtype, device="cpu")
    >>> d = stein.evaluate(lambda p: (p**2).sum(dim=1), x, noise)
    >>> [round(float(v), 6) for v in (d.diff(0)[0], d.laplacian([0, 1])[0])]
    [1.0, 4.0]
    """

    deterministic = False

    def __init__(self, smoothing, n_samples, sampling="qmc", control_variates=True):
        if sampling not in STEIN_SAMPLINGS:
            raise ValueError(f"sampling must be one of {STEIN_SAMPLINGS}, got {sampling!r}")
        self.smoothing = smoothing
        self.n_samples = n_samples
        self.sampling = sampling
        self.control_variates = control_variates

    def evaluations_per_point(self, dim):
        return 2 * self.n_samples + 1

    def value_evaluations_per_point(self):
        return 2 * self.n_samples

    def draw(self, n_points, dim, generator, *, dtype, device):
        return self.smoothing * gaussian_directions(n_points, self.n_samples, dim, generator,
                                                    sampling=self.sampling, dtype=dtype,
                                                    device=device)

    def value_shifts(self, x, noise=None):
        return torch.cat([noise, -noise], dim=1)

    def values_from(self, values, x, noise=None):
        return values.mean(dim=1)

    def shifts(self, x, noise=None):
        return torch.cat([torch.zeros_like(noise[:, :1]), noise, -noise], dim=1)

    def _even_features(self, z):
        """Controls of the even part ``delta' H delta``: the squares ``z_j^2``, then the
        products ``z_j z_l`` (j < l, in ``triu_indices`` order) when ``N >= D (D + 1)``."""
        dim = z.shape[2]
        pairs = torch.triu_indices(dim, dim, offset=1, device=z.device)
        if self.n_samples >= dim * (dim + 1) and pairs.shape[1]:
            return torch.cat([z**2, z[..., pairs[0]] * z[..., pairs[1]]], dim=2)
        return z**2

    def estimator_weights(self, noise):
        """Weights (n, N, D) of the gradient and of the second derivatives.

        ``gradient = einsum(odd, g)`` with ``odd = (f(x+delta) - f(x-delta)) / 2`` and
        ``second = einsum(even, h)`` with ``even = f(x+delta) + f(x-delta) - 2 f(x)``.
        """
        s2, n_samples = self.smoothing**2, self.n_samples
        z = noise / self.smoothing
        gradient, second = z / (self.smoothing * n_samples), (z**2 - 1) / (2 * s2 * n_samples)
        dim = z.shape[2]
        if not (self.control_variates and n_samples >= 2 * dim):
            return gradient, second
        eye = torch.eye(dim, dtype=z.dtype, device=z.device)
        # odd part ~ grad . delta: controls z_j, E[z_j * z_l / s] = delta_jl / s
        gradient = _control_variate_weights(z, gradient * n_samples, eye / self.smoothing)
        features = self._even_features(z)
        # even part ~ delta' H delta: E[(z_i^2 - 1) z_j^2] / (2 s^2) = delta_ij / s^2 and
        # E[(z_i^2 - 1) z_j z_l] = 0 for j != l.
        means = torch.zeros(features.shape[2], dim, dtype=z.dtype, device=z.device)
        means[:dim] = eye / s2
        second = _control_variate_weights(features, second * n_samples, means)
        return gradient, second

    def mixed_weights(self, noise, i, j):
        """Weights (n, N) of the mixed second derivative ``d2u / dx_i dx_j``, ``i < j``.

        ``mixed = einsum(even, w)``; without control variates ``w = z_i z_j / (2 s^2 N)``, the
        Stein identity ``E[delta_i delta_j (f(x+delta) + f(x-delta) - 2 f(x))] / (2 s^4)``.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.derivatives import SteinDerivatives
        >>> stein = SteinDerivatives(0.1, 6)
        >>> noise = stein.draw(3, 2, torch.Generator().manual_seed(0), dtype=torch.float64,
        ...                    device="cpu")
        >>> w = stein.mixed_weights(noise, 0, 1)
        >>> w.shape
        torch.Size([3, 6])

        With N >= D (D + 1) the weights are exact on the even part of a quadratic, ``delta' H
        delta`` with ``H_01 = 3``:

        >>> even = 2 * 3 * noise[..., 0] * noise[..., 1]
        >>> torch.allclose((even * w).sum(dim=1), torch.full((3,), 3.0, dtype=torch.float64))
        True
        """
        s2, n_samples = self.smoothing**2, self.n_samples
        z = noise / self.smoothing
        dim = z.shape[2]
        weights = z[..., i] * z[..., j] / (2 * s2)
        if not (self.control_variates and n_samples >= 2 * dim):
            return weights / n_samples
        features = self._even_features(z)
        # E[z_i z_j z_l^2] = 0, and E[z_i z_j z_l z_m] = 1 for the pair {l, m} = {i, j} only.
        means = torch.zeros(features.shape[2], 1, dtype=z.dtype, device=z.device)
        if features.shape[2] > dim:
            means[dim + i * dim - i * (i + 1) // 2 + j - i - 1] = 1 / (2 * s2)
        return _control_variate_weights(features, weights[..., None], means)[..., 0]

    def from_values(self, values, x, noise=None, space_axes=()):
        v, scalar = _components(values)
        center = v[:, :1]
        plus, minus = v[:, 1:self.n_samples + 1], v[:, self.n_samples + 1:]
        even = plus + minus - 2 * center
        gradient_weights, second_weights = self.estimator_weights(noise)
        u = (plus + minus).mean(dim=1) / 2
        return _from_tensors(
            u[:, 0] if scalar else u,
            torch.einsum("nkc,nkd->ndc", (plus - minus) / 2, gradient_weights),
            torch.einsum("nkc,nkd->ndc", even, second_weights),
            lambda i, j: torch.einsum("nkc,nk->nc", even, self.mixed_weights(noise, i, j)),
            space_axes, x.shape[1])


def sparse_grid_rule(dim):
    """Smolyak level-3 Gauss-Hermite nodes (K, D) and weights (K,) for ``E f(z)``, z ~ N(0, I).

    Nodes: 0; +-sqrt(3) e_i; +-e_i; +-e_i +- e_j (i < j). Weights 2D/3 + (D-1)(D-2)/2, 1/6,
    -(D-1)/2 and 1/4. ``K = 2D^2 + 2D + 1``; the weights sum to 1 and the rule integrates every
    polynomial of degree <= 3 (and E z_i^4 = 3, E z_i^2 z_j^2 = 1) exactly.

    Examples
    --------
    >>> nodes, weights = sparse_grid_rule(3)
    >>> nodes.shape, round(float(weights.sum()), 12)
    (torch.Size([25, 3]), 1.0)
    """
    nodes, weights = _sparse_grid_rule(dim)
    return nodes.clone(), weights.clone()


@functools.cache
def _sparse_grid_rule(dim):
    """:func:`sparse_grid_rule`, built once per D (every step of a fit asks for it)."""
    eye = torch.eye(dim, dtype=torch.float64)
    pairs = [(i, j) for i in range(dim) for j in range(i + 1, dim)]
    mixed = [s1 * eye[i] + s2 * eye[j] for i, j in pairs for s1 in (1, -1) for s2 in (1, -1)]
    nodes = torch.cat([torch.zeros(1, dim, dtype=torch.float64), math.sqrt(3) * eye,
                       -math.sqrt(3) * eye, eye, -eye,
                       torch.stack(mixed) if mixed else eye[:0]])
    weights = torch.cat([
        torch.tensor([2 * dim / 3 + (dim - 1) * (dim - 2) / 2], dtype=torch.float64),
        torch.full((2 * dim,), 1 / 6, dtype=torch.float64),
        torch.full((2 * dim,), -(dim - 1) / 2, dtype=torch.float64),
        torch.full((len(mixed),), 1 / 4, dtype=torch.float64)])
    return nodes, weights


class SparseGridDerivatives(DerivativeBackend):
    """Sparse-grid Stein estimates: the Smolyak level-3 rule in place of Monte Carlo.

    The estimates equal the raw network's derivatives up to O(s^2) (not those of its smoothed
    model). A mixed derivative ``E[z_i z_j f(x + s z)] / s^2`` uses only the rule's four nodes
    ``+-e_i +-e_j`` (weight 1/4 each): it is the stencil ``(f(x + s(e_i + e_j)) + f(x - s(e_i
    + e_j)) - f(x + s(e_i - e_j)) - f(x - s(e_i - e_j))) / (4 s^2)``, exact for cubics, at no
    evaluation of its own. u is the raw network too: ``d.u`` in a residual and
    :meth:`~DerivativeBackend.values` in a condition or a prediction are both ``f(x)``, the rule's
    zero node, at no extra evaluation.

    It needs float64: the rule's large mixed-sign weights amplify the rounding of each network
    value about ``sum_k |w_k (|z_k|^2 - D)| / s^2`` times in the second derivatives
    (:func:`amplification`: 5e4 at D = 2 and 1.7e8 at D = 21 with s = 0.01, so float32's
    relative rounding of 6e-8 would swamp the rule's O(s^2) error); values in a lower precision
    are refused.

    Parameters
    ----------
    smoothing : float
        s, the std of the Gaussian smoothing.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.derivatives import SparseGridDerivatives
    >>> x = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    >>> d = SparseGridDerivatives(0.01).evaluate(lambda p: (p**2).sum(dim=1), x)
    >>> [round(float(v), 6) for v in (d.u[0], d.diff(0)[0], d.diff2(1)[0])]
    [0.3125, 1.0, 2.0]
    """

    def __init__(self, smoothing):
        self.smoothing = smoothing

    def evaluations_per_point(self, dim):
        return 2 * dim * dim + 2 * dim + 1

    def shifts(self, x, noise=None):
        nodes, _ = _sparse_grid_rule(x.shape[1])
        return self.smoothing * nodes.to(x)

    def from_values(self, values, x, noise=None, space_axes=()):
        if values.dtype != torch.float64:
            raise TypeError(f"sparse-grid derivatives need float64 network values, got "
                            f"{values.dtype}: the rule amplifies rounding about "
                            f"{amplification(x.shape[1], self.smoothing):.0e} times in second "
                            f"derivatives; use a float64 network and points "
                            f"(module.double(), x.double())")
        nodes, weights = _sparse_grid_rule(x.shape[1])
        nodes, weights = nodes.to(values), weights.to(values)
        v, scalar = _components(values)
        s, dim = self.smoothing, x.shape[1]
        weighted = (v * weights[:, None]).transpose(1, 2)         # (n, k, K)
        # One product for the first and the pure second moments, (n, 2D, k).
        moments = (weighted @ torch.cat([nodes / s, (nodes**2 - 1) / s**2], dim=1)) \
            .transpose(1, 2)
        # Mixed: E[z_i z_j f(x + s z)] / s^2, where only the nodes +-e_i +-e_j count.
        return _from_tensors(
            v[:, 0, 0] if scalar else v[:, 0], moments[:, :dim], moments[:, dim:],
            lambda i, j: weighted @ (nodes[:, i] * nodes[:, j]) / s**2, space_axes, dim)


def amplification(dim, smoothing):
    """``sum_k |w_k (|z_k|^2 - D)| / s^2``: how much the sparse grid magnifies rounding.

    Examples
    --------
    >>> from hybridnet.pinn.derivatives import amplification

    The figures quoted in :class:`SparseGridDerivatives` (s = 0.01, D = 2 and D = 21):

    >>> f"{amplification(2, 0.01):.0e}", f"{amplification(21, 0.01):.1e}"
    ('5e+04', '1.7e+08')
    """
    nodes, weights = _sparse_grid_rule(dim)
    return float((weights * (nodes.square().sum(dim=1) - dim)).abs().sum()) / smoothing**2


BACKENDS = ("autograd", "finite_difference", "stein", "sparse_grid")


def make_backend(name, *, scale, smoothing=None, stein_samples=64, stein_sampling="qmc",
                 stein_control_variates=True):
    """The back end called ``name``; ``smoothing`` (h or s) defaults to ``0.01 * scale``.

    Examples
    --------
    >>> from hybridnet.pinn.derivatives import BACKENDS, make_backend
    >>> [type(make_backend(name, scale=1.0)).__name__ for name in BACKENDS]
    ['AutogradDerivatives', 'FiniteDifferences', 'SteinDerivatives', 'SparseGridDerivatives']
    >>> make_backend("finite_difference", scale=2.0).step
    0.02
    >>> stein = make_backend("stein", scale=1.0, smoothing=0.05, stein_samples=8)
    >>> stein.smoothing, stein.n_samples, stein.sampling
    (0.05, 8, 'qmc')
    """
    if name not in BACKENDS:
        raise ValueError(f"derivatives must be one of {BACKENDS}, got {name!r}")
    step = 0.01 * scale if smoothing is None else smoothing
    if name == "autograd":
        return AutogradDerivatives()
    if name == "finite_difference":
        return FiniteDifferences(step)
    if name == "stein":
        return SteinDerivatives(step, stein_samples, stein_sampling, stein_control_variates)
    return SparseGridDerivatives(step)
