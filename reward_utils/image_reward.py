"""``imagereward``: ImageReward-v1.0 (BLIP ViT-L + BERT cross-attention + MLP), batched on tensors.

The package scores one PIL image at a time (``ImageReward.score`` / ``inference_rank``); this runs the same
modules on the whole batch: its transform (bicubic shortest side 224, centre crop, CLIP normalisation), the
BLIP visual encoder, the text encoder cross-attending to the image, the MLP and the published mean/std.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from autoregressive.checkpoint import CheckpointError, read_state_dict
from reward_utils.backend import BackendOptions, ModelCache, RewardFactory, option
from reward_utils.base import Prompt, RewardFunction
from reward_utils.prompt_text import prompt_texts
from reward_utils.tensor_transforms import ImageTransform

IMAGE_REWARD_TEXT_LENGTH = 35
"""``ImageReward.score`` pads / truncates prompts to 35 tokens."""
MED_CONFIG_URL = "https://huggingface.co/THUDM/ImageReward/blob/main/med_config.json"
_DEFAULT_ROOT = os.path.expanduser("~/.cache/ImageReward")  # the package's own download folder
_REBUILT_BUFFERS = ("position_ids",)  # recomputed at construction (arange); older checkpoints may lack them


def image_reward_weights_path(name_or_path: str, download_root: str | None = None) -> Path:
    """A released name (downloaded once by the package, not read) or a local ``ImageReward.pt``."""
    from ImageReward.utils import _MODELS, ImageReward_download

    if name_or_path in _MODELS:
        return Path(ImageReward_download(_MODELS[name_or_path], download_root or _DEFAULT_ROOT))
    if not Path(name_or_path).is_file():
        raise FileNotFoundError(f"ImageReward checkpoint not found: {name_or_path} (released: {sorted(_MODELS)})")
    return Path(name_or_path)


def load_image_reward(
    name_or_path: str = "ImageReward-v1.0",
    device: torch.device | str = "cpu",
    med_config: str | None = None,
    download_root: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """The package's model, with its weights read here: ``ImageReward.load`` unpickles with the torch
    default (full pickle under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) and loads with ``strict=False``. The file is
    read weights-only before anything is built, and every weight must be present. BLIP is then cast to
    ``dtype``; the score head (the MLP, under 1 M parameters) stays float32."""
    import ImageReward
    from ImageReward.utils import ImageReward_download

    path = image_reward_weights_path(name_or_path, download_root)
    state = read_state_dict(path)  # refuses pickled objects; errors name the file
    if med_config is None:
        med_config = ImageReward_download(MED_CONFIG_URL, download_root or _DEFAULT_ROOT)
    model = ImageReward.ImageReward(device=device, med_config=med_config).to(device)
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith(_REBUILT_BUFFERS)]
    if missing:
        raise CheckpointError(
            f"{path}: not ImageReward weights: {len(missing)} missing key(s), e.g. {', '.join(missing[:5])}"
        )
    if result.unexpected_keys:
        unused = result.unexpected_keys
        print(f"[imagereward] {path}: ignoring {len(unused)} unused entries, e.g. {', '.join(unused[:3])}")
    model.blip.to(dtype=dtype)
    return model.eval()


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


@dataclass
class ImageRewardOptions(BackendOptions):
    PATHS: ClassVar[dict[str, str]] = {"imagereward_model": "pt_file", "imagereward_med_config": "file"}

    imagereward_model: str = option("ImageReward-v1.0", "ImageReward release name or local ImageReward.pt")
    imagereward_med_config: str | None = option(None, "local med_config.json for ImageReward (default: download)")


def _imagereward(o: ImageRewardOptions, cache: ModelCache) -> RewardFunction:
    key = ("imagereward", o.imagereward_model, o.imagereward_med_config, str(o.device()), o.dtype())
    return ImageRewardReward(
        cache.get(
            key,
            lambda: load_image_reward(o.imagereward_model, o.device(), o.imagereward_med_config, dtype=o.dtype()),
        )
    )


OPTIONS = ImageRewardOptions
REWARDS: dict[str, RewardFactory] = {"imagereward": _imagereward}
