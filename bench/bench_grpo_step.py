"""Where a GRPO step spends its time on CPU, for a small config: sampling, decoding, rewards, log-prob passes,
update (forward + backward + optimizer), with peak memory.

    python bench/bench_grpo_step.py [--threads 2] [--steps 6]

Model: GPT-Small (4 layers x 128) over a 16x16 token grid (256 tokens), a small VQ (ch 16, downsample 4),
G=8 x 2 prompts, CFG 2, beta > 0 (so the reference pass runs), num_iterations 2 (so old log-probs are stored).
Reward: mean brightness (weight-free, so the reward share is a lower bound). Medians over steps after the first.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accelerate import Accelerator  # noqa: E402

from autoregressive.models.gpt import build_gpt  # noqa: E402
from grpo.config import GRPOConfig  # noqa: E402
from grpo.prompts import ClassPrompts  # noqa: E402
from grpo_trainer import GRPOTrainer  # noqa: E402
from tokenizer.vq_model import VQConfig, VQModel  # noqa: E402

PARTS = ["time/sampling", "time/decoding", "time/rewards", "time/logprobs", "time/update"]


def brightness(images, prompts, metadata):
    score = images.mean(dim=(1, 2, 3))
    return score, {"brightness": score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vq = VQModel(
        VQConfig(
            codebook_size=256, encoder_ch_mult=[1, 2, 2], decoder_ch_mult=[1, 2, 2], z_channels=16, ch=16, norm_groups=4
        )
    ).eval()
    policy = build_gpt("GPT-Small", block_size=256, vocab_size=256, num_classes=10)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            max_steps=args.steps * 2,
            num_generations=8,
            per_device_train_batch_size=16,
            num_iterations=2,
            beta=0.04,
            gen_cfg_cfg_scale=2.0,
            report_to="none",
            image_log_steps=0,
            save_steps=0,
            learning_rate=1e-4,
        )
        trainer = GRPOTrainer(
            config,
            policy,
            lambda t: vq.decode_to_images(t, 16),
            brightness,
            ClassPrompts(10, 0),
            lambda v: (torch.tensor(v), None),
            Accelerator(cpu=True),
        )
        trainer.train()
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    rollouts = [r for r in rows if "time/sampling" in r][1:]  # the first rollout includes warm-up
    updates = [r["time/update"] for r in rows[2:]]
    per_rollout = {p: statistics.median(r[p] for r in rollouts) for p in PARTS[:-1]}
    per_rollout["time/update"] = 2 * statistics.median(updates)  # two optimizer steps per rollout
    total = sum(per_rollout.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"GPT-Small, 256 tokens, 16 images/rollout x CFG, {args.threads} threads; per rollout (2 updates):")
    print("| part | seconds | share |")
    print("|---|---|---|")
    for part, seconds in per_rollout.items():
        print(f"| {part.split('/')[1]} | {seconds:.2f} | {100 * seconds / total:.0f}% |")
    print(f"| total | {total:.2f} | 100% |")
    print(
        f"peak resident memory: {peak_mb:.0f} MB; sampled tokens/s: "
        f"{statistics.median(r['throughput/tokens_per_s'] for r in rollouts):.0f}"
    )


if __name__ == "__main__":
    main()
