"""Zeroth-order gradient estimates: gradients from function values alone.

One function, :func:`zo_gradient`, serves every user in the library: the device parameters of a
:class:`~hybridnet.BlackBoxLayer` (where the function is the upstream gradient's inner product
with the device output) and whole-network back-propagation-free training. The caller supplies a
*batched* function, ``fn(points) -> values`` with points (P x d) and values (P,), so all
perturbations of a step are evaluated in one request.

Estimators, with directions ``u_k`` and smoothing ``mu``:

- ``"rge"``: forward differences, ``g = (1/M) sum_k u_k (f(w + mu u_k) - f(w)) / mu``;
  M + 1 evaluations (M when ``f(w)`` is known).
- ``"central_rge"``: ``g = (1/M) sum_k u_k (f(w + mu u_k) - f(w - mu u_k)) / (2 mu)``;
  2M evaluations, bias O(mu^2) instead of O(mu).
- ``"sign_rge"``: the sign of the central estimate (signRGE), robust while estimates are noisy.
- ``"cge"``: coordinate-wise central differences,
  ``g_j = (f(w + mu e_j) - f(w - mu e_j)) / (2 mu)``; 2d evaluations, or fewer when
  coordinates are skipped at random (skipped ones get 0).

Directions: ``"gaussian"`` (``N(0, I)``), ``"sphere"`` (uniform on the sphere of radius
sqrt(d), which has the same second moment ``E[u u^T] = I``) or ``"rademacher"`` (+-1). All
three make the estimate an unbiased estimate of the gradient of the smoothed function, with no
dimension factor.
"""

from dataclasses import dataclass

import torch

from ._random import rand, randn

ESTIMATORS = ("rge", "central_rge", "sign_rge", "cge")
DISTRIBUTIONS = ("gaussian", "sphere", "rademacher")


@dataclass
class ZOEstimate:
    """A zeroth-order gradient estimate and what it cost.

    Attributes
    ----------
    gradient : torch.Tensor
        The estimate, same shape as the point it was taken at.
    n_evaluations : int
        Function evaluations spent (points evaluated).
    value : torch.Tensor
        The function's value at the point: exact for "rge" (evaluated there), the mean of the
        symmetric pairs for the others (exact up to O(smoothing^2), at no extra evaluation).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.zeroth_order import ZOEstimate, zo_gradient
    >>> slope = torch.tensor([1.0, -2.0], dtype=torch.float64)
    >>> estimate = zo_gradient(lambda points: points @ slope, torch.ones(2, dtype=torch.float64),
    ...                        n_samples=4, generator=torch.Generator().manual_seed(0))
    >>> isinstance(estimate, ZOEstimate), estimate.gradient.shape
    (True, torch.Size([2]))
    >>> estimate.n_evaluations  # "rge": 4 directions and the point itself
    5
    >>> round(float(estimate.value), 6)  # f(1, 1) = 1 - 2
    -1.0
    """

    gradient: torch.Tensor
    n_evaluations: int
    value: torch.Tensor


def sample_directions(n_samples, dim, distribution, generator, *, dtype, device):
    """Draw ``n_samples`` random directions in ``dim`` dimensions with ``E[u u^T] = I``.

    Parameters
    ----------
    n_samples, dim : int
        Number and length of the directions.
    distribution : {"gaussian", "sphere", "rademacher"}
        See the module docstring.
    generator : torch.Generator
        CPU generator that supplies the randomness.
    dtype, device
        Of the result.

    Returns
    -------
    torch.Tensor
        Shape (n_samples, dim).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.zeroth_order import sample_directions
    >>> generator = torch.Generator().manual_seed(0)
    >>> sphere = sample_directions(5, 4, "sphere", generator, dtype=torch.float64, device="cpu")
    >>> sphere.shape
    torch.Size([5, 4])
    >>> torch.allclose(sphere.norm(dim=1), torch.full((5,), 2.0, dtype=torch.float64))  # sqrt(4)
    True
    >>> signs = sample_directions(3, 4, "rademacher", generator, dtype=torch.float32, device="cpu")
    >>> sorted(signs.unique().tolist())
    [-1.0, 1.0]
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if distribution == "rademacher":
        bits = rand((n_samples, dim), generator, dtype=dtype, device=device) < 0.5
        return bits.to(dtype) * 2 - 1
    directions = randn((n_samples, dim), generator, dtype=dtype, device=device)
    if distribution == "sphere":
        directions = directions * (dim**0.5 / directions.norm(dim=1, keepdim=True))
    return directions


def n_evaluations(estimator, n_samples, dim, *, value_known=False, coordinate_skip=0.0):
    """Function evaluations one :func:`~hybridnet.zeroth_order.zo_gradient` call makes.

    On a device every evaluation is one query per input vector it is evaluated on, so this
    times the vectors per evaluation is the estimate's device queries.

    Parameters
    ----------
    estimator : {"rge", "central_rge", "sign_rge", "cge"}
        The estimator.
    n_samples : int
        Random directions M (ignored by "cge").
    dim : int
        Number of parameters d.
    value_known : bool, default=False
        "rge" only: ``f`` at the point is known (``value_at_point``), which saves one.
    coordinate_skip : float, default=0
        "cge" only: probability of skipping each coordinate; the count is then the expected one.

    Returns
    -------
    int
        M + 1 ("rge"; M with ``value_known``), 2M ("central_rge", "sign_rge") or
        ``2 d (1 - coordinate_skip)`` rounded ("cge").

    Examples
    --------
    The estimators on the 4,032 phases of a 64 x 64 MZI mesh:

    >>> from hybridnet.zeroth_order import n_evaluations
    >>> n_evaluations("rge", 10, 4032), n_evaluations("rge", 10, 4032, value_known=True)
    (11, 10)
    >>> n_evaluations("central_rge", 10, 4032), n_evaluations("cge", 10, 4032)
    (20, 8064)
    >>> n_evaluations("cge", 10, 4032, coordinate_skip=0.5)
    4032
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "cge":
        return round(2 * dim * (1 - coordinate_skip))
    if estimator == "rge":
        return n_samples if value_known else n_samples + 1
    return 2 * n_samples


def _evaluate(fn, points, chunk_size):
    if chunk_size is None or len(points) <= chunk_size:
        values = fn(points)
    else:
        values = torch.cat([fn(chunk) for chunk in torch.split(points, chunk_size)])
    if values.shape != (len(points),):
        raise ValueError(f"fn must return one value per point, shape ({len(points)},), "
                         f"got {tuple(values.shape)}")
    return values


def zo_gradient(fn, point, *, estimator="rge", n_samples=10, smoothing=1e-3,
                distribution="gaussian", generator=None, value_at_point=None,
                coordinate_skip=0.0, chunk_size=None):
    """Estimate the gradient of ``fn`` at ``point`` from function values.

    Parameters
    ----------
    fn : callable
        Batched function: points (P, d) -> values (P,). For "cge" it may also have an
        ``at_coordinates(coordinates, step) -> values`` attribute giving the values at
        ``point + step e_c`` for each coordinate c; it is then used instead of building the
        (P, d) points (see :mod:`hybridnet.perturbation`).
    point : torch.Tensor
        Where to estimate, shape (d,).
    estimator : {"rge", "central_rge", "sign_rge", "cge"}, default="rge"
        See the module docstring.
    n_samples : int, default=10
        Random directions M (ignored by "cge").
    smoothing : float, default=1e-3
        Step ``mu`` of the finite differences.
    distribution : {"gaussian", "sphere", "rademacher"}, default="gaussian"
        Law of the random directions.
    generator : torch.Generator, optional
        CPU generator for the directions and skipped coordinates.
    value_at_point : torch.Tensor, optional
        ``fn(point)`` when the caller already has it; saves one evaluation for "rge".
    coordinate_skip : float, default=0
        "cge" only: probability of skipping each coordinate (its estimate is then 0).
    chunk_size : int, optional
        Evaluate at most this many points per call of ``fn`` (bounds memory); None: all at once.

    Returns
    -------
    ZOEstimate
        The gradient estimate (shape (d,)) and the number of evaluations spent.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.zeroth_order import zo_gradient
    >>> quadratic = lambda points: (points ** 2).sum(dim=1)
    >>> estimate = zo_gradient(quadratic, torch.ones(3, dtype=torch.float64),
    ...                        estimator="cge", smoothing=1e-4)
    >>> torch.allclose(estimate.gradient, torch.full((3,), 2.0, dtype=torch.float64))
    True
    >>> estimate.n_evaluations
    6
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    dim = point.numel()
    options = dict(dtype=point.dtype, device=point.device)
    if estimator == "cge":
        keep = torch.ones(dim, dtype=torch.bool, device=point.device)
        if coordinate_skip:
            keep = rand((dim,), generator, **options) >= coordinate_skip
        coordinates = torch.nonzero(keep).flatten()
        at_coordinates = getattr(fn, "at_coordinates", None)
        if at_coordinates is not None:  # fn knows a faster way to shift one coordinate
            plus, minus = at_coordinates(coordinates, smoothing), \
                at_coordinates(coordinates, -smoothing)
            values = torch.cat([plus, minus])
        else:
            steps = torch.zeros(len(coordinates), dim, **options)
            steps[torch.arange(len(coordinates)), coordinates] = smoothing
            values = _evaluate(fn, torch.cat([point + steps, point - steps]), chunk_size)
            plus, minus = values.chunk(2)
        gradient = torch.zeros(dim, **options)
        gradient[coordinates] = (plus - minus) / (2 * smoothing)
        return ZOEstimate(gradient, 2 * len(coordinates), values.mean())

    directions = sample_directions(n_samples, dim, distribution, generator, **options)
    if estimator == "rge":
        points = point + smoothing * directions
        n_evaluations = n_samples
        if value_at_point is None:
            points = torch.cat([point.unsqueeze(0), points])
            n_evaluations += 1
        values = _evaluate(fn, points, chunk_size)
        if value_at_point is None:
            value_at_point, values = values[0], values[1:]
        differences = (values - value_at_point) / smoothing
        value = value_at_point
    else:
        values = _evaluate(fn, torch.cat([point + smoothing * directions,
                                          point - smoothing * directions]), chunk_size)
        plus, minus = values.chunk(2)
        differences = (plus - minus) / (2 * smoothing)
        n_evaluations = 2 * n_samples
        value = values.mean()
    gradient = differences @ directions / n_samples
    if estimator == "sign_rge":
        gradient = torch.sign(gradient)
    return ZOEstimate(gradient, n_evaluations, value)
