"""Finding the objects of the shapes world in an image, without learned weights.

This replaces GenEval's detector and CLIP colour classifier by deterministic steps that must also work on
the blurry, noisy images a small VQ + GPT produces:

1. smooth the image slightly (``DENOISE_SIGMA``) and give each pixel the palette colour of nearest *hue*
   (within ``HUE_TOLERANCE``). Blending with the white background (blur, VQ smoothing) lowers a pixel's
   chroma but keeps its hue, so colour stays decidable up to an object's edge;
2. keep pixels of that colour whose chroma reaches ``CHROMA_FRACTION`` of the peak chroma of the blob they
   belong to: every object's boundary sits at its half-maximum edge, whether its colour came out saturated
   or washed out;
3. split each colour into 4-connected components (one ``scipy.ndimage.label`` call for the whole batch)
   and drop specks smaller than ``MIN_AREA_FRACTION`` of the image;
4. name each component's shape from normalised central moments, which average over all its pixels and so
   shrug off ragged edges: the vertical skewness (a triangle pointing up is bottom-heavy, -0.57; squares and
   circles 0) and ``E[x^2 y^2] / (E[x^2] E[y^2])`` (1 for a square, whose x and y are independent; 2/3 for a
   disc). Components that fit no shape (wrong proportions, holes, merged blobs, a tinted background) get
   ``shape=None`` and match no requirement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from demo.world import COLOUR_NAMES, COLOURS

DENOISE_SIGMA = 0.6
"""Pixels; averages out pixel noise at little cost in sharpness (the robustness table: docs/demo_world.md)."""
HUE_TOLERANCE = 35.0
"""Degrees; palette hues are >= 60 degrees apart, so an accepted pixel has exactly one nearest colour."""
LOOSE_CHROMA = 0.1
"""Chroma (max - min channel, in [0, 1]) a pixel needs to be considered at all; white background ~0."""
MIN_PEAK_CHROMA = 0.2
"""A blob whose most colourful pixel is below this (about a quarter of the palette's chroma) is background;
washed-out objects are still found (docs/demo_world.md)."""
CHROMA_FRACTION = 0.5
MIN_AREA_FRACTION = 6 / 1024
"""Components below this fraction of the image (6 px on 32 x 32; the smallest object has 32 px) are noise."""

MAX_EXTENT_FRACTION = 0.75
"""Drawn objects span at most 44 % of the image side; a component spanning more (a tinted background) is
not an object."""
MAX_SKEW_X = 0.35
ASPECT_RANGE = (0.7, 1.3)
"""sqrt(Var x / Var y): 1 for squares and circles, sqrt(3) / 2 for a triangle as wide as tall."""
COMPACTNESS_RANGE = (0.78, 1.15)
"""area / (12 sqrt(Var x Var y)): 1 for a square, pi / 3 for a disc, sqrt(3) / 2 for a triangle; lower for
rings, fragments and merged objects."""
TRIANGLE_MAX_SKEW_Y = -0.2
"""A triangle's vertical skewness is clearly negative (its mass sits low), blurred or not; squares and circles
are symmetric, near 0 (the values measured on drawn and blurred shapes: docs/demo_world.md)."""
SQUARE_MIN_CROSS_MOMENT = 0.77
"""E[x^2 y^2] / (E[x^2] E[y^2]): 1 for a square, 2 / 3 for a disc; blurring pulls squares down (docs/demo_world.md)."""
CROSS_MOMENT_RANGE = (0.45, 1.15)


@dataclass(frozen=True)
class Detection:
    """One object found in an image; ``box`` is (x0, y0, x1, y1) in pixel-edge coordinates."""

    shape: str | None
    colour: str
    area: int
    box: tuple[float, float, float, float]


def _hue(rgb: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Hue in degrees of RGB rows (N, 3) in [0, 1] with chroma > 0."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx = rgb.max(axis=-1)
    sector = np.where(
        mx == r, ((g - b) / chroma) % 6.0, np.where(mx == g, (b - r) / chroma + 2.0, (r - g) / chroma + 4.0)
    )
    return sector * 60.0


def _palette_hue() -> np.ndarray:
    rgb = np.array([COLOURS[n] for n in COLOUR_NAMES], dtype=np.float64) / 255.0
    return _hue(rgb, np.ptp(rgb, axis=-1))


_PALETTE_HUE = _palette_hue()


def as_channel_last(images: np.ndarray) -> np.ndarray:
    """Validate a batch and return float32 (B, H, W, 3) in [0, 1].

    Accepts uint8 (B, H, W, 3) (as rendered) or float (B, H, W, 3) in [0, 1]; a single image gets a batch
    axis.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected channel-last RGB images (B, H, W, 3), got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"expected uint8 or float images, got dtype {images.dtype}")
    if not np.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"float images must lie in [0, 1], got values in [{lo:.3f}, {hi:.3f}]")
    return np.clip(images.astype(np.float32), 0.0, 1.0)


_PLANE_4 = ndimage.generate_binary_structure(2, 1)
_BATCH_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_BATCH_STRUCTURE[1] = _PLANE_4
_COLOUR_STRUCTURE = np.zeros((3, 3, 3, 3), dtype=bool)
_COLOUR_STRUCTURE[1, 1] = _PLANE_4
"""4-connectivity inside one image (and one colour plane); images and planes never connect."""


def _label_by_colour(mask: np.ndarray, colour: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of ``mask`` (B, H, W) that never mix colours: labels (B, H, W), max label.

    One labelling of the whole batch usually suffices; only images where a component touches two colours
    are labelled again with one plane per colour. Label ids may then skip numbers (empty labels).
    """
    k = len(COLOUR_NAMES)
    labels, n = ndimage.label(mask, structure=_BATCH_STRUCTURE)
    if n == 0:
        return labels, 0
    fg = labels > 0
    owners = np.unique(labels[fg].astype(np.int64) * k + colour[fg]) // k
    mixed = owners[1:][owners[1:] == owners[:-1]]
    if mixed.size == 0:
        return labels, n
    redo = np.unique(np.nonzero(np.isin(labels, mixed))[0])
    planes = mask[redo][:, None] & (colour[redo][:, None] == np.arange(k)[None, :, None, None])
    sub, m = ndimage.label(planes, structure=_COLOUR_STRUCTURE)
    sub = sub.max(axis=1)  # each pixel lies in at most one colour plane
    labels[redo] = np.where(sub > 0, sub + n, 0)
    return labels, n + m


def colour_map(images: np.ndarray) -> np.ndarray:
    """Palette index of each pixel (B, H, W), -1 for background (steps 1-2 of the module docstring)."""
    rgb = as_channel_last(images)
    if DENOISE_SIGMA > 0:
        rgb = ndimage.gaussian_filter(rgb, sigma=(0, DENOISE_SIGMA, DENOISE_SIGMA, 0), mode="nearest")
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    candidate = np.nonzero(chroma.ravel() >= LOOSE_CHROMA)[0]  # hue only where there is colour
    hue = _hue(rgb.reshape(-1, 3)[candidate], chroma.ravel()[candidate])
    dist = np.abs((hue[:, None] - _PALETTE_HUE + 180.0) % 360.0 - 180.0)
    nearest = dist.argmin(axis=-1)
    ok = dist[np.arange(len(nearest)), nearest] <= HUE_TOLERANCE
    colour = np.full(chroma.size, -1, dtype=np.int64)
    colour[candidate[ok]] = nearest[ok]
    colour = colour.reshape(chroma.shape)
    loose = colour >= 0
    blobs, n = _label_by_colour(loose, colour)
    peak = np.full(n + 1, np.inf)  # label 0 (background) never passes
    peak[1:] = 0.0
    np.maximum.at(peak, blobs[loose], chroma[loose])
    pixel_peak = peak[blobs]
    keep = loose & (pixel_peak >= MIN_PEAK_CHROMA) & (chroma >= CHROMA_FRACTION * pixel_peak)
    return np.where(keep, colour, -1)


def _classify(area, vx, vy, m_xxyy, m_yyy, m_xxx, extent) -> list[str | None]:
    """Shape names from central moments (arrays over components); ``None`` where no shape fits.

    ``extent`` is the larger box side as a fraction of the image side.
    """
    vx, vy = np.maximum(vx, 1e-9), np.maximum(vy, 1e-9)
    aspect = np.sqrt(vx / vy)
    compact = area / (12.0 * np.sqrt(vx * vy))
    cross = m_xxyy / (vx * vy)
    skew_y, skew_x = m_yyy / vy**1.5, m_xxx / vx**1.5
    regular = (
        (extent <= MAX_EXTENT_FRACTION)
        & (np.abs(skew_x) <= MAX_SKEW_X)
        & (aspect >= ASPECT_RANGE[0])
        & (aspect <= ASPECT_RANGE[1])
        & (compact >= COMPACTNESS_RANGE[0])
        & (compact <= COMPACTNESS_RANGE[1])
        & (cross >= CROSS_MOMENT_RANGE[0])
        & (cross <= CROSS_MOMENT_RANGE[1])
    )
    triangle = regular & (skew_y <= TRIANGLE_MAX_SKEW_Y)
    balanced = regular & (np.abs(skew_y) < -TRIANGLE_MAX_SKEW_Y)
    square = balanced & (cross >= SQUARE_MIN_CROSS_MOMENT)
    circle = balanced & (cross < SQUARE_MIN_CROSS_MOMENT)
    names = np.select([triangle, square, circle], ["triangle", "square", "circle"], default="")
    return [str(n) or None for n in names]


def detect(images: np.ndarray) -> list[list[Detection]]:
    """Objects in each image of a batch (see the module docstring), largest first."""
    colour = colour_map(images)
    b, h, w = colour.shape
    labels, n = _label_by_colour(colour >= 0, colour)
    out: list[list[Detection]] = [[] for _ in range(b)]
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    kept = area >= max(1, round(MIN_AREA_FRACTION * h * w))
    kept[0] = False
    if not kept.any():
        return out
    pix = np.nonzero(kept[flat])[0]
    lab = flat[pix]
    y, x = (pix // w) % h + 0.5, pix % w + 0.5  # pixel centres

    def per_label(values: np.ndarray) -> np.ndarray:
        return np.bincount(lab, weights=values, minlength=n + 1) / np.maximum(area, 1)

    cx, cy = per_label(x), per_label(y)
    dx, dy = x - cx[lab], y - cy[lab]
    vx, vy = per_label(dx * dx), per_label(dy * dy)
    m_xxyy, m_yyy, m_xxx = per_label(dx * dx * dy * dy), per_label(dy**3), per_label(dx**3)
    ids, first = np.unique(lab, return_index=True)  # kept labels and one pixel of each
    slices = ndimage.find_objects(labels)
    boxes = np.array(
        [[sl.start for sl in slices[i - 1][1:]] + [sl.stop for sl in slices[i - 1][1:]] for i in ids]
    )
    extent = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / max(h, w)
    shapes = _classify(area[ids], vx[ids], vy[ids], m_xxyy[ids], m_yyy[ids], m_xxx[ids], extent)
    colours = colour.ravel()[pix[first]]
    for i, shape, c, (r0, c0, r1, c1) in zip(ids, shapes, colours, boxes):  # boxes: row0, col0, row1, col1
        image_index = slices[i - 1][0].start
        box = (float(c0), float(r0), float(c1), float(r1))
        out[image_index].append(Detection(shape, COLOUR_NAMES[int(c)], int(area[i]), box))
    for dets in out:
        dets.sort(key=lambda d: -d.area)
    return out
