"""Training data of the shapes world, built deterministically from a seed (and optionally cached).

Image *i* of a dataset depends only on ``(seed, i)``, so a bigger dataset extends a smaller one and two
machines build identical bytes. Images are stored as uint8 with exact palette colours; ``tensors()`` gives
the float (N, 3, H, W) in [0, 1] the models consume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demo.render import render_spec
from demo.world import NUM_CLASSES, TAGS, PromptSpec, class_spec, pair_to_class, parse_caption, sample_prompts

DATASET_VERSION = 1
"""Bump when rendering changes, so stale caches are rebuilt rather than silently reused."""


@dataclass(frozen=True)
class ShapesData:
    """Images with their captions; ``class_ids`` is the C2I class of single coloured objects, else -1."""

    images: np.ndarray
    captions: tuple[str, ...]
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.captions)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
            )
        if self.images.shape[0] != n or self.class_ids.shape != (n,):
            raise ValueError(
                f"{self.images.shape[0]} images, {n} captions and {self.class_ids.shape} class ids disagree"
            )

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def specs(self) -> list[PromptSpec]:
        return [parse_caption(c) for c in self.captions]

    @property
    def tags(self) -> list[str]:
        return [s.tag for s in self.specs]

    def tensors(self) -> torch.Tensor:
        """Float images (N, 3, H, W) in [0, 1]."""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div_(255.0)


def render_dataset(
    specs: Sequence[PromptSpec], images_per_prompt: int, seed: int, image_size: int = 32
) -> ShapesData:
    """``images_per_prompt`` independent scenes per spec, spec by spec."""
    if images_per_prompt < 1:
        raise ValueError(f"images_per_prompt must be >= 1, got {images_per_prompt}")
    images, captions, class_ids = [], [], []
    for p, spec in enumerate(specs):
        label = _class_id(spec)
        for j in range(images_per_prompt):
            image, _ = render_spec(spec, np.random.default_rng([seed, p, j]), image_size)
            images.append(image)
            captions.append(spec.caption)
            class_ids.append(label)
    empty = np.zeros((0, image_size, image_size, 3), dtype=np.uint8)
    return ShapesData(
        np.stack(images) if images else empty, tuple(captions), np.asarray(class_ids, dtype=np.int64)
    )


def _class_id(spec: PromptSpec) -> int:
    (first, *rest) = spec.include
    if spec.tag == "colors" and not rest and first.colour is not None:
        return pair_to_class(first.shape, first.colour)
    return -1


def build_c2i(num_images: int, seed: int, image_size: int = 32) -> ShapesData:
    """Class-conditional data: one object of class (shape, colour); classes cycle, so they stay balanced."""
    specs = [class_spec(i % NUM_CLASSES) for i in range(num_images)]
    return render_dataset(specs, 1, seed, image_size)


def build_t2i(
    num_prompts: int,
    images_per_prompt: int,
    seed: int,
    split: str = "train",
    image_size: int = 32,
    tags: Sequence[str] = TAGS,
) -> ShapesData:
    """Text-conditional data: prompts sampled tag by tag from ``split``, several scenes per prompt."""
    return render_dataset(sample_prompts(num_prompts, seed, split, tags), images_per_prompt, seed, image_size)


def load_or_build(folder: str | Path, kind: str, **params: object) -> ShapesData:
    """``build_c2i`` / ``build_t2i`` (``kind`` = "c2i" / "t2i") cached as an .npz named by its parameters."""
    builders = {"c2i": build_c2i, "t2i": build_t2i}
    if kind not in builders:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(builders)}")
    key = json.dumps({"kind": kind, "version": DATASET_VERSION, **params}, sort_keys=True, default=list)
    path = Path(folder) / f"shapes_{kind}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if path.exists():
        return _load(path, key)
    data = builders[kind](**params)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(
        tmp,
        images=data.images,
        captions=np.asarray(data.captions, dtype=str),
        class_ids=data.class_ids,
        key=key,
    )
    tmp.replace(path)
    return data


def _load(path: Path, key: str) -> ShapesData:
    try:
        with np.load(path, allow_pickle=False) as f:
            stored_key = str(f["key"])
            data = ShapesData(f["images"], tuple(str(c) for c in f["captions"]), f["class_ids"])
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"cached shapes dataset {path} is unreadable ({err}); delete it to rebuild") from err
    if stored_key != key:
        raise ValueError(f"cached shapes dataset {path} was built with {stored_key}, not {key}; delete it")
    return data
