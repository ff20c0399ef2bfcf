"""Group-relative advantages and the in-group statistics users need to watch (ties, diversity)."""

from __future__ import annotations

import torch

SCALE_MODES = ("group", "batch", "none")


def group_advantages(
    rewards: torch.Tensor,
    num_generations: int,
    scale_rewards: str = "group",
    eps: float = 1e-4,
    batch_std: torch.Tensor | float | None = None,
    tie_tolerance: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r - group mean) / (std + eps) for rewards laid out group after group.

    ``scale_rewards``: ``group`` divides by the group's std (GRPO), ``batch`` by the std of the whole batch
    (pass ``batch_std`` computed over all processes), ``none`` does not divide (Dr. GRPO). Returns the
    advantages (B,) and a per-group bool (B/G,) marking groups whose rewards all tie (zero signal).
    """
    if scale_rewards not in SCALE_MODES:
        raise ValueError(f"scale_rewards must be one of {SCALE_MODES}, got {scale_rewards!r}")
    if rewards.ndim != 1 or rewards.numel() % num_generations:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {num_generations}")
    groups = rewards.float().view(-1, num_generations)
    centred = groups - groups.mean(dim=1, keepdim=True)
    tied = (groups.max(dim=1).values - groups.min(dim=1).values) <= tie_tolerance
    if scale_rewards == "group":
        std = groups.std(dim=1, keepdim=True, unbiased=num_generations > 1)
        centred = centred / (std + eps)
    elif scale_rewards == "batch":
        std = rewards.float().std() if batch_std is None else torch.as_tensor(batch_std, dtype=torch.float32)
        centred = centred / (std + eps)
    centred = centred.masked_fill(tied[:, None], 0.0)  # no signal, and never 0/0 when eps is 0
    return centred.flatten(), tied


def in_group_diversity(tokens: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Mean over groups of the mean pairwise fraction of differing tokens (0 = all samples identical)."""
    if num_generations < 2:
        return torch.zeros((), device=tokens.device)
    groups = tokens.view(-1, num_generations, tokens.shape[-1])
    differ = (groups[:, :, None, :] != groups[:, None, :, :]).float().mean(-1)  # (P, G, G)
    off_diagonal = num_generations * (num_generations - 1)
    return (differ.sum(dim=(1, 2)) / off_diagonal).mean()
