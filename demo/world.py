"""The vocabulary and prompts of the offline "shapes" world.

The demo needs a text-to-image task whose correctness a few lines of numpy can decide exactly, so the
world is a handful of flat shapes in a handful of saturated colours on a white background. Prompts follow
GenEval: the same six task tags, the same wording ("a photo of two red circles", "a photo of a blue square
left of a yellow triangle") and the same requirement structure (``include`` / ``exclude`` object lists,
positions relative to an earlier include), so the evaluator can apply GenEval's rules unchanged.

Everything random here is driven by an explicit seed, so prompt pools and their train / held-out split are
identical on every machine.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
"""Shapes drawn axis-aligned; triangles point up."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "yellow": (230, 230, 30),
    "green": (20, 200, 20),
    "blue": (30, 80, 230),
    "purple": (160, 30, 220),
}
"""Palette chosen so that hues are >= 60 degrees apart: blending with the white background (blur, VQ
smoothing) lowers a pixel's chroma but keeps its hue, so colour stays decidable at object edges."""

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
BACKGROUND: tuple[int, int, int] = (255, 255, 255)

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
"""GenEval's task tags, in GenEval's order."""

COUNT_WORDS: dict[int, str] = {2: "two", 3: "three"}
_WORD_COUNTS = {word: n for n, word in COUNT_WORDS.items()}

NUM_CLASSES = len(SHAPES) * len(COLOUR_NAMES)
"""C2I classes are (shape, colour) pairs: ``class_id = shape_index * len(COLOUR_NAMES) + colour_index``."""

SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class ObjectReq:
    """One GenEval requirement: ``count`` objects of ``shape`` (of ``colour`` if given).

    ``position`` is ``(relation, index)``: each such object must be ``relation`` the objects matched by the
    ``index``-th include requirement, as in GenEval's metadata.
    """

    shape: str
    count: int = 1
    colour: str | None = None
    position: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; the shapes world has {SHAPES}")
        if self.colour is not None and self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; the shapes world has {COLOUR_NAMES}")
        if self.count < 1:
            raise ValueError(f"object count must be >= 1, got {self.count}")
        if self.position is not None and self.position[0] not in RELATIONS:
            raise ValueError(f"unknown relation {self.position[0]!r}; expected one of {RELATIONS}")


@dataclass(frozen=True)
class PromptSpec:
    """A prompt as GenEval stores it: tag, objects that must be present, objects that must not be."""

    tag: str
    include: tuple[ObjectReq, ...]
    exclude: tuple[ObjectReq, ...] = ()

    def __post_init__(self) -> None:
        if self.tag not in TAGS:
            raise ValueError(f"unknown tag {self.tag!r}; expected one of {TAGS}")
        if not self.include:
            raise ValueError("a prompt needs at least one included object")
        positioned = [i for i, req in enumerate(self.include) if req.position is not None]
        if (self.tag == "position") != (positioned == [1] and len(self.include) == 2):
            raise ValueError(
                f"tag {self.tag!r}: only 'position' prompts (two objects, the second placed) have a relation"
            )
        for i, req in enumerate(self.include):
            if req.position is not None and not 0 <= req.position[1] < i:
                raise ValueError(
                    f"include #{i} is positioned relative to #{req.position[1]}, not an earlier one"
                )

    @property
    def caption(self) -> str:
        return render_caption(self)

    @property
    def num_objects(self) -> int:
        """How many objects the prompt asks for (its included objects, counts included)."""
        return sum(req.count for req in self.include)

    def to_geneval_metadata(self) -> dict[str, Any]:
        """The GenEval ``evaluation_metadata.jsonl`` line of this prompt (``class`` holds the shape)."""
        return {
            "tag": self.tag,
            "include": [_req_to_dict(r) for r in self.include],
            **({"exclude": [_req_to_dict(r) for r in self.exclude]} if self.exclude else {}),
            "prompt": self.caption,
        }

    @classmethod
    def from_geneval_metadata(cls, row: dict[str, Any]) -> PromptSpec:
        """Inverse of :meth:`to_geneval_metadata`; raises ``ValueError`` naming the bad field."""
        try:
            return cls(
                tag=row["tag"],
                include=tuple(_req_from_dict(r) for r in row["include"]),
                exclude=tuple(_req_from_dict(r) for r in row.get("exclude", ())),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed shapes-world metadata row {row!r}: {err!r}") from err


def _req_to_dict(req: ObjectReq) -> dict[str, Any]:
    out: dict[str, Any] = {"class": req.shape, "count": req.count}
    if req.colour is not None:
        out["color"] = req.colour
    if req.position is not None:
        out["position"] = [req.position[0], req.position[1]]
    return out


def _req_from_dict(row: dict[str, Any]) -> ObjectReq:
    pos = row.get("position")
    return ObjectReq(
        shape=row["class"],
        count=int(row["count"]),
        colour=row.get("color"),
        position=None if pos is None else (str(pos[0]), int(pos[1])),
    )


# --------------------------------------------------------------------------------------------- captions


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun(req: ObjectReq) -> str:
    """'a red circle' / 'two red circles' / 'a circle'."""
    words = ([req.colour] if req.colour else []) + [req.shape + ("s" if req.count > 1 else "")]
    lead = COUNT_WORDS[req.count] if req.count > 1 else _article(words[0])
    return " ".join([lead, *words])


def render_caption(spec: PromptSpec) -> str:
    """GenEval wording: 'a photo of ...'; for position prompts the positioned object comes first."""
    inc = spec.include
    if spec.tag == "position":
        subject, target = inc[1], inc[0]
        return f"a photo of {_noun(subject)} {subject.position[0]} {_noun(target)}"
    return "a photo of " + " and ".join(_noun(r) for r in inc)


_COUNT_OR_ARTICLE = "|".join(["a", "an", *COUNT_WORDS.values()])
_NOUN_RE = (
    rf"(?P<lead{{k}}>{_COUNT_OR_ARTICLE}) (?:(?P<colour{{k}}>{'|'.join(COLOUR_NAMES)}) )?"
    rf"(?P<shape{{k}}>{'|'.join(SHAPES)})(?P<plural{{k}}>s?)"
)
_CAPTION_RE = re.compile(
    rf"a photo of {_NOUN_RE.format(k=0)}"
    rf"(?:(?P<sep> and | (?P<rel>{'|'.join(RELATIONS)}) ){_NOUN_RE.format(k=1)})?"
)


def parse_caption(caption: str) -> PromptSpec:
    """Invert :func:`render_caption`, so a reward can work from the caption text alone.

    Accepts surrounding whitespace, any letter case and a trailing full stop; anything else outside the
    vocabulary raises ``ValueError`` quoting the caption.
    """
    text = " ".join(caption.strip().rstrip(".").lower().split())
    m = _CAPTION_RE.fullmatch(text)
    if m is None:
        raise ValueError(
            f"caption {caption!r} is not a shapes-world prompt (expected e.g. 'a photo of two red circles')"
        )
    nouns = [_parse_noun(m, k, caption) for k in range(2) if m.group(f"shape{k}")]
    if len(nouns) == 1:
        (obj,) = nouns
        if obj.count > 1:
            return counting_spec(obj.shape, obj.colour, obj.count)
        return PromptSpec("colors" if obj.colour else "single_object", (obj,))
    first, second = nouns
    if first.count > 1 or second.count > 1:
        raise ValueError(f"caption {caption!r}: two-object prompts have one object each")
    if first.shape == second.shape:
        raise ValueError(f"caption {caption!r}: two-object prompts name two different shapes")
    if m.group("rel"):
        return PromptSpec("position", (second, ObjectReq(first.shape, 1, first.colour, (m.group("rel"), 0))))
    if (first.colour is None) != (second.colour is None):
        raise ValueError(f"caption {caption!r}: either both objects or neither have a colour")
    return PromptSpec("color_attr" if first.colour else "two_object", (first, second))


def _parse_noun(m: re.Match[str], k: int, caption: str) -> ObjectReq:
    lead, plural = m.group(f"lead{k}"), m.group(f"plural{k}")
    count = _WORD_COUNTS.get(lead, 1)
    colour, shape = m.group(f"colour{k}"), m.group(f"shape{k}")
    if (count > 1) != bool(plural):
        raise ValueError(f"caption {caption!r}: number word {lead!r} does not agree with {shape + plural!r}")
    if count == 1:
        first_word = colour or shape
        if lead != _article(first_word):
            raise ValueError(f"caption {caption!r}: expected {_article(first_word)!r} before {first_word!r}")
    return ObjectReq(shape, count, colour)


# ------------------------------------------------------------------------------------------ prompt pools


def counting_spec(shape: str, colour: str | None, count: int) -> PromptSpec:
    """GenEval's counting rule: at least ``count`` and fewer than ``count + 1``, i.e. exactly ``count``.

    With a colour, both bounds count objects of that colour (GenEval's counting prompts name none).
    """
    return PromptSpec("counting", (ObjectReq(shape, count, colour),), (ObjectReq(shape, count + 1, colour),))


def class_spec(class_id: int) -> PromptSpec:
    """The C2I class ``class_id`` as a prompt: one object of its shape and colour ('colors' tag)."""
    shape, colour = class_to_pair(class_id)
    return PromptSpec("colors", (ObjectReq(shape, 1, colour),))


def class_to_pair(class_id: int) -> tuple[str, str]:
    if not 0 <= int(class_id) < NUM_CLASSES:
        raise ValueError(f"class id {class_id} outside the shapes world's range [0, {NUM_CLASSES})")
    shape_index, colour_index = divmod(int(class_id), len(COLOUR_NAMES))
    return SHAPES[shape_index], COLOUR_NAMES[colour_index]


def pair_to_class(shape: str, colour: str) -> int:
    return SHAPES.index(shape) * len(COLOUR_NAMES) + COLOUR_NAMES.index(colour)


def all_prompts(tag: str) -> list[PromptSpec]:
    """Every prompt of ``tag`` the vocabulary allows, in a fixed order.

    Two-object tags use two different shapes (as GenEval uses two different classes); colour attribution also
    uses two different colours, so that the attribution itself is what is tested.
    """
    pairs = list(itertools.permutations(SHAPES, 2))
    if tag == "single_object":
        return [PromptSpec(tag, (ObjectReq(s),)) for s in SHAPES]
    if tag == "two_object":
        return [PromptSpec(tag, (ObjectReq(a), ObjectReq(b))) for a, b in pairs]
    if tag == "counting":
        return [counting_spec(s, c, n) for n in COUNT_WORDS for s in SHAPES for c in COLOUR_NAMES]
    if tag == "colors":
        return [PromptSpec(tag, (ObjectReq(s, 1, c),)) for s in SHAPES for c in COLOUR_NAMES]
    if tag == "color_attr":
        return [
            PromptSpec(tag, (ObjectReq(a, 1, ca), ObjectReq(b, 1, cb)))
            for a, b in pairs
            for ca, cb in itertools.permutations(COLOUR_NAMES, 2)
        ]
    if tag == "position":
        return [
            PromptSpec(tag, (ObjectReq(target, 1, ct), ObjectReq(subject, 1, cs, (rel, 0))))
            for subject, target in pairs
            for rel in RELATIONS
            for cs, ct in itertools.product(COLOUR_NAMES, repeat=2)
        ]
    raise ValueError(f"unknown tag {tag!r}; expected one of {TAGS}")


MIN_POOL_TO_SPLIT = 10
"""Tags with fewer prompts than this (single_object: 3, two_object: 6) share their prompts between splits:
holding one out would remove a whole shape or pair from training rather than a combination."""


def prompt_pool(
    tag: str, split: str = "train", split_seed: int = 0, heldout_fraction: float = 0.2
) -> list[PromptSpec]:
    """The prompts of ``tag`` in ``split``; held-out prompts are combinations never seen in training."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    prompts = all_prompts(tag)
    if len(prompts) < MIN_POOL_TO_SPLIT:
        return prompts
    order = np.random.default_rng([split_seed, TAGS.index(tag)]).permutation(len(prompts))
    n_heldout = max(1, round(heldout_fraction * len(prompts)))
    chosen = order[:n_heldout] if split == "heldout" else order[n_heldout:]
    return [prompts[i] for i in sorted(chosen)]


def sample_prompts(
    n: int,
    seed: int,
    split: str = "train",
    tags: Sequence[str] = TAGS,
    split_seed: int = 0,
) -> list[PromptSpec]:
    """``n`` prompts, tags taken in turn (balanced like GenEval), each drawn uniformly from its pool."""
    if n < 0:
        raise ValueError(f"number of prompts must be >= 0, got {n}")
    unknown = [t for t in tags if t not in TAGS]
    if unknown or not tags:
        raise ValueError(f"tags must be a non-empty subset of {TAGS}, got {list(tags)}")
    pools = {t: prompt_pool(t, split, split_seed) for t in tags}
    rng = np.random.default_rng([seed, 7])
    out = []
    for i in range(n):
        pool = pools[tags[i % len(tags)]]
        out.append(pool[int(rng.integers(len(pool)))])
    return out


def iter_all_prompts(tags: Iterable[str] = TAGS) -> Iterable[PromptSpec]:
    for tag in tags:
        yield from all_prompts(tag)


# ------------------------------------------------------------------------------------ GenEval geometry

POSITION_THRESHOLD = 0.1
"""GenEval's slack: centre offsets shrink by this fraction of the two boxes' summed sizes."""


def revised_direction(box_a: Sequence[float], box_b: Sequence[float]) -> tuple[float, float]:
    """GenEval's normalised, size-discounted offset of box A's centre from box B's (boxes: x0, y0, x1, y1)."""
    a = np.asarray(box_a, dtype=np.float64).reshape(2, 2)
    b = np.asarray(box_b, dtype=np.float64).reshape(2, 2)
    offset = a.mean(axis=0) - b.mean(axis=0)
    dims = np.abs(a[1] - a[0]) + np.abs(b[1] - b[0])
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * dims, 0.0) * np.sign(offset)
    norm = float(np.linalg.norm(offset))
    if np.all(np.abs(revised) < 1e-3) or norm == 0.0:
        return 0.0, 0.0
    dx, dy = revised / norm
    return float(dx), float(dy)


def relative_position(box_a: Sequence[float], box_b: Sequence[float]) -> set[str]:
    """Relations of A to B exactly as GenEval computes them (y grows downwards)."""
    dx, dy = revised_direction(box_a, box_b)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations
