"""Metrics to a JSONL file (always) and TensorBoard (optional); sample grids as PNG files people can open."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image


def drop_lines_after(path: Path, step: int) -> int:
    """Keep the ``metrics.jsonl`` lines of steps <= ``step``; returns how many were dropped.

    A run killed after its last checkpoint logged steps that the resumed run logs again; without this they
    would appear twice. A torn last line (killed mid-write) is dropped too. The file is replaced atomically.
    """
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue  # torn write
            raise ValueError(f"{path}: line {i + 1} is not JSON; cannot resume its metrics") from None
        if row.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)
    return len(lines) - len(kept)


class MetricsLogger:
    """Main-process only. ``metrics.jsonl`` gets one line per logged step; on resume from step ``resumed_step``
    it keeps the lines up to that step and is appended to, and TensorBoard purges the later events."""

    def __init__(self, output_dir: str | Path, report_to: str = "tensorboard", resumed_step: int | None = None):
        self.root = Path(output_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        if resumed_step is not None:
            drop_lines_after(self.root / "metrics.jsonl", resumed_step)
        self.jsonl = (self.root / "metrics.jsonl").open("a")
        self.writer = None
        if report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resumed_step is None else resumed_step + 1
            self.writer = SummaryWriter(str(self.root / "tensorboard"), purge_step=purge)

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
