"""Low-rank surrogate of a linear black box, kept current by the projector-splitting integrator.

The surrogate ``A ~ U S V`` (U: m x r orthonormal columns, S: r x r, V: r x n orthonormal rows)
stands in for the device matrix in the backward pass: ``dL/dx = G U S V``. It only ever sees the
device through ``query(inputs) -> outputs`` at the device's current parameters.

Initialisation (``init``):

- ``"svd"``: query the identity (n queries), ``A = f(I)^T``, truncated SVD.
- ``"randomized"``: a range finder on ``r + oversampling`` inputs gives ``Q`` with
  ``range(Q) ~ range(A)``; the inputs are Gaussian except the first, the constant vector
  (all ones), because devices whose weights share a common offset (an MRR bank's weights are
  mostly positive) have their dominant row direction near it, of which a random subspace of K
  of n dimensions catches only about K/n; the row part ``Q^T A`` is fitted to the same queries plus
  ``n_probes`` more by least squares (``B z_k = Q^T A z_k``; with fewer queries than columns,
  the minimum-norm solution: A restricted to the span of the inputs), and its SVD completes
  the factors. It costs ``r + oversampling + n_probes`` queries instead of n, at the price of
  missing the part of the row space the inputs did not reach: worth it for wide layers only.

Update after each step in which the device parameters moved (the implicit projector-splitting
integrator, a K-S-L step applied to ``dA = A(w_new) - A(w_old)``):

1. K-step: ``P1 = dA V^T`` from the r rows of V; ``U S + P1 = U1 S_hat`` (QR).
2. S-step: ``S_tilde = S_hat - U1^T P1``.
3. L-step: ``P2 = Z^T [dZ U1] / M ~ dA^T U1`` from M Gaussian probes Z;
   ``V^T S_tilde^T + P2 = V1 R`` (QR), ``S1 = R^T``.

Both products need the device's answers to the same inputs before and after the step. Instead
of setting the device back to its old parameters, the surrogate queries its next probes (the
rows of the new V and fresh Z) right after each update and keeps the answers: every query is
then made at the device's current parameters, which is what a real device with slow phase
settling wants, for the same 2(r + M) queries per step.

A full re-query (n queries, exact truncated SVD) is the alternative update. It is cheaper than
the integrator whenever ``n <= 2 (r + M)`` (narrow layers, or a rank near n) and then also more
accurate, so ``update="auto"`` picks it there and the integrator for wide layers.
"""

import torch
from torch import nn

from ._random import randn

INITS = ("svd", "randomized")
UPDATES = ("auto", "psi", "requery")


def best_rank_factors(matrix, rank):
    """Factors ``U`` (m x r), ``S`` (r x r), ``V`` (r x n) of the best rank-r approximation.

    U has orthonormal columns and V orthonormal rows; S is triangular rather than diagonal. The
    dominant singular subspace comes from the eigenvectors of the smaller Gram matrix
    (``A^T A`` or ``A A^T``) and the rest from one QR, about twice as fast as a full SVD at
    the sizes of a device matrix. Squaring the matrix costs accuracy only in directions whose
    singular value is below about 1e-3 of the largest (float32), which add at most that much
    to the approximation.

    Parameters
    ----------
    matrix : torch.Tensor
        A (m x n).
    rank : int
        r <= min(m, n).

    Returns
    -------
    U, S, V : torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from hybridnet.surrogate import best_rank_factors
    >>> generator = torch.Generator().manual_seed(0)
    >>> matrix = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    >>> U, S, V = best_rank_factors(matrix, 2)
    >>> U.shape, S.shape, V.shape
    (torch.Size([6, 2]), torch.Size([2, 2]), torch.Size([2, 4]))
    >>> eye = torch.eye(2, dtype=torch.float64)
    >>> torch.allclose(U.T @ U, eye), torch.allclose(V @ V.T, eye)
    (True, True)
    >>> # Eckart-Young: the error is that of the dropped singular values
    >>> error = torch.linalg.norm(matrix - U @ S @ V)
    >>> bool(torch.isclose(error, torch.linalg.svdvals(matrix)[2:].norm()))
    True
    """
    tall = matrix.shape[0] >= matrix.shape[1]
    gram = matrix.T @ matrix if tall else matrix @ matrix.T
    dominant = torch.linalg.eigh(gram).eigenvectors[:, -rank:]  # eigenvalues ascend
    if tall:  # A_r = A V V^T = (A V) V^T, and A V = U S by QR
        u, s = torch.linalg.qr(matrix @ dominant)
        return u, s, dominant.T
    # A_r = U U^T A, and A^T U = V R by QR gives U^T A = R^T V^T
    v, r = torch.linalg.qr(matrix.T @ dominant)
    return dominant, r.T, v.T


class LowRankSurrogate(nn.Module):
    """Rank-r surrogate ``U S V`` of a device matrix (m x n), updated from queries only.

    Parameters
    ----------
    in_features : int
        n, the device's input length.
    out_features : int
        m, the device's output length.
    rank : int
        r; capped at min(m, n).
    n_probes : int, optional
        M, Gaussian probes per update (L-step). Default ``max(rank, 32)``, which calibration runs
        found keeps the error near the best rank-r error.
    init : {"svd", "randomized"}, default="svd"
        How :meth:`build` initialises the factors, see the module docstring.
    oversampling : int, default=10
        Extra range-finder inputs for ``init="randomized"``.
    rebuild_every : int, optional
        Rebuild from scratch every this many updates, which bounds drift; None never rebuilds.
    update : {"auto", "psi", "requery"}, default="auto"
        How :meth:`update` follows the device: "psi", the projector-splitting integrator
        (2 (r + M) queries); "requery", a full query and truncated SVD (n queries, exact);
        "auto", whichever needs fewer queries.
    generator : torch.Generator
        Source of the probes.

    Attributes
    ----------
    U, S, V : torch.Tensor
        The factors (buffers: they follow ``.to()``, ``state_dict`` and pickling).
    n_updates, n_rebuilds : int
        Integrator steps and full (re)builds so far.
    n_queries : int
        Device queries spent by the surrogate.
    requeries : bool
        Whether updates re-query the full matrix (resolved from ``update``).

    Examples
    --------
    >>> import torch
    >>> from hybridnet import LowRankSurrogate
    >>> generator = torch.Generator().manual_seed(0)
    >>> left = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    >>> right = torch.randn(3, 8, generator=generator, dtype=torch.float64)
    >>> device = {"A": left @ right}  # a rank-3 device matrix, 8 inputs -> 5 outputs
    >>> def query(inputs):  # the surrogate sees the device only through its answers
    ...     return inputs @ device["A"].T
    >>> surrogate = LowRankSurrogate(8, 5, rank=3, generator=generator).double()
    >>> surrogate.build(query)  # init="svd": one query per input (the identity)
    >>> surrogate.n_queries, torch.allclose(surrogate.matrix(), device["A"])
    (8, True)
    >>> device["A"] = 2 * device["A"]  # the device parameters moved
    >>> surrogate.update(query)
    >>> surrogate.requeries, surrogate.n_queries, torch.allclose(surrogate.matrix(), device["A"])
    (True, 16, True)
    >>> surrogate.input_gradient(torch.ones(4, 5, dtype=torch.float64)).shape
    torch.Size([4, 8])
    """

    def __init__(self, in_features, out_features, rank, *, n_probes=None, init="svd",
                 oversampling=10, rebuild_every=None, update="auto", generator=None):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"surrogate init must be one of {INITS}, got {init!r}")
        if update not in UPDATES:
            raise ValueError(f"surrogate update must be one of {UPDATES}, got {update!r}")
        self.in_features, self.out_features = in_features, out_features
        if rank > min(in_features, out_features):
            raise ValueError(f"surrogate_rank={rank} exceeds the device's min(in_features, "
                             f"out_features) = {min(in_features, out_features)} "
                             f"({in_features} -> {out_features}), the largest rank its matrix has")
        self.rank = rank
        self.n_probes = max(self.rank, 32) if n_probes is None else n_probes
        self.init = init
        self.oversampling = oversampling
        self.rebuild_every = rebuild_every
        self.requeries = update == "requery" or (
            update == "auto" and in_features <= 2 * (self.rank + self.n_probes))
        self.generator = generator
        self.n_updates = self.n_rebuilds = self.n_queries = 0
        self.register_buffer("U", torch.zeros(out_features, self.rank))
        self.register_buffer("S", torch.zeros(self.rank, self.rank))
        self.register_buffer("V", torch.zeros(self.rank, in_features))
        self.register_buffer("probes", torch.zeros(self.rank + self.n_probes, in_features))
        self.register_buffer("probe_outputs", torch.zeros(self.rank + self.n_probes, out_features))
        self.register_buffer("built", torch.tensor(False))

    def _query(self, query, inputs):
        self.n_queries += len(inputs)
        return query(inputs)

    def matrix(self):
        """The surrogate's matrix ``U S V`` (out_features x in_features)."""
        return self.U @ self.S @ self.V

    def input_gradient(self, grad_output):
        """``dL/dx = G U S V`` for upstream gradients G (batch x out_features)."""
        return grad_output @ self.U @ self.S @ self.V

    def build(self, query):
        """Initialise the factors from the device; ``query(inputs (K, n)) -> (K, m)``."""
        options = dict(dtype=self.U.dtype, device=self.U.device)
        rank = self.rank
        if self.init == "svd" or self.requeries:
            matrix = self._query(query, torch.eye(self.in_features, **options)).T
            u, s, v = best_rank_factors(matrix, rank)
        else:
            width = min(rank + self.oversampling, self.in_features)
            inputs = randn((width + self.n_probes, self.in_features), self.generator, **options)
            inputs[0] = 1.0  # the constant vector, see the module docstring
            outputs = self._query(query, inputs)
            basis, _ = torch.linalg.qr(outputs[:width].T)
            # Least squares for B = Q^T A from B z_k = Q^T y_k (the minimum-norm solution, A
            # on the span of the inputs, when there are fewer inputs than columns); the Monte
            # Carlo average (1/K) sum_k (Q^T y_k) z_k^T was worse than a zero matrix on 128-wide
            # devices with 52 queries (relative error 1.35-1.42, least squares 0.80-0.96, with
            # the constant input 0.56-0.95; benchmarks/surrogate_init.py).
            row_part = (torch.linalg.pinv(inputs) @ outputs @ basis).T
            u_small, singular_values, vh = torch.linalg.svd(row_part, full_matrices=False)
            u, s, v = basis @ u_small[:, :rank], torch.diag(singular_values[:rank]), vh[:rank]
        self.U.copy_(u)
        self.S.copy_(s)
        self.V.copy_(v)
        self.n_rebuilds += 1
        self.built.fill_(True)
        if not self.requeries:
            self._record_probes(query)

    def _record_probes(self, query):
        """Query the next update's probes (rows of V, fresh Z) at the current parameters."""
        fresh = randn((self.n_probes, self.in_features), self.generator,
                      dtype=self.V.dtype, device=self.V.device)
        self.probes.copy_(torch.cat([self.V, fresh]))
        self.probe_outputs.copy_(self._query(query, self.probes))

    def update(self, query):
        """Follow the device: a projector-splitting step for its change since the last record,
        or a full re-query (see ``update``)."""
        self.n_updates += 1
        if self.requeries or (self.rebuild_every and self.n_updates % self.rebuild_every == 0):
            self.build(query)
            return
        change = self._query(query, self.probes) - self.probe_outputs  # rows: dA p for probes p
        rank = self.rank
        p1 = change[:rank].T                                            # dA V^T
        u1, s_hat = torch.linalg.qr(self.U @ self.S + p1)
        s_tilde = s_hat - u1.T @ p1
        p2 = self.probes[rank:].T @ (change[rank:] @ u1) / self.n_probes  # ~ dA^T U1
        v1, r = torch.linalg.qr(self.V.T @ s_tilde.T + p2)
        self.U.copy_(u1)
        self.S.copy_(r.T)
        self.V.copy_(v1.T)
        self._record_probes(query)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, n_probes={self.n_probes}, init={self.init!r}, "
                f"update={'requery' if self.requeries else 'psi'}, "
                f"rebuild_every={self.rebuild_every}")
