"""Geometries of hybridnet.pinn.geometry: uniform sampling, boundaries, normals, space-time.

Every expectation comes from an independent reference: exact areas and lengths of the shapes,
normals written down by hand or computed from the shape's definition, and the sampled
coordinates themselves (not the geometry's own masks) to tell where a point lies.
"""

import math

import numpy as np
import pytest
import torch

from hybridnet.pinn import Box, DirichletBC, InitialCondition, NeumannBC, TerminalCondition
from hybridnet.pinn.derivatives import AutogradDerivatives
from hybridnet.pinn.geometry import (
    CSGDifference,
    CSGIntersection,
    CSGUnion,
    Disk,
    Geometry,
    Interval,
    Polygon,
    Rectangle,
    SpaceTime,
)

N = 20_000
L_SHAPE = [[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]]     # counter-clockwise, area 3


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def assert_share(mask, expected):
    """The fraction of True in ``mask`` is ``expected`` within 4 binomial standard errors."""
    n = len(mask)
    share = float(mask.double().mean())
    sigma = math.sqrt(expected * (1 - expected) / n)
    assert abs(share - expected) <= 4 * sigma, (share, expected, sigma)


def plate(radius=0.25):
    """The unit square with a hole of ``radius`` at its centre."""
    return Rectangle([0, 0], [1, 1]) - Disk([0.5, 0.5], radius)


def lens_area(radius, distance):
    return 2 * radius**2 * math.acos(distance / (2 * radius)) \
        - distance / 2 * math.sqrt(4 * radius**2 - distance**2)


# --------------------------------------------------------------------------- uniform areas
def test_interior_of_a_square_with_a_hole_is_uniform_and_avoids_the_hole():
    radius = 0.25
    x = plate(radius).sample_interior(N, generator(), torch.float64)
    area = 1 - math.pi * radius**2
    assert_share((x[:, 0] < 0.25) & (x[:, 1] < 0.25), 0.0625 / area)
    # A strip that cuts through the hole: [0, 1] x [0.4, 0.6] minus the hole's part of it.
    h = 0.1
    in_hole = 2 * (h * math.sqrt(radius**2 - h**2) + radius**2 * math.asin(h / radius))
    assert_share((x[:, 1] > 0.4) & (x[:, 1] < 0.6), (0.2 - in_hole) / area)
    assert ((x >= 0) & (x <= 1)).all()
    assert ((x - 0.5).norm(dim=1) >= radius * (1 - 1e-9)).all()


def test_interior_of_a_union_of_overlapping_disks_is_uniform():
    x = (Disk([0, 0], 1) | Disk([1, 0], 1)).sample_interior(N, generator(), torch.float64)
    in_first, in_second = x.norm(dim=1) <= 1, (x - torch.tensor([1.0, 0.0])).norm(dim=1) <= 1
    assert (in_first | in_second).all()
    lens = lens_area(1, 1)
    union = 2 * math.pi - lens
    assert_share(in_first & in_second, lens / union)
    assert_share(x[:, 0] > 1, math.pi / 2 / union)      # the second disk's right half


def test_interior_of_an_intersection_is_uniform():
    half = Disk([0, 0], 1) & Rectangle([0, -1], [1, 1])
    x = half.sample_interior(N, generator(), torch.float64)
    assert (x[:, 0] >= 0).all() and (x.norm(dim=1) <= 1).all()
    segment = math.pi / 3 - math.sqrt(3) / 4              # the unit disk beyond x = 1/2
    assert_share(x[:, 0] > 0.5, segment / (math.pi / 2))


@pytest.mark.parametrize("order", [1, -1], ids=["counter-clockwise", "clockwise"])
def test_interior_of_an_l_shaped_polygon_is_uniform(order):
    x = Polygon(L_SHAPE[::order]).sample_interior(N, generator(), torch.float64)
    assert not ((x[:, 0] > 1) & (x[:, 1] > 1)).any()      # the missing square
    assert ((x >= 0) & (x <= 2)).all()
    assert_share((x[:, 0] < 1) & (x[:, 1] < 1), 1 / 3)
    assert_share((x[:, 0] > 1) & (x[:, 1] < 1), 1 / 3)


def test_interior_of_a_disk_is_uniform_in_area():
    x = Disk([1, -2], 2).sample_interior(N, generator(), torch.float64)
    radius = (x - torch.tensor([1.0, -2.0])).norm(dim=1)
    assert (radius <= 2).all()
    assert_share(radius < 1, 0.25)                          # area share, not radius share
    assert_share(x[:, 0] > 1, 0.5)


# ------------------------------------------------------------------- uniform boundary length
def test_boundary_of_a_square_with_a_hole_is_uniform_in_length():
    radius = 0.25
    x = plate(radius).sample_boundary(N, generator(), torch.float64)
    on_hole = ((x - 0.5).norm(dim=1) - radius).abs() < 1e-9
    total = 4 + 2 * math.pi * radius
    assert_share(on_hole, 2 * math.pi * radius / total)
    assert_share(x[:, 0] == 0, 1 / total)
    # On the hole, uniform in angle: a quarter of the hole's points in each quadrant.
    hole = x[on_hole]
    assert_share((hole[:, 0] > 0.5) & (hole[:, 1] > 0.5), 0.25)


def test_boundary_of_a_union_of_disks_keeps_the_outer_arcs():
    x = (Disk([0, 0], 1) | Disk([1, 0], 1)).sample_boundary(N, generator(), torch.float64)
    first, second = x.norm(dim=1), (x - torch.tensor([1.0, 0.0])).norm(dim=1)
    # Each point is on one circle and outside the other disk.
    assert ((((first - 1).abs() < 1e-9) & (second >= 1 - 1e-9))
            | (((second - 1).abs() < 1e-9) & (first >= 1 - 1e-9))).all()
    # Each circle keeps the arc of 4 pi / 3 outside the other; x > 1 is an arc of length pi.
    assert_share(x[:, 0] > 1, math.pi / (8 * math.pi / 3))


def test_a_stretch_shared_by_two_primitives_counts_once():
    # An L from two overlapping rectangles: x = 0, y in [0, 1] (and y = 0, x in [0, 1]) is on
    # both rectangles' boundaries. Perimeter 8, the left side (length 2) a quarter of it;
    # counted twice it would be 3 / 10.
    ell = Rectangle([0, 0], [2, 1]) | Rectangle([0, 0], [1, 2])
    x = ell.sample_boundary(N, generator(), torch.float64)
    assert_share(x[:, 0] == 0, 2 / 8)
    assert_share(x[:, 1] == 0, 2 / 8)
    assert not ((x[:, 0] > 1) & (x[:, 1] > 1)).any()


def test_rectangles_glued_side_by_side_have_no_seam():
    bar = Rectangle([0, 0], [1, 1]) | Rectangle([1, 0], [2, 1])
    x = bar.sample_boundary(N, generator(), torch.float64)
    seam = (x[:, 0] == 1) & (x[:, 1] > 0) & (x[:, 1] < 1)
    assert not seam.any()
    assert_share(x[:, 1] == 0, 2 / 6)
    assert not bar.on_boundary(torch.tensor([[1.0, 0.5]])).item()
    assert bar.inside(torch.tensor([[1.0, 0.5]])).item()
    # A face cut away with the same normal is gone from a difference.
    square = Rectangle([0, 0], [2, 1]) - Rectangle([1, 0], [2, 1])
    y = square.sample_boundary(N, generator(), torch.float64)
    assert (y[:, 0] <= 1).all()
    assert_share(y[:, 0] == 1, 1 / 4)
    assert not square.inside(torch.tensor([[2.0, 0.5], [1.5, 0.0]])).any()


@pytest.mark.parametrize("order", [1, -1], ids=["counter-clockwise", "clockwise"])
def test_boundary_of_an_l_shaped_polygon_is_uniform(order):
    x = Polygon(L_SHAPE[::order]).sample_boundary(N, generator(), torch.float64)
    assert_share(x[:, 1] == 0, 2 / 8)
    assert_share((x[:, 0] == 1) & (x[:, 1] > 1), 1 / 8)


def test_boundary_of_an_intersection_and_of_a_3d_difference():
    half = Disk([0, 0], 1) & Rectangle([0, -1], [1, 1])
    x = half.sample_boundary(N, generator(), torch.float64)
    assert_share(x[:, 0] == 0, 2 / (2 + math.pi))
    cube = Box([0, 0, 0], [1, 1, 1]) - Box([0.25] * 3, [0.75] * 3)
    y = cube.sample_boundary(N, generator(), torch.float64)
    inner = ((y > 0.2) & (y < 0.8)).all(dim=1)
    assert_share(inner, 6 * 0.25 / (6 + 6 * 0.25))


def test_interval_boundaries_are_the_end_points():
    x = Interval(-1, 3).sample_boundary(N, generator(), torch.float64)[:, 0]
    assert set(x.tolist()) == {-1.0, 3.0}
    assert_share(x == -1, 0.5)
    holed = Interval(0, 2) - Interval(0.5, 1)
    y = holed.sample_boundary(N, generator(), torch.float64)[:, 0]
    assert set(y.tolist()) == {0.0, 0.5, 1.0, 2.0}
    for end in (0.0, 0.5, 1.0, 2.0):
        assert_share(y == end, 0.25)
    assert holed.boundary_normal(torch.tensor([[0.0], [0.5], [1.0], [2.0], [0.2]]))[:, 0] \
        .tolist() == [-1.0, 1.0, -1.0, 1.0, 0.0]


# ------------------------------------------------------------------ membership invariants
SHAPES = {
    "plate": plate(),
    "disks": Disk([0, 0], 1) | Disk([1, 0], 1),
    "half disk": Disk([0, 0], 1) & Rectangle([0, -1], [1, 1]),
    "L": Polygon(L_SHAPE),
    "L clockwise": Polygon(L_SHAPE[::-1]),
    "nested": (Rectangle([0, 0], [3, 2]) | Disk([3, 1], 1)) - (Disk([1, 1], 0.5)
                                                                | Polygon([[2, 0.5], [2.5, 1.5],
                                                                           [3, 0.5]])),
    "box": Box([0, 0, 0], [1, 2, 3]),
    "interval": Interval(-1, 1),
    "offset disk": Disk([10, -3], 2.5),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samples_are_inside_and_on_the_boundary(name, dtype):
    shape = SHAPES[name]
    interior = shape.sample_interior(2000, generator(), dtype)
    boundary = shape.sample_boundary(2000, generator(1), dtype)
    for x in (interior, boundary):
        assert x.shape == (2000, shape.dim) and x.dtype == dtype
    assert shape.inside(interior).all()
    assert shape.inside(boundary).all() and shape.on_boundary(boundary).all()
    normals = shape.boundary_normal(boundary)
    assert normals.dtype == dtype
    torch.testing.assert_close(normals.double().norm(dim=1), torch.ones(2000, dtype=torch.float64))
    # Interior points are almost never on the boundary (a tolerance band of zero area).
    assert shape.on_boundary(interior).double().mean() < 0.01


def test_nested_shape_avoids_both_holes():
    x = SHAPES["nested"].sample_interior(N, generator(), torch.float64)
    assert ((x - torch.tensor([1.0, 1.0])).norm(dim=1) >= 0.5 * (1 - 1e-9)).all()
    u, v = x[:, 0], x[:, 1]
    in_triangle = (v >= 0.5) & (v <= 1.5 - 2 * (u - 2.5).abs())
    assert not in_triangle.any()
    in_rectangle = (u >= 0) & (u <= 3) & (v >= 0) & (v <= 2)
    assert (in_rectangle | ((x - torch.tensor([3.0, 1.0])).norm(dim=1) <= 1 + 1e-9)).all()


def test_inside_and_on_boundary_of_given_points():
    shape = plate()
    x = torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.5, 0.75], [0.5, 0.76], [1.0, 0.3],
                      [1.1, 0.3], [float("nan"), 0.3], [0.5, 0.75 + 1e-3]])
    assert shape.inside(x).tolist() == [True, False, True, True, True, False, False, True]
    assert shape.on_boundary(x).tolist() == [False, False, True, False, True, False, False,
                                              False]
    assert shape.contains(x).tolist() == shape.inside(x).tolist()
    # The tolerance argument widens the band.
    assert shape.on_boundary(x[-1:], tolerance=2e-3).item()


# ----------------------------------------------------------------------------- normals
def test_disk_normals_are_the_radial_direction():
    center, radius = torch.tensor([1.0, -2.0]), 1.5
    disk = Disk(center.tolist(), radius)
    x = disk.sample_boundary(1000, generator(), torch.float64)
    torch.testing.assert_close(disk.boundary_normal(x), (x - center) / radius)
    assert (disk.boundary_normal(torch.tensor([[1.0, -2.0], [1.5, -2.0]])) == 0).all()


def ccw_normals(vertices):
    """Outward normals of a counter-clockwise polygon's edges: the edge turned clockwise."""
    vertices = np.asarray(vertices, dtype=float)
    edges = np.roll(vertices, -1, axis=0) - vertices
    return np.stack([edges[:, 1], -edges[:, 0]], axis=1) / np.linalg.norm(edges, axis=1)[:, None]


@pytest.mark.parametrize("vertices", [L_SHAPE, [[0, 0], [3, -1], [4, 1.5], [2, 3], [-0.5, 1]]],
                         ids=["L", "pentagon"])
@pytest.mark.parametrize("order", [1, -1], ids=["counter-clockwise", "clockwise"])
def test_polygon_normals_are_the_outward_rotated_edges(vertices, order):
    vertices = np.asarray(vertices, dtype=float)
    polygon = Polygon(vertices[::order])
    expected = ccw_normals(vertices)
    starts, ends = vertices, np.roll(vertices, -1, axis=0)
    # Points along every edge (away from its ends) get that edge's normal.
    t = np.linspace(0.05, 0.95, 7)
    for start, end, normal in zip(starts, ends, expected, strict=True):
        x = torch.tensor(start + t[:, None] * (end - start))
        torch.testing.assert_close(polygon.boundary_normal(x), torch.tensor(normal).expand(7, 2))
    # At a vertex the two edges' normals are summed and normalised.
    corner = expected + np.roll(expected, 1, axis=0)
    corner /= np.linalg.norm(corner, axis=1)[:, None]
    torch.testing.assert_close(polygon.boundary_normal(torch.tensor(vertices)),
                               torch.tensor(corner))
    assert (polygon.boundary_normal(torch.tensor(vertices.mean(axis=0)[None] + 0.01)) == 0).all()


def test_the_l_shapes_normals_by_hand():
    ell = Polygon(L_SHAPE[::-1])
    x = torch.tensor([[1.0, 0.0], [2.0, 0.5], [1.5, 1.0], [1.0, 1.5], [0.5, 2.0], [0.0, 1.0],
                      [1.0, 1.0], [0.0, 0.0]])
    s = math.sqrt(0.5)
    expected = torch.tensor([[0, -1], [1, 0], [0, 1], [1, 0], [0, 1], [-1, 0], [s, s],
                             [-s, -s]])
    torch.testing.assert_close(ell.boundary_normal(x), expected)


def test_rectangle_and_interval_normals():
    rectangle = Rectangle([-1, 0], [1, 2])
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.3, 2.0], [-1.0, 0.5], [-1.0, 2.0], [0.0, 1.0]])
    s = math.sqrt(0.5)
    expected = torch.tensor([[0, -1], [1, 0], [0, 1], [-1, 0], [-s, s], [0, 0]])
    torch.testing.assert_close(rectangle.boundary_normal(x), expected)
    assert Interval(2, 5).boundary_normal(torch.tensor([[2.0], [5.0]]))[:, 0].tolist() \
        == [-1.0, 1.0]


def test_a_holes_normals_point_to_its_centre():
    radius = 0.25
    shape = plate(radius)
    x = shape.sample_boundary(4000, generator(), torch.float64)
    normals = shape.boundary_normal(x)
    on_hole = ((x - 0.5).norm(dim=1) - radius).abs() < 1e-9
    torch.testing.assert_close(normals[on_hole], (0.5 - x[on_hole]) / radius)
    outer = x[~on_hole]
    expected = torch.zeros_like(outer)
    expected[outer[:, 0] == 0, 0], expected[outer[:, 0] == 1, 0] = -1.0, 1.0
    expected[outer[:, 1] == 0, 1], expected[outer[:, 1] == 1, 1] = -1.0, 1.0
    torch.testing.assert_close(normals[~on_hole], expected)


def test_a_unions_normals_point_away_from_it():
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    union = Disk([0, 0], 1) | Disk([1, 0], 1)
    x = union.sample_boundary(4000, generator(), torch.float64)
    normals = union.boundary_normal(x)
    nearest = ((x[:, None, :] - centers).norm(dim=2) - 1).abs().argmin(dim=1)
    torch.testing.assert_close(normals, x - centers[nearest])
    assert ((normals * (x - torch.tensor([0.5, 0.0]))).sum(dim=1) > 0).all()
    # Where the circles cross, the normal is the normalised sum of the two radial directions.
    crossing = torch.tensor([[0.5, math.sqrt(3) / 2]], dtype=torch.float64)
    torch.testing.assert_close(union.boundary_normal(crossing),
                               torch.tensor([[0.0, 1.0]], dtype=torch.float64))


def test_corners_of_glued_rectangles_get_the_straight_normal():
    bar = Rectangle([0, 0], [1, 1]) | Rectangle([1, 0], [2, 1])
    torch.testing.assert_close(bar.boundary_normal(torch.tensor([[1.0, 1.0], [1.0, 0.0]])),
                               torch.tensor([[0.0, 1.0], [0.0, -1.0]]))


def test_neumann_condition_uses_the_geometrys_normals():
    # u = |x - c|^2 has du/dn = 2 r on the circle of radius r around c.
    disk = Disk([0.5, -0.5], 0.75)
    flux = NeumannBC(1.5)
    x = flux.sample(disk, 64, generator(), torch.float64)
    d = AutogradDerivatives().evaluate(
        lambda p: ((p - torch.tensor([0.5, -0.5], dtype=p.dtype)) ** 2).sum(dim=1), x,
        space_axes=disk.space_axes)
    torch.testing.assert_close(flux.residual(x, d.u, d, disk),
                               torch.zeros(64, dtype=torch.float64))


# ----------------------------------------------------------------------------- space-time
def test_space_time_sampling_slices_and_normals():
    center, radius = torch.tensor([0.0, 1.0]), 0.5
    domain = SpaceTime(Disk(center.tolist(), radius), (1.0, 3.0))
    assert (domain.dim, domain.time_axis, domain.space_axes) == (3, 2, [0, 1])
    lower, upper = domain.bounding_box
    np.testing.assert_array_equal(lower, [-0.5, 0.5, 1.0])
    np.testing.assert_array_equal(upper, [0.5, 1.5, 3.0])
    interior = domain.sample_interior(N, generator(), torch.float64)
    assert ((interior[:, :2] - center).norm(dim=1) <= radius).all()
    assert ((interior[:, 2] >= 1) & (interior[:, 2] <= 3)).all()
    assert_share(interior[:, 2] < 1.5, 0.25)
    assert_share((interior[:, :2] - center).norm(dim=1) < radius / 2, 0.25)
    boundary = domain.sample_boundary(N, generator(1), torch.float64)
    assert (((boundary[:, :2] - center).norm(dim=1) - radius).abs() < 1e-9).all()
    assert_share(boundary[:, 2] > 2.5, 0.25)               # boundary points at all times
    normals = domain.boundary_normal(boundary)
    assert (normals[:, 2] == 0).all()
    torch.testing.assert_close(normals[:, :2], (boundary[:, :2] - center) / radius)
    assert domain.on_boundary(boundary).all() and domain.inside(boundary).all()
    for at, time in (("initial", 1.0), ("terminal", 3.0)):
        x = domain.sample_time_slice(1000, generator(), at, torch.float64)
        assert (x[:, 2] == time).all()
        assert ((x[:, :2] - center).norm(dim=1) <= radius).all()
    outside_time = torch.tensor([[0.5, 1.0, 0.5], [0.5, 1.0, 3.5], [0.5, 1.0, 2.0],
                                 [0.0, 1.0, 2.0]])
    assert domain.on_boundary(outside_time).tolist() == [False, False, True, False]
    assert domain.inside(outside_time).tolist() == [False, False, True, True]
    assert (domain.boundary_normal(outside_time[:2]) == 0).all()


def test_space_time_works_with_the_conditions():
    domain = SpaceTime(plate(), (0, 1))
    g = generator()
    start = InitialCondition(0.0)
    start.check_domain(domain)
    assert (start.sample(domain, 100, g)[:, 2] == 0).all()
    assert (TerminalCondition(0.0).sample(domain, 100, g)[:, 2] == 1).all()
    x = DirichletBC(0.0, where=lambda x: x[:, 0] == 0).sample(domain, 100, g)
    assert (x[:, 0] == 0).all() and domain.on_boundary(x).all()
    with pytest.raises(ValueError, match="time_axis"):
        InitialCondition(0.0).check_domain(plate())


# ------------------------------------------------------------------ shapes, dtypes, seeds
ALL = dict(SHAPES, spacetime=SpaceTime(plate(), (0, 1)))


@pytest.mark.parametrize("name", sorted(ALL))
def test_sampling_is_reproducible_and_exactly_n(name):
    shape = ALL[name]
    for method in (shape.sample_interior, shape.sample_boundary):
        first, again = method(257, generator(3)), method(257, generator(3))
        assert torch.equal(first, again)
        assert not torch.equal(first, method(257, generator(4)))
        assert first.shape == (257, shape.dim) and first.dtype == torch.float32
        for n in (0, 1):
            assert method(n, generator(), torch.float64).shape == (n, shape.dim)


def test_bounding_box_scale_and_space_axes():
    union = Disk([0, 0], 1) | Rectangle([0, 0], [3, 2])
    lower, upper = union.bounding_box
    assert lower.dtype == np.float64
    np.testing.assert_array_equal(lower, [-1, -1])
    np.testing.assert_array_equal(upper, [3, 2])
    assert union.scale == 3.5 and union.space_axes == [0, 1] and union.time_axis is None
    np.testing.assert_array_equal(Polygon(L_SHAPE).bounding_box[1], [2, 2])
    assert Box([0, 0], [1, 1], time_axis=1).bounding_box[1].tolist() == [1, 1]
    assert isinstance(Box([0], [1]), Geometry) and isinstance(Rectangle([0, 0], [1, 1]), Box)
    assert isinstance(Interval(0, 1), Box)
    assert isinstance(union, CSGUnion) and isinstance(union & union, CSGIntersection)
    assert isinstance(union - union, CSGDifference)


def test_box_keeps_its_time_faces_out_of_the_boundary():
    box = Box([0, 0], [1, 1], time_axis=1)
    x = torch.tensor([[0.5, 0.0], [0.0, 0.5], [0.5, 0.5]])
    assert box.on_boundary(x).tolist() == [False, True, False]
    assert box.inside(x).all()
    torch.testing.assert_close(box.boundary_normal(x),
                               torch.tensor([[0.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]))


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("make, error, match", [
    (lambda: Disk([0, 0], 0), ValueError, "radius"),
    (lambda: Disk([0, 0], -1), ValueError, "radius"),
    (lambda: Disk([0, 0], float("nan")), ValueError, "radius"),
    (lambda: Disk([0, 0], True), ValueError, "radius"),
    (lambda: Disk([0, 0, 0], 1), ValueError, "center"),
    (lambda: Disk([0, float("nan")], 1), ValueError, "center"),
    (lambda: Polygon([[0, 0], [1, 0]]), ValueError, "at least 3 vertices"),
    (lambda: Polygon([[0, 0], [1, 1], [1, 0], [0, 1]]), ValueError, "simple polygon"),
    (lambda: Polygon([[0, 0], [2, 0], [1, 1], [1, -1]]), ValueError, "simple polygon"),
    (lambda: Polygon([[0, 0], [2, 0], [1, 0], [1, 1]]), ValueError, "fold back"),
    (lambda: Polygon([[0, 0], [1, 0], [2, 0]]), ValueError, "zero area"),
    (lambda: Polygon([[0, 0], [1, 0], [0, 1], [0, 0]]), ValueError, "coincide"),
    (lambda: Polygon([[0, 0], [1, float("nan")], [0, 1]]), ValueError, "finite"),
    (lambda: Polygon([0, 1, 2]), ValueError, "vertices"),
    (lambda: Interval(1, 1), ValueError, "a < b"),
    (lambda: Interval(0, float("inf")), ValueError, "b must be a finite"),
    (lambda: Rectangle([0, 0, 0], [1, 1, 1]), ValueError, "lower"),
    (lambda: Rectangle([0, 0], [1, 0]), ValueError, "lower < upper"),
    (lambda: Disk([0, 0], 1) | Interval(0, 1), ValueError, "same dimension"),
    (lambda: Box([0, 0, 0], [1, 1, 1]) - Disk([0, 0], 1), ValueError, "same dimension"),
    (lambda: Box([0, 0], [1, 1], time_axis=1) | Disk([0, 0], 1), ValueError, "time axis"),
    (lambda: SpaceTime(Disk([0, 0], 1), (0, 1)) & SpaceTime(Disk([0, 0], 1), (0, 1)),
     ValueError, "time axis"),
    (lambda: CSGUnion(Disk([0, 0], 1), "disk"), TypeError, "operand b"),
    (lambda: Disk([0, 0], 1) | 3, TypeError, "unsupported operand"),
    (lambda: Disk([0, 0], 1) & Disk([5, 5], 1), ValueError, "do not overlap"),
    (lambda: SpaceTime(Disk([0, 0], 1), (1, 0)), ValueError, "time_range"),
    (lambda: SpaceTime(Disk([0, 0], 1), 1.0), ValueError, "time_range"),
    (lambda: SpaceTime("disk", (0, 1)), TypeError, "space"),
    (lambda: SpaceTime(Box([0, 0], [1, 1], time_axis=1), (0, 1)), ValueError, "space"),
])
def test_invalid_geometries_are_refused_by_name(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_invalid_calls_are_refused_by_name(monkeypatch):
    disk = Disk([0, 0], 1)
    with pytest.raises(ValueError, match="n must be"):
        disk.sample_interior(-1, generator())
    with pytest.raises(TypeError, match="generator"):
        plate().sample_boundary(10, 0)
    with pytest.raises(TypeError, match="dtype"):
        Polygon(L_SHAPE).sample_interior(10, generator(), torch.int64)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        plate().inside(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at must be"):
        SpaceTime(disk, (0, 1)).sample_time_slice(4, generator(), at="final")
    with pytest.raises(ValueError, match="SpaceTime"):
        disk.sample_time_slice(4, generator())
    # A shape with no area is reported, not looped on forever (after 10**6 candidates; fewer
    # here, to keep the test fast).
    monkeypatch.setattr("hybridnet.pinn.geometry._MAX_FRUITLESS", 10**4)
    sliver = Rectangle([0, 0], [1, 1]) - Rectangle([0, 0], [1, 1])
    with pytest.raises(ValueError, match="none of"):
        sliver.sample_interior(10, generator())
