"""Decoded images -> 8-bit arrays and PNG files (written atomically, so a killed run leaves no half file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError


def to_uint8(images: torch.Tensor, size: int | None = None) -> np.ndarray:
    """Float images (B, 3, H, W) in [0, 1] -> uint8 (B, size, size, 3).

    Resizing is LlamaGen's ``--image-size-eval``: bicubic (no antialiasing) on the float images, before
    rounding to 8 bits; ``size`` None or equal to H keeps the images as they are.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
    images = images.float()
    if size and (images.shape[2], images.shape[3]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    # floor(255 x + 0.5) is round-half-up, the same as LlamaGen's clamp(127.5 y + 128) for y = 2x - 1.
    pixels = (images * 255.0 + 0.5).clamp_(0.0, 255.0).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def save_png(image: np.ndarray, path: Path) -> None:
    """Write one uint8 H x W x 3 image; the name appears only once the file is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(image, mode="RGB").save(tmp, format="PNG")
    os.replace(tmp, path)


def read_png(path: Path, size: int | None = None) -> np.ndarray:
    """One sample back as uint8 H x W x 3, checking it is the RGB image (and size) this run writes."""
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                raise ValueError(f"{path}: expected an RGB PNG, got mode {image.mode}")
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: unreadable PNG ({err}); delete it and run again to resample it") from err
    if size is not None and array.shape[:2] != (size, size):
        raise ValueError(
            f"{path}: is {array.shape[1]}x{array.shape[0]} px, expected {size}x{size}; the folder holds samples "
            "of another image size (use another output folder)"
        )
    return array


def images_to_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 H x W x 3 arrays -> float (B, 3, H, W) in [0, 1], what reward functions read."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
