"""A group's images as one picture a person can read: the prompt above, each image's reward under it.

Drawn with Pillow's built-in font (nothing to download). Images smaller than ``min_cell`` pixels are enlarged
(nearest neighbour) so the labels fit and the tokens stay visible.
"""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageDraw, ImageFont

PAD = 4
MAX_PROMPT_LINES = 4
MAX_PART_LINES = 4


def _fit(draw: ImageDraw.ImageDraw, font, text: str, width: int) -> str:
    """``text``, shortened with ``..`` until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."


def _wrap(draw: ImageDraw.ImageDraw, font, text: str, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last kept line is shortened when text remains."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(draw, font, lines[-1] + " ...", width)
    return [_fit(draw, font, line, width) for line in lines]


def _to_pil(image: torch.Tensor, size: int) -> Image.Image:
    array = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    picture = Image.fromarray(array)
    return picture if picture.width == size else picture.resize((size, size * picture.height // picture.width),
                                                                  Image.NEAREST)  # fmt: skip


def captioned_grid(
    images: torch.Tensor,
    prompt: str | None = None,
    rewards: torch.Tensor | None = None,
    parts: dict[str, torch.Tensor] | None = None,
    columns: int = 8,
    min_cell: int = 128,
) -> Image.Image:
    """``images`` (N, 3, H, W) in [0, 1] in rows of ``columns``; ``prompt`` wrapped above; under each image its
    total reward and, when there are several, each part (as many as fit). ``None`` leaves that text out."""
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = int(probe.textbbox((0, 0), "Ag", font=font)[3]) + 2
    n, _, height, width = images.shape
    scale = max(1, math.ceil(min_cell / width))
    cell_w, cell_h = width * scale, height * scale
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    grid_w = columns * cell_w + (columns + 1) * PAD
    labels = []
    for i in range(n):
        label = [] if rewards is None else [f"reward {float(rewards[i]):.4g}"]
        if rewards is not None and parts and len(parts) > 1:
            label += [f"{name} {float(values[i]):.4g}" for name, values in list(parts.items())[:MAX_PART_LINES]]
        labels.append([_fit(probe, font, text, cell_w) for text in label])
    label_h = max(len(label) for label in labels) * line_height
    header = [] if not prompt else _wrap(probe, font, prompt, grid_w - 2 * PAD, MAX_PROMPT_LINES)
    header_h = len(header) * line_height + (PAD if header else 0)
    grid_h = header_h + rows * (cell_h + label_h + PAD) + PAD
    canvas = Image.new("RGB", (grid_w, grid_h), "white")
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(header):
        draw.text((PAD, PAD + k * line_height), line, fill="black", font=font)
    for i in range(n):
        row, col = divmod(i, columns)
        x = PAD + col * (cell_w + PAD)
        y = header_h + PAD + row * (cell_h + label_h + PAD)
        canvas.paste(_to_pil(images[i], cell_w), (x, y))
        for k, text in enumerate(labels[i]):
            draw.text((x, y + cell_h + k * line_height), text, fill="black", font=font)
    return canvas


def prompt_caption(value: int | str) -> str:
    """A class id as ``class 207``; a caption as written."""
    return f"class {value}" if isinstance(value, int) else str(value)
