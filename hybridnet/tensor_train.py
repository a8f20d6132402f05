"""The tensor-train (TT) matrix format: pure functions on tensors.

A matrix ``W`` of shape ``(M, N)`` with ``M = m_1 ... m_d`` and ``N = n_1 ... n_d`` is stored as
``d`` cores, core ``k`` a tensor of shape ``(r_{k-1}, m_k, n_k, r_k)`` with ``r_0 = r_d = 1``::

    W[(i_1..i_d), (j_1..j_d)] = G_1[:, i_1, j_1, :] @ ... @ G_d[:, i_d, j_d, :]

Row and column multi-indices are row-major (``i_1`` and ``j_1`` vary slowest), the same order
``torch.reshape`` uses, so ``W.reshape(m_1, .., m_d, n_1, .., n_d)`` exposes the modes. The
format costs ``sum_k r_{k-1} m_k n_k r_k`` numbers instead of ``M N``.

This module holds the format only (shapes, ranks, dense conversion, products, TT-SVD); the
trainable layer built on it is :class:`hybridnet.tt_linear.TTLinear`.
"""

import math
import numbers

import torch

__all__ = [
    "balanced_factorization",
    "default_n_cores",
    "tt_matrix_shapes",
    "tt_ranks",
    "tt_to_dense",
    "tt_matmul",
    "tt_matmul_costs",
    "tt_svd",
]


def _check_positive_int(name, value):
    """Return ``value`` as an ``int``, or raise if it is not a positive integer (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_shape(name, shape, expected_product=None):
    """Return ``shape`` as a list of positive ints; check its product when one is expected."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{name} must be a sequence of positive integers, got {shape!r}")
    shape = [_check_positive_int(f"{name}[{k}]", s) for k, s in enumerate(shape)]
    if not shape:
        raise ValueError(f"{name} must not be empty")
    if expected_product is not None and math.prod(shape) != expected_product:
        raise ValueError(
            f"{name}={shape} has product {math.prod(shape)}, expected {expected_product}"
        )
    return shape


def _prime_factors(n):
    """Prime factors of ``n`` in increasing order, with multiplicity (trial division)."""
    factors = []
    p = 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    if n > 1:
        factors.append(n)
    return factors


def balanced_factorization(n, n_factors):
    """Split a positive integer into ``n_factors`` integer factors as equal as possible.

    Greedy: the prime factors of ``n``, largest first, are each multiplied into the currently
    smallest factor. Factors of 1 are allowed (a prime ``n`` gives ``[.., 1, n, 1, ..]``).

    Order of the result: the factors other than 1 are laid out with the largest ones at the
    ends (largest first, then the next largest last, and so on inwards), and the 1s pad both
    ends of that block (an extra 1 goes on the right). Large modes at the ends suit the TT
    format because the boundary ranks are 1, so big modes cost least there; padding with 1s
    at the ends puts the non-trivial modes of a small dimension (a 10-class output) against
    the small middle modes of the other dimension, which keeps the products ``m_k n_k`` even.

    Parameters
    ----------
    n : int
        Positive integer to split.
    n_factors : int
        Number of factors, at least 1.

    Returns
    -------
    list of int
        ``n_factors`` positive integers whose product is ``n``.

    Examples
    --------
    >>> balanced_factorization(784, 4)
    [7, 4, 4, 7]
    >>> balanced_factorization(1024, 4)
    [8, 4, 4, 8]
    >>> balanced_factorization(10, 4)
    [1, 5, 2, 1]
    """
    n = _check_positive_int("n", n)
    n_factors = _check_positive_int("n_factors", n_factors)
    factors = [1] * n_factors
    for p in reversed(_prime_factors(n)):
        smallest = min(range(n_factors), key=factors.__getitem__)
        factors[smallest] *= p

    big = sorted((f for f in factors if f > 1), reverse=True)
    left, right = big[0::2], big[1::2]
    block = left + right[::-1]
    n_ones = n_factors - len(block)
    return [1] * (n_ones // 2) + block + [1] * (n_ones - n_ones // 2)


def default_n_cores(in_features, out_features):
    """Default number of TT cores for an ``out_features x in_features`` matrix.

    The smallest ``d >= 2`` with ``8**d >= max(in_features, out_features)``, i.e.
    ``max(2, ceil(log_8(max(in_features, out_features))))``, so modes come out around 8 or
    below. Computed in integers, so exact powers of 8 are not rounded up by float error.

    Parameters
    ----------
    in_features, out_features : int
        Matrix dimensions.

    Returns
    -------
    int
        Number of cores.

    Examples
    --------
    >>> default_n_cores(784, 1024)
    4
    >>> default_n_cores(64, 10)
    2
    """
    in_features = _check_positive_int("in_features", in_features)
    out_features = _check_positive_int("out_features", out_features)
    largest = max(in_features, out_features)
    d = 2
    while 8**d < largest:
        d += 1
    return d


def tt_matrix_shapes(in_features, out_features, n_cores=None, *, in_shape=None, out_shape=None):
    """Mode sizes ``(out_shape, in_shape)`` of a TT matrix with ``out_features x in_features``.

    Shapes not given are made by :func:`balanced_factorization`; their length is ``n_cores``,
    else that of a given shape, else :func:`default_n_cores`.

    Parameters
    ----------
    in_features, out_features : int
        Matrix dimensions ``N`` (columns) and ``M`` (rows).
    n_cores : int, optional
        Number of cores ``d``.
    in_shape, out_shape : sequence of int, optional
        Mode sizes to use as given; their products must equal the features.

    Returns
    -------
    out_shape, in_shape : list of int
        Equal-length lists with ``prod(out_shape) == out_features`` and
        ``prod(in_shape) == in_features``.

    Examples
    --------
    >>> tt_matrix_shapes(784, 1024)
    ([8, 4, 4, 8], [7, 4, 4, 7])
    >>> tt_matrix_shapes(1024, 10)
    ([1, 5, 2, 1], [8, 4, 4, 8])
    """
    in_features = _check_positive_int("in_features", in_features)
    out_features = _check_positive_int("out_features", out_features)
    if n_cores is not None:
        n_cores = _check_positive_int("n_cores", n_cores)
    if in_shape is not None:
        in_shape = _check_shape("in_shape", in_shape, in_features)
    if out_shape is not None:
        out_shape = _check_shape("out_shape", out_shape, out_features)

    given = {k: len(s) for k, s in (("in_shape", in_shape), ("out_shape", out_shape)) if s}
    if n_cores is not None:
        given = {"n_cores": n_cores, **given}
    if len(set(given.values())) > 1:
        detail = ", ".join(f"{k} -> {v}" for k, v in given.items())
        raise ValueError(f"in_shape, out_shape and n_cores disagree on the core count: {detail}")
    d = next(iter(given.values())) if given else default_n_cores(in_features, out_features)

    if in_shape is None:
        in_shape = balanced_factorization(in_features, d)
    if out_shape is None:
        out_shape = balanced_factorization(out_features, d)
    return out_shape, in_shape


def tt_ranks(tt_rank, out_shape, in_shape):
    """TT ranks ``[r_0, .., r_d]`` for a maximal rank ``tt_rank``.

    ``r_0 = r_d = 1``; the rank at cut ``c`` (between cores ``c`` and ``c + 1``) is
    ``min(tt_rank, prod_{k<=c} m_k n_k, prod_{k>c} m_k n_k)``, since the unfolding at that
    cut has no larger rank; higher ranks would only add redundant numbers.

    Parameters
    ----------
    tt_rank : int
        Maximal internal rank.
    out_shape, in_shape : sequence of int
        Mode sizes ``m_k`` and ``n_k``, of equal length.

    Returns
    -------
    list of int
        ``d + 1`` ranks.

    Examples
    --------
    >>> tt_ranks(6, [1, 5, 2, 1], [8, 4, 4, 8])
    [1, 6, 6, 6, 1]
    >>> tt_ranks(100, [2, 2], [3, 3])
    [1, 6, 1]
    """
    tt_rank = _check_positive_int("tt_rank", tt_rank)
    out_shape = _check_shape("out_shape", out_shape)
    in_shape = _check_shape("in_shape", in_shape)
    if len(out_shape) != len(in_shape):
        raise ValueError(
            f"out_shape and in_shape must have the same length, got {out_shape} and {in_shape}"
        )
    modes = [m * n for m, n in zip(out_shape, in_shape, strict=True)]
    ranks = [1]
    for c in range(1, len(modes)):
        ranks.append(min(tt_rank, math.prod(modes[:c]), math.prod(modes[c:])))
    ranks.append(1)
    return ranks


def _check_cores(cores):
    """Validate a core sequence; return ``(out_shape, in_shape, ranks)``."""
    if isinstance(cores, torch.Tensor) or not hasattr(cores, "__len__") or len(cores) == 0:
        raise TypeError(f"cores must be a non-empty sequence of 4-D tensors, got {type(cores)}")
    ranks = [1]
    for k, core in enumerate(cores):
        if not isinstance(core, torch.Tensor) or core.dim() != 4:
            shape = tuple(core.shape) if isinstance(core, torch.Tensor) else type(core)
            raise ValueError(f"cores[{k}] must be a 4-D tensor (r_prev, m, n, r), got {shape}")
        if core.shape[0] != ranks[-1]:
            raise ValueError(
                f"cores[{k}] has left rank {core.shape[0]}, expected {ranks[-1]} "
                f"(the right rank of the previous core, or 1 for the first core)"
            )
        ranks.append(core.shape[3])
    if ranks[-1] != 1:
        raise ValueError(f"the last core must have right rank 1, got {ranks[-1]}")
    out_shape = [core.shape[1] for core in cores]
    in_shape = [core.shape[2] for core in cores]
    return out_shape, in_shape, ranks


def tt_to_dense(cores):
    """Assemble the dense matrix of a TT matrix.

    Parameters
    ----------
    cores : sequence of torch.Tensor
        Core ``k`` of shape ``(r_{k-1}, m_k, n_k, r_k)``, ``r_0 = r_d = 1``.

    Returns
    -------
    torch.Tensor
        ``W`` of shape ``(prod m_k, prod n_k)``; differentiable in the cores.

    Examples
    --------
    >>> cores = [torch.ones(1, 2, 3, 1), torch.ones(1, 4, 5, 1)]
    >>> tt_to_dense(cores).shape
    torch.Size([8, 15])
    """
    _check_cores(cores)
    # Running product of shape (rows so far, columns so far, r): each core appends its row and
    # column mode as the faster-varying index, which is row-major order.
    result = cores[0].reshape(cores[0].shape[1], cores[0].shape[2], cores[0].shape[3])
    for core in cores[1:]:
        _, m, n, r = core.shape
        result = torch.einsum("ajr,rbks->abjks", result, core)
        result = result.reshape(result.shape[0] * m, result.shape[2] * n, r)
    return result.reshape(result.shape[0], result.shape[1])


def tt_matmul(cores, x):
    """Multiply a batch by the transpose of a TT matrix, ``x @ W.T``, without forming ``W``.

    The input is reshaped to ``(B, n_1, .., n_d)`` and contracted with one core at a time, from
    the last core to the first; each step trades an input mode ``n_k`` (and rank ``r_k``) for
    an output mode ``m_k`` (and rank ``r_{k-1}``). The cost is about
    ``B * sum_k r_{k-1} r_k m_k n_k * (prod_{l<k} n_l) * (prod_{l>k} m_l)``, far below
    ``B M N`` for small ranks.

    Parameters
    ----------
    cores : sequence of torch.Tensor
        Core ``k`` of shape ``(r_{k-1}, m_k, n_k, r_k)``, ``r_0 = r_d = 1``.
    x : torch.Tensor
        Batch of shape ``(B, N)`` with ``N = prod n_k``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, M)`` with ``M = prod m_k``; equals ``x @ tt_to_dense(cores).T``.

    Examples
    --------
    >>> cores = [torch.randn(1, 2, 3, 2), torch.randn(2, 4, 5, 1)]
    >>> x = torch.randn(7, 15)
    >>> torch.allclose(tt_matmul(cores, x), x @ tt_to_dense(cores).T, atol=1e-5)
    True
    """
    _, in_shape, _ = _check_cores(cores)
    n_in = math.prod(in_shape)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != n_in:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)
        raise ValueError(f"x must be a tensor of shape (batch, {n_in}), got {shape}")
    batch = x.shape[0]
    # Going right to left, the state holds (B n_1..n_{k-1}, n_k r_k, m_{k+1}..m_d). Each core is
    # one GEMM with the contracted pair (n_k r_k) last: (B n_1..n_{k-1} m_{k+1}..m_d, n_k r_k)
    # times core k read as (r_{k-1} m_k, n_k r_k) transposed. One large GEMM per core beats many
    # small batched products, above all under torch.vmap (zeroth-order training).
    state = x
    n_front, m_back = n_in, 1
    for core in reversed(cores):
        r_prev, m, n, r = core.shape
        n_front //= n
        rows = state.reshape(batch * n_front, n * r, m_back).transpose(1, 2).reshape(-1, n * r)
        product = rows @ core.reshape(r_prev * m, n * r).T
        state = product.reshape(batch * n_front, m_back, r_prev * m).transpose(1, 2)
        m_back *= m
    return state.reshape(batch, m_back)


def tt_matmul_costs(out_shape, in_shape, ranks):
    """Multiply-adds of the two ways to compute ``x @ W.T`` for a TT matrix.

    Parameters
    ----------
    out_shape, in_shape : sequence of int
        Mode sizes ``m_k`` and ``n_k``.
    ranks : sequence of int
        ``(r_0, .., r_d)``.

    Returns
    -------
    per_row : int
        Multiply-adds per input row of the core-by-core contraction (:func:`tt_matmul`).
    assembly : int
        Multiply-adds of assembling ``W`` once (:func:`tt_to_dense`); the dense product then
        costs ``prod m_k * prod n_k`` per row.

    Examples
    --------
    >>> tt_matmul_costs([2, 4], [3, 5], [1, 2, 1])
    (168, 240)
    """
    d = len(out_shape)
    per_row = sum(ranks[k] * ranks[k + 1] * out_shape[k] * in_shape[k]
                  * math.prod(in_shape[:k]) * math.prod(out_shape[k + 1:]) for k in range(d))
    assembly = sum(math.prod(out_shape[:k]) * math.prod(in_shape[:k]) * ranks[k]
                   * out_shape[k] * in_shape[k] * ranks[k + 1] for k in range(1, d))
    return per_row, assembly


def tt_svd(matrix, out_shape, in_shape, tt_rank):
    """Compress a matrix into TT cores by sequential truncated SVDs (TT-SVD).

    ``W`` is reshaped to ``(m_1, .., m_d, n_1, .., n_d)``, permuted to
    ``(m_1, n_1, .., m_d, n_d)``, and split one mode pair at a time: each step keeps the
    leading ``r_k`` left singular vectors as core ``k`` and carries ``S V^T`` to the next step.
    The ranks are those of :func:`tt_ranks`. The result is exact (up to round-off) when every
    TT rank of ``W`` is at most ``tt_rank``; otherwise each step is the best rank-``r_k``
    approximation of its unfolding, and the squared Frobenius error is at most the sum of the
    squared discarded singular values over the steps.

    Parameters
    ----------
    matrix : torch.Tensor
        Floating-point matrix of shape ``(prod(out_shape), prod(in_shape))``.
    out_shape, in_shape : sequence of int
        Mode sizes ``m_k`` and ``n_k``, of equal length.
    tt_rank : int
        Maximal internal rank.

    Returns
    -------
    list of torch.Tensor
        Cores of shape ``(r_{k-1}, m_k, n_k, r_k)``, same dtype and device as ``matrix``.

    Examples
    --------
    >>> w = torch.randn(6, 6, dtype=torch.float64)
    >>> cores = tt_svd(w, [2, 3], [3, 2], tt_rank=6)
    >>> torch.allclose(tt_to_dense(cores), w)
    True
    """
    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
        shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix)
        raise ValueError(f"matrix must be a 2-D tensor, got {shape}")
    if not (matrix.is_floating_point() or matrix.is_complex()):
        raise TypeError(f"matrix must have a floating-point dtype, got {matrix.dtype}")
    out_shape = _check_shape("out_shape", out_shape, matrix.shape[0])
    in_shape = _check_shape("in_shape", in_shape, matrix.shape[1])
    ranks = tt_ranks(tt_rank, out_shape, in_shape)
    d = len(out_shape)

    # Interleave row and column modes so that core k owns the pair (m_k, n_k).
    order = [axis for k in range(d) for axis in (k, d + k)]
    rest = matrix.reshape(*out_shape, *in_shape).permute(order)
    cores = []
    for k in range(d - 1):
        m, n = out_shape[k], in_shape[k]
        unfolding = rest.reshape(ranks[k] * m * n, -1)
        u, s, vh = torch.linalg.svd(unfolding, full_matrices=False)
        r = ranks[k + 1]
        cores.append(u[:, :r].reshape(ranks[k], m, n, r))
        rest = s[:r, None] * vh[:r]
    cores.append(rest.reshape(ranks[d - 1], out_shape[-1], in_shape[-1], 1))
    return cores
