"""Batched, on-device versions of the reward models' own image preprocessing.

Upstream AR-GRPO turned every decoded image into a PIL image and ran each package's transform on it one by
one. Here the same steps (resize, crop or pad, normalise) run on the whole ``(B, 3, H, W)`` float batch on the
reward model's device. The only intended difference from the PIL path is that PIL works on 8-bit images and
its bicubic filter differs slightly from torch's antialiased one; tests measure and bound the effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageTransform:
    """Resize + crop/pad + normalise, applied to a float batch in [0, 1].

    ``resize="shortest"``: shortest side to ``size`` (aspect kept, long side truncated like torchvision and
    HF), then a centre crop to ``crop``. ``resize="longest"``: longest side to ``size`` (rounded, like hpsv2's
    ``ResizeMaxSize``), then zero padding to a ``size`` square.

    ``eight_bit=True`` mirrors processors that work on 8-bit images (PIL in HF CLIP and ImageReward): the batch
    is rounded to uint8, resized to uint8 (on CPU with torch's native uint8 kernel, faster than the float one:
    docs/rewards.md; elsewhere in float, then rounded and clipped) and normalised from there. ``eight_bit=False``
    resizes the floats as they are (hpsv2 resizes after ``ToTensor``).
    """

    size: int
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    resize: Literal["shortest", "longest"] = "shortest"
    crop: int | None = None
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    eight_bit: bool = True

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        x = to_uint8(images) if self.eight_bit else images.to(torch.float32)
        height, width = x.shape[-2:]
        if self.resize == "shortest":
            x = self._resize(x, _shortest_side_size(height, width, self.size))
            if self.crop is not None:
                x = center_crop(x, self.crop)
        else:
            scale = self.size / max(height, width)
            if scale != 1.0:
                new_size = (round(height * scale), round(width * scale))
                x = self._resize(x, new_size)
                pad_h, pad_w = self.size - new_size[0], self.size - new_size[1]
                x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0)
        # (x / 255 - mean) / std as one multiply-add
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        unit = 255.0 if self.eight_bit else 1.0
        return torch.addcmul(-mean / std, x.to(torch.float32), 1.0 / (unit * std)).to(dtype)

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if x.dtype == torch.uint8 and x.device.type != "cpu":  # no uint8 antialias kernel off CPU
            x = F.interpolate(
                x.float(), size=size, mode=self.interpolation, align_corners=False, antialias=True
            )
            return x.round_().clamp_(0, 255).to(torch.uint8)
        return F.interpolate(x, size=size, mode=self.interpolation, align_corners=False, antialias=True)


def _shortest_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if height <= width else (new_long, new_short)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop with torchvision's offset rounding; pads with zeros when the image is smaller."""
    height, width = x.shape[-2:]
    if height < size or width < size:
        pad_h, pad_w = max(size - height, 0), max(size - width, 0)
        x = F.pad(x, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        height, width = x.shape[-2:]
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] -> uint8 with rounding, the way images are saved or sent to a server."""
    return images.detach().float().mul(255).round_().clamp_(0, 255).to(torch.uint8)


def transform_from_hf_processor(processor) -> ImageTransform:
    """Read size / crop / mean / std / resample from a Hugging Face CLIP-style image processor."""
    size = processor.size
    if "shortest_edge" not in size:
        raise ValueError(
            f"unsupported image processor size {size}: only 'shortest_edge' resizing is implemented"
        )
    crop = processor.crop_size["height"] if getattr(processor, "do_center_crop", True) else None
    if crop is not None and processor.crop_size["height"] != processor.crop_size["width"]:
        raise ValueError(f"unsupported non-square crop {processor.crop_size}")
    resample = int(getattr(processor, "resample", 3))
    interpolation = {3: "bicubic", 2: "bilinear"}.get(resample)
    if interpolation is None:
        raise ValueError(f"unsupported resample mode {resample} (only bicubic=3 and bilinear=2)")
    return ImageTransform(
        size=int(size["shortest_edge"]),
        crop=crop,
        mean=tuple(float(m) for m in processor.image_mean),
        std=tuple(float(s) for s in processor.image_std),
        interpolation=interpolation,
        eight_bit=True,
    )
