"""The accelerator a training run uses, made so that every process of a launch takes part.

Under ``torchrun`` or ``accelerate launch`` on a machine without CUDA, ``Accelerator()`` does not join the
process group unless told to run on the CPU: every process then believes it is the only one, and N copies of
the same job run side by side. ``make_accelerator`` asks for the CPU backend (gloo) in that case and checks
that the accelerator sees as many processes as the launcher started.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 when started plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_accelerator(mixed_precision: str = "no", **kwargs) -> Accelerator:
    """An ``Accelerator`` over every launched process; raises when it would run the job once per process."""
    world_size = launched_processes()
    on_cpu = world_size > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(cpu=on_cpu or kwargs.pop("cpu", False), mixed_precision=mixed_precision, **kwargs)
    if accelerator.num_processes != world_size:
        raise RuntimeError(
            f"the launcher started {world_size} processes (WORLD_SIZE) but accelerate joined "
            f"{accelerator.num_processes}: each would train alone on the same prompts. Check the accelerate "
            "config (`accelerate env`) and the launch command."
        )
    _check_requested_sharding(accelerator)
    if accelerator.num_processes > 1:
        atexit.register(_leave_process_group)
    return accelerator


def _leave_process_group() -> None:
    """Destroy the process group before the interpreter tears down: left to finalisation, its backend threads can
    be destroyed while joinable, which aborts the process after a finished run ("terminate called without an
    active exception", exit status -6 under torchrun)."""
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def end_run(accelerator: Accelerator) -> None:
    """End a finished multi-process run: every process waits for the others, leaves the process group, flushes its
    output and exits with status 0 without finalising the interpreter. A single process returns and exits normally.

    Why not a normal exit: torch's background threads (gloo's workers; under FSDP2 also the autograd device threads)
    can still be torn down while the interpreter finalises, which aborts a process after all its work is saved
    ("terminate called without an active exception", SIGABRT); torchrun then kills the other processes and reports
    the run as failed. Call it once everything is written (the trainer has closed its trackers): nothing after it
    runs."""
    if accelerator.num_processes == 1:
        return
    accelerator.wait_for_everyone()  # no process leaves while another still communicates
    _leave_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _check_requested_sharding(accelerator: Accelerator) -> None:
    """Refuse accelerate's FSDP and DeepSpeed configs: accelerate drops either silently on a CPU launch, and its
    FSDP wrapping would leave sampling with one shard. Sharding is the trainer's own ``--fsdp`` (grpo/sharding.py),
    the same code on CPU and GPUs; refusing is better than training unsharded while the config says otherwise."""
    for variable, name, kind in (
        ("ACCELERATE_USE_FSDP", "FSDP", DistributedType.FSDP),
        ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed", DistributedType.DEEPSPEED),
    ):
        asked = os.environ.get(variable, "false").lower() in ("1", "true")
        if asked or accelerator.distributed_type == kind:
            raise RuntimeError(
                f"the accelerate config asks for {name}, which this trainer does not take from accelerate (on a CPU "
                f"launch accelerate would silently train unsharded, as {accelerator.distributed_type.value}). To "
                "shard the policy, launch plain DDP (torchrun or scripts/accelerate/ddp.yaml) and pass --fsdp: the "
                "trainer shards it with FSDP2 itself (docs/trainer.md, 'Distributed')."
            )
