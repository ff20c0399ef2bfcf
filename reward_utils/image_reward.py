"""``imagereward``: ImageReward-v1.0 (BLIP ViT-L + BERT cross-attention + MLP), batched on tensors.

The package scores one PIL image at a time (``ImageReward.score`` / ``inference_rank``); this runs the same
modules on the whole batch: its transform (bicubic shortest side 224, centre crop, CLIP normalisation), the
BLIP visual encoder, the text encoder cross-attending to the image, the MLP and the published mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reward_utils.base import Prompt, RewardFunction
from reward_utils.prompts import prompt_texts
from reward_utils.tensor_transforms import ImageTransform

IMAGE_REWARD_TEXT_LENGTH = 35
"""``ImageReward.score`` pads / truncates prompts to 35 tokens."""


def load_image_reward(
    name_or_path: str = "ImageReward-v1.0",
    device: torch.device | str = "cpu",
    med_config: str | None = None,
    download_root: str | None = None,
) -> torch.nn.Module:
    """The package's own loader: a released name (downloaded) or a local ``ImageReward.pt``."""
    import ImageReward

    return ImageReward.load(name_or_path, device=device, download_root=download_root, med_config=med_config)


class ImageRewardReward(RewardFunction):
    """Wraps an already-built ``ImageReward.ImageReward`` module; captions only."""

    name = "imagereward"

    def __init__(self, model: torch.nn.Module, image_size: int = 224):
        self.model = model.eval().requires_grad_(False)
        self.transform = ImageTransform(size=image_size, crop=image_size, eight_bit=True)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        blip = self.model.blip
        device = self.device
        texts = prompt_texts(self.name, prompts, "caption")
        tokens = blip.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=IMAGE_REWARD_TEXT_LENGTH,
            return_tensors="pt",
        ).to(device)
        pixels = self.transform(images.to(device), dtype=next(blip.visual_encoder.parameters()).dtype)
        image_embeds = blip.visual_encoder(pixels)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=device)
        text_output = blip.text_encoder(
            tokens.input_ids,
            attention_mask=tokens.attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
            return_dict=True,
        )
        features = text_output.last_hidden_state[:, 0, :].float()
        rewards = self.model.mlp(features).squeeze(-1)
        return (rewards - self.model.mean) / self.model.std
