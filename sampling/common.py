"""What every evaluation sampler shares: process layout, per-sample seeds, checkpoint lookup, run records.

Work is split by sample (or prompt) index, never by process-local counters, and every sample's random
stream is seeded from ``(seed, index...)`` alone: the images do not depend on how many processes made them,
on the batch size, or on which samples an interrupted run had already finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from autoregressive.run_layout import ACCELERATE_MODEL_FILES, FINAL_MODEL, checkpoint_step, numbered_checkpoints

T = TypeVar("T")

RUN_RECORD = "sampling_config.json"
LLAMAGEN_DOWNLOADS = (
    "https://huggingface.co/FoundationVision/LlamaGen (c2i_*.pt, vq_ds16_c2i.pt), "
    "https://huggingface.co/peizesun/llamagen_t2i (t2i_XL_stage1_256.pt, vq_ds16_t2i.pt)"
)


# ------------------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class ProcessLayout:
    """This process's place in a ``torchrun`` launch (rank 0 of 1 when started plainly)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's part of a list every process built identically (round-robin, balanced)."""
        return list(items[self.rank :: self.world_size])


def init_processes() -> ProcessLayout:
    """Join the ``torchrun`` process group if there is one; one CUDA device per process, else the CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    return ProcessLayout(rank=rank, world_size=world_size, device=device)


def close_processes() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def run_in_processes(run, args):
    """``run(args, layout)`` inside the process group, which is closed even when ``run`` fails."""
    layout = init_processes()
    try:
        return run(args, layout)
    finally:
        close_processes()


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# -------------------------------------------------------------------------------------- checkpoints
def _model_file_in(checkpoint: Path) -> Path:
    for name in ACCELERATE_MODEL_FILES:
        if (checkpoint / name).is_file():
            return checkpoint / name
    found = sorted(p.name for p in checkpoint.iterdir())
    raise FileNotFoundError(
        f"{checkpoint}: no model weights ({' or '.join(ACCELERATE_MODEL_FILES)}, as accelerate's save_state "
        f"writes them); the folder holds {found[:10]}"
    )


def resolve_gpt_checkpoint(model_or_ckpt: str | os.PathLike, step: str | None = None) -> Path:
    """The GPT weights file that MODEL_OR_CKPT (+ STEP) names.

    MODEL_OR_CKPT is a weights file (a LlamaGen ``.pt`` or ``.safetensors``), an AR-GRPO output folder or one of
    its ``checkpoint-N`` folders. In an output folder STEP picks ``checkpoint-STEP``; ``final`` or no STEP picks
    ``gpt_final.pt``; ``latest`` the highest ``checkpoint-N``.
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
        return _model_file_in(path)
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
        return _model_file_in(numbered[max(numbered)])
    if not step.isdigit():
        raise ValueError(f"STEP must be a number, 'final' or 'latest', got {step!r}")
    if int(step) not in numbered:
        raise FileNotFoundError(f"{path}: no checkpoint-{step} folder (available steps: {available})")
    return _model_file_in(numbered[int(step)])


# ----------------------------------------------------------------------------------------- run record
def check_run_record(folder: Path, record: dict[str, Any], layout: ProcessLayout) -> None:
    """Refuse to resume into a folder whose samples were made with other settings; record them otherwise.

    Every process compares before the main one writes, so no process reads a half-written record.
    """
    path = folder / RUN_RECORD
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: unreadable run record ({err}); delete it if the samples are yours") from err
        changed = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if changed:
            details = "; ".join(f"{k}: was {old.get(k)!r}, now {record.get(k)!r}" for k in changed[:6])
            raise ValueError(
                f"{folder} holds samples made with different settings ({details}). Use another output folder, "
                "or delete this one to start over."
            )
    layout.barrier()
    if layout.is_main and not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    layout.barrier()


# -------------------------------------------------------------------------------------------- flags
@dataclass(kw_only=True)
class SamplingArguments:
    """LlamaGen's sampling flags, plus how to find the weights (STEP). Entry points set their own defaults for
    cfg_scale, top_k and per_proc_batch_size."""

    cfg_scale: float = field(default=2.0, metadata={"help": "classifier-free guidance scale"})
    cfg_interval: int = field(default=-1, metadata={"help": "guide only the first tokens up to this index (-1: all)"})
    top_k: int = field(default=0, metadata={"help": "top-k filtering (0: off)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus filtering (1.0: off)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    seed: int = field(default=0, metadata={"help": "global seed; sample i uses a stream seeded by (seed, i)"})
    per_proc_batch_size: int = field(default=32, metadata={"help": "images per forward pass"})
    bf16: bool = field(default=False, metadata={"help": "run the GPT under bf16 autocast (VQ decodes in fp32)"})
    ckpt_step: str | None = field(
        default=None,
        metadata={
            "help": "when --gpt_ckpt is an AR-GRPO output folder: checkpoint-N to load (N, 'latest'; "
            "default: gpt_final.pt)"
        },
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars (--no_progress hides them)"})


def sampling_record(args: Any, gpt_ckpt: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Every setting that changes the pixels of a sample (not the counts, batch size or process layout)."""
    record = {
        "gpt_ckpt": str(gpt_ckpt.resolve()),
        "gpt_model": args.gpt_model,
        "gpt_type": args.gpt_type,
        "gpt_use_ema": args.gpt_use_ema,
        "gpt_config": args.gpt_config,
        "vq_ckpt": str(Path(args.vq_ckpt).resolve()),
        "vq_model": args.vq_model,
        "vq_config": args.vq_config,
        "image_size": args.image_size,
        "cfg_scale": args.cfg_scale,
        "cfg_interval": args.cfg_interval,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "temperature": args.temperature,
        "seed": args.seed,
        "bf16": args.bf16,
    }
    record.update(extra)
    return record
