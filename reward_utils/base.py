"""The contract every reward backend follows.

The trainer and the evaluation scripts hand a reward a batch of decoded images and the prompts that produced
them; the reward answers one float per image. Backends never see models or trainer state, so any of them can
be reused for evaluation (DrawBench) or swapped for a user's own callable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

Prompt = int | str
"""A class id (c2i) or a caption (t2i)."""


class RewardError(RuntimeError):
    """A reward backend failed or answered something unusable; the message names the backend and the prompt."""


class RewardFunction(ABC):
    """One scalar reward per image.

    Subclasses load their model(s) once in ``__init__`` and implement :meth:`score`. ``images`` is a float
    tensor ``(B, 3, H, W)`` in ``[0, 1]`` on any device; ``prompts`` has ``B`` entries; ``metadata`` (optional,
    ``B`` dicts) carries per-sample extras such as GenEval's metadata line or a reference image path.
    """

    name: str = "reward"

    @abstractmethod
    def score(
        self, images: torch.Tensor, prompts: Sequence[Prompt], metadata: Sequence[dict[str, Any]] | None = None
    ) -> torch.Tensor:
        """Return a float tensor of shape ``(B,)``."""

    @torch.no_grad()
    def __call__(
        self, images: torch.Tensor, prompts: Sequence[Prompt], metadata: Sequence[dict[str, Any]] | None = None
    ) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise RewardError(f"reward {self.name!r}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        if len(prompts) != images.shape[0]:
            raise RewardError(f"reward {self.name!r}: {images.shape[0]} images but {len(prompts)} prompts")
        if metadata is not None and len(metadata) != len(prompts):
            raise RewardError(f"reward {self.name!r}: {len(prompts)} prompts but {len(metadata)} metadata rows")
        scores = self.score(images, prompts, metadata)
        return check_scores(self.name, scores, prompts)


class ScorerReward(RewardFunction):
    """A reward computed by a loaded scorer (CLIP, HPS) that may be shared with other rewards: it runs on the
    scorer's device."""

    scorer: Any

    @property
    def device(self) -> torch.device:
        return self.scorer.device


def check_scores(name: str, scores: Any, prompts: Sequence[Prompt]) -> torch.Tensor:
    """Reject a wrong count or a non-finite value loudly: a silent zero would poison the advantages."""
    scores = torch.as_tensor(scores, dtype=torch.float32)
    if scores.ndim != 1 or scores.shape[0] != len(prompts):
        raise RewardError(
            f"reward {name!r} returned shape {tuple(scores.shape)} for {len(prompts)} prompts; "
            f"expected ({len(prompts)},)"
        )
    bad = (~torch.isfinite(scores)).nonzero().flatten().tolist()
    if bad:
        i = bad[0]
        raise RewardError(
            f"reward {name!r} returned {scores[i].item()} for prompt #{i} {prompts[i]!r}"
            f" ({len(bad)} non-finite value(s) in the batch)"
        )
    return scores
