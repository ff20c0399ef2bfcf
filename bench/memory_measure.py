"""Measuring a GRPO step's peak RSS for bench/memory_plan.py: random weights of a real GPT size, a reduced
batch, the process's peak resident memory above its RSS before the models were built, next to the formula."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch

from bench.memory_plan import DOWNSAMPLE, GB, VOCAB, GPTShape, Layout, Task, build_gpt, parts_gb, plan


def rss_bytes(field: str = "VmRSS") -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _token_images(image_size: int):
    """A weight-free VQ stand-in: each token's value painted over its 16x16 patch, so no decoder weights enter
    the measurement (the plan counts the GPT step; the VQ decoder and reward models are listed apart)."""

    def decode(tokens: torch.Tensor) -> torch.Tensor:
        grid = image_size // DOWNSAMPLE
        values = (tokens.float() / VOCAB).view(-1, 1, grid, grid)
        return values.repeat_interleave(DOWNSAMPLE, 2).repeat_interleave(DOWNSAMPLE, 3).expand(-1, 3, -1, -1)

    return decode


def _brightness(images, prompts, metadata):
    score = images.mean(dim=(1, 2, 3))
    return score, {"brightness": score}


def measure_step(
    model: str,
    task: Task,
    prompts: int = 1,
    group: int = 2,
    steps: int = 2,
    overrides: dict | None = None,
) -> dict:
    """Peak RSS of ``steps`` GRPO steps (rollout + update; from the second step AdamW's states exist) above the
    RSS before the models were built, and the formula's prediction for the same step.

    Run in a fresh process for a clean peak; in a process that already peaked higher, VmHWM is reset first.
    """
    # modules the trainer imports lazily, imported now so that their code stays out of the measured peak
    import PIL.ImageDraw  # noqa: F401
    import safetensors.torch  # noqa: F401
    from accelerate import Accelerator
    from transformers import get_scheduler  # noqa: F401

    from grpo.config import GRPOConfig
    from grpo.prompt_sources import ClassPrompts
    from grpo_trainer import GRPOTrainer

    overrides = overrides or {}
    samples = prompts * group
    baseline = rss_bytes()
    reset_peak_rss()
    torch.manual_seed(0)
    policy = build_gpt(model, task, "cpu", **overrides)
    shape = GPTShape.of(policy)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            max_steps=steps,
            num_generations=group,
            per_device_train_batch_size=samples,
            gen_cfg_cfg_scale=2.0 if task.cfg else 1.0,
            beta=0.1,
            save_steps=0,
            image_log_steps=0,
            report_to="none",
        )
        if task.model_type == "c2i":
            def encode(values):
                return torch.tensor(values, dtype=torch.long), None
        else:
            def encode(values):
                feats = torch.randn(len(values), task.cls_token_num, task.caption_dim)
                return feats, torch.ones(len(values), task.cls_token_num, dtype=torch.long)
        trainer = GRPOTrainer(
            config,
            policy,
            _token_images(task.image_size),
            _brightness,
            ClassPrompts(1000 if task.model_type == "c2i" else 10, 0),
            encode,
            Accelerator(cpu=True),
        )
        del policy
        for _ in range(steps):  # the GRPO steps alone: no checkpoint or final-model writing in the peak
            trainer.update(trainer.make_rollout())
        peak = rss_bytes("VmHWM")
    predicted = plan(shape, replace(task, per_device_batch=samples), Layout("measured", bf16=False))
    return {
        "model": model,
        "task": asdict(task),
        "overrides": overrides,
        "samples": samples,
        "steps": steps,
        "params": shape.params,
        "baseline_rss_gb": baseline / GB,
        "measured_gb": (peak - baseline) / GB,
        "predicted_gb": predicted["peak"] / GB,
        "predicted_phase": predicted["peak_phase"],
        "predicted_parts_gb": parts_gb(predicted),
        "relative_error": predicted["peak"] / (peak - baseline) - 1,
        "threads": torch.get_num_threads(),
    }


def measure_in_subprocess(model: str, task_name: str, prompts: int, group: int, steps: int, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "bench.memory_plan", "measure", "--model", model, "--task", task_name,
        "--prompts", str(prompts), "--group", str(group), "--steps", str(steps),
    ]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"measuring {model} {task_name} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


