"""Boundary, initial and terminal conditions of a PDE problem.

Each condition draws its own points from the domain and returns a residual there; the solver
adds ``weight * mean(residual^2)`` to the loss. ``value`` is a number or a callable of the
points x (n x D tensor) returning n values. Every condition takes ``where``, a callable of
float64 points that selects the part of its set (boundary, initial or terminal slice) where it
holds, and (but :class:`OperatorBC`, whose residual sees every component) ``component``, the
output it constrains for a PDE with several (``PDE(n_outputs=k)``).

- :class:`DirichletBC`: ``u = value``; :class:`NeumannBC`: ``du/dn = value``;
  :class:`RobinBC`: ``alpha u + beta du/dn = value`` (outward normals from the domain's
  ``boundary_normal``, on curved and composed boundaries alike).
- :class:`PeriodicBC`: u (or its derivative) equal on the two faces of the bounding box
  across an axis.
- :class:`InitialCondition`, :class:`TerminalCondition`: ``u = value`` (or ``du/dt =
  value``) at the start or end of time.
- :class:`OperatorBC`: any residual ``residual(x, d)`` on the boundary or a time slice.
"""

import numbers

import torch

_FACES = ("boundary", "initial", "terminal")
# Rejection sampling under where(x): rounds of 4 n candidates before giving up.
_ROUNDS = 20


def _as_values(value, x, name="value"):
    if callable(value):
        out = value(x)
        out = torch.as_tensor(out, dtype=x.dtype, device=x.device)
        if out.shape != (x.shape[0],):
            raise ValueError(f"a condition's {name}(x) must return shape ({x.shape[0]},), "
                             f"got {tuple(out.shape)}")
        return out
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


def _check_function(value, name, owner):
    if not (callable(value) or isinstance(value, numbers.Real)) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be a number or a callable of x, got "
                        f"{type(value).__name__}")


def _where_mask(where, x):
    """``where(x)`` as a boolean mask of shape (n,), or an error saying what it returned."""
    mask = torch.as_tensor(where(x), dtype=torch.bool)
    if mask.shape != (len(x),):
        raise ValueError(f"where(x) must return a boolean mask of shape ({len(x)},), got "
                         f"{tuple(mask.shape)}")
    return mask


def isclose(values, target, atol=1e-8):
    """Mask of ``|values - target| <= atol``: selects a face in a ``where`` callable.

    Parameters
    ----------
    values : torch.Tensor
        Coordinates, e.g. ``x[:, 0]``.
    target : float
        The face's coordinate.
    atol : float, default=1e-8
        Absolute tolerance.

    Returns
    -------
    torch.Tensor
        Boolean mask of the shape of ``values``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import DirichletBC, isclose
    >>> right = DirichletBC(0.0, where=lambda x: isclose(x[:, 0], 1.0))
    >>> isclose(torch.tensor([0.5, 1.0, 1.0 - 1e-12]), 1.0)
    tensor([False,  True,  True])
    """
    return (torch.as_tensor(values) - target).abs() <= atol


class Condition:
    """Base class: where the condition holds, and its residual there.

    The base class holds on the boundary (or on the part ``where`` selects) with the residual
    ``u - value``; subclasses change the set (:meth:`sample`) or the residual.

    Parameters
    ----------
    value : float or callable
        Prescribed value, a number or ``value(x) -> (n,)``.
    weight : float, default=1.0
        Weight of the condition's mean squared residual in the loss.
    component : int, optional
        The output of u the condition constrains (``0 .. k - 1`` for ``PDE(n_outputs=k)``).
        None means the only one; a PDE with several outputs refuses a condition without it.
    where : callable, optional
        ``where(x) -> bool mask`` selecting the part of the condition's set where it holds; x
        is float64 (n, D) with the boundary coordinate exactly at the domain's bound, so
        ``x[:, 0] == 1`` or :func:`isclose` select a face.

    Attributes
    ----------
    needs_derivatives : bool
        Whether the residual uses derivatives (Neumann, Robin, ...) or only values.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import Box, Condition

    The base class holds on the whole boundary; its residual is ``u - value``.

    >>> square = Box([0, 0], [1, 1])
    >>> condition = Condition(lambda x: x[:, 0] + x[:, 1], weight=2.0)
    >>> x = condition.sample(square, 16, torch.Generator().manual_seed(0))
    >>> x.shape, condition.needs_derivatives
    (torch.Size([16, 2]), False)
    >>> torch.allclose(condition.residual(x, x.sum(dim=1), None, square), torch.zeros(16))
    True

    For u of several components, ``component`` picks the one constrained:

    >>> second = Condition(1.0, component=1)
    >>> u = torch.stack([torch.zeros(16), torch.ones(16)], dim=1)
    >>> torch.allclose(second.residual(x, u, None, square), torch.zeros(16))
    True
    """

    needs_derivatives = False

    def __init__(self, value, weight=1.0, *, component=None, where=None):
        _check_function(value, "value", type(self).__name__)
        self.value = value
        self._set_common(weight, component, where)

    def _set_common(self, weight, component, where):
        name = type(self).__name__
        if isinstance(weight, bool) or not (isinstance(weight, numbers.Real) and weight >= 0):
            raise ValueError(f"{name} weight must be a non-negative number, got {weight!r}")
        if component is not None and (isinstance(component, bool)
                                      or not isinstance(component, numbers.Integral)
                                      or component < 0):
            raise ValueError(f"{name} component must be None or an int >= 0, got "
                             f"{component!r}")
        if where is not None and not callable(where):
            raise TypeError(f"{name} where must be a callable of x or None, got "
                            f"{type(where).__name__}")
        self.weight = float(weight)
        self.component = None if component is None else int(component)
        self.where = where

    def check_domain(self, domain):
        """Raise a clear error when the condition cannot live on ``domain``."""

    def check_outputs(self, n_outputs):
        """Raise a clear error when ``component`` does not fit a u of ``n_outputs`` outputs.

        Examples
        --------
        >>> from hybridnet.pinn import DirichletBC
        >>> DirichletBC(0.0, component=1).check_outputs(3)
        >>> DirichletBC(0.0).check_outputs(3)
        Traceback (most recent call last):
        ...
        ValueError: DirichletBC(value=0.0, weight=1.0) does not say which of the PDE's 3 \
outputs it constrains: give component=0..2
        """
        if self.component is None and n_outputs > 1:
            raise ValueError(f"{self!r} does not say which of the PDE's {n_outputs} outputs it "
                             f"constrains: give component=0..{n_outputs - 1}")
        if self.component is not None and self.component >= n_outputs:
            raise ValueError(f"{self!r}: component {self.component} is out of range for a PDE "
                             f"with {n_outputs} output(s) (valid components "
                             f"0..{n_outputs - 1})")

    def _index(self, n_outputs):
        """The component to constrain in a u of ``n_outputs`` outputs."""
        self.check_outputs(n_outputs)
        return self.component or 0

    def _pick(self, u):
        """The constrained component of values u, (n,) or (n, k)."""
        return u if u.ndim == 1 else u[:, self._index(u.shape[1])]

    def _draw(self, domain, n, generator, dtype):
        """``n`` points of the condition's whole set (before ``where``)."""
        return domain.sample_boundary(n, generator, dtype)

    def _what(self, domain):
        return "boundary"

    def sample(self, domain, n, generator, dtype=torch.float32):
        """``n`` points where the condition holds, (n, D).

        Under ``where``, by rejection: candidates are drawn in float64 until ``n`` satisfy it.
        """
        if self.where is None:
            return self._draw(domain, n, generator, dtype)
        return self._select(domain, n, generator, lambda x: _where_mask(self.where, x)).to(dtype)

    def _select(self, domain, n, generator, keep):
        """``n`` float64 points of the condition's set for which ``keep(x)`` holds."""
        # where sees float64 points whatever the working dtype: in float32 a test such as
        # x[:, 0] > 1 - 1e-9 would never hold (1 - 1e-9 rounds to 1).
        kept, count = [], 0
        for _ in range(_ROUNDS):
            candidates = self._draw(domain, 4 * n, generator, torch.float64)
            mask = keep(candidates)
            kept.append(candidates[mask])
            count += int(mask.sum())
            if count >= n:
                return torch.cat(kept)[:n]
        raise ValueError(f"{type(self).__name__}: where(x) selects almost no "
                         f"{self._what(domain)} point of {domain!r} ({count} of "
                         f"{4 * _ROUNDS * n} tried); is the condition outside the domain?")

    def residual(self, x, u, derivatives, domain):
        """Residual (n,) from values ``u`` (and ``derivatives``, when needed) at ``x``.

        ``u`` is (n,), or (n, k) for a PDE of k outputs; ``derivatives`` a
        :class:`~hybridnet.pinn.derivatives.Derivatives` when ``needs_derivatives``.
        """
        return self._pick(u) - _as_values(self.value, x)

    def _settings(self):
        """The arguments shown by ``repr`` before ``weight``."""
        return [f"value={self.value!r}"]

    def __repr__(self):
        shown = self._settings()
        if self.component is not None:
            shown.append(f"component={self.component}")
        if self.where is not None:
            shown.append(f"where={getattr(self.where, '__name__', type(self.where).__name__)}")
        return f"{type(self).__name__}({', '.join(shown)}, weight={self.weight})"


def _normal_derivative(derivatives, domain, x, component):
    """``grad u . n`` (n,) with the domain's unit outward normals n at the points x."""
    axes = domain.space_axes
    normals = domain.boundary_normal(x)[:, axes]
    return (derivatives.grad(axes, component=component) * normals).sum(dim=1)


class DirichletBC(Condition):
    """``u = value`` on the boundary (where ``where(x)`` holds, when given).

    Parameters
    ----------
    value : float or callable
        Prescribed u.
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of the boundary; x is float64 (n, D), with the
        boundary coordinate exactly at the domain's bound, so ``x[:, 0] == 1`` or
        :func:`isclose` select a face.
    weight : float, default=1.0
        Loss weight.
    component : int, optional
        The output constrained (required when the PDE has several).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import Box, DirichletBC, isclose

    ``u = y^2`` on the face x = 1 of the unit square, which ``u = x y^2`` satisfies:

    >>> square = Box([0, 0], [1, 1])
    >>> right = DirichletBC(lambda x: x[:, 1] ** 2, where=lambda x: isclose(x[:, 0], 1.0))
    >>> x = right.sample(square, 16, torch.Generator().manual_seed(0))
    >>> bool((x[:, 0] == 1).all())
    True
    >>> u = x[:, 0] * x[:, 1] ** 2
    >>> torch.allclose(right.residual(x, u, None, square), torch.zeros(16))
    True
    """

    def __init__(self, value, where=None, weight=1.0, *, component=None):
        super().__init__(value, weight, component=component, where=where)


class NeumannBC(Condition):
    """``du/dn = value`` (outward normal derivative) on the boundary, or where ``where(x)``.

    The normals are the domain's ``boundary_normal``: on a disk's rim, a hole's edge (pointing
    into the hole) or a composed boundary alike.

    Parameters
    ----------
    value : float or callable
        Prescribed normal derivative.
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of the boundary (x float64, as for
        :class:`DirichletBC`).
    weight : float, default=1.0
        Loss weight.
    component : int, optional
        The output constrained (required when the PDE has several).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import Box, NeumannBC, isclose
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives

    ``du/dn = 2`` on the face x = 1 of the unit square, which ``u = x^2 + y`` satisfies:

    >>> square = Box([0, 0], [1, 1])
    >>> flux = NeumannBC(2.0, where=lambda x: isclose(x[:, 0], 1.0))
    >>> x = flux.sample(square, 16, torch.Generator().manual_seed(0))
    >>> d = AutogradDerivatives().evaluate(lambda p: p[:, 0] ** 2 + p[:, 1], x,
    ...                                    space_axes=square.space_axes)
    >>> flux.needs_derivatives
    True
    >>> torch.allclose(flux.residual(x, d.u, d, square), torch.zeros(16))
    True
    """

    needs_derivatives = True

    def __init__(self, value, where=None, weight=1.0, *, component=None):
        super().__init__(value, weight, component=component, where=where)

    def residual(self, x, u, derivatives, domain):
        c = self._index(derivatives.n_outputs)
        return _normal_derivative(derivatives, domain, x, c) - _as_values(self.value, x)


class RobinBC(Condition):
    """``alpha u + beta du/dn = value`` on the boundary, or where ``where(x)``.

    Parameters
    ----------
    alpha, beta : float or callable
        Coefficients, numbers or callables of x returning (n,).
    value : float or callable
        Right-hand side.
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of the boundary (x float64, as for
        :class:`DirichletBC`).
    weight : float, default=1.0
        Loss weight.
    component : int, optional
        The output constrained (required when the PDE has several).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import Interval, RobinBC, isclose
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives

    ``u - du/dn = 0`` at x = 1, which ``u = (x + 1)^2`` satisfies (``u(1) = 4 = u'(1)``):

    >>> rod = Interval(-1, 1)
    >>> right = RobinBC(1.0, -1.0, 0.0, where=lambda x: isclose(x[:, 0], 1.0))
    >>> x = right.sample(rod, 8, torch.Generator().manual_seed(0), torch.float64)
    >>> d = AutogradDerivatives().evaluate(lambda p: (p[:, 0] + 1) ** 2, x, space_axes=[0])
    >>> right.residual(x, d.u, d, rod).abs().max().item()
    0.0
    """

    needs_derivatives = True

    def __init__(self, alpha, beta, value, where=None, weight=1.0, *, component=None):
        for name, argument in (("alpha", alpha), ("beta", beta)):
            _check_function(argument, name, type(self).__name__)
        super().__init__(value, weight, component=component, where=where)
        self.alpha, self.beta = alpha, beta

    def residual(self, x, u, derivatives, domain):
        c = self._index(derivatives.n_outputs)
        return (_as_values(self.alpha, x, "alpha") * self._pick(u)
                + _as_values(self.beta, x, "beta") * _normal_derivative(derivatives, domain, x, c)
                - _as_values(self.value, x))

    def _settings(self):
        return [f"alpha={self.alpha!r}", f"beta={self.beta!r}", f"value={self.value!r}"]


class PeriodicBC(Condition):
    """u, or its derivative along ``axis``, equal on the two faces of the domain across ``axis``.

    Points are drawn on the lower face of the domain's bounding box along ``axis`` (on the
    part ``where`` selects) and moved to the upper face; the residual is ``u(lower) -
    u(upper)`` (``derivative_order=1``: ``du/dx_axis`` at both). ``sample`` returns the n
    lower points followed by their n upper images, so a draw of n costs 2n evaluations. The
    domain must be a box along ``axis`` (an interval, a rectangle, a box, a space-time of
    one): an upper image off the boundary is refused by name.

    Parameters
    ----------
    axis : int
        A space axis.
    derivative_order : {0, 1}, default=0
        Match u (0) or ``du/dx_axis`` (1).
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of the lower face (x float64).
    weight : float, default=1.0
        Loss weight.
    component : int, optional
        The output constrained (required when the PDE has several).

    Examples
    --------
    >>> import math, torch
    >>> from hybridnet.pinn import PeriodicBC, Rectangle

    ``u = sin(pi x) y`` on ``[-1, 1] x [0, 1]`` takes the same values at x = -1 and x = 1:

    >>> plate = Rectangle([-1, 0], [1, 1])
    >>> periodic = PeriodicBC(0)
    >>> x = periodic.sample(plate, 8, torch.Generator().manual_seed(0), torch.float64)
    >>> x.shape, x[:8, 0].unique().tolist(), x[8:, 0].unique().tolist()
    (torch.Size([16, 2]), [-1.0], [1.0])
    >>> torch.equal(x[:8, 1], x[8:, 1])
    True
    >>> u = torch.sin(math.pi * x[:, 0]) * x[:, 1]
    >>> periodic.residual(x, u, None, plate).abs().max().item() < 1e-15
    True
    """

    def __init__(self, axis, derivative_order=0, where=None, weight=1.0, *, component=None):
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or axis < 0:
            raise ValueError(f"PeriodicBC axis must be an int >= 0, got {axis!r}")
        if derivative_order not in (0, 1) or isinstance(derivative_order, bool):
            raise ValueError(f"PeriodicBC derivative_order must be 0 or 1, got "
                             f"{derivative_order!r}")
        self.axis, self.derivative_order = int(axis), int(derivative_order)
        self.needs_derivatives = self.derivative_order > 0
        self._set_common(weight, component, where)

    def check_domain(self, domain):
        if self.axis not in domain.space_axes:
            raise ValueError(f"{self!r} needs a space axis of {domain!r}, one of "
                             f"{domain.space_axes}")

    def _what(self, domain):
        return f"lower-face (x[{self.axis}] = {float(domain.bounding_box[0][self.axis])!r})"

    def sample(self, domain, n, generator, dtype=torch.float32):
        lower, upper = (float(bound[self.axis]) for bound in domain.bounding_box)
        tolerance = 1e-9 * max(1.0, abs(lower), abs(upper))

        def keep(x):
            on_face = isclose(x[:, self.axis], lower, tolerance)
            return on_face if self.where is None else on_face & _where_mask(self.where, x)

        low = self._select(domain, n, generator, keep)
        low[:, self.axis] = lower
        high = low.clone()
        high[:, self.axis] = upper
        off = ~domain.on_boundary(high)
        if off.any():
            raise ValueError(f"{self!r}: {int(off.sum())} of {n} points of the lower face "
                             f"x[{self.axis}] = {lower!r} moved to x[{self.axis}] = {upper!r} "
                             f"are not on the boundary of {domain!r}, which must be a box along "
                             f"axis {self.axis}")
        return torch.cat([low, high]).to(dtype)

    def residual(self, x, u, derivatives, domain):
        if self.derivative_order:
            values = derivatives.diff(self.axis, component=self._index(derivatives.n_outputs))
        else:
            values = self._pick(u)
        half = len(x) // 2
        return values[:half] - values[half:]

    def _settings(self):
        return [f"axis={self.axis}", f"derivative_order={self.derivative_order}"]


class _TimeSlice(Condition):
    at = "initial"

    def __init__(self, value, weight=1.0, *, derivative=0, component=None, where=None):
        if derivative not in (0, 1) or isinstance(derivative, bool):
            raise ValueError(f"{type(self).__name__} derivative must be 0 or 1, got "
                             f"{derivative!r}")
        super().__init__(value, weight, component=component, where=where)
        self.derivative = int(derivative)
        self.needs_derivatives = self.derivative > 0

    def check_domain(self, domain):
        if domain.time_axis is None:
            raise ValueError(f"{type(self).__name__} needs a domain with a time_axis, got "
                             f"{domain!r}")

    def _draw(self, domain, n, generator, dtype):
        return domain.sample_time_slice(n, generator, self.at, dtype)

    def _what(self, domain):
        return self.at

    def residual(self, x, u, derivatives, domain):
        if not self.derivative:
            return super().residual(x, u, derivatives, domain)
        c = self._index(derivatives.n_outputs)
        return derivatives.diff(domain.time_axis, component=c) - _as_values(self.value, x)

    def _settings(self):
        return super()._settings() + ([f"derivative={self.derivative}"] if self.derivative
                                      else [])


class InitialCondition(_TimeSlice):
    """``u = value`` (or ``du/dt = value``) at the start of time.

    Parameters
    ----------
    value : float or callable
        Prescribed u, or du/dt with ``derivative=1``.
    weight : float, default=1.0
        Loss weight.
    derivative : {0, 1}, default=0
        0: ``u = value``; 1: ``du/dt = value`` (an initial velocity).
    component : int, optional
        The output constrained (required when the PDE has several).
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of the initial slice (x float64).

    Examples
    --------
    >>> import math, torch
    >>> from hybridnet.pinn import Box, InitialCondition

    The heat equation's ``u(x, 0) = sin(pi x)``, which ``exp(-0.1 pi^2 t) sin(pi x)``
    satisfies:

    >>> rod = Box([0, 0], [1, 1], time_axis=1)
    >>> start = InitialCondition(lambda x: torch.sin(math.pi * x[:, 0]))
    >>> x = start.sample(rod, 16, torch.Generator().manual_seed(0))
    >>> bool((x[:, 1] == 0).all())
    True
    >>> u = torch.exp(-0.1 * math.pi**2 * x[:, 1]) * torch.sin(math.pi * x[:, 0])
    >>> torch.allclose(start.residual(x, u, None, rod), torch.zeros(16))
    True

    An initial velocity: ``u = sin(x) sin(t)`` has ``du/dt = sin(x)`` at t = 0.

    >>> from hybridnet.pinn.derivatives import AutogradDerivatives
    >>> velocity = InitialCondition(lambda x: torch.sin(x[:, 0]), derivative=1)
    >>> x = velocity.sample(rod, 16, torch.Generator().manual_seed(0), torch.float64)
    >>> d = AutogradDerivatives().evaluate(lambda p: torch.sin(p[:, 0]) * torch.sin(p[:, 1]),
    ...                                    x, space_axes=[0])
    >>> velocity.residual(x, d.u, d, rod).abs().max().item()
    0.0

    A domain without time has no start:

    >>> start.check_domain(Box([0], [1]))
    Traceback (most recent call last):
    ...
    ValueError: InitialCondition needs a domain with a time_axis, got Box([0.0], [1.0])
    """


class TerminalCondition(_TimeSlice):
    """``u = value`` (or ``du/dt = value``) at the end of time.

    Parameters
    ----------
    value : float or callable
        Prescribed u, or du/dt with ``derivative=1``.
    weight : float, default=1.0
        Loss weight.
    derivative : {0, 1}, default=0
        0: ``u = value``; 1: ``du/dt = value``.
    component : int, optional
        The output constrained (required when the PDE has several).
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of the terminal slice (x float64).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import Box, TerminalCondition

    ``u(x, y, 1) = x + y``, which ``u = x + y + 1 - t`` satisfies:

    >>> cube = Box([0, 0, 0], [1, 1, 1], time_axis=2)
    >>> end = TerminalCondition(lambda x: x[:, 0] + x[:, 1])
    >>> x = end.sample(cube, 16, torch.Generator().manual_seed(0))
    >>> bool((x[:, 2] == 1).all())
    True
    >>> u = x[:, 0] + x[:, 1] + 1 - x[:, 2]
    >>> torch.allclose(end.residual(x, u, None, cube), torch.zeros(16), atol=1e-6)
    True
    """

    at = "terminal"


class OperatorBC(Condition):
    """Any residual ``residual(x, d) -> (n,)`` on the boundary or on a time slice.

    ``d`` is the :class:`~hybridnet.pinn.derivatives.Derivatives` of every component at the
    points (as in the PDE's residual, with ``d.parameters``), so the residual picks the
    components it needs itself and there is no ``component``.

    Parameters
    ----------
    residual : callable
        ``residual(x, d) -> (n,)``, zero where the condition holds.
    on : {"boundary", "initial", "terminal"}, default="boundary"
        Where the points are drawn: the space boundary, or the start or end of time.
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of that set (x float64).
    weight : float, default=1.0
        Loss weight.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn import Box, OperatorBC, isclose
    >>> from hybridnet.pinn.derivatives import AutogradDerivatives

    ``du/dx = u`` on the face x = 0 of the unit square, which ``u = exp(x) y`` satisfies:

    >>> square = Box([0, 0], [1, 1])
    >>> left = OperatorBC(lambda x, d: d.diff(0) - d.u, where=lambda x: isclose(x[:, 0], 0.0))
    >>> x = left.sample(square, 8, torch.Generator().manual_seed(0), torch.float64)
    >>> d = AutogradDerivatives().evaluate(lambda p: torch.exp(p[:, 0]) * p[:, 1], x,
    ...                                    space_axes=[0, 1])
    >>> left.residual(x, d.u, d, square).abs().max().item()
    0.0
    """

    needs_derivatives = True

    def __init__(self, residual, on="boundary", where=None, weight=1.0):
        if not callable(residual):
            raise TypeError(f"OperatorBC residual must be callable as residual(x, d), got "
                            f"{type(residual).__name__}")
        if on not in _FACES:
            raise ValueError(f"OperatorBC on must be one of {_FACES}, got {on!r}")
        self.function, self.on = residual, on
        self._set_common(weight, None, where)

    def check_domain(self, domain):
        if self.on != "boundary" and domain.time_axis is None:
            raise ValueError(f"OperatorBC(on={self.on!r}) needs a domain with a time_axis, got "
                             f"{domain!r}")

    def check_outputs(self, n_outputs):
        """Any number of outputs: the residual picks its components."""

    def _draw(self, domain, n, generator, dtype):
        if self.on == "boundary":
            return domain.sample_boundary(n, generator, dtype)
        return domain.sample_time_slice(n, generator, self.on, dtype)

    def _what(self, domain):
        return self.on

    def residual(self, x, u, derivatives, domain):
        out = self.function(x, derivatives)
        if not isinstance(out, torch.Tensor) or out.shape != (len(x),):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"OperatorBC residual(x, d) must return a tensor of shape "
                             f"({len(x)},), got {shape}")
        return out

    def _settings(self):
        name = getattr(self.function, "__name__", type(self.function).__name__)
        return [f"residual={name}", f"on={self.on!r}"]
