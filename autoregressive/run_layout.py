"""The layout of a training run's output folder, shared by the trainer (which writes it) and the evaluation
scripts (which read it), so the two never disagree on a name.

    OUTPUT_DIR/checkpoint-N/            one resumable checkpoint (written whole, then renamed into place)
        model.safetensors               the policy weights
        optimizer.pt, scheduler.json    optimizer and LR-schedule state
        rng_state_{rank}.json           every process's generator states
        trainer_state.json              step, data position, GRPO config and the run's flags ("run_config")
    OUTPUT_DIR/gpt_final.pt             the finished policy in LlamaGen's {"model": state_dict} layout

Upstream AR-GRPO writes ``checkpoints/RUN_NAME/checkpoint-N/`` with ``config.json`` (its model flags) and
``model.safetensors`` (or shards + ``model.safetensors.index.json``) holding ``gpt_model.*`` and ``vq_model.*``;
``resolve_gpt_checkpoint`` and ``saved_model_flags`` read both layouts.

A checkpoint saved with ``--save_only_model`` holds the model and ``trainer_state.json`` only: it evaluates and
exports like any other, but cannot resume.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from autoregressive.checkpoint import CheckpointError, read_json_capped, weights_file_in

FINAL_MODEL = "gpt_final.pt"
STATE_FILE = "trainer_state.json"  # also holds the run's saved flags under "run_config"
RUN_CONFIG_KEY = "run_config"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.json"
RNG_FILE = "rng_state_{rank}.json"
# What accelerate's save_state names the first prepared model (safetensors by default, else torch).
ACCELERATE_MODEL_FILES = (MODEL_FILE, "pytorch_model.bin")
UPSTREAM_CONFIG = "config.json"
# Upstream's config.json fields that are model flags of ours with the same meaning.
UPSTREAM_MODEL_FLAGS = (
    "gpt_model",
    "gpt_type",
    "vq_model",
    "codebook_size",
    "codebook_embed_dim",
    "image_size",
    "downsample_size",
    "cls_token_num",
    "text_encoder",
)
# Our saved run config's flags that describe the model (not the weights to start from: gpt_ckpt, gpt_use_ema).
RUN_MODEL_FLAGS = (
    *UPSTREAM_MODEL_FLAGS,
    "vq_ckpt",
    "vq_config",
    "gpt_config",
    "num_classes",
    "caption_dim",
    "text_encoder_seed",
)
LLAMAGEN_DOWNLOADS = (
    "https://huggingface.co/FoundationVision/LlamaGen (c2i_*.pt, vq_ds16_c2i.pt), "
    "https://huggingface.co/peizesun/llamagen_t2i (t2i_XL_stage1_256.pt, vq_ds16_t2i.pt)"
)
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


def model_file_in(checkpoint: str | Path) -> Path:
    """The weights of a ``checkpoint-N`` folder, ours (accelerate's) or upstream's (single or sharded)."""
    try:
        return weights_file_in(checkpoint)
    except CheckpointError as err:
        raise FileNotFoundError(str(err)) from err


def resolve_gpt_checkpoint(model_or_ckpt: str | os.PathLike, step: str | int | None = None) -> Path:
    """The GPT weights file that MODEL_OR_CKPT (+ STEP) names.

    MODEL_OR_CKPT is a weights file (a LlamaGen ``.pt`` or ``.safetensors``), a run's output folder (ours or
    upstream's ``checkpoints/RUN_NAME``) or one of its ``checkpoint-N`` folders. In an output folder STEP picks
    ``checkpoint-STEP``; ``final`` or no STEP picks ``gpt_final.pt``; ``latest`` the highest ``checkpoint-N``.
    """
    path = Path(model_or_ckpt)
    step = None if step in (None, "") else str(step)
    if path.is_file():
        if step not in (None, "final"):
            raise ValueError(
                f"STEP {step} was given but {path} is a weights file; STEP selects checkpoint-STEP inside an "
                "AR-GRPO output folder (pass the folder, or leave STEP empty)"
            )
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: no such GPT checkpoint file or AR-GRPO output folder. LlamaGen weights: {LLAMAGEN_DOWNLOADS}"
        )
    if checkpoint_step(path) is not None and step in (None, "final"):
        return model_file_in(path)
    numbered = numbered_checkpoints(path)
    available = ", ".join(str(n) for n in sorted(numbered)) or "none"
    if step in (None, "final"):
        if (path / FINAL_MODEL).is_file():
            return path / FINAL_MODEL
        raise FileNotFoundError(
            f"{path}: no {FINAL_MODEL} (the run has not finished?); pass STEP to pick a checkpoint-N folder "
            f"(available steps: {available})"
        )
    if step == "latest":
        if not numbered:
            raise FileNotFoundError(f"{path}: STEP latest, but the folder has no checkpoint-N folders")
        return model_file_in(numbered[max(numbered)])
    if not step.isdigit():
        raise ValueError(f"STEP must be a number, 'final' or 'latest', got {step!r}")
    if int(step) not in numbered:
        raise FileNotFoundError(f"{path}: no checkpoint-{step} folder (available steps: {available})")
    return model_file_in(numbered[int(step)])


def _run_config_file(weights: Path) -> Path | None:
    """The trainer state holding the run config that made ``weights`` (gpt_final.pt: the newest checkpoint's)."""
    folder = weights.parent
    if checkpoint_step(folder) is not None:
        return folder / STATE_FILE if (folder / STATE_FILE).is_file() else None
    if weights.name == FINAL_MODEL:
        found = numbered_checkpoints(folder)
        for step in sorted(found, reverse=True):
            if (found[step] / STATE_FILE).is_file():
                return found[step] / STATE_FILE
    return None


def saved_model_flags(weights: str | Path) -> tuple[dict[str, Any], Path | None]:
    """The model flags saved beside ``weights`` (a file ``resolve_gpt_checkpoint`` returned) and their file.

    Ours: the run config in the checkpoint's trainer state. Upstream's: its ``config.json``, whose VQ is the
    checkpoint's own ``vq_model.*`` part. Nothing saved (a LlamaGen file): ``({}, None)``.
    """
    weights = Path(weights)
    upstream = weights.parent / UPSTREAM_CONFIG
    if checkpoint_step(weights.parent) is not None and upstream.is_file():
        config = read_json_capped(upstream)
        if not isinstance(config, dict):
            raise CheckpointError(f"{upstream}: expected a JSON object of model settings")
        flags = {key: config[key] for key in UPSTREAM_MODEL_FLAGS if config.get(key) not in (None, "")}
        return {**flags, "vq_ckpt": str(weights)}, upstream
    state_file = _run_config_file(weights)
    if state_file is None:
        return {}, None
    state = read_json_capped(state_file)
    saved = state.get(RUN_CONFIG_KEY) if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        return {}, None
    return {key: saved[key] for key in RUN_MODEL_FLAGS if saved.get(key) is not None}, state_file
