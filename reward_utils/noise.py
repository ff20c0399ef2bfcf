"""A control reward: standard-normal noise that ignores both the image and the prompt.

GRPO with it measures how far the policy drifts on update noise alone. A real reward's gain means something
only against this baseline: on the offline demo the noise alone took the held-out score from 15.2 to 1.9 in
100 steps (docs/demo.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reward_utils.base import Prompt, RewardFunction


class NoiseReward(RewardFunction):
    name = "noise_control"

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def score(
        self, images: torch.Tensor, prompts: Sequence[Prompt], metadata: Sequence[dict[str, Any]] | None = None
    ) -> torch.Tensor:
        return torch.randn(images.shape[0], generator=self.generator).to(images.device)
