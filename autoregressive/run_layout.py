"""The layout of a training run's output folder, shared by the trainer (which writes it) and the evaluation
scripts (which read it), so the two never disagree on a name.

    OUTPUT_DIR/checkpoint-N/            one resumable checkpoint (written whole, then renamed into place)
        model.safetensors               the policy weights
        optimizer.pt, scheduler.json    optimizer and LR-schedule state
        rng_state_{rank}.json           every process's generator states
        trainer_state.json              step, data position, GRPO config and the run's flags ("run_config")
    OUTPUT_DIR/gpt_final.pt             the finished policy in LlamaGen's {"model": state_dict} layout
"""

from __future__ import annotations

import re
from pathlib import Path

FINAL_MODEL = "gpt_final.pt"
STATE_FILE = "trainer_state.json"  # also holds the run's saved flags under "run_config"
RUN_CONFIG_KEY = "run_config"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.json"
RNG_FILE = "rng_state_{rank}.json"
# What accelerate's save_state names the first prepared model (safetensors by default, else torch).
ACCELERATE_MODEL_FILES = (MODEL_FILE, "pytorch_model.bin")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"checkpoint-{step}"


def checkpoint_step(path: str | Path) -> int | None:
    """N for a ``checkpoint-N`` folder name, else None."""
    match = _CHECKPOINT_DIR.match(Path(path).name)
    return int(match.group(1)) if match else None


def numbered_checkpoints(output_dir: str | Path) -> dict[int, Path]:
    """Every ``checkpoint-N`` folder of ``output_dir`` by N (complete or not: callers check what they need)."""
    root = Path(output_dir)
    if not root.is_dir():
        return {}
    return {step: p for p in root.iterdir() if p.is_dir() and (step := checkpoint_step(p)) is not None}
