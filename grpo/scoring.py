"""Scoring a rollout with the reward callable: checked, named when wrong, and never a silent zero.

The trainer scores the whole rollout in one call. Only when that fails under ``--on_bad_reward skip_group``
does :func:`score_groups_apart` score each group alone, so one prompt a reward cannot handle costs its group,
not the run; a skipped group is reported, counted and left out of the loss, its rewards NaN in the logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reward_utils.base import check_scores

RewardFn = Callable[[torch.Tensor, list, list], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""(images (B,3,H,W) in [0,1], prompt values, metadata dicts) -> (weighted total (B,), per-function (B,))."""


@dataclass
class Scores:
    total: torch.Tensor  # (B,) fp32, 0 in skipped groups
    parts: dict[str, torch.Tensor]  # (B,) per reward function, NaN in skipped groups
    group_ok: torch.Tensor  # (groups,) bool, False for a skipped group
    errors: list[str]  # why each skipped group was skipped


def checked_rewards(
    reward_fn: RewardFn, images: torch.Tensor, values: list, metadata: list[dict[str, Any]]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reward's (total, parts); a wrong count or non-finite value is reported under its function's name."""
    total, parts = reward_fn(images, values, metadata)
    for name, part in parts.items():
        check_scores(name, part, values)
    return check_scores(f"weighted sum of {' + '.join(parts) or 'rewards'}", total, values), parts


def score_all(
    reward_fn: RewardFn, images: torch.Tensor, values: list, metadata: list[dict[str, Any]], group_size: int
) -> Scores:
    """The whole rollout in one reward call; raises what the reward raises."""
    total, parts = checked_rewards(reward_fn, images, values, metadata)
    device = images.device
    ok = torch.ones(len(values) // group_size, dtype=torch.bool, device=device)
    return Scores(total.to(device), parts, ok, [])


def score_groups_apart(
    reward_fn: RewardFn,
    images: torch.Tensor,
    values: Sequence,
    metadata: list[dict[str, Any]],
    group_size: int,
    context: str,
) -> Scores:
    """One reward call per group; a group whose call fails is skipped (printed with ``context``, e.g. the step)."""
    device = images.device
    totals, parts_per_group, errors = [], [], []
    for start in range(0, len(values), group_size):
        sl = slice(start, start + group_size)
        try:
            total, parts = checked_rewards(reward_fn, images[sl], list(values[sl]), metadata[sl])
            totals.append(total.to(device))
            parts_per_group.append(parts)
        except Exception as error:  # counted and reported, never a silent zero: the group gets no loss
            print(f"[grpo] {context}: skipping the group of prompt {values[start]!r}: {error}")
            errors.append(f"{type(error).__name__}: {error}")
            totals.append(torch.zeros(group_size, device=device))
            parts_per_group.append(None)
    names = next((list(p) for p in parts_per_group if p is not None), [])
    nan = torch.full((group_size,), float("nan"), device=device)
    parts = {
        name: torch.cat([nan if p is None else p[name].to(device).float() for p in parts_per_group]) for name in names
    }
    ok = torch.tensor([p is not None for p in parts_per_group], device=device)
    return Scores(torch.cat(totals), parts, ok, errors)
