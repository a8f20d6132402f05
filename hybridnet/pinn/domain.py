"""Rectangular domains: where collocation, boundary, initial and terminal points are drawn.

:class:`Box` has the interface of every :class:`~hybridnet.pinn.geometry.Geometry` (``inside``,
``on_boundary``, ``boundary_normal``, ``bounding_box``, the operators ``|``, ``&``, ``-``) and
is registered as one; :mod:`hybridnet.pinn.geometry` holds the other shapes.
"""

import numpy as np
import torch


class Box:
    """An axis-aligned box ``[lower, upper]`` in D dimensions, one of which may be time.

    Parameters
    ----------
    lower, upper : sequence of float
        Corners; ``lower[i] < upper[i]``.
    time_axis : int, optional
        The coordinate that is time. Initial conditions live on ``x[time_axis] = lower``,
        terminal ones on ``x[time_axis] = upper``, and the boundary of the space coordinates
        is the rest of the box's surface.

    Examples
    --------
    >>> from hybridnet.pinn import Box
    >>> square = Box([0, 0], [1, 1])
    >>> square.dim, square.space_axes
    (2, [0, 1])

    A box without time is a geometry like any other and combines with the others by ``|``
    (union), ``&`` (intersection) and ``-`` (difference):

    >>> from hybridnet.pinn.geometry import Disk, Geometry
    >>> plate = square - Disk([0.5, 0.5], 0.25)
    >>> isinstance(square, Geometry), plate.dim
    (True, 2)
    """

    def __init__(self, lower, upper, time_axis=None):
        lower = np.asarray(lower, dtype=np.float64).ravel()
        upper = np.asarray(upper, dtype=np.float64).ravel()
        if lower.shape != upper.shape or lower.size == 0:
            raise ValueError(f"lower and upper must be equally long, non-empty sequences, got "
                             f"{lower.tolist()} and {upper.tolist()}")
        if not (np.isfinite(lower).all() and np.isfinite(upper).all() and (lower < upper).all()):
            raise ValueError(f"need finite lower < upper in every coordinate, got "
                             f"{lower.tolist()} and {upper.tolist()}")
        if time_axis is not None and time_axis not in range(lower.size):
            raise ValueError(f"time_axis must be None or in 0..{lower.size - 1}, "
                             f"got {time_axis!r}")
        self.lower, self.upper, self.time_axis = lower, upper, time_axis

    @property
    def dim(self):
        """Number of coordinates D (time included).

        Examples
        --------
        >>> from hybridnet.pinn import Box
        >>> Box([0, 0], [1, 1], time_axis=1).dim
        2
        """
        return self.lower.size

    @property
    def space_axes(self):
        """The coordinates that are not time.

        Examples
        --------
        >>> from hybridnet.pinn import Box
        >>> Box([0, 0, 0], [1, 1, 1], time_axis=1).space_axes
        [0, 2]
        """
        return [i for i in range(self.dim) if i != self.time_axis]

    @property
    def scale(self):
        """The box's mean side length (sets the default smoothing of derivative back ends).

        Examples
        --------
        >>> from hybridnet.pinn import Box
        >>> Box([0, 0], [1, 3]).scale
        2.0
        """
        return float(np.mean(self.upper - self.lower))

    def _tensor(self, values, like):
        return torch.as_tensor(values, dtype=like.dtype, device=like.device)

    def sample_interior(self, n, generator, dtype=torch.float32):
        """``n`` points uniform in the box, shape (n, D).

        Parameters
        ----------
        n : int
            Number of points.
        generator : torch.Generator
            The only source of randomness.
        dtype : torch.dtype, default=torch.float32
            Floating dtype of the points (drawn in that dtype).

        Returns
        -------
        torch.Tensor
            Points, shape (n, D).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> box = Box([0, 0], [2, 1])
        >>> x = box.sample_interior(100, torch.Generator().manual_seed(0))
        >>> x.shape, bool(box.inside(x).all())
        (torch.Size([100, 2]), True)
        """
        u = torch.rand((n, self.dim), generator=generator, dtype=dtype)
        return self._tensor(self.lower, u) + u * self._tensor(self.upper - self.lower, u)

    def sample_boundary(self, n, generator, dtype=torch.float32):
        """``n`` points uniform on the faces of the space coordinates (time faces excluded).

        A face is chosen with probability proportional to its area, so the points are uniform
        on the boundary; a 1-D box's boundary is its two ends, each drawn with probability 1/2.

        Parameters
        ----------
        n : int
            Number of points.
        generator : torch.Generator
            The only source of randomness.
        dtype : torch.dtype, default=torch.float32
            Floating dtype of the points; the boundary coordinate is exactly the bound.

        Returns
        -------
        torch.Tensor
            Points, shape (n, D).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> rod = Box([0, 0], [1, 1], time_axis=1)         # x in [0, 1], t in [0, 1]
        >>> x = rod.sample_boundary(100, torch.Generator().manual_seed(0))
        >>> bool(((x[:, 0] == 0) | (x[:, 0] == 1)).all())
        True
        """
        axes = self.space_axes
        if not axes:
            raise ValueError("this domain has no space coordinates, so no boundary")
        points = self.sample_interior(n, generator, dtype)
        if n == 0:
            return points
        sides = self.upper - self.lower
        areas = np.array([np.prod(np.delete(sides, axis)) for axis in axes])
        choice = torch.multinomial(torch.as_tensor(np.repeat(areas, 2) / 2), n, replacement=True,
                                   generator=generator)
        # Face 2 i + s is side s (0: lower, 1: upper) of space axis axes[i].
        faces = torch.as_tensor(np.stack([self.lower[axes], self.upper[axes]], axis=1).ravel(),
                                dtype=dtype)
        columns = torch.as_tensor(axes)[choice // 2]
        return points.scatter_(1, columns[:, None], faces[choice][:, None])

    def sample_time_slice(self, n, generator, at="initial", dtype=torch.float32):
        """``n`` points uniform on the initial (``t = lower``) or terminal (``t = upper``) slice.

        Parameters
        ----------
        n : int
            Number of points.
        generator : torch.Generator
            The only source of randomness.
        at : {"initial", "terminal"}, default="initial"
            Which slice.
        dtype : torch.dtype, default=torch.float32
            Floating dtype of the points.

        Returns
        -------
        torch.Tensor
            Points, shape (n, D), with ``x[:, time_axis]`` at the slice.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> rod = Box([0, 0], [1, 2], time_axis=1)
        >>> x = rod.sample_time_slice(100, torch.Generator().manual_seed(0), "terminal")
        >>> bool((x[:, 1] == 2).all())
        True
        """
        if self.time_axis is None:
            raise ValueError("initial and terminal conditions need a domain with a time_axis")
        points = self.sample_interior(n, generator, dtype)
        value = self.lower[self.time_axis] if at == "initial" else self.upper[self.time_axis]
        points[:, self.time_axis] = float(value)
        return points

    def contains(self, x, tolerance=1e-6):
        """Boolean mask of the rows of ``x`` (n, D) that lie in the closed box.

        :meth:`inside` is the same test with a tolerance scaled to the box.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, D).
        tolerance : float, default=1e-6
            How far outside a point may lie and still count.

        Returns
        -------
        torch.Tensor
            Boolean mask, shape (n,).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> Box([0, 0], [1, 1]).contains(torch.tensor([[0.5, 1.0], [0.5, 1.1]]))
        tensor([ True, False])
        """
        lower = self._tensor(self.lower - tolerance, x)
        upper = self._tensor(self.upper + tolerance, x)
        return ((x >= lower) & (x <= upper)).all(dim=1)

    def outward_normals(self, x, tolerance=1e-6):
        """Unit outward normals (n, D) of boundary points (zero rows for points not on a face).

        At edges and corners the normals of the faces that meet are summed and normalised.
        A point counts as on a face when its coordinate is within ``tolerance`` of the face's
        plane; :meth:`boundary_normal` also zeroes points outside the box.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, D).
        tolerance : float, default=1e-6
            Distance from a face's plane that still counts.

        Returns
        -------
        torch.Tensor
            Normals, shape (n, D), in the dtype of ``x``; the time component is zero.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> Box([0, 0], [1, 1]).outward_normals(torch.tensor([[0.0, 0.5], [1.0, 1.0]]))
        tensor([[-1.0000,  0.0000],
                [ 0.7071,  0.7071]])
        """
        normals = torch.zeros_like(x)
        for axis in self.space_axes:
            normals[:, axis] -= ((x[:, axis] - self.lower[axis]).abs() <= tolerance).to(x.dtype)
            normals[:, axis] += ((x[:, axis] - self.upper[axis]).abs() <= tolerance).to(x.dtype)
        return normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-12)

    # ------------------------------------------------------------ the Geometry interface
    @property
    def bounding_box(self):
        """The corners ``(lower, upper)``, float64 arrays of length D.

        Examples
        --------
        >>> from hybridnet.pinn import Box
        >>> Box([0, -1], [2, 1]).bounding_box
        (array([ 0., -1.]), array([2., 1.]))
        """
        return self.lower.copy(), self.upper.copy()

    @property
    def _tolerance(self):
        # Default tolerance of inside / on_boundary / boundary_normal: 1e-6 of the largest
        # |coordinate| (at least 1e-6), above float32's rounding of the coordinates.
        return 1e-6 * max(1.0, float(np.abs(self.lower).max()), float(np.abs(self.upper).max()))

    def _points(self, x):
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x if x.is_floating_point() else x.to(torch.float64)

    def inside(self, x, tolerance=None):
        """Boolean mask (n,) of the rows of ``x`` (n, D) in the closed box.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, D).
        tolerance : float, optional
            How far outside a point may lie and still count; default 1e-6 times the largest
            ``|coordinate|`` of the corners (at least 1e-6).

        Returns
        -------
        torch.Tensor
            Boolean mask, shape (n,).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> Box([0, 0], [1, 1]).inside(torch.tensor([[0.5, 0.5], [1.0, 0.2], [1.1, 0.5]]))
        tensor([ True,  True, False])
        """
        x = self._points(x)
        return self.contains(x, self._tolerance if tolerance is None else tolerance)

    def on_boundary(self, x, tolerance=None):
        """Boolean mask (n,) of the rows of ``x`` on a face of the space coordinates.

        The faces of the time axis (initial and terminal slices) are not boundary, as in
        :meth:`sample_boundary`.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, D).
        tolerance : float, optional
            Distance from a face that still counts; default as in :meth:`inside`.

        Returns
        -------
        torch.Tensor
            Boolean mask, shape (n,).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> x = torch.tensor([[0.5, 0.5], [1.0, 0.2], [0.5, 0.0]])
        >>> Box([0, 0], [1, 1]).on_boundary(x)
        tensor([False,  True,  True])
        >>> Box([0, 0], [1, 1], time_axis=1).on_boundary(x)     # t = 0 is the initial slice
        tensor([False,  True, False])
        """
        x = self._points(x)
        tolerance = self._tolerance if tolerance is None else tolerance
        near = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for axis in self.space_axes:
            near |= (x[:, axis] - float(self.lower[axis])).abs() <= tolerance
            near |= (x[:, axis] - float(self.upper[axis])).abs() <= tolerance
        return near & self.contains(x, tolerance)

    def boundary_normal(self, x, tolerance=None):
        """Unit outward normals (n, D): :meth:`outward_normals`, zero off the boundary.

        At edges and corners the normals of the faces that meet are summed and normalised
        (a square's corner gets the diagonal); the time component is zero.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, D).
        tolerance : float, optional
            Distance from a face that still counts; default as in :meth:`inside`.

        Returns
        -------
        torch.Tensor
            Normals, shape (n, D), in the dtype of ``x``.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn import Box
        >>> Box([0, 0], [1, 1]).boundary_normal(torch.tensor([[1.0, 0.5], [0.0, 0.0],
        ...                                                   [0.5, 0.5]]))
        tensor([[ 1.0000,  0.0000],
                [-0.7071, -0.7071],
                [ 0.0000,  0.0000]])
        """
        x = self._points(x)
        tolerance = self._tolerance if tolerance is None else tolerance
        on = self.on_boundary(x, tolerance)
        return self.outward_normals(x, tolerance) * on[:, None].to(x.dtype)

    def _boundary_measure(self):
        # Area of the space faces (length of the perimeter in 2-D, 2 end points in 1-D).
        sides = self.upper - self.lower
        return float(sum(2 * np.prod(np.delete(sides, axis)) for axis in self.space_axes))

    # Constructive solid geometry; hybridnet.pinn.geometry imports this module, so the
    # operators import it when they are used.
    def __or__(self, other):
        from .geometry import CSGUnion
        return CSGUnion._operator(self, other)

    def __and__(self, other):
        from .geometry import CSGIntersection
        return CSGIntersection._operator(self, other)

    def __sub__(self, other):
        from .geometry import CSGDifference
        return CSGDifference._operator(self, other)

    def __repr__(self):
        time = "" if self.time_axis is None else f", time_axis={self.time_axis}"
        return f"Box({self.lower.tolist()}, {self.upper.tolist()}{time})"
