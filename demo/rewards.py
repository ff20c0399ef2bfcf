"""The offline demo's rewards ``shapes``, ``shapes_strict``, ``shapes_tidy``, ``shapes_clean``, ``shapes_exact``
and ``shapes_colour``: the shapes-world evaluator (exact GenEval rules, no weights).

They belong to the demo, not to ``reward_utils/`` (rewards see images and prompts only and import nothing of the
demo), so this module registers them with the reward registry itself, through ``register_reward``, when it is
imported. Whatever can be asked for ``--reward_funcs shapes_*`` imports it: the training entry points
(``train_c2i.py``, ``train_t2i.py``; the demo trains through them) import it next to the registry, and a test
or script that builds a shapes reward imports ``demo.rewards`` first. The registry itself never imports it.

Prompts are captions (t2i, e.g. "a photo of two red circles") or C2I class ids; a metadata row may carry the
parsed ``PromptSpec`` under ``"spec"`` (or a GenEval-style metadata dict), which must then agree with the
prompt. ``mode="dense"`` rewards the fraction of the prompt's requirements met (a shaped signal for GRPO);
``mode="strict"`` rewards GenEval's all-or-nothing correctness. ``mode="tidy"`` is
``min(asked, found) / max(asked, found)`` objects: GenEval's rules ignore extra objects, so a policy
rewarded by them alone learns to scatter blobs until one passes; this term makes clutter cost. It is
symmetric on purpose: a one-sided ``min(1, asked / found)`` paid full marks for a single object whatever the
prompt asked, and GRPO learned to draw one object for two-object prompts (docs/demo.md).

``mode="clean"`` is ``precision² × recall`` of the objects: ``matched`` counts detections of the asked shape
*and* colour, up to the asked number; precision = matched / found, recall = matched / asked. It is graded (one
of two asked objects earns 1/2), yet a wrong object earns nothing, and clutter never pays even as a lottery:
with k objects of which each is right by chance with probability q, the expected reward falls like q / k.
(``dense × tidy`` paid as much for one wrong-coloured object as for the right one beside a fragment, and the
F1 score ``2 matched / (asked + found)`` stays near 2q whatever k: under both, t2i GRPO drew more objects,
docs/demo.md.)
``mode="exact"`` is the clutter-free verdict itself (GenEval-correct with nothing
else in the image), the demo's headline metric as a 0/1 reward. ``mode="colour"`` is the fraction of the image's
pixels in the colour the prompt names (single-colour prompts only): a reward every colour can learn quickly,
used to test that GRPO learns a prompt-dependent reward at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from demo.detect import Detection, colour_map
from demo.evaluator import Verdict, evaluate_images
from demo.world import COLOUR_NAMES, PromptSpec, class_spec, parse_caption
from img_gen_grpo_rewards import register_reward
from reward_utils.backend import BackendOptions, ModelCache
from reward_utils.base import Prompt, RewardError, RewardFunction

MODES = ("dense", "strict", "tidy", "clean", "exact", "colour")


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
        channel_last = pixels.permute(0, 2, 3, 1).numpy()
        if self.mode == "colour":
            values = _colour_fractions(channel_last, specs, prompts)
        else:
            verdicts = evaluate_images(channel_last, specs)
            values = [_verdict_value(v, spec, self.mode) for v, spec in zip(verdicts, specs, strict=True)]
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


def _verdict_value(verdict: Verdict, spec: PromptSpec, mode: str) -> float:
    found = len(verdict.detections)
    if mode == "tidy":
        return min(verdict.asked, found) / max(verdict.asked, found)
    if mode == "clean":
        matched = matched_objects(spec, verdict.detections)
        return (matched / found) ** 2 * matched / verdict.asked if found else 0.0
    return {"dense": verdict.dense, "strict": float(verdict.strict), "exact": float(verdict.exact)}[mode]


def matched_objects(spec: PromptSpec, detections: Sequence[Detection]) -> int:
    """Detections that fill an asked object (its shape, and its colour if named), each used once, largest
    first; requirements that name a colour choose before those that do not."""
    free = sorted(detections, key=lambda d: -d.area)
    matched = 0
    for req in sorted(spec.include, key=lambda r: r.colour is None):
        fits = [d for d in free if d.shape == req.shape and req.colour in (None, d.colour)][: req.count]
        for d in fits:
            free.remove(d)
        matched += len(fits)
    return matched


def _colour_fractions(images: np.ndarray, specs: list[PromptSpec], prompts: Sequence[Prompt]) -> list[float]:
    """Fraction of each image's pixels whose palette colour is the one its prompt names."""
    wanted = []
    for i, spec in enumerate(specs):
        colours = {req.colour for req in spec.include}
        if len(colours) != 1 or None in colours:
            raise RewardError(f"reward 'shapes_colour': prompt #{i} {prompts[i]!r} does not name exactly one colour")
        wanted.append(COLOUR_NAMES.index(colours.pop()))
    palette_index = colour_map(images)
    return (palette_index == np.array(wanted)[:, None, None]).mean(axis=(1, 2)).tolist()


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


REWARD_MODES = {
    "shapes": "dense",
    "shapes_strict": "strict",
    "shapes_tidy": "tidy",
    "shapes_clean": "clean",
    "shapes_exact": "exact",
    "shapes_colour": "colour",
}
"""Registered reward name -> :class:`ShapesReward` mode."""


def _shapes_factory(name: str, mode: str):
    def build(options: BackendOptions, cache: ModelCache) -> ShapesReward:  # no weights, no options
        reward = ShapesReward(mode)
        reward.name = name
        return reward

    return build


for _name, _mode in REWARD_MODES.items():
    register_reward(_name, _shapes_factory(_name, _mode))
