"""The offline demo's reward: the shapes-world evaluator (exact GenEval rules, no weights).

Prompts are captions (t2i, e.g. "a photo of two red circles") or C2I class ids; a metadata row may carry the
parsed ``PromptSpec`` under ``"spec"`` (or a GenEval-style metadata dict), which must then agree with the
prompt. ``mode="dense"`` rewards the fraction of the prompt's requirements met (a shaped signal for GRPO);
``mode="strict"`` rewards GenEval's all-or-nothing correctness. ``mode="tidy"`` is
``min(asked, found) / max(asked, found)`` objects: GenEval's rules ignore extra objects, so a policy
rewarded by them alone learns to scatter blobs until one passes; this term makes clutter cost. It is
symmetric on purpose: a one-sided ``min(1, asked / found)`` paid full marks for a single object whatever the
prompt asked, and GRPO learned to draw one object for two-object prompts (docs/demo.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from demo.evaluator import evaluate_images
from demo.world import PromptSpec, class_spec, parse_caption
from reward_utils.base import Prompt, RewardError, RewardFunction

MODES = ("dense", "strict", "tidy")


class ShapesReward(RewardFunction):
    name = "shapes"

    def __init__(self, mode: str = "dense") -> None:
        if mode not in MODES:
            raise ValueError(f"reward 'shapes': unknown mode {mode!r}; expected one of {MODES}")
        self.mode = mode

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        specs = [self._spec(i, p, None if metadata is None else metadata[i]) for i, p in enumerate(prompts)]
        pixels = images.detach().to("cpu", torch.float32)
        bad = (~torch.isfinite(pixels)).flatten(1).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise RewardError(
                f"reward 'shapes': image #{bad[0]} (prompt {prompts[bad[0]]!r}) has NaN/inf pixels"
            )
        lo, hi = pixels.min().item(), pixels.max().item()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise RewardError(
                f"reward 'shapes': images must lie in [0, 1], got values in [{lo:.3f}, {hi:.3f}]"
            )
        verdicts = evaluate_images(pixels.permute(0, 2, 3, 1).numpy(), specs)
        if self.mode == "tidy":
            values = [min(v.asked, len(v.detections)) / max(v.asked, len(v.detections)) for v in verdicts]
        else:
            values = [v.dense if self.mode == "dense" else float(v.strict) for v in verdicts]
        return torch.tensor(values, dtype=torch.float32, device=images.device)

    def _spec(self, index: int, prompt: Prompt, row: dict[str, Any] | None) -> PromptSpec:
        spec = _spec_from_prompt(index, prompt)
        given = None if row is None else row.get("spec")
        if given is None:
            return spec
        if isinstance(given, dict):
            try:
                given = PromptSpec.from_geneval_metadata(given)
            except ValueError as err:
                raise RewardError(f"reward 'shapes': metadata #{index}: {err}") from err
        if not isinstance(given, PromptSpec):
            raise RewardError(
                f"reward 'shapes': metadata #{index} 'spec' is a {type(given).__name__}, not a PromptSpec"
            )
        if given != spec:
            raise RewardError(
                f"reward 'shapes': metadata #{index} describes {given.caption!r} but the prompt is {prompt!r}"
            )
        return given


def _spec_from_prompt(index: int, prompt: Prompt) -> PromptSpec:
    if isinstance(prompt, str):
        try:
            return parse_caption(prompt)
        except ValueError as err:
            raise RewardError(f"reward 'shapes': prompt #{index}: {err}") from err
    if isinstance(prompt, torch.Tensor) and prompt.ndim == 0 and not prompt.is_floating_point():
        prompt = int(prompt.item())  # a class id taken from a label tensor
    if isinstance(prompt, bool) or not isinstance(prompt, int | np.integer):
        raise RewardError(
            f"reward 'shapes': prompt #{index} {prompt!r} ({type(prompt).__name__}) is no caption or class id"
        )
    try:
        return class_spec(int(prompt))
    except ValueError as err:
        raise RewardError(f"reward 'shapes': prompt #{index}: {err}") from err
