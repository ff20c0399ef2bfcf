"""CLIP-family rewards through Hugging Face transformers: ``clip_*`` (cosine similarity) and ``pickscore``.

One :class:`HFClipScorer` wraps a ``CLIPModel`` + tokenizer + the processor's transform; plain and quantized
variants (and the aesthetic predictor, which reads the same ViT-L/14 image embeddings) share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from reward_utils.backend import BackendOptions, ModelCache, RewardFactory, option, similarity_variants
from reward_utils.base import Prompt, RewardFunction, ScorerReward
from reward_utils.prompt_text import PromptKind, prompt_texts
from reward_utils.scaling import PICKSCORE_DIVISOR
from reward_utils.similarity import SimilarityReward
from reward_utils.tensor_transforms import ImageTransform, transform_from_hf_processor


class HFClipScorer:
    """Batched CLIP image/text embeddings on the model's device.

    ``tokenizer`` is any Hugging Face tokenizer for the model; ``transform`` reproduces the model's image
    processor on tensors (see :func:`transform_from_hf_processor`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        transform: ImageTransform,
        max_text_length: int = 77,
        chunk_size: int = 16,
    ):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.transform = transform
        self.max_text_length = max_text_length
        self.chunk_size = chunk_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings ``(B, D)`` (float32).

        Works through the batch ``chunk_size`` images at a time: preprocessing stays in cache on CPU and the
        activation memory stays bounded on GPU, while each chunk is still one batched forward.
        """
        chunks = []
        for chunk in images.split(self.chunk_size):
            pixels = self.transform(chunk.to(self.device), dtype=self.dtype)
            chunks.append(self.model.get_image_features(pixel_values=pixels))
        return _normalise(torch.cat(chunks))

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``(len(texts), D)``; each distinct text is encoded once.

        GRPO scores a group of images per prompt, so a batch holds few distinct texts.
        """
        unique = list(dict.fromkeys(texts))
        tokens = self.tokenizer(
            unique, padding=True, truncation=True, max_length=self.max_text_length, return_tensors="pt"
        ).to(self.device)
        features = _normalise(self.model.get_text_features(**tokens))
        index = torch.tensor([unique.index(t) for t in texts], device=features.device)
        return features[index]

    def similarity(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Cosine similarity ``(B,)`` of each image to its text."""
        return (self.image_embeddings(images) * self.text_embeddings(texts)).sum(-1)


def _normalise(features: torch.Tensor) -> torch.Tensor:
    features = features.float()
    return features / features.norm(dim=-1, keepdim=True)


def load_hf_clip(
    model_id: str,
    device: torch.device | str,
    processor_id: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> HFClipScorer:
    """Load a CLIP model (hub id or local directory) in ``dtype`` and its tokenizer / image processor config.

    ``processor_id`` is for models published without their own processor files (PickScore uses the LAION
    ViT-H-14 processor).
    """
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    processor_id = processor_id or model_id
    # never a pickled .bin; read straight into ``dtype`` (no float32 copy on the way)
    model = CLIPModel.from_pretrained(model_id, use_safetensors=True, torch_dtype=dtype).to(device)
    tokenizer = AutoTokenizer.from_pretrained(processor_id)
    image_processor = CLIPImageProcessor.from_pretrained(processor_id)
    return HFClipScorer(model, tokenizer, transform_from_hf_processor(image_processor))


class PickScoreReward(ScorerReward):
    """``pickscore``: PickScore_v1 logit (``logit_scale * cosine``) / 26, captions only."""

    name = "pickscore"

    def __init__(self, scorer: HFClipScorer):
        self.scorer = scorer

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        cosine = self.scorer.similarity(images, prompt_texts(self.name, prompts, "caption"))
        logit_scale = self.scorer.model.logit_scale.exp().float()
        return logit_scale * cosine / PICKSCORE_DIVISOR


@dataclass
class ClipOptions(BackendOptions):
    PATHS: ClassVar[dict[str, str]] = {"clip_model": "dir", "pickscore_model": "dir", "pickscore_processor": "dir"}

    clip_model: str = option("openai/clip-vit-large-patch14", "hub id or local dir of the CLIP model for clip_*")
    pickscore_model: str = option("yuvalkirstain/PickScore_v1", "hub id or local dir of PickScore")
    pickscore_processor: str = option(
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "hub id or local dir holding PickScore's tokenizer/processor"
    )


def shared_hf_clip(
    options: BackendOptions, cache: ModelCache, model_id: str, processor_id: str | None = None
) -> HFClipScorer:
    """One scorer per model, processor, device and dtype for every reward that reads it (aesthetic included)."""
    device, dtype = options.device(), options.dtype()
    key = ("hf_clip", model_id, processor_id, str(device), dtype)
    return cache.get(key, lambda: load_hf_clip(model_id, device, processor_id, dtype))


def _clip_factory(name: str, prompt_kind: PromptKind, quantize: bool) -> RewardFactory:
    def build(options: ClipOptions, cache: ModelCache) -> RewardFunction:
        return SimilarityReward(shared_hf_clip(options, cache, options.clip_model), prompt_kind, quantize, name)

    return build


def _pickscore(options: ClipOptions, cache: ModelCache) -> RewardFunction:
    return PickScoreReward(shared_hf_clip(options, cache, options.pickscore_model, options.pickscore_processor))


OPTIONS = ClipOptions
REWARDS: dict[str, RewardFactory] = {
    **similarity_variants(("clip_distance", "clip_quantize", "clip_text", "clip_text_quantize"), _clip_factory),
    "pickscore": _pickscore,
}
