"""How a training run stopped by SIGTERM ends: a resumable checkpoint, no final model, a distinct exit status."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator

INTERRUPTED_EXIT_CODE = 143
"""Exit status of a run stopped by SIGTERM (128 + 15, as shells and launchers report it): checkpoint saved,
no final model written; continue it with ``--resume_from_checkpoint latest``."""


class TrainingInterrupted(SystemExit):
    """Raised by ``train()`` after SIGTERM, once a resumable checkpoint is saved. A ``SystemExit``, so an
    uncaught one ends the process with ``INTERRUPTED_EXIT_CODE`` and no traceback."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(INTERRUPTED_EXIT_CODE)
        self.step, self.checkpoint = step, checkpoint

    def __str__(self) -> str:
        return f"training interrupted by SIGTERM at step {self.step}; resumable checkpoint: {self.checkpoint}"


def any_process(accelerator: Accelerator, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (a SIGTERM reaches the ranks at different moments)."""
    value = torch.tensor([float(flag)], device=accelerator.device)
    if accelerator.num_processes > 1:
        value = accelerator.reduce(value, reduction="max")
    return bool(value.item())
