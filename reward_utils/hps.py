"""``hpsv2*`` rewards: Human Preference Score v2 / v2.1 through the ``hpsv2`` package's OpenCLIP copy.

The HPS checkpoint holds the whole fine-tuned CLIP, so the model is built with ``pretrained=None`` and the
checkpoint loaded on top (the package's own ``score()`` first fetches the 3.9 GB LAION weights it then
overwrites).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from autoregressive.checkpoint import read_torch_file
from reward_utils.backend import BackendOptions, ModelCache, RewardFactory, option, similarity_variants
from reward_utils.base import RewardFunction
from reward_utils.prompt_text import PromptKind
from reward_utils.similarity import SimilarityReward
from reward_utils.tensor_transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImageTransform

HPS_CHECKPOINTS = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
HPS_HUB_REPO = "xswu/HPSv2"


class HPSScorer:
    """Batched HPS: normalised OpenCLIP image/text features, score = their dot product.

    ``transform`` mirrors hpsv2's validation transform (longest side to the model size, zero padding,
    normalise); unlike the package it runs on the float batch, skipping the 8-bit PIL detour.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Callable[[list[str]], torch.Tensor],
        transform: ImageTransform,
    ):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.transform = transform

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def similarity(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        pixels = self.transform(images.to(self.device), dtype=dtype)
        image_features = self.model.encode_image(pixels, normalize=True).float()
        unique = list(dict.fromkeys(texts))
        text_features = self.model.encode_text(self.tokenizer(unique).to(self.device), normalize=True).float()
        index = torch.tensor([unique.index(t) for t in texts], device=self.device)
        return (image_features * text_features[index]).sum(-1)


def hps_transform(model: torch.nn.Module) -> ImageTransform:
    """hpsv2's validation transform (``resize_longest_max=True``) for ``model``, as an ImageTransform."""
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = getattr(model.visual, "image_mean", None) or OPENAI_CLIP_MEAN
    std = getattr(model.visual, "image_std", None) or OPENAI_CLIP_STD
    return ImageTransform(size=int(size), mean=tuple(mean), std=tuple(std), resize="longest", eight_bit=False)


def load_hps(
    version: str = "v2.1",
    checkpoint: str | None = None,
    device: torch.device | str = "cpu",
    arch: str = "ViT-H-14",
    dtype: torch.dtype = torch.float32,
) -> HPSScorer:
    """Build hpsv2's OpenCLIP ``arch``, load the HPS checkpoint (local path, or from the hub) and cast the
    weights to ``dtype``."""
    from hpsv2.src.open_clip import create_model_and_transforms, get_tokenizer

    if version not in HPS_CHECKPOINTS:
        raise ValueError(f"unknown HPS version {version!r}; choose one of {sorted(HPS_CHECKPOINTS)}")
    if checkpoint is None:
        import huggingface_hub

        checkpoint = huggingface_hub.hf_hub_download(HPS_HUB_REPO, HPS_CHECKPOINTS[version])
    elif not Path(checkpoint).is_file():
        raise FileNotFoundError(f"HPS checkpoint not found: {checkpoint}")
    state = read_torch_file(checkpoint)  # weights-only, before the model is built; errors name the file
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"{checkpoint} is not an HPS checkpoint (expected a dict with 'state_dict')")
    model, _, _ = create_model_and_transforms(
        arch, None, precision="amp", device=device, output_dict=True, light_augmentation=True
    )
    model.load_state_dict(state["state_dict"])
    model = model.to(device=device, dtype=dtype)
    return HPSScorer(model, get_tokenizer(arch), hps_transform(model))


@dataclass
class HPSOptions(BackendOptions):
    PATHS: ClassVar[dict[str, str]] = {"hps_checkpoint": "file"}

    hps_version: str = option("v2.1", "HPS checkpoint version", choices=("v2.0", "v2.1"))
    hps_checkpoint: str | None = option(None, "local HPS checkpoint (default: download from xswu/HPSv2)")
    hps_arch: str = option("ViT-H-14", "OpenCLIP architecture of the HPS model (hpsv2 model config name)")


def _hps_factory(name: str, prompt_kind: PromptKind, quantize: bool) -> RewardFactory:
    def build(o: HPSOptions, cache: ModelCache) -> RewardFunction:
        key = ("hps", o.hps_version, o.hps_checkpoint, o.hps_arch, str(o.device()), o.dtype())
        scorer = cache.get(key, lambda: load_hps(o.hps_version, o.hps_checkpoint, o.device(), o.hps_arch, o.dtype()))
        return SimilarityReward(scorer, prompt_kind, quantize, name)

    return build


OPTIONS = HPSOptions
REWARDS: dict[str, RewardFactory] = similarity_variants(
    ("hpsv2", "hpsv2_quantize", "hpsv2_text", "hpsv2_text_quantize"), _hps_factory
)
