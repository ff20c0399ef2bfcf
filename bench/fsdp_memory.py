"""Peak RSS per process of ``--fsdp`` GRPO steps, measured under torchrun on CPU (gloo), for docs/scaling.md.

    torchrun --standalone --nproc_per_node=2 bench/fsdp_memory.py --model GPT-B [--bf16] [--image_size 128]

Each process prints one JSON line: its peak resident memory (VmHWM) above its RSS before the model was built,
as ``bench/memory_measure.py`` measures one DDP process (random weights, weight-free VQ stand-in, brightness reward,
1 prompt x group 2 per process).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory_measure import _brightness, _token_images, reset_peak_rss, rss_bytes  # noqa: E402
from bench.memory_plan import GB, TASKS, build_gpt  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="GPT-B")
    parser.add_argument("--task", choices=sorted(TASKS), default="c2i")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--group", type=int, default=2)
    parser.add_argument("--image_size", type=int, help="default: the task's; smaller: weights dominate the peak")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import PIL.ImageDraw  # noqa: F401  (imported lazily by the trainer: kept out of the measured peak)
    import safetensors.torch  # noqa: F401
    from transformers import get_scheduler  # noqa: F401

    from grpo.config import GRPOConfig
    from grpo.launch import make_accelerator
    from grpo.prompt_sources import ClassPrompts
    from grpo_trainer import GRPOTrainer

    task = TASKS[args.task]
    task = replace(task, image_size=args.image_size or task.image_size)
    if task.model_type != "c2i":
        raise SystemExit("--task: only c2i is measured here (class ids need no caption encoder)")
    accelerator = make_accelerator(mixed_precision="bf16" if args.bf16 else "no")
    baseline = rss_bytes()
    reset_peak_rss()
    torch.manual_seed(0)
    policy = build_gpt(args.model, task, "cpu")
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, max_steps=args.steps, num_generations=args.group, per_device_train_batch_size=args.group,
            gen_cfg_cfg_scale=2.0, beta=0.1, save_steps=0, image_log_steps=0, report_to="none", fsdp=True,
            bf16=args.bf16,
        )  # fmt: skip

        def encode(values):
            return torch.tensor(values, dtype=torch.long), None

        trainer = GRPOTrainer(config, policy, _token_images(task.image_size), _brightness, ClassPrompts(1000, 0),
                              encode, accelerator)  # fmt: skip
        del policy
        for _ in range(args.steps):
            trainer.update(trainer.make_rollout())
        peak = rss_bytes("VmHWM")
    result = {"model": args.model, "image_size": task.image_size, "bf16": args.bf16, "steps": args.steps,
              "process": accelerator.process_index, "baseline_rss_gb": baseline / GB,
              "peak_above_baseline_gb": (peak - baseline) / GB}  # fmt: skip
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
