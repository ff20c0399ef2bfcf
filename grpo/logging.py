"""Metrics to a JSONL file (always) and TensorBoard (optional); sample grids as PNG files people can open."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image


class MetricsLogger:
    """Main-process only. ``metrics.jsonl`` gets one line per logged step; it is appended to on resume."""

    def __init__(self, output_dir: str | Path, report_to: str = "tensorboard"):
        self.root = Path(output_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.jsonl = (self.root / "metrics.jsonl").open("a")
        self.writer = None
        if report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.root / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)

    def log_images(self, step: int, images: torch.Tensor, caption: Any, nrow: int = 8) -> Path:
        """One group's images as a grid: saved under samples/ and sent to TensorBoard."""
        grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
        path = self.root / "samples" / f"step_{step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        save_image(grid, path)
        if self.writer is not None:
            self.writer.add_image("samples", grid, step)
            self.writer.add_text("samples/prompt", str(caption), step)
        return path

    def close(self) -> None:
        self.jsonl.close()
        if self.writer is not None:
            self.writer.close()
