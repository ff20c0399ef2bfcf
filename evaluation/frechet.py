"""Fréchet distance between Gaussians fitted to Inception features (FID on pool_3, sFID on mixed_6/conv).

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr( sqrtm(S1 S2) )

computed as guided-diffusion's ``FIDStatistics.frechet_distance`` does (which follows TTUR's fid.py): scipy's
``sqrtm`` of the product; if that is not finite, eps=1e-6 is added to both diagonals and it is retried; a
complex result is accepted only if the imaginary parts on its diagonal are within 1e-3 of zero.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg


@dataclass(frozen=True)
class GaussianStats:
    """Mean and (unbiased, N-1) covariance of a feature set, float64."""

    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_features(cls, features: np.ndarray) -> GaussianStats:
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"need a 2-D feature array with at least 2 rows, got shape {features.shape}")
        features = np.asarray(features, dtype=np.float64)
        return cls(mu=features.mean(axis=0), sigma=np.atleast_2d(np.cov(features, rowvar=False)))

    def frechet_distance(self, other: GaussianStats, eps: float = 1e-6) -> float:
        return frechet_distance(self.mu, self.sigma, other.mu, other.sigma, eps=eps)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different lengths: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"covariances {sigma1.shape}, {sigma2.shape} do not match mean length {mu1.shape[0]}")
    for name, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or inf")

    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"Fréchet distance: sqrtm of the covariance product is singular; adding {eps} to the diagonals",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"Fréchet distance: sqrtm has a large imaginary component ({np.abs(covmean.imag).max():.3g}); "
                "the covariance estimates are not positive semi-definite enough"
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
