"""Fréchet distance against closed-form Gaussian cases, plus the evaluator's eps and imaginary-part rules."""

import math

import numpy as np
import pytest

from evaluation.frechet import GaussianStats, frechet_distance


def _random_spd(rng, dim):
    x = rng.normal(size=(dim, dim))
    return x @ x.T / dim + 0.1 * np.eye(dim)


def _random_orthogonal(rng, dim):
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q


def test_identical_gaussians_have_zero_distance():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=5), _random_spd(rng, 5)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_commuting_covariances_match_closed_form():
    rng = np.random.default_rng(2)
    q = _random_orthogonal(rng, 5)
    a, b = rng.uniform(0.1, 3, size=5), rng.uniform(0.1, 3, size=5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)


def test_non_commuting_2d_covariances_match_closed_form():
    # For a 2x2 matrix M with non-negative eigenvalues, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.2], [-0.2, 1.5]])
    product = s1 @ s2
    tr_sqrt = math.sqrt(np.trace(product) + 2 * math.sqrt(np.linalg.det(product)))
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    expected = 0.25 + 6.25 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_one_dimensional_case_and_stats_from_features():
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, size=(400, 1))
    y = rng.normal(-1.0, 0.5, size=(300, 1))
    stats_x, stats_y = GaussianStats.from_features(x), GaussianStats.from_features(y)
    assert stats_x.sigma.shape == (1, 1)
    assert stats_x.mu[0] == pytest.approx(x.mean(), rel=1e-12)
    assert stats_x.sigma[0, 0] == pytest.approx(x.var(ddof=1), rel=1e-12)
    expected = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert stats_x.frechet_distance(stats_y) == pytest.approx(expected, rel=1e-10)


def test_shifted_features_give_squared_shift():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    shift = np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32)
    got = GaussianStats.from_features(x).frechet_distance(GaussianStats.from_features(x + shift))
    assert got == pytest.approx(float(shift @ shift), rel=1e-5)


def test_singular_product_adds_eps_to_the_diagonals():
    # [[0, 1], [0, 0]] has no square root (sqrtm gives inf); with eps on both diagonals the product is
    # (1 + eps) [[eps, 1], [0, eps]], whose square root has trace 2 sqrt(eps (1 + eps)).
    eps = 1e-6
    sigma1, sigma2 = np.array([[0.0, 1.0], [0.0, 0.0]]), np.eye(2)
    with pytest.warns(RuntimeWarning, match="adding 1e-06"):
        got = frechet_distance(np.zeros(2), sigma1, np.zeros(2), sigma2, eps=eps)
    assert got == pytest.approx(2.0 - 4 * math.sqrt(eps * (1 + eps)), abs=1e-8)


def test_large_imaginary_component_is_rejected():
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_small_imaginary_component_is_dropped():
    # sqrtm(diag(1, -1e-10)) = diag(1, 1e-5 i): imaginary diagonal below 1e-3 is discarded.
    got = frechet_distance(np.zeros(2), np.diag([1.0, -1e-10]), np.zeros(2), np.diag([1.0, 1.0]))
    assert got == pytest.approx((1.0 - 1e-10) + 2.0 - 2.0, abs=1e-9)


@pytest.mark.parametrize(
    ("mu2", "sigma2", "message"),
    [
        (np.zeros(3), np.eye(2), "different lengths"),
        (np.zeros(2), np.eye(3), "do not match"),
        (np.array([0.0, np.nan]), np.eye(2), "mu2 contains NaN"),
    ],
)
def test_bad_inputs_are_rejected(mu2, sigma2, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(np.zeros(2), np.eye(2), mu2, sigma2)


def test_stats_need_two_samples():
    with pytest.raises(ValueError, match="at least 2 rows"):
        GaussianStats.from_features(np.zeros((1, 3)))
