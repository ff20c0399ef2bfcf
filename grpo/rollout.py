"""One rollout: what the trainer sampled and scored on this process, everything the update and the logs need."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grpo.prompt_sources import TrainingPrompt


@dataclass(kw_only=True)
class Rollout:
    """Rows are samples, G consecutive rows per prompt (one group). Tensors live on the trainer's device."""

    prompts: list[TrainingPrompt]  # one per group
    cond: torch.Tensor  # one row per sample
    cond_mask: torch.Tensor | None
    tokens: torch.Tensor  # (B, N)
    images: torch.Tensor  # (B, 3, H, W) fp32 in [0, 1]
    rewards: torch.Tensor  # (B,) weighted total, 0 in skipped groups
    reward_parts: dict[str, torch.Tensor]  # (B,) per reward function, NaN in skipped groups
    group_ok: torch.Tensor  # (groups,) False for a group whose reward failed (skip_group)
    tied: torch.Tensor  # (groups,) True where every reward of the group is equal
    advantages: torch.Tensor  # (B,) 0 in skipped groups
    token_mask: torch.Tensor  # (B, N) 0 for samples left out of the loss (skipped or dropped tied groups)
    old_logp: torch.Tensor | None = None  # (B, N), stored only when the rollout is optimised more than once
    ref_logp: torch.Tensor | None = None  # (B, N), only with a KL penalty
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each phase, by name

    @property
    def group_size(self) -> int:
        return self.tokens.shape[0] // len(self.prompts)
