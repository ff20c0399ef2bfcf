"""``mse``: closeness to a per-sample reference image, 2 x (1 - MSE) as upstream (image-to-image tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reward_utils.backend import RewardFactory
from reward_utils.base import Prompt, RewardError, RewardFunction
from reward_utils.scaling import MSE_SCALE

REFERENCE_KEY = "reference"
"""``metadata[i]["reference"]``: a ``(3, H, W)`` float tensor in [0, 1] or a path to an image file."""


def load_reference(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.float()
    if isinstance(value, (str, Path)):
        from torchvision.io import ImageReadMode, decode_image

        path = Path(value)
        if not path.is_file():
            raise RewardError(f"{where}: reference image not found: {path}")
        try:
            return decode_image(str(path), mode=ImageReadMode.RGB).float() / 255.0
        except RuntimeError as err:
            raise RewardError(f"{where}: cannot decode reference image {path}: {err}") from err
    raise RewardError(
        f"{where}: metadata[{REFERENCE_KEY!r}] must be a tensor or an image path, got {type(value).__name__}"
    )


class MSEReward(RewardFunction):
    """Mean squared error over pixels in [0, 1] against ``metadata[i]["reference"]`` (same size required)."""

    name = "mse"
    device = None

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        rewards = []
        for i, image in enumerate(images):
            where = f"reward {self.name!r}, prompt #{i} {prompts[i]!r}"
            if metadata is None or REFERENCE_KEY not in metadata[i]:
                raise RewardError(f"{where}: needs metadata[{i}][{REFERENCE_KEY!r}] (the reference image)")
            reference = load_reference(metadata[i][REFERENCE_KEY], where).to(image.device)
            if reference.shape != image.shape:
                raise RewardError(
                    f"{where}: reference shape {tuple(reference.shape)} differs from image shape"
                    f" {tuple(image.shape)}"
                )
            rewards.append(MSE_SCALE * (1.0 - torch.mean((image.float() - reference) ** 2)))
        return torch.stack(rewards)


REWARDS: dict[str, RewardFactory] = {"mse": lambda options, cache: MSEReward()}
