"""Geometries of PDE problems: primitives, constructive solid geometry and space-time.

Every geometry has ``dim``, ``inside(x)``, ``on_boundary(x)``, ``boundary_normal(x)``,
``sample_interior(n, generator)``, ``sample_boundary(n, generator)``, ``bounding_box``,
``scale`` and ``space_axes`` (:class:`Geometry`). The primitives are :class:`Interval`,
:class:`Rectangle` (both subclasses of :class:`~hybridnet.pinn.Box`), :class:`Disk`,
:class:`Polygon` and
:class:`~hybridnet.pinn.Box` itself; ``a | b``, ``a & b`` and ``a - b`` compose them
(:class:`CSGUnion`, :class:`CSGIntersection`, :class:`CSGDifference`), nested freely.
:class:`SpaceTime` adds a time coordinate to a space geometry.

Conventions, as in DeepXDE's ``geometry`` package:

- Sets are closed: a point on the boundary is inside. Membership and boundary tests allow a
  tolerance, by default 1e-6 times the largest ``|coordinate|`` of the shape's bounding box (at
  least 1e-6): float32 rounds coordinates by about 6e-8 of their size.
- Normals are unit vectors pointing out of the material: a hole's point into the hole. Where
  edges or faces meet (a polygon's vertex, a rectangle's corner) the normals of the edges that
  meet are summed and normalised. Where composition makes a corner (a disk's edge crossing a
  square's), the operands' normals there are summed and normalised; if one of them is itself
  a corner's, the result is not exactly the bisector (such points have zero length and are
  never drawn in practice). Points off the boundary get zero rows.
- Composition follows the closed sets: the boundary of ``a | b`` is each operand's boundary
  outside the other's interior, that of ``a & b`` each operand's boundary inside the other,
  that of ``a - b`` ``a``'s boundary outside ``b``'s interior plus ``b``'s inside ``a``.
  Pieces that meet face to face are resolved by their normals: two shapes glued side by side
  (opposite normals) leave no seam in their union, and a face that ``a`` and ``b`` share with
  the same normal is cut away by ``a - b``.
- Sampling is uniform in area (volume) and in boundary length (area); points are drawn in
  float64 and cast to the dtype asked for (boxes, rectangles and intervals keep ``Box``'s
  draws in that dtype, so existing problems see the same points); all randomness comes from
  the ``generator``.
  Composed shapes and polygons draw their interior by rejection from the bounding box; a
  composed boundary is drawn from the primitives' boundaries in proportion to their measure,
  keeping the points on the composed boundary (a stretch two primitives share counts once).
"""

import abc
import math
import numbers

import numpy as np
import torch

from .domain import Box

__all__ = ["CSGDifference", "CSGIntersection", "CSGUnion", "Disk", "Geometry", "Interval",
           "Polygon", "Rectangle", "SpaceTime"]

# Two boundary pieces whose outward normals are opposite to within this (1 + cos of the angle)
# are glued face to face: the union's seam is interior, the difference's shared face is gone.
_GLUED = 1e-9
# Rejection sampling: the largest batch of candidates drawn at once, and how many may be drawn
# without a single acceptance before the shape is declared empty.
_MAX_BATCH = 1 << 20
_MAX_FRUITLESS = 10**6
# Polygons compare each point with each edge: rows per chunk of that (rows x edges) work.
_POLYGON_CHUNK = 1 << 20


def _default_tolerance(lower, upper):
    return 1e-6 * max(1.0, float(np.abs(lower).max()), float(np.abs(upper).max()))


def _real(value, name):
    """A finite real number (bools refused), as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _vector(values, name, length):
    """A finite float64 vector of the given length."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of {length} numbers, got {values!r}") \
            from None
    if array.shape != (length,):
        raise ValueError(f"{name} must have {length} coordinates, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def _check_sampling(n, generator, dtype):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
    return int(n)


def _points(x, dim):
    """``x`` as a floating (n, dim) tensor."""
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (n, {dim}), got {tuple(x.shape)}")
    return x if x.is_floating_point() else x.to(torch.float64)


def _normalise(vectors):
    # + 0.0 turns -0.0 into 0.0, for tidy printing.
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-300) + 0.0


def _rejection(n, dim, draw, what):
    """``n`` accepted rows of ``draw(m) -> (candidates (m, dim) float64, accepted (m,) bool)``.

    Candidates are i.i.d., so the first ``n`` accepted ones are a sample of the accepted law.
    The batch size follows the acceptance rate measured so far (20 % spare), so a typical call
    draws once or twice.
    """
    kept, count, tried, batch = [], 0, 0, max(64, 2 * n)
    while count < n:
        candidates, accepted = draw(min(batch, _MAX_BATCH))
        kept.append(candidates[accepted])
        count += int(accepted.sum())
        tried += len(candidates)
        if count == 0:
            if tried >= _MAX_FRUITLESS:
                raise ValueError(f"none of {tried} candidate points fell in {what}: is it "
                                 "empty, or under a millionth of its bounding box?")
            batch *= 4
        else:
            batch = int(1.2 * (n - count) * tried / count) + 64
    return torch.cat(kept)[:n] if kept else torch.empty((0, dim), dtype=torch.float64)


def _uniform_in_box(m, lower, upper, generator):
    u = torch.rand((m, len(lower)), generator=generator, dtype=torch.float64)
    return torch.as_tensor(lower) + u * torch.as_tensor(upper - lower)


class Geometry(abc.ABC):
    """Base class of the geometries: membership, boundary, normals and uniform sampling.

    Subclasses give ``dim``, ``bounding_box``, ``inside``, ``on_boundary``,
    ``boundary_normal``, ``sample_interior`` and ``sample_boundary``; :class:`~hybridnet.pinn.Box`
    is registered as a geometry. ``a | b``, ``a & b`` and ``a - b`` combine two space
    geometries of the same dimension.

    Attributes
    ----------
    time_axis : int or None
        The coordinate that is time; None for space geometries (only :class:`SpaceTime` and a
        :class:`~hybridnet.pinn.Box` with ``time_axis`` have one).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Disk, Geometry, Rectangle
    >>> plate = Rectangle([0, 0], [1, 1]) - Disk([0.5, 0.5], 0.25)
    >>> isinstance(plate, Geometry), plate.dim, plate.space_axes, plate.scale
    (True, 2, [0, 1], 1.0)
    >>> plate.inside(torch.tensor([[0.1, 0.1], [0.5, 0.5]]))
    tensor([ True, False])
    """

    time_axis = None

    @property
    @abc.abstractmethod
    def dim(self):
        """Number of coordinates.

        Examples
        --------
        >>> from hybridnet.pinn.geometry import Disk
        >>> Disk([0, 0], 1).dim
        2
        """

    @property
    @abc.abstractmethod
    def bounding_box(self):
        """``(lower, upper)``: corners of the smallest axis-aligned box around the geometry.

        Two float64 arrays of length ``dim`` (for composed shapes a box that contains it:
        the union's boxes' hull, the intersection of the boxes, the first operand's box of a
        difference).

        Examples
        --------
        >>> from hybridnet.pinn.geometry import Disk
        >>> Disk([1, 0], 0.5).bounding_box
        (array([ 0.5, -0.5]), array([1.5, 0.5]))
        """

    @abc.abstractmethod
    def inside(self, x, tolerance=None):
        """Boolean mask (n,): which rows of ``x`` lie in the closed geometry.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, dim).
        tolerance : float, optional
            How far outside a point may lie and still count; default 1e-6 times the largest
            ``|coordinate|`` of each primitive's bounding box (at least 1e-6).

        Returns
        -------
        torch.Tensor
            Boolean mask, shape (n,). Boundary points count as inside; NaN rows do not.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk
        >>> Disk([0, 0], 1).inside(torch.tensor([[0.0, 0.5], [1.0, 0.0], [1.0, 1.0]]))
        tensor([ True,  True, False])
        """

    @abc.abstractmethod
    def on_boundary(self, x, tolerance=None):
        """Boolean mask (n,): which rows of ``x`` lie on the boundary, within ``tolerance``.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, dim).
        tolerance : float, optional
            Distance from the boundary that still counts; default as in :meth:`inside`.

        Returns
        -------
        torch.Tensor
            Boolean mask, shape (n,).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk, Rectangle
        >>> plate = Rectangle([0, 0], [1, 1]) - Disk([0.5, 0.5], 0.25)
        >>> plate.on_boundary(torch.tensor([[0.0, 0.3], [0.75, 0.5], [0.1, 0.1]]))
        tensor([ True,  True, False])
        """

    @abc.abstractmethod
    def boundary_normal(self, x, tolerance=None):
        """Unit outward normals (n, dim) at boundary points; zero rows elsewhere.

        Outward means away from the material: on a hole's edge the normal points into the
        hole. Where edges meet (corners of rectangles and polygons, or where composition
        joins two shapes' edges) the normals of the edges that meet are summed and
        normalised.

        Parameters
        ----------
        x : torch.Tensor
            Points, shape (n, dim).
        tolerance : float, optional
            Distance from the boundary that still counts; default as in :meth:`inside`.

        Returns
        -------
        torch.Tensor
            Normals, shape (n, dim), in the dtype of ``x``.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk, Rectangle
        >>> plate = Rectangle([0, 0], [1, 1]) - Disk([0.5, 0.5], 0.25)
        >>> plate.boundary_normal(torch.tensor([[0.0, 0.3], [0.75, 0.5], [0.1, 0.1]]))
        tensor([[-1.,  0.],
                [-1.,  0.],
                [ 0.,  0.]])
        """

    @abc.abstractmethod
    def sample_interior(self, n, generator, dtype=torch.float32):
        """``n`` points uniform in the geometry (in area, or volume).

        Parameters
        ----------
        n : int
            Number of points.
        generator : torch.Generator
            The only source of randomness: the same seed gives the same points.
        dtype : torch.dtype, default=torch.float32
            Floating dtype of the result (points are drawn in float64 and cast).

        Returns
        -------
        torch.Tensor
            Points, shape (n, dim).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk
        >>> disk = Disk([0, 0], 1)
        >>> x = disk.sample_interior(1000, torch.Generator().manual_seed(0))
        >>> x.shape, x.dtype, bool(disk.inside(x).all())
        (torch.Size([1000, 2]), torch.float32, True)
        """

    @abc.abstractmethod
    def sample_boundary(self, n, generator, dtype=torch.float32):
        """``n`` points uniform on the boundary (in length, or area).

        Parameters
        ----------
        n : int
            Number of points.
        generator : torch.Generator
            The only source of randomness.
        dtype : torch.dtype, default=torch.float32
            Floating dtype of the result.

        Returns
        -------
        torch.Tensor
            Points, shape (n, dim).

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk, Rectangle
        >>> plate = Rectangle([0, 0], [1, 1]) - Disk([0.5, 0.5], 0.25)
        >>> x = plate.sample_boundary(1000, torch.Generator().manual_seed(0), torch.float64)
        >>> bool(plate.on_boundary(x).all())
        True
        """

    @property
    def space_axes(self):
        """The coordinates that are not time (all of them for a space geometry).

        Examples
        --------
        >>> from hybridnet.pinn.geometry import Disk, SpaceTime
        >>> Disk([0, 0], 1).space_axes, SpaceTime(Disk([0, 0], 1), (0, 1)).space_axes
        ([0, 1], [0, 1])
        """
        return [axis for axis in range(self.dim) if axis != self.time_axis]

    @property
    def scale(self):
        """Mean side of the bounding box (sets the default smoothing of derivative back ends).

        Examples
        --------
        >>> from hybridnet.pinn.geometry import Disk
        >>> Disk([0, 0], 2).scale
        4.0
        """
        lower, upper = self.bounding_box
        return float(np.mean(upper - lower))

    @property
    def _tolerance(self):
        return _default_tolerance(*self.bounding_box)

    def contains(self, x, tolerance=None):
        """:meth:`inside` under the name :class:`~hybridnet.pinn.Box` has always had.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk
        >>> Disk([0, 0], 1).contains(torch.tensor([[0.0, 2.0]]))
        tensor([False])
        """
        return self.inside(x, tolerance)

    def outward_normals(self, x, tolerance=None):
        """:meth:`boundary_normal` under the name :class:`~hybridnet.pinn.Box` has always had.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk
        >>> Disk([0, 0], 2).outward_normals(torch.tensor([[0.0, 2.0]]))
        tensor([[0., 1.]])
        """
        return self.boundary_normal(x, tolerance)

    def sample_time_slice(self, n, generator, at="initial", dtype=torch.float32):
        """Initial or terminal points: only geometries with time (:class:`SpaceTime`) have them.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk
        >>> Disk([0, 0], 1).sample_time_slice(4, torch.Generator())
        Traceback (most recent call last):
        ...
        ValueError: initial and terminal conditions need a domain with time: use \
SpaceTime(Disk([0.0, 0.0], 1.0), (t_start, t_end))
        """
        raise ValueError(f"initial and terminal conditions need a domain with time: use "
                         f"SpaceTime({self!r}, (t_start, t_end))")

    def __or__(self, other):
        return CSGUnion._operator(self, other)

    def __and__(self, other):
        return CSGIntersection._operator(self, other)

    def __sub__(self, other):
        return CSGDifference._operator(self, other)


Geometry.register(Box)


# ---------------------------------------------------------------------------- primitives
class Interval(Box):
    """The closed interval ``[a, b]``, a 1-D :class:`~hybridnet.pinn.Box`.

    Its boundary is the two end points, each drawn with probability 1/2; the normals are -1 at
    ``a`` and +1 at ``b``.

    Parameters
    ----------
    a, b : float
        End points, ``a < b``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Interval
    >>> rod = Interval(0, 2)
    >>> rod.dim, rod.bounding_box
    (1, (array([0.]), array([2.])))
    >>> rod.boundary_normal(torch.tensor([[0.0], [2.0], [1.0]]))
    tensor([[-1.],
            [ 1.],
            [ 0.]])
    >>> x = rod.sample_boundary(1000, torch.Generator().manual_seed(0))
    >>> sorted(set(x[:, 0].tolist())), float((x == 0).double().mean())
    ([0.0, 2.0], 0.508)
    """

    def __init__(self, a, b):
        a, b = _real(a, "a"), _real(b, "b")
        if not a < b:
            raise ValueError(f"Interval needs a < b, got a={a!r}, b={b!r}")
        super().__init__([a], [b])

    def __repr__(self):
        return f"Interval({float(self.lower[0])!r}, {float(self.upper[0])!r})"


class Rectangle(Box):
    """The closed axis-aligned rectangle ``[lower, upper]``, a 2-D :class:`~hybridnet.pinn.Box`.

    At a corner the normal is the normalised sum of the two sides' normals (the diagonal).

    Parameters
    ----------
    lower, upper : sequence of 2 floats
        Corners, ``lower[i] < upper[i]``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Rectangle
    >>> plate = Rectangle([0, 0], [2, 1])
    >>> plate.dim, plate.scale
    (2, 1.5)
    >>> plate.boundary_normal(torch.tensor([[1.0, 1.0], [2.0, 0.0]]))
    tensor([[ 0.0000,  1.0000],
            [ 0.7071, -0.7071]])
    """

    def __init__(self, lower, upper):
        super().__init__(_vector(lower, "lower", 2), _vector(upper, "upper", 2))

    def __repr__(self):
        return f"Rectangle({self.lower.tolist()}, {self.upper.tolist()})"


class Disk(Geometry):
    """The closed disk of ``center`` and ``radius`` in the plane.

    The normal at a boundary point x is ``(x - center) / radius``. Interior points are drawn
    by the square root of a uniform radius (uniform in area), boundary points at uniform
    angles.

    Parameters
    ----------
    center : sequence of 2 floats
        The centre.
    radius : float
        The radius, > 0.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Disk
    >>> disk = Disk([1, 0], 2)
    >>> disk.bounding_box
    (array([-1., -2.]), array([3., 2.]))
    >>> disk.boundary_normal(torch.tensor([[1.0, 2.0], [3.0, 0.0], [1.0, 0.0]]))
    tensor([[0., 1.],
            [1., 0.],
            [0., 0.]])
    """

    def __init__(self, center, radius):
        self.center = _vector(center, "center", 2)
        self.radius = _real(radius, "radius")
        if self.radius <= 0:
            raise ValueError(f"radius must be > 0, got {radius!r}")

    @property
    def dim(self):
        return 2

    @property
    def bounding_box(self):
        return self.center - self.radius, self.center + self.radius

    def _offsets(self, x):
        """x - center in float64, and its length."""
        offset = x.to(torch.float64) - torch.as_tensor(self.center, device=x.device)
        return offset, offset.norm(dim=1)

    def inside(self, x, tolerance=None):
        x = _points(x, 2)
        tolerance = self._tolerance if tolerance is None else tolerance
        return self._offsets(x)[1] <= self.radius + tolerance

    def on_boundary(self, x, tolerance=None):
        x = _points(x, 2)
        tolerance = self._tolerance if tolerance is None else tolerance
        return (self._offsets(x)[1] - self.radius).abs() <= tolerance

    def boundary_normal(self, x, tolerance=None):
        x = _points(x, 2)
        tolerance = self._tolerance if tolerance is None else tolerance
        offset, distance = self._offsets(x)
        on = (distance - self.radius).abs() <= tolerance
        return _normalise(offset * on[:, None]).to(x.dtype)

    def sample_interior(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        u = torch.rand((n, 2), generator=generator, dtype=torch.float64)
        radius = self.radius * u[:, 0].sqrt()
        return self._at(radius, 2 * math.pi * u[:, 1]).to(dtype)

    def sample_boundary(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        return self._at(torch.full_like(angle, self.radius), angle).to(dtype)

    def _at(self, radius, angle):
        points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        return points + torch.as_tensor(self.center)

    def _boundary_measure(self):
        return 2 * math.pi * self.radius

    def __repr__(self):
        return f"Disk({self.center.tolist()}, {self.radius!r})"


class Polygon(Geometry):
    """A simple polygon (no self-intersection) in the plane, its vertices in either order.

    The normal on an edge is the edge's direction turned by 90 degrees away from the inside
    (clockwise for counter-clockwise vertices, anticlockwise otherwise); at a vertex the two
    edges' normals are summed and normalised. Interior points are drawn by rejection from the
    bounding box, boundary points on edges chosen in proportion to their length.

    Parameters
    ----------
    vertices : array-like of shape (m, 2)
        The corners in order, m >= 3, without repeating the first one at the end.

    Raises
    ------
    ValueError
        Fewer than 3 vertices, coinciding consecutive vertices, NaN or infinite coordinates,
        edges that cross, touch or fold back, or zero area.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Polygon
    >>> ell = Polygon([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]])
    >>> ell.area, ell.inside(torch.tensor([[0.5, 1.5], [1.5, 1.5]]))
    (3.0, tensor([ True, False]))
    >>> ell.boundary_normal(torch.tensor([[1.5, 1.0], [1.0, 1.0]]))
    tensor([[0.0000, 1.0000],
            [0.7071, 0.7071]])
    """

    def __init__(self, vertices):
        try:
            vertices = np.array(vertices, dtype=np.float64)        # a copy, never a view
        except (TypeError, ValueError):
            raise ValueError(f"vertices must be an (m, 2) array of numbers, got {vertices!r}") \
                from None
        if vertices.ndim != 2 or vertices.shape[1] != 2:
            raise ValueError(f"vertices must have shape (m, 2), got {vertices.shape}")
        if len(vertices) < 3:
            raise ValueError(f"a Polygon needs at least 3 vertices, got {len(vertices)}")
        if not np.isfinite(vertices).all():
            raise ValueError("vertices must be finite (no NaN or inf)")
        starts, ends = vertices, np.roll(vertices, -1, axis=0)
        edges = ends - starts
        lengths = np.linalg.norm(edges, axis=1)
        extent = float(np.ptp(vertices, axis=0).max())
        if (lengths <= 1e-12 * extent).any():
            i = int(np.argmax(lengths <= 1e-12 * extent))
            raise ValueError(f"vertices {i} and {(i + 1) % len(vertices)} coincide (do not "
                             "repeat the first vertex at the end)")
        spread = vertices - vertices[0]
        if np.linalg.matrix_rank(spread, tol=1e-12 * extent) < 2:
            raise ValueError("vertices enclose zero area (they lie on one line)")
        _check_simple(starts, ends, extent)
        signed_area = 0.5 * float(np.sum(starts[:, 0] * ends[:, 1] - ends[:, 0] * starts[:, 1]))
        if abs(signed_area) <= 1e-12 * extent**2:       # cannot happen to a simple polygon
            raise ValueError("vertices enclose zero area")
        orientation = 1.0 if signed_area > 0 else -1.0      # +1: counter-clockwise
        self.vertices = vertices
        self.area = abs(signed_area)
        self._starts, self._edges, self._lengths = starts, edges, lengths
        self._normals = orientation * np.stack([edges[:, 1], -edges[:, 0]], axis=1) \
            / lengths[:, None]

    @property
    def dim(self):
        return 2

    @property
    def bounding_box(self):
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def _classify(self, x, tolerance):
        """(crossing parity (n,), near each edge (n, m)) for float64 points x, in chunks."""
        starts = torch.as_tensor(self._starts, device=x.device)
        edges = torch.as_tensor(self._edges, device=x.device)
        squared = (edges**2).sum(dim=1)
        odd, near = [], []
        for chunk in x.split(max(1, _POLYGON_CHUNK // len(edges))):
            offset = chunk[:, None, :] - starts                       # (r, m, 2)
            t = ((offset * edges).sum(dim=2) / squared).clamp(0, 1)
            distance = (offset - t[..., None] * edges).norm(dim=2)
            near.append(distance <= tolerance)
            # Even-odd rule: edges straddling the point's height, crossed to its right.
            above_start = offset[..., 1] < 0
            above_end = offset[..., 1] < edges[:, 1]
            straddle = above_start != above_end
            height = torch.where(edges[:, 1] == 0, torch.ones_like(edges[:, 1]), edges[:, 1])
            crossing = offset[..., 1] * edges[:, 0] / height            # x_cross - start_x
            odd.append((straddle & (offset[..., 0] < crossing)).sum(dim=1) % 2 == 1)
        if not odd:
            return (torch.zeros(0, dtype=torch.bool, device=x.device),
                    torch.zeros((0, len(edges)), dtype=torch.bool, device=x.device))
        return torch.cat(odd), torch.cat(near)

    def inside(self, x, tolerance=None):
        x = _points(x, 2)
        odd, near = self._classify(x.to(torch.float64),
                                   self._tolerance if tolerance is None else tolerance)
        return odd | near.any(dim=1)

    def on_boundary(self, x, tolerance=None):
        x = _points(x, 2)
        _, near = self._classify(x.to(torch.float64),
                                 self._tolerance if tolerance is None else tolerance)
        return near.any(dim=1)

    def boundary_normal(self, x, tolerance=None):
        x = _points(x, 2)
        _, near = self._classify(x.to(torch.float64),
                                 self._tolerance if tolerance is None else tolerance)
        normals = near.to(torch.float64) @ torch.as_tensor(self._normals, device=x.device)
        return _normalise(normals).to(x.dtype)

    def sample_interior(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        lower, upper = self.bounding_box

        def draw(m):
            candidates = _uniform_in_box(m, lower, upper, generator)
            return candidates, self.inside(candidates)

        return _rejection(n, 2, draw, repr(self)).to(dtype)

    def sample_boundary(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        if n == 0:
            return torch.empty((0, 2), dtype=dtype)
        edge = torch.multinomial(torch.as_tensor(self._lengths), n, replacement=True,
                                 generator=generator)
        t = torch.rand(n, generator=generator, dtype=torch.float64)
        starts, edges = torch.as_tensor(self._starts), torch.as_tensor(self._edges)
        return (starts[edge] + t[:, None] * edges[edge]).to(dtype)

    def _boundary_measure(self):
        return float(self._lengths.sum())

    def __repr__(self):
        return f"Polygon({self.vertices.tolist()})"


def _check_simple(starts, ends, extent):
    """Raise a ValueError when two edges of the closed polygon cross, touch or fold back."""
    m = len(starts)
    edges = ends - starts
    zero = 1e-12 * extent**2

    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    # Consecutive edges share a vertex; they must not run back over each other.
    following = np.roll(edges, -1, axis=0)
    folds = (np.abs(cross(edges, following)) <= zero) & ((edges * following).sum(axis=1) < 0)
    if folds.any():
        i = int(np.argmax(folds))
        raise ValueError(f"vertices must describe a simple polygon: edge {i} and edge "
                         f"{(i + 1) % m} fold back over each other at vertex {(i + 1) % m}")
    i, j = np.triu_indices(m, k=2)
    keep = ~((i == 0) & (j == m - 1))                       # the first and last edges meet
    i, j = i[keep], j[keep]
    if not len(i):
        return
    p, r = starts[i], edges[i]
    q, s = starts[j], edges[j]
    # Orientation of each segment's end points relative to the other segment.
    o1, o2 = cross(r, q - p), cross(r, q + s - p)
    o3, o4 = cross(s, p - q), cross(s, p + r - q)
    o1, o2, o3, o4 = (np.where(np.abs(o) <= zero, 0.0, o) for o in (o1, o2, o3, o4))
    collinear = (o1 == 0) & (o2 == 0)
    proper = ~collinear & (o1 * o2 <= 0) & (o3 * o4 <= 0)
    # Collinear segments meet when their projections on the common line overlap.
    direction = r / np.linalg.norm(r, axis=1, keepdims=True)
    a0 = np.zeros(len(i))
    a1 = (r * direction).sum(axis=1)
    b0 = ((q - p) * direction).sum(axis=1)
    b1 = ((q + s - p) * direction).sum(axis=1)
    overlap = collinear & (np.maximum(a0, np.minimum(b0, b1))
                           <= np.minimum(a1, np.maximum(b0, b1)) + 1e-12 * extent)
    bad = proper | overlap
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"vertices must describe a simple polygon: edge {i[k]} (vertices "
                         f"{i[k]}-{(i[k] + 1) % m}) and edge {j[k]} (vertices "
                         f"{j[k]}-{(j[k] + 1) % m}) intersect")


# ------------------------------------------------------------- constructive solid geometry
def _classify(geometry, x, tolerance):
    """(inside, on boundary, unit outward normal in float64) of float64 points x."""
    if isinstance(geometry, _CSG):
        return geometry._classify(x, tolerance)
    return (geometry.inside(x, tolerance), geometry.on_boundary(x, tolerance),
            geometry.boundary_normal(x, tolerance).to(torch.float64))


def _leaves(geometry):
    return geometry._leaves() if isinstance(geometry, _CSG) else [geometry]


def _glued(normal_a, normal_b):
    """Rows where two boundary pieces meet face to face (opposite normals)."""
    return (normal_a * normal_b).sum(dim=1) < -1 + _GLUED


class _CSG(Geometry):
    """Two space geometries of the same dimension combined; subclasses say how."""

    _symbol = "?"

    def __init__(self, a, b):
        for name, operand in (("a", a), ("b", b)):
            if not isinstance(operand, Geometry):
                raise TypeError(f"{type(self).__name__} operand {name} must be a geometry, "
                                f"got {type(operand).__name__}")
            if operand.time_axis is not None:
                raise ValueError(f"{type(self).__name__} combines space geometries; operand "
                                 f"{name} {operand!r} has a time axis: combine the space "
                                 "shapes first, then wrap them in SpaceTime(shape, (t0, t1))")
        if a.dim != b.dim:
            raise ValueError(f"{type(self).__name__} needs operands of the same dimension, got "
                             f"a {a.dim}-D {a!r} and a {b.dim}-D {b!r}")
        self.a, self.b = a, b

    @classmethod
    def _operator(cls, a, b):
        return cls(a, b) if isinstance(b, Geometry) else NotImplemented

    @property
    def dim(self):
        return self.a.dim

    def _leaves(self):
        return _leaves(self.a) + _leaves(self.b)

    def inside(self, x, tolerance=None):
        x = _points(x, self.dim)
        return self._classify(x.to(torch.float64), tolerance)[0]

    def on_boundary(self, x, tolerance=None):
        x = _points(x, self.dim)
        return self._classify(x.to(torch.float64), tolerance)[1]

    def boundary_normal(self, x, tolerance=None):
        x = _points(x, self.dim)
        return self._classify(x.to(torch.float64), tolerance)[2].to(x.dtype)

    @staticmethod
    def _compose(keep_a, keep_b, normal_a, normal_b, glued):
        """(on, normal) of the composed boundary from the pieces kept of each operand."""
        on = (keep_a | keep_b) & ~glued
        normal = normal_a * keep_a[:, None] + normal_b * keep_b[:, None]
        return on, _normalise(normal * on[:, None])

    def sample_interior(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        lower, upper = self.bounding_box

        def draw(m):
            candidates = _uniform_in_box(m, lower, upper, generator)
            return candidates, self._classify(candidates, None)[0]

        return _rejection(n, self.dim, draw, repr(self)).to(dtype)

    def sample_boundary(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        leaves = self._leaves()
        measures = torch.tensor([leaf._boundary_measure() for leaf in leaves],
                                dtype=torch.float64)

        def draw(m):
            # Each candidate comes from a primitive chosen in proportion to its boundary
            # measure; it is kept when on the composed boundary and not also on an earlier
            # primitive's boundary (a shared stretch would otherwise be drawn twice as often).
            choice = torch.multinomial(measures, m, replacement=True, generator=generator)
            candidates = torch.empty((m, self.dim), dtype=torch.float64)
            claimed = torch.zeros(m, dtype=torch.bool)
            for k, leaf in enumerate(leaves):
                rows = choice == k
                count = int(rows.sum())
                if count:
                    points = leaf.sample_boundary(count, generator, torch.float64)
                    candidates[rows] = points
                    earlier = torch.zeros(count, dtype=torch.bool)
                    for other in leaves[:k]:
                        earlier |= other.on_boundary(points)
                    claimed[rows] = earlier
            return candidates, self._classify(candidates, None)[1] & ~claimed

        return _rejection(n, self.dim, draw, f"the boundary of {self!r}").to(dtype)

    def __repr__(self):
        return f"({self.a!r} {self._symbol} {self.b!r})"


class CSGUnion(_CSG):
    """The union ``a | b`` of two space geometries of the same dimension.

    Its boundary is each operand's boundary outside the other's interior; where the two meet
    face to face (opposite normals, e.g. two rectangles side by side) the seam is interior.
    Usually made by the operator ``a | b``.

    Parameters
    ----------
    a, b : Geometry
        The operands.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import CSGUnion, Disk, Rectangle
    >>> pair = Disk([0, 0], 1) | Disk([1, 0], 1)
    >>> isinstance(pair, CSGUnion), pair.bounding_box
    (True, (array([-1., -1.]), array([2., 1.])))
    >>> pair.on_boundary(torch.tensor([[-1.0, 0.0], [1.0, 0.0], [2.0, 0.0]]))
    tensor([ True, False,  True])

    Side by side, two unit squares make a 2 x 1 rectangle:

    >>> bar = Rectangle([0, 0], [1, 1]) | Rectangle([1, 0], [2, 1])
    >>> bar.on_boundary(torch.tensor([[1.0, 0.5], [1.0, 1.0]]))
    tensor([False,  True])
    >>> bar.boundary_normal(torch.tensor([[1.0, 1.0]]))
    tensor([[0., 1.]])
    """

    _symbol = "|"

    @property
    def bounding_box(self):
        (lower_a, upper_a), (lower_b, upper_b) = self.a.bounding_box, self.b.bounding_box
        return np.minimum(lower_a, lower_b), np.maximum(upper_a, upper_b)

    def _classify(self, x, tolerance):
        in_a, on_a, normal_a = _classify(self.a, x, tolerance)
        in_b, on_b, normal_b = _classify(self.b, x, tolerance)
        keep_a = on_a & ~(in_b & ~on_b)
        keep_b = on_b & ~(in_a & ~on_a)
        glued = keep_a & keep_b & _glued(normal_a, normal_b)
        on, normal = self._compose(keep_a, keep_b, normal_a, normal_b, glued)
        return in_a | in_b, on, normal


class CSGIntersection(_CSG):
    """The intersection ``a & b`` of two space geometries of the same dimension.

    Its boundary is each operand's boundary inside the other. Usually made by the operator
    ``a & b``.

    Parameters
    ----------
    a, b : Geometry
        The operands; their bounding boxes must overlap.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Disk, Rectangle
    >>> half = Disk([0, 0], 1) & Rectangle([0, -1], [1, 1])
    >>> half.bounding_box
    (array([ 0., -1.]), array([1., 1.]))
    >>> half.boundary_normal(torch.tensor([[0.0, 0.5], [0.6, 0.8]]))
    tensor([[-1.0000,  0.0000],
            [ 0.6000,  0.8000]])
    """

    _symbol = "&"

    def __init__(self, a, b):
        super().__init__(a, b)
        lower, upper = self.bounding_box
        if not (lower < upper).all():
            raise ValueError(f"the bounding boxes of {a!r} and {b!r} do not overlap: the "
                             "intersection is empty")

    @property
    def bounding_box(self):
        (lower_a, upper_a), (lower_b, upper_b) = self.a.bounding_box, self.b.bounding_box
        return np.maximum(lower_a, lower_b), np.minimum(upper_a, upper_b)

    def _classify(self, x, tolerance):
        in_a, on_a, normal_a = _classify(self.a, x, tolerance)
        in_b, on_b, normal_b = _classify(self.b, x, tolerance)
        keep_a, keep_b = on_a & in_b, on_b & in_a
        glued = torch.zeros_like(keep_a)
        on, normal = self._compose(keep_a, keep_b, normal_a, normal_b, glued)
        return in_a & in_b, on, normal


class CSGDifference(_CSG):
    """The difference ``a - b``: ``a`` with ``b`` cut out (the closure of what remains).

    Its boundary is ``a``'s boundary outside ``b``'s interior and ``b``'s boundary inside
    ``a``, where the normal is ``b``'s reversed (it points into the hole). A face the two
    share with the same normal is cut away with ``b``. Usually made by ``a - b``.

    Parameters
    ----------
    a, b : Geometry
        The operands.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Disk, Rectangle
    >>> plate = Rectangle([0, 0], [1, 1]) - Disk([0.5, 0.5], 0.25)
    >>> plate.inside(torch.tensor([[0.5, 0.5], [0.5, 0.25], [0.1, 0.1]]))
    tensor([False,  True,  True])
    >>> plate.boundary_normal(torch.tensor([[0.5, 0.25]]))          # into the hole
    tensor([[0., 1.]])
    """

    _symbol = "-"

    @property
    def bounding_box(self):
        return self.a.bounding_box

    def _classify(self, x, tolerance):
        in_a, on_a, normal_a = _classify(self.a, x, tolerance)
        in_b, on_b, normal_b = _classify(self.b, x, tolerance)
        normal_b = -normal_b
        keep_a = on_a & ~(in_b & ~on_b)
        keep_b = on_b & in_a
        glued = keep_a & keep_b & _glued(normal_a, normal_b)
        on, normal = self._compose(keep_a, keep_b, normal_a, normal_b, glued)
        return in_a & ~(in_b & ~on_b) & ~glued, on, normal


# ---------------------------------------------------------------------------- space-time
class SpaceTime(Geometry):
    """A space geometry times a time interval; time is the last coordinate.

    Boundary conditions hold on the space boundary at all times: ``sample_boundary``
    draws space boundary points at uniform times, ``on_boundary`` means on the space
    boundary with t in range, and the normals' time component is zero. Initial and terminal
    points come from :meth:`sample_time_slice`.

    Parameters
    ----------
    space : Geometry
        A space geometry (no time axis of its own).
    time_range : pair of float
        ``(t_start, t_end)``, ``t_start < t_end``.

    Attributes
    ----------
    time_axis : int
        ``dim - 1``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.pinn.geometry import Disk, SpaceTime
    >>> drum = SpaceTime(Disk([0, 0], 1), (0, 2))
    >>> drum.dim, drum.time_axis, drum.space_axes
    (3, 2, [0, 1])
    >>> x = drum.sample_boundary(500, torch.Generator().manual_seed(0))
    >>> bool(drum.on_boundary(x).all()), bool((drum.boundary_normal(x)[:, 2] == 0).all())
    (True, True)
    """

    def __init__(self, space, time_range):
        if not isinstance(space, Geometry):
            raise TypeError(f"space must be a geometry, got {type(space).__name__}")
        if space.time_axis is not None:
            raise ValueError(f"space must be a space geometry, but {space!r} already has a "
                             "time axis")
        try:
            start, end = time_range
        except (TypeError, ValueError):
            raise ValueError(f"time_range must be a pair (t_start, t_end), got "
                             f"{time_range!r}") from None
        start, end = _real(start, "time_range[0]"), _real(end, "time_range[1]")
        if not start < end:
            raise ValueError(f"time_range needs t_start < t_end, got {time_range!r}")
        self.space, self.time_range = space, (start, end)
        self.time_axis = space.dim

    @property
    def dim(self):
        return self.space.dim + 1

    @property
    def bounding_box(self):
        lower, upper = self.space.bounding_box
        return np.append(lower, self.time_range[0]), np.append(upper, self.time_range[1])

    def _in_time(self, t, tolerance):
        tolerance = _default_tolerance(np.array(self.time_range), np.zeros(1)) \
            if tolerance is None else tolerance
        return (t >= self.time_range[0] - tolerance) & (t <= self.time_range[1] + tolerance)

    def inside(self, x, tolerance=None):
        x = _points(x, self.dim)
        return self.space.inside(x[:, :-1], tolerance) & self._in_time(x[:, -1], tolerance)

    def on_boundary(self, x, tolerance=None):
        x = _points(x, self.dim)
        return self.space.on_boundary(x[:, :-1], tolerance) & self._in_time(x[:, -1], tolerance)

    def boundary_normal(self, x, tolerance=None):
        x = _points(x, self.dim)
        normals = self.space.boundary_normal(x[:, :-1], tolerance)
        normals = normals * self._in_time(x[:, -1], tolerance)[:, None]
        return torch.cat([normals, torch.zeros_like(x[:, -1:])], dim=1).to(x.dtype)

    def _with_times(self, space_points, generator):
        t = torch.rand(len(space_points), generator=generator, dtype=torch.float64)
        start, end = self.time_range
        return torch.cat([space_points, (start + (end - start) * t)[:, None]], dim=1)

    def sample_interior(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        space = self.space.sample_interior(n, generator, torch.float64)
        return self._with_times(space, generator).to(dtype)

    def sample_boundary(self, n, generator, dtype=torch.float32):
        n = _check_sampling(n, generator, dtype)
        space = self.space.sample_boundary(n, generator, torch.float64)
        return self._with_times(space, generator).to(dtype)

    def sample_time_slice(self, n, generator, at="initial", dtype=torch.float32):
        """``n`` points uniform in space at the start (``"initial"``) or end (``"terminal"``).

        Parameters
        ----------
        n : int
            Number of points.
        generator : torch.Generator
            The only source of randomness.
        at : {"initial", "terminal"}, default="initial"
            Which end of the time range.
        dtype : torch.dtype, default=torch.float32
            Floating dtype of the result.

        Returns
        -------
        torch.Tensor
            Points, shape (n, dim), the last coordinate ``t_start`` or ``t_end``.

        Examples
        --------
        >>> import torch
        >>> from hybridnet.pinn.geometry import Disk, SpaceTime
        >>> drum = SpaceTime(Disk([0, 0], 1), (0, 2))
        >>> x = drum.sample_time_slice(100, torch.Generator().manual_seed(0), "terminal")
        >>> bool((x[:, 2] == 2).all()), bool(drum.space.inside(x[:, :2]).all())
        (True, True)
        """
        n = _check_sampling(n, generator, dtype)
        if at not in ("initial", "terminal"):
            raise ValueError(f"at must be 'initial' or 'terminal', got {at!r}")
        space = self.space.sample_interior(n, generator, torch.float64)
        t = self.time_range[0] if at == "initial" else self.time_range[1]
        return torch.cat([space, torch.full((n, 1), t, dtype=torch.float64)], dim=1).to(dtype)

    def __repr__(self):
        return f"SpaceTime({self.space!r}, {self.time_range!r})"
