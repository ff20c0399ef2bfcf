"""The ``clip_*`` and ``hpsv2*`` rewards: a scorer's image-text similarity on class names or captions, raw or
quantised. CLIP and HPS differ only in the scorer they hand in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from reward_utils.base import Prompt, ScorerReward
from reward_utils.prompt_text import PromptKind, prompt_texts
from reward_utils.scaling import similarity_reward


class SimilarityScorer(Protocol):
    """A loaded image-text model: normalised image and text features, their dot product per pair."""

    @property
    def device(self) -> torch.device: ...

    def similarity(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor: ...


class SimilarityReward(ScorerReward):
    """``name`` scores ``scorer``'s similarity of each image to its prompt's text (``prompt_kind``)."""

    def __init__(self, scorer: SimilarityScorer, prompt_kind: PromptKind, quantize: bool, name: str):
        self.scorer, self.prompt_kind, self.quantize, self.name = scorer, prompt_kind, quantize, name

    def similarity(self, images: torch.Tensor, prompts: Sequence[Prompt]) -> torch.Tensor:
        return self.scorer.similarity(images, prompt_texts(self.name, prompts, self.prompt_kind))

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        return similarity_reward(self.similarity(images, prompts), self.quantize)
