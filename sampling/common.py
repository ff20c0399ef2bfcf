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

from autoregressive.run_layout import LLAMAGEN_DOWNLOADS, resolve_gpt_checkpoint  # noqa: F401 (re-exported)

T = TypeVar("T")

RUN_RECORD = "sampling_config.json"


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


# ----------------------------------------------------------------------------------------- run record
def check_run_record(folder: Path, record: dict[str, Any]) -> None:
    """Refuse to resume into a folder whose samples were made with other settings (checked before any work).

    The record itself is written by ``write_run_record`` once the models have loaded, so an attempt that fails
    before its first sample (a wrong flag, a missing file) leaves nothing that blocks the corrected rerun.
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


def write_run_record(folder: Path, record: dict[str, Any], layout: ProcessLayout) -> None:
    """Record the settings of the samples about to be written (every process calls it; the main one writes)."""
    path = folder / RUN_RECORD
    layout.barrier()
    if layout.is_main and not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    layout.barrier()


# -------------------------------------------------------------------------------------------- CPU runs
# More images than this on the CPU need --allow_cpu: a full benchmark there takes days, not minutes.
CPU_IMAGE_LIMIT = 100
# An optimistic sustained rate of a CPU for this workload, only used to say how long a run would take.
CPU_FLOPS = 1e11


def check_cpu_budget(args: Any, layout: ProcessLayout, num_images: int, num_params: int) -> None:
    """Stop a large evaluation that would run on the CPU unless ``--allow_cpu`` asks for it."""
    if layout.device.type != "cpu" or num_images <= CPU_IMAGE_LIMIT or args.allow_cpu:
        return
    tokens = (args.image_size // args.downsample_size) ** 2
    passes = 2 if args.cfg_scale != 1.0 else 1  # classifier-free guidance runs the model twice
    seconds = 2 * num_params * tokens * passes * num_images / CPU_FLOPS / layout.world_size
    raise SystemExit(
        f"no CUDA device: {num_images} images with {args.gpt_model} ({num_params / 1e6:.0f}M parameters, {tokens} "
        f"tokens each) would run on the CPU, which takes about {seconds / 3600:.0f} hours or more. Run it on a GPU "
        f"(test*.sh GPU argument), ask for fewer images, or pass --allow_cpu (ALLOW_CPU=1 for test*.sh) to run it "
        "on the CPU anyway."
    )


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
    allow_cpu: bool = field(
        default=False,
        metadata={"help": f"run more than {CPU_IMAGE_LIMIT} images on the CPU when there is no CUDA device (slow)"},
    )


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
