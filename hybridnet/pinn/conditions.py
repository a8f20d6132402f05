"""Boundary, initial and terminal conditions of a PDE problem.

Each condition draws its own points from the domain and returns a residual there; the solver
adds ``weight * mean(residual^2)`` to the loss. ``value`` is a number or a callable of the
points x (n x D tensor) returning n values.
"""

import numbers

import torch


def _as_values(value, x):
    if callable(value):
        out = value(x)
        out = torch.as_tensor(out, dtype=x.dtype, device=x.device)
        if out.shape != (x.shape[0],):
            raise ValueError(f"a condition's value(x) must return shape ({x.shape[0]},), "
                             f"got {tuple(out.shape)}")
        return out
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


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

    Parameters
    ----------
    value : float or callable
        Prescribed value, a number or ``value(x) -> (n,)``.
    weight : float, default=1.0
        Weight of the condition's mean squared residual in the loss.

    Attributes
    ----------
    needs_derivatives : bool
        Whether the residual uses derivatives (Neumann) or only values.

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
    """

    needs_derivatives = False

    def __init__(self, value, weight=1.0):
        if not (callable(value) or isinstance(value, numbers.Real)):
            raise TypeError(f"{type(self).__name__} value must be a number or a callable of x, "
                            f"got {type(value).__name__}")
        if not (isinstance(weight, numbers.Real) and weight >= 0):
            raise ValueError(f"{type(self).__name__} weight must be a non-negative number, "
                             f"got {weight!r}")
        self.value = value
        self.weight = float(weight)

    def check_domain(self, domain):
        """Raise a clear error when the condition cannot live on ``domain``."""

    def sample(self, domain, n, generator, dtype=torch.float32):
        """``n`` points where the condition holds, (n, D)."""
        return domain.sample_boundary(n, generator, dtype)

    def residual(self, x, u, derivatives, domain):
        """Residual (n,) from values ``u`` (and ``derivatives``, when needed) at ``x``."""
        return u - _as_values(self.value, x)

    def __repr__(self):
        return f"{type(self).__name__}(value={self.value!r}, weight={self.weight})"


class _OnBoundary(Condition):
    def __init__(self, value, where=None, weight=1.0):
        super().__init__(value, weight)
        if where is not None and not callable(where):
            raise TypeError(f"where must be a callable of x or None, got {type(where).__name__}")
        self.where = where

    def sample(self, domain, n, generator, dtype=torch.float32):
        if self.where is None:
            return domain.sample_boundary(n, generator, dtype)
        # Rejection sampling: draw extra boundary points until n satisfy where(x). where sees
        # float64 points whatever the working dtype: in float32 a test such as
        # x[:, 0] > 1 - 1e-9 would never hold (1 - 1e-9 rounds to 1).
        kept = []
        count = 0
        for _ in range(20):
            candidates = domain.sample_boundary(4 * n, generator, torch.float64)
            mask = torch.as_tensor(self.where(candidates), dtype=torch.bool)
            if mask.shape != (len(candidates),):
                raise ValueError(f"where(x) must return a boolean mask of shape "
                                 f"({len(candidates)},), got {tuple(mask.shape)}")
            kept.append(candidates[mask])
            count += int(mask.sum())
            if count >= n:
                return torch.cat(kept)[:n].to(dtype)
        raise ValueError(f"{type(self).__name__}: where(x) selects almost no boundary point of "
                         f"{domain!r} ({count} of {80 * n} tried); is the condition outside the "
                         "domain?")


class DirichletBC(_OnBoundary):
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


class NeumannBC(_OnBoundary):
    """``du/dn = value`` (outward normal derivative) on the boundary, or where ``where(x)``.

    Parameters
    ----------
    value : float or callable
        Prescribed normal derivative.
    where : callable, optional
        ``where(x) -> bool mask`` selecting part of the boundary (x float64, as for
        :class:`DirichletBC`).
    weight : float, default=1.0
        Loss weight.

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

    def residual(self, x, u, derivatives, domain):
        normals = domain.outward_normals(x)
        axes = domain.space_axes
        normal_derivative = (derivatives.grad(axes) * normals[:, axes]).sum(dim=1)
        return normal_derivative - _as_values(self.value, x)


class _TimeSlice(Condition):
    at = "initial"

    def check_domain(self, domain):
        if domain.time_axis is None:
            raise ValueError(f"{type(self).__name__} needs a domain with a time_axis, got "
                             f"{domain!r}")

    def sample(self, domain, n, generator, dtype=torch.float32):
        return domain.sample_time_slice(n, generator, self.at, dtype)


class InitialCondition(_TimeSlice):
    """``u = value`` at the start of time (``x[time_axis] = lower``).

    Parameters
    ----------
    value : float or callable
        Prescribed u.
    weight : float, default=1.0
        Loss weight.

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

    A domain without time has no start:

    >>> start.check_domain(Box([0], [1]))
    Traceback (most recent call last):
    ...
    ValueError: InitialCondition needs a domain with a time_axis, got Box([0.0], [1.0])
    """


class TerminalCondition(_TimeSlice):
    """``u = value`` at the end of time (``x[time_axis] = upper``).

    Parameters
    ----------
    value : float or callable
        Prescribed u.
    weight : float, default=1.0
        Loss weight.

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
