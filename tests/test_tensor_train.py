"""Tests of the tensor-train matrix format and the TTLinear layer."""

import io
import itertools
import math
import pickle

import pytest
import torch
from torch import nn

from hybridnet.tensor_train import (
    balanced_factorization,
    default_n_cores,
    tt_matmul,
    tt_matmul_costs,
    tt_matrix_shapes,
    tt_ranks,
    tt_svd,
    tt_to_dense,
)
from hybridnet.tt_linear import TTLinear

F64 = torch.float64


def random_cores(out_shape, in_shape, ranks, seed=0, dtype=F64):
    """Random cores with the given modes and ranks (r_0 = r_d = 1 included in ``ranks``)."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(ranks[k], m, n, ranks[k + 1], generator=generator, dtype=dtype)
        for k, (m, n) in enumerate(zip(out_shape, in_shape, strict=True))
    ]


def dense_by_loops(cores):
    """W built entry by entry from the definition: a product of the cores' slices."""
    out_shape = [core.shape[1] for core in cores]
    in_shape = [core.shape[2] for core in cores]
    rows = list(itertools.product(*map(range, out_shape)))
    cols = list(itertools.product(*map(range, in_shape)))
    w = torch.empty(len(rows), len(cols), dtype=cores[0].dtype)
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            product = torch.eye(1, dtype=cores[0].dtype)
            for k, core in enumerate(cores):
                product = product @ core[:, i[k], j[k], :]
            w[a, b] = product[0, 0]
    return w


# --- format helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "n_factors", "expected"),
    [
        (784, 4, [7, 4, 4, 7]),
        (1024, 4, [8, 4, 4, 8]),
        (10, 4, [1, 5, 2, 1]),
        (7, 3, [1, 7, 1]),
        (1, 3, [1, 1, 1]),
        (12, 1, [12]),
        (64, 2, [8, 8]),
    ],
)
def test_balanced_factorization_cases(n, n_factors, expected):
    assert balanced_factorization(n, n_factors) == expected


@pytest.mark.parametrize("n", [1, 2, 30, 97, 360, 784, 1000, 4096])
@pytest.mark.parametrize("n_factors", [1, 2, 3, 5])
def test_balanced_factorization_product_and_length(n, n_factors):
    factors = balanced_factorization(n, n_factors)
    assert len(factors) == n_factors
    assert math.prod(factors) == n
    assert all(isinstance(f, int) and f >= 1 for f in factors)


def test_default_n_cores():
    assert default_n_cores(784, 1024) == 4
    assert default_n_cores(1024, 10) == 4
    assert default_n_cores(64, 10) == 2  # exact power of 8: no float round-up to 3
    assert default_n_cores(65, 1) == 3
    assert default_n_cores(1, 1) == 2


def test_tt_matrix_shapes_defaults_and_overrides():
    assert tt_matrix_shapes(784, 1024) == ([8, 4, 4, 8], [7, 4, 4, 7])
    assert tt_matrix_shapes(1024, 10) == ([1, 5, 2, 1], [8, 4, 4, 8])
    assert tt_matrix_shapes(784, 1024, 2) == ([32, 32], [28, 28])
    # A given shape fixes the number of cores of the other one.
    assert tt_matrix_shapes(784, 1024, in_shape=[28, 28]) == ([32, 32], [28, 28])
    with pytest.raises(ValueError, match="in_shape"):
        tt_matrix_shapes(784, 1024, in_shape=[7, 4, 4, 4])
    with pytest.raises(ValueError, match="core count"):
        tt_matrix_shapes(784, 1024, 3, in_shape=[28, 28])


def test_tt_ranks_are_capped_by_unfolding_sizes():
    assert tt_ranks(6, [8, 4, 4, 8], [7, 4, 4, 7]) == [1, 6, 6, 6, 1]
    assert tt_ranks(100, [2, 3, 2], [2, 1, 3]) == [1, 4, 6, 1]
    assert tt_ranks(3, [5], [7]) == [1, 1]
    with pytest.raises(ValueError, match="same length"):
        tt_ranks(2, [2, 2], [4])


# --- dense conversion and products ------------------------------------------------------------


def test_tt_to_dense_matches_entrywise_definition():
    out_shape, in_shape = [2, 3, 2], [3, 1, 2]
    cores = random_cores(out_shape, in_shape, [1, 2, 3, 1], seed=1)
    w = tt_to_dense(cores)
    assert w.shape == (12, 6)
    torch.testing.assert_close(w, dense_by_loops(cores), rtol=1e-12, atol=1e-12)


def test_tt_to_dense_rank_one_is_kronecker_product():
    cores = random_cores([2, 3, 4], [3, 2, 2], [1, 1, 1, 1], seed=2)
    expected = torch.kron(
        torch.kron(cores[0][0, :, :, 0], cores[1][0, :, :, 0]), cores[2][0, :, :, 0]
    )
    torch.testing.assert_close(tt_to_dense(cores), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("out_shape", "in_shape", "ranks"),
    [
        ([2, 3, 2], [3, 1, 2], [1, 2, 3, 1]),
        ([1, 5, 2, 1], [8, 4, 4, 8], [1, 6, 6, 6, 1]),
        ([4], [6], [1, 1]),
    ],
)
def test_tt_matmul_matches_dense_product(out_shape, in_shape, ranks):
    cores = random_cores(out_shape, in_shape, ranks, seed=3)
    x = torch.randn(5, math.prod(in_shape), dtype=F64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(
        tt_matmul(cores, x), x @ tt_to_dense(cores).T, rtol=1e-12, atol=1e-12
    )


def test_tt_matmul_gradcheck_and_empty_batch():
    cores = [c.requires_grad_() for c in random_cores([2, 3], [3, 2], [1, 2, 1], seed=7)]
    x = torch.randn(4, 6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a, b: tt_matmul([a, b], x), (x, *cores))
    assert tt_matmul(cores, torch.empty(0, 6, dtype=F64)).shape == (0, 6)


def test_bad_cores_and_inputs_raise():
    cores = random_cores([2, 2], [3, 3], [1, 2, 1])
    with pytest.raises(ValueError, match=r"left rank 3, expected 2"):
        tt_to_dense([cores[0], torch.zeros(3, 2, 3, 1, dtype=F64)])
    with pytest.raises(ValueError, match="right rank 1"):
        tt_to_dense([cores[0]])
    with pytest.raises(ValueError, match=r"cores\[1\] must be a 4-D tensor"):
        tt_to_dense([cores[0], torch.zeros(2, 3)])
    with pytest.raises(TypeError, match="non-empty sequence"):
        tt_to_dense([])
    with pytest.raises(ValueError, match=r"shape \(batch, 9\)"):
        tt_matmul(cores, torch.zeros(4, 8, dtype=F64))


# --- TT-SVD ---------------------------------------------------------------------------------


def test_tt_svd_is_exact_for_low_tt_rank_matrix():
    out_shape, in_shape = [3, 4, 2, 3], [2, 3, 4, 2]
    w = tt_to_dense(random_cores(out_shape, in_shape, [1, 3, 4, 2, 1], seed=5))
    cores = tt_svd(w, out_shape, in_shape, tt_rank=4)
    assert [c.shape[3] for c in cores] == [4, 4, 4, 1]  # tt_ranks(4, ...), above the true ranks
    error = torch.linalg.norm(tt_to_dense(cores) - w) / torch.linalg.norm(w)
    assert error < 1e-10
    assert all(c.dtype == F64 for c in cores)


def test_tt_svd_error_decreases_with_rank():
    out_shape, in_shape = [4, 4, 4], [4, 4, 4]
    w = torch.randn(64, 64, dtype=F64, generator=torch.Generator().manual_seed(6))
    errors = [
        (torch.linalg.norm(tt_to_dense(tt_svd(w, out_shape, in_shape, r)) - w)).item()
        for r in (1, 2, 4, 8, 16)
    ]
    assert all(a > b for a, b in itertools.pairwise(errors))
    # Full rank (16 at both cuts) reproduces the matrix.
    assert errors[-1] < 1e-10 * torch.linalg.norm(w).item()


def test_tt_svd_rejects_bad_arguments():
    w = torch.zeros(6, 6, dtype=F64)
    with pytest.raises(ValueError, match="out_shape"):
        tt_svd(w, [2, 2], [2, 3], 2)
    with pytest.raises(TypeError, match="tt_rank"):
        tt_svd(w, [2, 3], [2, 3], 2.5)
    with pytest.raises(ValueError, match="tt_rank"):
        tt_svd(w, [2, 3], [2, 3], 0)
    with pytest.raises(TypeError, match="floating-point"):
        tt_svd(torch.zeros(6, 6, dtype=torch.int64), [2, 3], [2, 3], 2)


# --- TTLinear -------------------------------------------------------------------------------


def test_forward_equals_dense_affine_map():
    torch.manual_seed(0)
    layer = TTLinear(60, 24, tt_rank=3, dtype=F64)
    x = torch.randn(2, 7, 60, dtype=F64)
    expected = x @ layer.to_dense().T + layer.bias
    y = layer(x)
    assert y.shape == (2, 7, 24)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    # A single sample without batch dimension works too.
    torch.testing.assert_close(layer(x[0, 0]), expected[0, 0], rtol=1e-12, atol=1e-12)


def test_contraction_and_dense_paths_agree_in_values_and_gradients():
    torch.manual_seed(0)
    layer = TTLinear(784, 1024, tt_rank=6, in_shape=[7, 4, 4, 7], out_shape=[8, 4, 4, 8],
                     dtype=F64)
    threshold = layer._dense_from_rows
    assert 1 < threshold < 64  # MNIST's batch of 64 takes the dense path (cheaper, as timed)
    x = torch.randn(threshold, 784, dtype=F64)
    gradients = []
    for rows in (x[:threshold - 1], x):  # just below the switch: contraction; at it: dense
        layer.zero_grad()
        y = layer(rows)
        torch.testing.assert_close(y, rows @ tt_to_dense(list(layer.cores)).T + layer.bias,
                                   rtol=1e-10, atol=1e-10)
        y[:threshold - 1].square().sum().backward()
        gradients.append([core.grad.clone() for core in layer.cores])
    for contracted, dense in zip(*gradients, strict=True):
        torch.testing.assert_close(contracted, dense, rtol=1e-10, atol=1e-10)


def test_tt_matmul_costs_count_the_multiply_adds():
    out_shape, in_shape, ranks = [2, 4], [3, 5], [1, 2, 1]
    per_row, assembly = tt_matmul_costs(out_shape, in_shape, ranks)
    # Last core first: (rows n_1, n_2 r_2) x (n_2 r_2, r_1 m_2) then (rows m_2, n_1 r_1) x
    # (n_1 r_1, m_1): 3 * (5 * 1) * (2 * 4) + 4 * (3 * 2) * 2; assembling: (m_1 n_1 x r_1) times
    # (r_1 x m_2 n_2 r_2) = 6 * 2 * 20.
    assert per_row == 3 * 5 * 8 + 4 * 6 * 2
    assert assembly == 6 * 2 * 20


def test_no_bias_layer():
    layer = TTLinear(16, 9, tt_rank=2, bias=False, dtype=F64)
    assert layer.bias is None
    x = torch.randn(3, 16, dtype=F64)
    torch.testing.assert_close(layer(x), x @ layer.to_dense().T, rtol=1e-12, atol=1e-12)
    assert layer.n_parameters == sum(p.numel() for p in layer.parameters())


def test_parameter_count_of_mnist_pair_includes_biases():
    first = TTLinear(784, 1024, 6, out_shape=[8, 4, 4, 8], in_shape=[7, 4, 4, 7])
    second = TTLinear(1024, 10, 6, out_shape=[1, 5, 2, 1], in_shape=[8, 4, 4, 8])
    assert first.ranks == second.ranks == (1, 6, 6, 6, 1)
    assert first.n_parameters == 1824 + 1024
    assert second.n_parameters == 1104 + 10
    assert first.n_parameters + second.n_parameters == 3962
    assert first.n_dense_parameters + second.n_dense_parameters == 814_090
    trainable = sum(p.numel() for m in (first, second) for p in m.parameters() if p.requires_grad)
    assert trainable == 3962
    # The default shapes are the same ones.
    assert TTLinear(784, 1024, 6).n_parameters + TTLinear(1024, 10, 6).n_parameters == 3962


def test_gradients_reach_every_core():
    torch.manual_seed(1)
    layer = TTLinear(48, 20, tt_rank=3, n_cores=3)
    loss = layer(torch.randn(8, 48)).pow(2).sum()
    loss.backward()
    for k, core in enumerate(layer.cores):
        assert core.grad is not None and core.grad.abs().sum() > 0, f"core {k} got no gradient"
    assert layer.bias.grad.abs().sum() > 0


def test_optimizer_step_reduces_loss():
    torch.manual_seed(2)
    layer = TTLinear(32, 16, tt_rank=4)
    x, target = torch.randn(64, 32), torch.randn(64, 16)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(layer(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_init_variance_is_fan_in():
    torch.manual_seed(3)
    in_features = 784
    draws = [
        TTLinear(in_features, 1024, 6, dtype=F64).to_dense().pow(2).mean().item() * in_features
        for _ in range(30)
    ]
    # Each draw's spread is about 0.13 (entries share cores), so the mean of 30 is within ~0.03.
    assert 0.85 < sum(draws) / len(draws) < 1.15
    bias = TTLinear(in_features, 5000, 6).bias
    assert bias.abs().max() <= 1 / math.sqrt(in_features)


def test_from_linear_full_rank_round_trip():
    torch.manual_seed(4)
    dense = nn.Linear(24, 18, dtype=F64)
    layer = TTLinear.from_linear(dense, tt_rank=1000, n_cores=2)
    assert layer.in_shape == (6, 4) and layer.out_shape == (6, 3)
    torch.testing.assert_close(layer.to_dense(), dense.weight.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer.bias, dense.bias, rtol=0, atol=0)
    x = torch.randn(5, 24, dtype=F64)
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-10, atol=1e-12)
    assert TTLinear.from_linear(nn.Linear(24, 18, bias=False), 2).bias is None
    with pytest.raises(TypeError, match="nn.Linear"):
        TTLinear.from_linear(layer, 2)


def test_from_linear_truncation_improves_with_rank():
    torch.manual_seed(5)
    dense = nn.Linear(64, 64, dtype=F64)
    errors = [
        torch.linalg.norm(TTLinear.from_linear(dense, r).to_dense() - dense.weight).item()
        for r in (1, 4, 16)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"tt_rank must be a positive integer, got 0"):
        TTLinear(16, 16, 0)
    with pytest.raises(TypeError, match=r"tt_rank must be a positive integer, got 2\.0"):
        TTLinear(16, 16, 2.0)
    with pytest.raises(TypeError, match="in_features"):
        TTLinear(True, 16, 2)
    with pytest.raises(ValueError, match="out_features"):
        TTLinear(16, -1, 2)
    with pytest.raises(ValueError, match=r"in_shape=\[4, 3\] has product 12, expected 16"):
        TTLinear(16, 16, 2, in_shape=[4, 3])
    with pytest.raises(ValueError, match="disagree"):
        TTLinear(16, 16, 2, in_shape=[4, 4], out_shape=[2, 2, 4])
    with pytest.raises(TypeError, match="bias"):
        TTLinear(16, 16, 2, bias=1)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 16\)"):
        TTLinear(16, 8, 2)(torch.randn(3, 15))


def test_state_dict_round_trip_and_pickle():
    torch.manual_seed(6)
    layer = TTLinear(30, 12, tt_rank=3)
    assert set(layer.state_dict()) == {"cores.0", "cores.1", "bias"}
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    clone = TTLinear(30, 12, tt_rank=3)
    clone.load_state_dict(torch.load(buffer))
    x = torch.randn(4, 30)
    torch.testing.assert_close(clone(x), layer(x), rtol=0, atol=0)

    restored = pickle.loads(pickle.dumps(layer))
    torch.testing.assert_close(restored(x), layer(x), rtol=0, atol=0)
    assert restored.ranks == layer.ranks


def test_to_and_repr():
    layer = TTLinear(784, 1024, 6).to(F64)
    assert all(core.dtype == F64 for core in layer.cores)
    assert layer(torch.randn(2, 784, dtype=F64)).dtype == F64
    text = repr(layer)
    assert "in_shape=[7, 4, 4, 7]" in text and "out_shape=[8, 4, 4, 8]" in text
    assert "ranks=[1, 6, 6, 6, 1]" in text
    assert layer.compression_ratio == pytest.approx(803_840 / 2848)
