"""Zeroth-order estimators against exact gradients of quadratics and linear functions."""

import pytest
import torch

from hybridnet.zeroth_order import ESTIMATORS, n_evaluations, sample_directions, zo_gradient

DIM = 8


def quadratic_problem(seed=0):
    """f(w) = 0.5 w^T A w + b^T w (batched over rows), its point and exact gradient."""
    g = torch.Generator().manual_seed(seed)
    root = torch.randn(DIM, DIM, generator=g, dtype=torch.float64)
    A = root @ root.T / DIM + torch.eye(DIM, dtype=torch.float64)
    b = torch.randn(DIM, generator=g, dtype=torch.float64)
    w = torch.randn(DIM, generator=g, dtype=torch.float64)

    def f(points):
        return 0.5 * torch.einsum("pi,ij,pj->p", points, A, points) + points @ b

    return f, w, A @ w + b


def estimates(estimator, n_samples, n_repeats, distribution="gaussian", seed=1):
    f, w, exact = quadratic_problem()
    g = torch.Generator().manual_seed(seed)
    draws = torch.stack([
        zo_gradient(f, w, estimator=estimator, n_samples=n_samples, smoothing=1e-3,
                    distribution=distribution, generator=g).gradient
        for _ in range(n_repeats)])
    return draws, exact


@pytest.mark.parametrize("estimator", ["rge", "central_rge"])
@pytest.mark.parametrize("distribution", ["gaussian", "sphere", "rademacher"])
def test_mean_of_estimates_approaches_true_gradient(estimator, distribution):
    draws, exact = estimates(estimator, 4, 4000, distribution)
    # Standard error of the mean of 4000 draws is about sqrt(d / (4 * 4000)) |grad| ~ 0.02 |grad|.
    assert (draws.mean(0) - exact).norm() / exact.norm() < 0.08


@pytest.mark.parametrize("estimator", ["rge", "central_rge"])
def test_error_falls_like_one_over_sqrt_of_samples(estimator):
    rmse = []
    for n_samples in (4, 16, 64):
        draws, exact = estimates(estimator, n_samples, 400)
        rmse.append(((draws - exact) ** 2).sum(1).mean().sqrt())
    for coarse, fine in zip(rmse, rmse[1:], strict=False):
        assert 1.6 < coarse / fine < 2.5  # 4x the samples halves the error


def test_gaussian_mse_matches_theory_on_a_linear_function():
    # For f(w) = c^T w one Gaussian sample gives u u^T c, whose squared error has mean
    # (d + 1) |c|^2; M samples divide it by M.
    c = torch.arange(1.0, DIM + 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    n_samples = 5
    errors = [
        (zo_gradient(lambda p: p @ c, torch.zeros(DIM, dtype=torch.float64),
                     n_samples=n_samples, generator=g).gradient - c).square().sum()
        for _ in range(3000)]
    expected = (DIM + 1) * c.square().sum() / n_samples
    assert abs(torch.stack(errors).mean() / expected - 1) < 0.1


def test_variances_order_as_theory_says():
    # Central differences are exact along a direction of a quadratic, so one sample is u u^T c
    # with c the gradient: squared error (d + 1)|c|^2 for Gaussian u, and (d - 1)|c|^2 for the
    # sphere of radius sqrt(d) and for Rademacher u (both have |u|^2 = d exactly).
    mse = {}
    for distribution in ("gaussian", "sphere", "rademacher"):
        draws, exact = estimates("central_rge", 1, 3000, distribution)
        mse[distribution] = ((draws - exact) ** 2).sum(1).mean() / exact.square().sum()
    assert abs(mse["gaussian"] / (DIM + 1) - 1) < 0.15
    assert abs(mse["sphere"] / (DIM - 1) - 1) < 0.15
    assert mse["sphere"] < mse["gaussian"]


def test_cge_is_exact_on_a_quadratic_and_counts_evaluations():
    f, w, exact = quadratic_problem()
    estimate = zo_gradient(f, w, estimator="cge", smoothing=1e-3)
    torch.testing.assert_close(estimate.gradient, exact, rtol=1e-8, atol=1e-8)
    assert estimate.n_evaluations == 2 * DIM


def test_cge_coordinate_skip_leaves_skipped_coordinates_zero():
    f, w, exact = quadratic_problem()
    g = torch.Generator().manual_seed(3)
    estimate = zo_gradient(f, w, estimator="cge", coordinate_skip=0.5, generator=g)
    kept = estimate.gradient != 0
    assert 0 < kept.sum() < DIM
    assert estimate.n_evaluations == 2 * int(kept.sum())
    torch.testing.assert_close(estimate.gradient[kept], exact[kept], rtol=1e-6, atol=1e-6)


def test_sign_rge_returns_signs_that_mostly_agree_with_the_gradient():
    draws, exact = estimates("sign_rge", 50, 20)
    assert set(draws.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert (draws == exact.sign()).float().mean() > 0.8


def test_known_value_saves_one_evaluation_and_changes_nothing():
    f, w, _ = quadratic_problem()
    full = zo_gradient(f, w, n_samples=6, generator=torch.Generator().manual_seed(0))
    saved = zo_gradient(f, w, n_samples=6, generator=torch.Generator().manual_seed(0),
                        value_at_point=f(w.unsqueeze(0))[0])
    assert (full.n_evaluations, saved.n_evaluations) == (7, 6)
    torch.testing.assert_close(full.gradient, saved.gradient)


def test_chunked_evaluation_equals_one_call():
    f, w, _ = quadratic_problem()
    calls = []

    def counted(points):
        calls.append(len(points))
        return f(points)

    one = zo_gradient(counted, w, estimator="central_rge", n_samples=10,
                      generator=torch.Generator().manual_seed(0))
    chunked = zo_gradient(counted, w, estimator="central_rge", n_samples=10, chunk_size=6,
                          generator=torch.Generator().manual_seed(0))
    assert calls == [20, 6, 6, 6, 2]
    torch.testing.assert_close(one.gradient, chunked.gradient)


def test_directions_have_identity_second_moment():
    g = torch.Generator().manual_seed(0)
    for distribution in ("gaussian", "sphere", "rademacher"):
        u = sample_directions(20000, 4, distribution, g, dtype=torch.float64, device="cpu")
        torch.testing.assert_close(u.T @ u / len(u), torch.eye(4, dtype=torch.float64),
                                   atol=0.05, rtol=0)
    sphere = sample_directions(5, 4, "sphere", g, dtype=torch.float64, device="cpu")
    torch.testing.assert_close(sphere.norm(dim=1), torch.full((5,), 2.0, dtype=torch.float64))


def test_bad_arguments_are_refused():
    f, w, _ = quadratic_problem()
    with pytest.raises(ValueError, match="estimator must be one of"):
        zo_gradient(f, w, estimator="spsa")
    with pytest.raises(ValueError, match="distribution must be one of"):
        zo_gradient(f, w, distribution="cauchy")
    with pytest.raises(ValueError, match="one value per point"):
        zo_gradient(lambda p: p, w)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("value_known", [False, True])
def test_n_evaluations_is_what_zo_gradient_spends(estimator, value_known):
    point = torch.zeros(7, dtype=torch.float64)
    calls = []

    def fn(points):
        calls.append(len(points))
        return points.sum(dim=1)

    estimate = zo_gradient(fn, point, estimator=estimator, n_samples=5,
                           generator=torch.Generator().manual_seed(0),
                           value_at_point=torch.tensor(0.0) if value_known else None)
    expected = n_evaluations(estimator, 5, 7, value_known=value_known)
    assert expected == estimate.n_evaluations == sum(calls)


def test_n_evaluations_of_skipped_coordinates_and_bad_estimators():
    assert n_evaluations("cge", 10, 4032, coordinate_skip=0.5) == 4032
    with pytest.raises(ValueError, match="estimator must be one of"):
        n_evaluations("hybrid", 10, 4)
