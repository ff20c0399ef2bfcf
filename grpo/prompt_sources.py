"""Where each training step's prompts come from, reproducibly.

A step's prompts depend only on (seed, rollout index): never on how many processes share the work or on
whether the run was resumed. That is what makes multi-process runs equal single-process ones and resumed
runs equal uninterrupted ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from autoregressive.models.seeding import folded_generator
from dataset.imagenet import class_ids_for_step

ORDER_STREAM = 2
"""Key prefix of the prompt-order streams, ``(seed, ORDER_STREAM, epoch)``; sample seeds use another prefix."""


@dataclass
class TrainingPrompt:
    """``value`` is a class id (c2i) or a caption (t2i); ``metadata`` reaches the rewards unchanged."""

    value: int | str
    metadata: dict[str, Any] = field(default_factory=dict)


class PromptSource(Protocol):
    def batch(self, index: int, size: int) -> list[TrainingPrompt]:
        """The ``size`` prompts of rollout ``index`` (the same on every process)."""


class ClassPrompts:
    """Class ids drawn uniformly (seeded), or drawn from a given label list (e.g. an ImageNet folder)."""

    def __init__(
        self,
        num_classes: int,
        seed: int,
        labels: Sequence[int] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
    ):
        self.num_classes, self.seed = num_classes, seed
        self.labels, self.metadata = labels, metadata

    def batch(self, index: int, size: int) -> list[TrainingPrompt]:
        if self.labels is None:
            return [TrainingPrompt(i) for i in class_ids_for_step(self.seed, index, size, self.num_classes)]
        rows = class_ids_for_step(self.seed, index, size, len(self.labels))
        return [
            TrainingPrompt(int(self.labels[r]), dict(self.metadata[r]) if self.metadata else {}) for r in rows
        ]


class ListPrompts:
    """Walks a prompt list epoch by epoch, in a fresh seeded order each epoch."""

    def __init__(self, prompts: Sequence[TrainingPrompt], seed: int):
        if not prompts:
            raise ValueError("the prompt list is empty")
        self.prompts, self.seed = list(prompts), seed
        self._order_cache: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._order_cache:
            generator = folded_generator(self.seed, ORDER_STREAM, epoch)
            self._order_cache = {epoch: torch.randperm(len(self.prompts), generator=generator).tolist()}
        return self._order_cache[epoch]

    def batch(self, index: int, size: int) -> list[TrainingPrompt]:
        out = []
        for pos in range(index * size, (index + 1) * size):
            epoch, offset = divmod(pos, len(self.prompts))
            out.append(self.prompts[self._order(epoch)[offset]])
        return out

