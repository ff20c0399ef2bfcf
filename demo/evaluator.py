"""GenEval's rules, applied exactly to the objects ``demo.detect`` finds in a shapes-world image.

A verdict lists every requirement of the prompt as a pass/fail check. ``strict`` is GenEval's "correct"
(all checks pass) and is the demo's metric; ``dense`` (fraction of checks passed) is its shaped reward.
``geneval_style_report`` summarises verdicts as GenEval does: accuracy per tag, overall = their mean.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from demo.detect import Detection, detect
from demo.world import TAGS, ObjectReq, PromptSpec, relative_position


@dataclass(frozen=True)
class Check:
    """One GenEval requirement: ``kind`` is count | colour | position | exclude | present."""

    kind: str
    description: str
    passed: bool


@dataclass(frozen=True)
class Verdict:
    tag: str
    caption: str
    checks: tuple[Check, ...]
    detections: tuple[Detection, ...]
    asked: int  # objects the prompt asks for

    @property
    def strict(self) -> bool:
        """GenEval's ``correct``: every requirement holds."""
        return all(c.passed for c in self.checks)

    @property
    def exact(self) -> bool:
        """Correct with nothing else in the image: GenEval ignores extra objects, this does not."""
        return self.strict and len(self.detections) == self.asked

    @property
    def dense(self) -> float:
        """Fraction of requirements met, in [0, 1]: the demo's shaped reward."""
        return sum(c.passed for c in self.checks) / len(self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def _describe(req: ObjectReq) -> str:
    return " ".join(([req.colour] if req.colour else []) + [req.shape]) + (
        f" x{req.count}" if req.count > 1 else ""
    )


def _matches(det: Detection, req: ObjectReq) -> bool:
    return det.shape == req.shape and (req.colour is None or det.colour == req.colour)


def evaluate(spec: PromptSpec, detections: Sequence[Detection]) -> Verdict:
    """Apply GenEval's rules to the detections of one image.

    As in GenEval, include requirement *i* takes the first ``count`` objects of its shape ("found"); the
    count check needs ``count`` of them, the colour check needs them all of the named colour, and a position
    check needs every found object to stand in the relation to every object found for the target, both
    groups having passed their own checks. Exclude requirements fail on ``count`` or more matching objects.
    GenEval takes the most confident detections of the class, whatever their colour; here the largest objects
    stand in for the most confident, so "a red circle" beside a larger blue circle fails, as in GenEval, and
    scattering extra objects in every colour does not pass a colour check. For counts above one a dense-only
    "present" check (at least one matching object) grades partial counts; it never changes ``strict``.
    """
    checks: list[Check] = []
    groups: list[list[Detection] | None] = []
    for req in spec.include:
        candidates = sorted((d for d in detections if d.shape == req.shape), key=lambda d: -d.area)
        found = candidates[: req.count]
        name = _describe(req)
        if req.count > 1:
            checks.append(Check("present", f"at least one {name}", any(_matches(d, req) for d in detections)))
        matched = len(found) >= req.count
        checks.append(Check("count", f"{req.shape}: found {len(candidates)}, need >= {req.count}", matched))
        if req.colour is not None:
            colour_ok = matched and all(d.colour == req.colour for d in found)
            checks.append(Check("colour", f"{name}: {[d.colour for d in found]}", colour_ok))
            matched = matched and colour_ok
        if req.position is not None:
            relation, target_index = req.position
            target = groups[target_index]
            ok = (
                matched
                and target is not None
                and all(relation in relative_position(d.box, t.box) for d in found for t in target)
            )
            checks.append(Check("position", f"{name} {relation} {_describe(spec.include[target_index])}", ok))
            matched = matched and ok
        groups.append(found if matched else None)
    for req in spec.exclude:
        n = sum(_matches(d, req) for d in detections)
        checks.append(Check("exclude", f"{_describe(req)}: found {n}, need < {req.count}", n < req.count))
    return Verdict(spec.tag, spec.caption, tuple(checks), tuple(detections), spec.num_objects)


def evaluate_images(images: np.ndarray, specs: Sequence[PromptSpec]) -> list[Verdict]:
    """Verdicts for a batch: ``images`` uint8 or float channel-last, one spec per image."""
    detections = detect(images)
    if len(detections) != len(specs):
        raise ValueError(f"{len(detections)} images but {len(specs)} prompt specs")
    return [evaluate(spec, dets) for spec, dets in zip(specs, detections)]


def geneval_style_report(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """GenEval's summary: accuracy per tag and overall = mean of the per-tag accuracies (plus dense means)."""
    if not verdicts:
        raise ValueError("no verdicts to summarise")
    totals: Counter[str] = Counter(v.tag for v in verdicts)
    per_tag = {}
    for tag in [t for t in TAGS if t in totals]:
        group = [v for v in verdicts if v.tag == tag]
        correct = sum(v.strict for v in group)
        per_tag[tag] = {
            "accuracy": correct / len(group),
            "correct": correct,
            "total": len(group),
            "dense": float(np.mean([v.dense for v in group])),
            "exact": sum(v.exact for v in group) / len(group),
        }
    return {
        "per_tag": per_tag,
        "overall": float(np.mean([r["accuracy"] for r in per_tag.values()])),
        "overall_dense": float(np.mean([r["dense"] for r in per_tag.values()])),
        # the same mean over tags, counting an image only if it also holds no extra object (clutter-proof)
        "overall_exact": float(np.mean([r["exact"] for r in per_tag.values()])),
        "num_images": len(verdicts),
    }


def paired_gain(before: Sequence[float], after: Sequence[float]) -> dict[str, float]:
    """Mean per-sample change between two evaluations of the *same* prompts and seeds, with its standard error.

    Pairing removes the prompt-to-prompt spread, so ``z = gain / se`` says how many standard errors the
    change is from zero (z > 3: one-sided p < 0.0014 by the normal approximation).
    """
    diff = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if diff.ndim != 1 or len(diff) < 2:
        raise ValueError(f"need two equal-length lists of at least 2 scores, got shape {diff.shape}")
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    gain = float(diff.mean())
    # se = 0: every sample changed by the same amount, so either nothing changed (z = 0) or all did (z = ±inf)
    z = gain / se if se > 0 else 0.0 if gain == 0 else math.copysign(math.inf, gain)
    return {"gain": gain, "se": se, "z": z, "n": len(diff)}


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{tag:<14} = {r['accuracy']:.2%} ({r['correct']} / {r['total']})  dense {r['dense']:.3f}"
        for tag, r in report["per_tag"].items()
    ]
    lines.append(
        f"Overall score (avg. over tasks): {report['overall']:.5f}  dense {report['overall_dense']:.5f}"
        f"  no extra objects {report['overall_exact']:.5f}"
    )
    return "\n".join(lines)
