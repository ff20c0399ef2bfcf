"""How raw model outputs become rewards: the linear scales and the step ("quantized") maps of AR-GRPO.

Kept in one place so the documented numbers and the code cannot drift apart (docs/rewards.md quotes them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SIMILARITY_SCALE = 5.0
"""``clip_*`` and ``hpsv2*`` rewards: 5 x the image-text cosine similarity."""

SIMILARITY_EDGES = (0.0, 0.3, 0.6)
SIMILARITY_LEVELS = (-1.0, 0.5, 1.0, 1.5)
"""``*_quantize`` rewards map the *unscaled* similarity s: s < 0 -> -1, 0 <= s < 0.3 -> 0.5,
0.3 <= s < 0.6 -> 1, s >= 0.6 -> 1.5."""

MANIQA_SCALE = 2.0
"""``maniqa``: 2 x the MANIQA quality score (as upstream)."""

MSE_SCALE = 2.0
"""``mse``: 2 x (1 - mean squared error against the reference image)."""

PICKSCORE_DIVISOR = 26.0
"""``pickscore``: logit_scale * cosine / 26, which puts typical PickScores near 0.8-0.9."""

VLM_DIVISOR = 4.0
"""``qwenvl_*``: the judge's score / 4 (upstream's divisor for all three Qwen-VL rewards)."""

UNIFIED_REWARD_DIVISOR = 5.0
"""``unifiedreward``: the judge's "Final Score" (1-5) / 5."""

FID_EDGES = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 75.0, 100.0, 125.0, 175.0, 200.0, 300.0, 500.0, 1000.0)
FID_LEVELS = (-1.0, 2.0, 1.8, 1.5, 1.0, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0)
"""``fid``: FID in [0, 2) -> 2.0, [2, 5) -> 1.8, ..., [500, 1000) -> 0.05, >= 1000 -> 0; a negative FID
(impossible unless the statistics are broken) maps to -1 and is rejected by the reward."""


def step_map(values: torch.Tensor, edges: Sequence[float], levels: Sequence[float]) -> torch.Tensor:
    """Piecewise-constant map: ``levels[i]`` for ``edges[i-1] <= v < edges[i]`` (left-closed bins).

    ``levels`` has one more entry than ``edges``: ``levels[0]`` is below the first edge, ``levels[-1]`` at or
    above the last one.
    """
    if len(levels) != len(edges) + 1:
        raise ValueError(f"step_map needs len(levels) == len(edges) + 1, got {len(levels)} and {len(edges)}")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"step_map edges must increase strictly: {edges}")
    boundaries = torch.tensor(edges, dtype=values.dtype, device=values.device)
    table = torch.tensor(levels, dtype=torch.float32, device=values.device)
    return table[torch.bucketize(values, boundaries, right=True)]


def similarity_reward(similarity: torch.Tensor, quantize: bool) -> torch.Tensor:
    """The CLIP/HPS reward from a cosine similarity: binned if ``quantize`` else scaled by 5."""
    similarity = similarity.float()
    if quantize:
        return step_map(similarity, SIMILARITY_EDGES, SIMILARITY_LEVELS)
    return SIMILARITY_SCALE * similarity
