"""``maniqa``: no-reference image quality (MANIQA) through pyiqa, which already works on batched tensors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reward_utils.base import Prompt, RewardFunction
from reward_utils.scaling import MANIQA_SCALE


def load_maniqa(
    metric_name: str = "maniqa",
    device: torch.device | str = "cpu",
    checkpoint: str | None = None,
    crops: int = 20,
) -> torch.nn.Module:
    """``pyiqa.create_metric`` for a MANIQA variant (``maniqa``, ``maniqa-kadid``, ``maniqa-pipal``).

    ``checkpoint`` is a local MANIQA weight file (pyiqa's ``pretrained_model_path``); without it pyiqa
    downloads its default. ``crops`` is MANIQA's ``test_sample``: how many 224x224 crops are averaged per
    image.
    """
    import pyiqa

    options: dict[str, Any] = {"test_sample": crops}
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"MANIQA checkpoint not found: {checkpoint}")
        options["pretrained_model_path"] = checkpoint
    return pyiqa.create_metric(metric_name, device=torch.device(device), as_loss=False, **options)


class ManiqaReward(RewardFunction):
    """2 x the MANIQA score of each image (as upstream); prompts are ignored.

    ``metric`` is a pyiqa ``InferenceModel`` (or anything mapping a ``(B, 3, H, W)`` [0, 1] batch to ``B``
    scores).
    """

    name = "maniqa"

    def __init__(self, metric: torch.nn.Module, scale: float = MANIQA_SCALE):
        self.metric = metric.eval().requires_grad_(False)
        self.scale = scale

    @property
    def device(self) -> torch.device:
        return next(self.metric.parameters()).device

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        # pyiqa asserts the input range; decoded images can overshoot [0, 1] by float error.
        quality = self.metric(images.to(self.device).float().clamp(0, 1))
        return self.scale * quality.reshape(-1).float()
