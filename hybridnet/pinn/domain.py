"""Rectangular domains: where collocation, boundary, initial and terminal points are drawn."""

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
        """Number of coordinates D (time included)."""
        return self.lower.size

    @property
    def space_axes(self):
        """The coordinates that are not time."""
        return [i for i in range(self.dim) if i != self.time_axis]

    @property
    def scale(self):
        """The box's mean side length (sets the default smoothing of derivative back ends)."""
        return float(np.mean(self.upper - self.lower))

    def _tensor(self, values, like):
        return torch.as_tensor(values, dtype=like.dtype, device=like.device)

    def sample_interior(self, n, generator, dtype=torch.float32):
        """``n`` points uniform in the box, shape (n, D)."""
        u = torch.rand((n, self.dim), generator=generator, dtype=dtype)
        return self._tensor(self.lower, u) + u * self._tensor(self.upper - self.lower, u)

    def sample_boundary(self, n, generator, dtype=torch.float32):
        """``n`` points uniform on the faces of the space coordinates (time faces excluded).

        A face is chosen with probability proportional to its area, so the points are uniform
        on the boundary.
        """
        axes = self.space_axes
        if not axes:
            raise ValueError("this domain has no space coordinates, so no boundary")
        points = self.sample_interior(n, generator, dtype)
        sides = self.upper - self.lower
        areas = np.array([np.prod(np.delete(sides, axis)) for axis in axes])
        choice = torch.multinomial(torch.as_tensor(np.repeat(areas, 2) / 2), n, replacement=True,
                                   generator=generator)
        for index, axis in enumerate(axes):
            for side, value in enumerate((self.lower[axis], self.upper[axis])):
                points[choice == 2 * index + side, axis] = float(value)
        return points

    def sample_time_slice(self, n, generator, at="initial", dtype=torch.float32):
        """``n`` points uniform on the initial (``t = lower``) or terminal (``t = upper``) slice."""
        if self.time_axis is None:
            raise ValueError("initial and terminal conditions need a domain with a time_axis")
        points = self.sample_interior(n, generator, dtype)
        value = self.lower[self.time_axis] if at == "initial" else self.upper[self.time_axis]
        points[:, self.time_axis] = float(value)
        return points

    def contains(self, x, tolerance=1e-6):
        """Boolean mask of the rows of ``x`` (n, D) that lie in the closed box."""
        lower = self._tensor(self.lower - tolerance, x)
        upper = self._tensor(self.upper + tolerance, x)
        return ((x >= lower) & (x <= upper)).all(dim=1)

    def outward_normals(self, x, tolerance=1e-6):
        """Unit outward normals (n, D) of boundary points (zero rows for points not on a face).

        At edges and corners the normals of the faces that meet are summed and normalised.
        """
        normals = torch.zeros_like(x)
        for axis in self.space_axes:
            normals[:, axis] -= ((x[:, axis] - self.lower[axis]).abs() <= tolerance).to(x.dtype)
            normals[:, axis] += ((x[:, axis] - self.upper[axis]).abs() <= tolerance).to(x.dtype)
        return normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def __repr__(self):
        time = "" if self.time_axis is None else f", time_axis={self.time_axis}"
        return f"Box({self.lower.tolist()}, {self.upper.tolist()}{time})"
