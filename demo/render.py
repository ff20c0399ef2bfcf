"""Drawing the shapes world: exact-colour rasterisation and non-overlapping layouts.

Anti-aliasing is off on purpose: every pixel is either the background or exactly one palette colour, so
the evaluator's verdict on a clean image is a property of the geometry alone. Objects keep a gap of a few
pixels so that blur in generated images does not merge them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from demo.world import BACKGROUND, COLOUR_NAMES, COLOURS, SHAPES, PromptSpec, revised_direction

MIN_IMAGE_SIZE = 16
SIZE_RANGE_FRACTION = (0.25, 0.4375)
"""Object sizes as a fraction of the image side: 8-14 px on 32 x 32."""
THREE_OBJECT_MAX_FRACTION = 0.375
"""Three objects of up to 12 px still fit a 32 x 32 canvas with gaps."""
MAX_LAYOUT_ATTEMPTS = 2000
RELATION_MARGIN = (0.75, 0.3)
"""Generated position scenes are unambiguous: GenEval's normalised offset is >= 0.75 along the named axis
(0.5 suffices for GenEval) and <= 0.3 across it (so no second relation holds)."""


@dataclass(frozen=True)
class Placed:
    """One drawn object: ``size`` x ``size`` cell with its top-left corner at pixel (``x``, ``y``)."""

    shape: str
    colour: str
    x: int
    y: int
    size: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Bounding box (x0, y0, x1, y1) of the pixels actually painted, in pixel-edge coordinates."""
        rows, cols = np.nonzero(shape_mask(self.shape, self.size))
        return (
            self.x + int(cols.min()),
            self.y + int(rows.min()),
            self.x + int(cols.max()) + 1,
            self.y + int(rows.max()) + 1,
        )


@lru_cache(maxsize=256)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Pixels of a ``size`` x ``size`` cell whose centres lie inside the shape (read-only bool array)."""
    if size < 3:
        raise ValueError(f"shape size must be >= 3 px, got {size}")
    c = (np.arange(size) + 0.5) - size / 2.0  # pixel centres relative to the cell centre
    u, v = c[None, :], c[:, None]
    if shape == "circle":
        mask = u**2 + v**2 <= (size / 2.0) ** 2
    elif shape == "square":
        mask = np.ones((size, size), dtype=bool)
    elif shape == "triangle":  # apex at the top centre, base along the bottom edge
        depth = v + size / 2.0  # distance from the top edge
        mask = np.abs(u) <= depth / 2.0
    else:
        raise ValueError(f"unknown shape {shape!r}; the shapes world has {SHAPES}")
    mask.setflags(write=False)
    return mask


def draw(objects: list[Placed], image_size: int = 32) -> np.ndarray:
    """Paint ``objects`` on the background: uint8 array (H, W, 3)."""
    image = np.empty((image_size, image_size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for obj in objects:
        if obj.x < 0 or obj.y < 0 or obj.x + obj.size > image_size or obj.y + obj.size > image_size:
            raise ValueError(f"{obj} does not fit a {image_size} x {image_size} image")
        cell = image[obj.y : obj.y + obj.size, obj.x : obj.x + obj.size]
        cell[shape_mask(obj.shape, obj.size)] = COLOURS[obj.colour]
    return image


def _size_range(image_size: int, n_objects: int) -> tuple[int, int]:
    lo, hi = SIZE_RANGE_FRACTION
    if n_objects >= 3:
        hi = THREE_OBJECT_MAX_FRACTION
    return max(3, round(lo * image_size)), max(3, round(hi * image_size))


def _gap(image_size: int) -> int:
    return max(2, round(image_size / 16))


def _separated(a: Placed, b: Placed, gap: int) -> bool:
    return (
        a.x + a.size + gap <= b.x
        or b.x + b.size + gap <= a.x
        or a.y + a.size + gap <= b.y
        or b.y + b.size + gap <= a.y
    )


def _relation_is_clear(subject: Placed, target: Placed, relation: str) -> bool:
    dx, dy = revised_direction(subject.box, target.box)
    along, across = {"left of": (-dx, dy), "right of": (dx, dy), "above": (-dy, dx), "below": (dy, dx)}[
        relation
    ]
    return along >= RELATION_MARGIN[0] and abs(across) <= RELATION_MARGIN[1]


def layout(spec: PromptSpec, rng: np.random.Generator, image_size: int = 32) -> list[Placed]:
    """A random scene satisfying ``spec``: its included objects (random colour where none is named), apart.

    Position prompts are drawn so the relation is unambiguous (see ``RELATION_MARGIN``).
    """
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    wanted = [(req.shape, req.colour) for req in spec.include for _ in range(req.count)]
    lo, hi = _size_range(image_size, len(wanted))
    gap, border = _gap(image_size), 1
    relation = spec.include[1].position[0] if spec.tag == "position" else None
    for _ in range(MAX_LAYOUT_ATTEMPTS):
        placed: list[Placed] = []
        for shape, colour in wanted:
            size = int(rng.integers(lo, hi + 1))
            x, y = rng.integers(border, image_size - border - size + 1, size=2)
            name = colour if colour is not None else COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
            candidate = Placed(shape, name, int(x), int(y), size)
            if not all(_separated(candidate, other, gap) for other in placed):
                break
            placed.append(candidate)
        else:
            if relation is None or _relation_is_clear(placed[1], placed[0], relation):
                return placed
    raise RuntimeError(f"could not lay out {spec.caption!r} on a {image_size} x {image_size} image")


def render_spec(
    spec: PromptSpec, rng: np.random.Generator, image_size: int = 32
) -> tuple[np.ndarray, list[Placed]]:
    """A clean image satisfying ``spec`` and the objects drawn in it."""
    objects = layout(spec, rng, image_size)
    return draw(objects, image_size), objects
