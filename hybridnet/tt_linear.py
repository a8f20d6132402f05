"""A linear layer whose weight matrix is kept in tensor-train (TT) format.

The layer stores the TT cores of its ``out_features x in_features`` weight (see
:mod:`hybridnet.tensor_train` for the format). With small TT ranks it has orders of magnitude
fewer trainable numbers than ``torch.nn.Linear``, which is what makes zeroth-order (loss-value
only) training feasible: the variance of those gradient estimators grows with the number of
parameters.
"""

import math

import torch
from torch import nn

from hybridnet.tensor_train import (
    _check_positive_int,
    tt_matmul,
    tt_matmul_costs,
    tt_matrix_shapes,
    tt_ranks,
    tt_svd,
    tt_to_dense,
)

__all__ = ["TTLinear"]

# The core-by-core contraction is a chain of thin GEMMs with reshapes between them; per
# multiply-add it ran about 3x slower than one dense GEMM (timed on 2 CPU cores, MNIST and
# PINN layer shapes), which the choice of forward path accounts for.
CONTRACTION_OVERHEAD = 3

# Variance of a standard normal truncated to [-2, 2]: 1 - 2 * 2 * phi(2) / (2 * Phi(2) - 1).
_TRUNC2_VARIANCE = 1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / math.erf(math.sqrt(2.0))


class TTLinear(nn.Module):
    """Affine map ``y = x W^T + b`` with ``W`` stored as a tensor-train matrix.

    ``W`` (``out_features x in_features``) is factored over modes
    ``out_features = prod(out_shape)`` and ``in_features = prod(in_shape)`` into ``d`` cores,
    core ``k`` of shape ``(r_{k-1}, out_shape[k], in_shape[k], r_k)``. The internal ranks are
    ``min(tt_rank, largest rank possible at that cut)`` (see
    :func:`hybridnet.tensor_train.tt_ranks`).

    Parameters
    ----------
    in_features : int
        Size of each input sample.
    out_features : int
        Size of each output sample.
    tt_rank : int
        Maximal internal TT rank.
    bias : bool, default=True
        Whether to learn an additive bias.
    n_cores : int, optional
        Number of cores ``d``; default from the given shapes, else
        :func:`hybridnet.tensor_train.default_n_cores`.
    in_shape, out_shape : sequence of int, optional
        Mode sizes; default from :func:`hybridnet.tensor_train.balanced_factorization`.
    device : torch.device or str, optional
        Device of the parameters.
    dtype : torch.dtype, optional
        Floating-point dtype of the parameters.

    Attributes
    ----------
    cores : torch.nn.ParameterList
        The ``d`` TT cores.
    bias : torch.nn.Parameter or None
        Bias of shape ``(out_features,)``.
    in_shape, out_shape : tuple of int
        Mode sizes.
    ranks : tuple of int
        ``(r_0, .., r_d)`` with ``r_0 = r_d = 1``.

    Notes
    -----
    Initialisation: every core entry is drawn from a normal truncated at two standard
    deviations, with standard deviation (of the truncated law)
    ``sigma = (1 / sqrt(in_features))**(1/d) * (prod_{k=1}^{d-1} r_k)**(-1/(2d))``. An entry of
    ``W`` is a sum of ``prod r_k`` products of ``d`` independent core entries, so
    ``Var(W_ij) = prod r_k * sigma**(2d) = 1 / in_features``, the scale of a fan-in
    initialisation. The bias is uniform on ``+-1/sqrt(in_features)``, as in ``nn.Linear``.

    Forward: for a few rows the input is contracted with the cores one at a time
    (:func:`~hybridnet.tensor_train.tt_matmul`); for many rows the layer assembles ``W`` once
    and multiplies densely, whichever :func:`~hybridnet.tensor_train.tt_matmul_costs`
    predicts to be cheaper (the contraction's multiply-adds counted 3x, as timed). Both give
    the same values and gradients; large batches, above all the many shifted points of PINN
    derivative back ends and zeroth-order perturbations, run up to 20x faster dense. The
    trainable numbers are the cores either way.

    Parameter counts (:attr:`n_parameters`, :attr:`n_dense_parameters`) include the bias. With
    that convention the MNIST pair 784 -> 1024 (out x in shapes ``[8,4,4,8] x [7,4,4,7]``) and
    1024 -> 10 (``[1,5,2,1] x [8,4,4,8]``) at rank 6 has 1,824 + 1,024 and 1,104 + 10, so
    3,962 trainable numbers, versus 814,090 for the dense pair.

    Examples
    --------
    >>> layer = TTLinear(784, 1024, tt_rank=6)
    >>> layer.out_shape, layer.in_shape, layer.ranks
    ((8, 4, 4, 8), (7, 4, 4, 7), (1, 6, 6, 6, 1))
    >>> layer(torch.randn(32, 784)).shape
    torch.Size([32, 1024])
    >>> layer.n_parameters, layer.n_dense_parameters
    (2848, 803840)
    """

    def __init__(
        self,
        in_features,
        out_features,
        tt_rank,
        *,
        bias=True,
        n_cores=None,
        in_shape=None,
        out_shape=None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.in_features = _check_positive_int("in_features", in_features)
        self.out_features = _check_positive_int("out_features", out_features)
        self.tt_rank = _check_positive_int("tt_rank", tt_rank)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        out_shape, in_shape = tt_matrix_shapes(
            self.in_features, self.out_features, n_cores, in_shape=in_shape, out_shape=out_shape
        )
        self.out_shape = tuple(out_shape)
        self.in_shape = tuple(in_shape)
        self.ranks = tuple(tt_ranks(self.tt_rank, out_shape, in_shape))
        per_row, assembly = tt_matmul_costs(self.out_shape, self.in_shape, self.ranks)
        extra_per_row = CONTRACTION_OVERHEAD * per_row - self.out_features * self.in_features
        # Assembling W pays off from this many rows on (never, if contracting is cheaper).
        self._dense_from_rows = math.ceil(assembly / extra_per_row) if extra_per_row > 0 \
            else math.inf

        factory = {"device": device, "dtype": dtype}
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(self.ranks[k], m, n, self.ranks[k + 1], **factory))
            for k, (m, n) in enumerate(zip(self.out_shape, self.in_shape, strict=True))
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @property
    def n_cores(self):
        """int: Number of TT cores ``d``."""
        return len(self.out_shape)

    @property
    def n_parameters(self):
        """int: Trainable numbers of the layer: all core entries plus the bias (if any)."""
        n_bias = 0 if self.bias is None else self.out_features
        return sum(core.numel() for core in self.cores) + n_bias

    @property
    def n_dense_parameters(self):
        """int: Numbers in the equivalent ``nn.Linear``: weight plus the bias (if any)."""
        n_bias = 0 if self.bias is None else self.out_features
        return self.out_features * self.in_features + n_bias

    @property
    def compression_ratio(self):
        """float: ``n_dense_parameters / n_parameters``."""
        return self.n_dense_parameters / self.n_parameters

    def reset_parameters(self):
        """Redraw the cores and bias as described in the class Notes (uses torch's global RNG)."""
        d = self.n_cores
        rank_product = math.prod(self.ranks[1:-1])
        std = self.in_features ** (-1.0 / (2 * d)) * rank_product ** (-1.0 / (2 * d))
        # trunc_normal_'s std is that of the normal before truncation; enlarge it so the
        # truncated entries have variance std**2 and Var(W_ij) stays 1 / in_features.
        scale = std / math.sqrt(_TRUNC2_VARIANCE)
        with torch.no_grad():
            for core in self.cores:
                nn.init.trunc_normal_(core, mean=0.0, std=scale, a=-2.0 * scale, b=2.0 * scale)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        """Apply the layer.

        Parameters
        ----------
        x : torch.Tensor
            Input of shape ``(..., in_features)``.

        Returns
        -------
        torch.Tensor
            Output of shape ``(..., out_features)``.
        """
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"x must have shape (..., {self.in_features}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        rows = x.reshape(-1, self.in_features)
        if len(rows) >= self._dense_from_rows:
            y = rows @ self.to_dense().T
        else:
            y = tt_matmul(list(self.cores), rows)
        y = y.reshape(*lead, self.out_features)
        if self.bias is not None:
            y = y + self.bias
        return y

    def to_dense(self):
        """Dense weight matrix.

        Returns
        -------
        torch.Tensor
            Shape ``(out_features, in_features)``, differentiable in the cores; ``forward(x)``
            equals ``x @ to_dense().T + bias``.
        """
        return tt_to_dense(list(self.cores))

    @classmethod
    def from_linear(
        cls,
        linear,
        tt_rank,
        *,
        n_cores=None,
        in_shape=None,
        out_shape=None,
        device=None,
        dtype=None,
    ):
        """Compress a dense ``nn.Linear`` into a ``TTLinear`` by TT-SVD.

        Exact when the weight's TT ranks (for the chosen shapes) are at most ``tt_rank``,
        otherwise a truncated approximation (see :func:`hybridnet.tensor_train.tt_svd`). The
        bias, if any, is copied.

        Parameters
        ----------
        linear : torch.nn.Linear
            Layer to compress.
        tt_rank : int
            Maximal internal TT rank.
        n_cores, in_shape, out_shape : optional
            As in :class:`TTLinear`.
        device, dtype : optional
            Of the new layer; default those of ``linear.weight``.

        Returns
        -------
        TTLinear
            New layer with ``bias`` present exactly when ``linear`` has one.

        Examples
        --------
        >>> dense = nn.Linear(16, 12, dtype=torch.float64)
        >>> tt = TTLinear.from_linear(dense, tt_rank=64)
        >>> torch.allclose(tt.to_dense(), dense.weight)
        True
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach()
        device = weight.device if device is None else device
        dtype = weight.dtype if dtype is None else dtype
        layer = cls(
            linear.in_features,
            linear.out_features,
            tt_rank,
            bias=linear.bias is not None,
            n_cores=n_cores,
            in_shape=in_shape,
            out_shape=out_shape,
            device=device,
            dtype=dtype,
        )
        cores = tt_svd(
            weight.to(device=device, dtype=dtype), layer.out_shape, layer.in_shape, layer.tt_rank
        )
        with torch.no_grad():
            for param, core in zip(layer.cores, cores, strict=True):
                param.copy_(core)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        return layer

    def extra_repr(self):
        """Shapes, ranks and bias flag, for ``repr``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"in_shape={list(self.in_shape)}, out_shape={list(self.out_shape)}, "
            f"ranks={list(self.ranks)}, bias={self.bias is not None}"
        )
