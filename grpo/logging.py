"""Metrics to a JSONL file (always) and the trackers (optional); sample grids as PNG files people can open."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from accelerate import Accelerator
from PIL import Image

from grpo.rollout import Rollout
from grpo.sample_grid import captioned_grid, prompt_caption


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
    it keeps the lines up to that step and is appended to. The accelerator's trackers (``--report_to``, started
    by ``grpo.watch.start_trackers``) get the same values and the sample grids."""

    def __init__(self, output_dir: str | Path, accelerator: Accelerator, resumed_step: int | None = None):
        self.root = Path(output_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.accelerator = accelerator
        if resumed_step is not None:
            drop_lines_after(self.root / "metrics.jsonl", resumed_step)
        self.jsonl = (self.root / "metrics.jsonl").open("a")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self.jsonl.flush()
        self.accelerator.log(metrics, step=step)

    def log_group(self, step: int, rollout: Rollout) -> Path:
        """The rollout's first group, captioned with its prompt and each image's reward (total and parts)."""
        g, caption = rollout.group_size, prompt_caption(rollout.prompts[0].value)
        parts = {name: values[:g] for name, values in rollout.reward_parts.items()}
        return self.log_images(step, captioned_grid(rollout.images[:g], caption, rollout.rewards[:g], parts), caption)

    def log_images(self, step: int, grid: Image.Image, caption: str) -> Path:
        """A captioned grid (``grpo.sample_grid``): saved under samples/ and sent to every tracker."""
        path = self.root / "samples" / f"step_{step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        grid.save(path)
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"samples": np.asarray(grid)[None]}, step, dataformats="NHWC")
                tracker.writer.add_text("samples/prompt", caption, step)
            elif tracker.name == "wandb":
                tracker.log_images({"samples": [grid]}, step)
        return path

    def close(self) -> None:
        self.jsonl.close()
