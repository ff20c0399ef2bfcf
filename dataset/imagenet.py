"""Class-to-image "prompts": ImageNet class ids.

GRPO on c2i needs no images, only class ids to condition on. ``class_ids_for_step`` draws them uniformly
from a seed and the step number alone, so the global batch of a step is the same whether it is generated
by 1 process or split over 8, and a resumed run sees exactly the ids it would have seen.
``ImageNetFolder`` reads a real ImageNet ``train/<wnid>/*.JPEG`` tree (labels = index of the sorted wnids,
as torchvision's ``ImageFolder`` and LlamaGen do) for users who want real class frequencies or images.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from autoregressive.models.seeding import numpy_generator

T = TypeVar("T")

WNID_PATTERN = re.compile(r"n\d{8}")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


def _check_non_negative_int(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def class_ids_for_step(seed: int, step: int, batch_size: int, num_classes: int = 1000) -> list[int]:
    """The global batch of class ids for one training step, uniform over ``[0, num_classes)``.

    Depends only on ``(seed, step)``: the generator is ``numpy_generator(seed, step)`` (``SeedSequence``), so
    steps are independent streams and no state is carried between calls.
    """
    _check_non_negative_int("seed", seed)
    _check_non_negative_int("step", step)
    _check_non_negative_int("batch_size", batch_size)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return numpy_generator(seed, step).integers(0, num_classes, size=batch_size).tolist()


def process_slice(items: Sequence[T], process_index: int, num_processes: int) -> list[T]:
    """This process's contiguous share of a global batch (equal shares; the batch must divide evenly)."""
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index must be in [0, {num_processes}), got {process_index}")
    if len(items) % num_processes:
        raise ValueError(
            f"a global batch of {len(items)} cannot be split evenly over {num_processes} processes")
    share = len(items) // num_processes
    return list(items[process_index * share:(process_index + 1) * share])


def class_ids_for_process(seed: int, step: int, global_batch_size: int, process_index: int,
                          num_processes: int, num_classes: int = 1000) -> list[int]:
    """This process's class ids for a step: its slice of ``class_ids_for_step(seed, step, global_batch)``."""
    ids = class_ids_for_step(seed, step, global_batch_size, num_classes)
    return process_slice(ids, process_index, num_processes)


class ImageNetFolder:
    """An ImageNet split laid out as ``root/<split>/<wnid>/<image>``; items are ``(image_path, label)``.

    The class folders are checked when the object is made; the image files are listed on first use, and
    images are only opened by ``load_image``.
    """

    def __init__(self, root: str | Path, split: str = "train", expected_num_classes: int | None = 1000):
        self.root = Path(root)
        self.split = split
        self.split_dir = self.root / split
        layout = f"{self.root}/{split}/<wnid>/*.JPEG"
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageNet folder {self.root} does not exist (expected {layout})")
        if not self.split_dir.is_dir():
            hint = ""
            if any(WNID_PATTERN.fullmatch(p.name) for p in self.root.iterdir() if p.is_dir()):
                hint = f"; {self.root} already holds class folders: pass its parent folder as the root"
            raise FileNotFoundError(
                f"ImageNet folder {self.root} has no {split!r} subfolder (expected {layout}){hint}")
        class_dirs = sorted(p.name for p in self.split_dir.iterdir() if p.is_dir())
        bad = [name for name in class_dirs if not WNID_PATTERN.fullmatch(name)]
        if bad:
            more = " ..." if len(bad) > 5 else ""
            raise ValueError(f"{self.split_dir} has folders that are not ImageNet wnids (n########): "
                             f"{bad[:5]}{more} (expected {layout})")
        if not class_dirs:
            raise ValueError(f"{self.split_dir} has no class folders (expected {layout})")
        if expected_num_classes is not None and len(class_dirs) != expected_num_classes:
            raise ValueError(
                f"{self.split_dir} has {len(class_dirs)} class folders, expected {expected_num_classes}")
        self.wnids: list[str] = class_dirs
        self.class_to_idx: dict[str, int] = {wnid: i for i, wnid in enumerate(class_dirs)}
        self._samples: list[tuple[Path, int]] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.wnids)

    @property
    def samples(self) -> list[tuple[Path, int]]:
        """All ``(path, label)`` pairs, sorted by class then file name (listed once, on first access)."""
        if self._samples is None:
            samples = []
            for wnid in self.wnids:
                folder = self.split_dir / wnid
                names = sorted(e.name for e in os.scandir(folder)
                               if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
                if not names:
                    raise ValueError(
                        f"ImageNet class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
                label = self.class_to_idx[wnid]
                samples.extend((folder / name, label) for name in names)
            self._samples = samples
        return self._samples

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Path, int]:
        return self.samples[index]

    def load_image(self, index: int):
        """Open one image as RGB ``PIL.Image`` (the only place pixels are read)."""
        from PIL import Image

        path, _ = self.samples[index]
        with Image.open(path) as image:
            return image.convert("RGB")
