"""Improved Precision/Recall (Kynkäänniemi et al. 2019) as guided-diffusion's ``ManifoldEstimator`` computes it.

Exact rules of the evaluator (k = 3, on pool_3 features):

- distances are *squared* Euclidean, ``max(|u|^2 - 2 u.v + |v|^2, 0)``;
- a point's radius is the k-th smallest distance in its own set counting itself (index k of the sorted row,
  whose index 0 is the zero self-distance), i.e. the distance to its k-th nearest other point;
- a point lies on the other set's manifold if ``dist <= radius`` for at least one point of that set;
- precision = fraction of samples on the reference manifold, recall = fraction of references on the sample
  manifold.

The evaluator computes each distance block in float16 and falls back to float32 only when that block has a
non-finite entry; ``float16_distances=True`` reproduces that rounding (float16 operands, each intermediate
rounded to float16; accumulation in float32 as GPU float16 matmuls/reductions do). Work is done in
``row_batch_size`` x ``col_batch_size`` blocks with a running top-(k+1), so 50k x 50k never materialises.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_K = 3
DEFAULT_BATCH_SIZE = 10000


def _to_half_precision(x: torch.Tensor) -> torch.Tensor:
    """Rounds float32 values to the nearest float16 (overflow -> inf) and keeps them in float32."""
    return x.to(torch.float16).to(torch.float32)


def pairwise_sq_distances(u: torch.Tensor, v: torch.Tensor, float16_distances: bool = True) -> torch.Tensor:
    """Squared distances (len(u) x len(v), float32), float16-rounded like the evaluator's DistanceBlock."""
    if float16_distances:
        u16, v16 = _to_half_precision(u), _to_half_precision(v)
        norm_u = _to_half_precision(_to_half_precision(u16 * u16).sum(dim=1))
        norm_v = _to_half_precision(_to_half_precision(v16 * v16).sum(dim=1))
        twice_dot = _to_half_precision(_to_half_precision(u16 @ v16.T) * 2)
        dist = _to_half_precision(norm_u[:, None] - twice_dot)
        dist = _to_half_precision(dist + norm_v[None, :]).clamp_(min=0)
        if torch.isfinite(dist).all():
            return dist
    dist = (u @ v.T).mul_(-2)
    dist.add_((u * u).sum(dim=1)[:, None]).add_((v * v).sum(dim=1)[None, :])
    return dist.clamp_(min=0)


def knn_radii(
    features: torch.Tensor,
    k: int = DEFAULT_K,
    row_batch_size: int = DEFAULT_BATCH_SIZE,
    col_batch_size: int = DEFAULT_BATCH_SIZE,
    float16_distances: bool = True,
) -> torch.Tensor:
    """Squared distance from each point to its k-th nearest neighbour within ``features`` (self counts as 0th)."""
    num = features.shape[0]
    if num <= k:
        raise ValueError(f"need more than k={k} feature vectors to estimate a manifold, got {num}")
    radii = torch.empty(num, dtype=torch.float32, device=features.device)
    for row_start in range(0, num, row_batch_size):
        rows = features[row_start : row_start + row_batch_size]
        smallest = None
        for col_start in range(0, num, col_batch_size):
            dist = pairwise_sq_distances(rows, features[col_start : col_start + col_batch_size], float16_distances)
            candidates = dist if smallest is None else torch.cat([smallest, dist], dim=1)
            keep = min(k + 1, candidates.shape[1])
            smallest = torch.topk(candidates, keep, dim=1, largest=False, sorted=True).values
        radii[row_start : row_start + rows.shape[0]] = smallest[:, k]
    return radii


def precision_recall(
    ref_features: np.ndarray | torch.Tensor,
    sample_features: np.ndarray | torch.Tensor,
    k: int = DEFAULT_K,
    row_batch_size: int = DEFAULT_BATCH_SIZE,
    col_batch_size: int = DEFAULT_BATCH_SIZE,
    float16_distances: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Returns (precision, recall) of the samples against the reference features."""
    ref = torch.as_tensor(ref_features, dtype=torch.float32, device=device)
    samples = torch.as_tensor(sample_features, dtype=torch.float32, device=device)
    if ref.ndim != 2 or samples.ndim != 2 or ref.shape[1] != samples.shape[1]:
        raise ValueError(
            f"feature arrays must be N x D with the same D, got {tuple(ref.shape)}, {tuple(samples.shape)}"
        )
    for name, feats in (("reference", ref), ("sample", samples)):
        if not torch.isfinite(feats).all():
            raise ValueError(f"{name} features contain NaN or inf")
    if row_batch_size <= 0 or col_batch_size <= 0:
        raise ValueError(f"batch sizes must be positive, got {row_batch_size}, {col_batch_size}")

    ref_radii = knn_radii(ref, k, row_batch_size, col_batch_size, float16_distances)
    sample_radii = knn_radii(samples, k, row_batch_size, col_batch_size, float16_distances)
    ref_covered = torch.zeros(ref.shape[0], dtype=torch.bool, device=ref.device)
    sample_covered = torch.zeros(samples.shape[0], dtype=torch.bool, device=ref.device)
    for ref_start in range(0, ref.shape[0], row_batch_size):
        ref_end = ref_start + row_batch_size
        for sample_start in range(0, samples.shape[0], col_batch_size):
            sample_end = sample_start + col_batch_size
            dist = pairwise_sq_distances(ref[ref_start:ref_end], samples[sample_start:sample_end], float16_distances)
            ref_covered[ref_start:ref_end] |= (dist <= sample_radii[None, sample_start:sample_end]).any(dim=1)
            sample_covered[sample_start:sample_end] |= (dist <= ref_radii[ref_start:ref_end, None]).any(dim=0)
    precision = sample_covered.double().mean().item()
    recall = ref_covered.double().mean().item()
    return precision, recall
