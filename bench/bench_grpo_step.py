"""One GRPO step (rollout + update) on a tiny LlamaGen config, by precision and decode path, with the time split.

    python bench/bench_grpo_step.py [--threads 1] [--steps 3] [--samples 8,32] [--demo] [--json out.json]

Config: c2i GPT (dim 256, 4 layers, 4 heads, vocab 1024) over 8x8 tokens, the demo's VQ (ch 16, downsample 4,
32x32 images), G = 8 (8 samples = 1 prompt, 32 = 4 prompts), one micro-batch per rollout, CFG 2 (guided
log-probs, the default), beta 0.1 (so the reference pass runs), a weight-free brightness reward.
``--demo`` adds the demo's step: GPT-Small t2i (16 caption tokens; fixed random caption features stand in for
the text encoder), 6 prompts x G 8 = 48 samples, CFG 3, beta 0, the same VQ with 512 codes.

Variants, stepped interleaved (one round steps each trainer once) in one process:
- ``main``: what today's main computes with default flags: ``default`` with the fused SDPA kernel for the single
  decode query too (swapped in for this variant's steps only);
- ``default``: default flags (fp32, eager) on this code;
- ``bf16``: ``--bf16``; ``compile``: ``--compile``; ``bf16_compile``: both; ``bf16_compile_head``: both and
  ``--bf16_logit_head``.
Reported per variant: medians over the steps after the first (which also pays any compile, reported apart) of
sampling, VQ decoding, rewards, log-prob passes, update, and the total, plus the speed-up over ``main``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from unittest.mock import patch

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accelerate import Accelerator  # noqa: E402
from accelerate.state import AcceleratorState  # noqa: E402

from autoregressive.models import gpt_layers  # noqa: E402
from autoregressive.models.gpt import GPT, ModelArgs  # noqa: E402
from bench.report import emit_json  # noqa: E402
from demo.pretrain import DemoModels  # noqa: E402
from grpo.config import GRPOConfig  # noqa: E402
from grpo.prompt_sources import ClassPrompts  # noqa: E402
from grpo_trainer import GRPOTrainer  # noqa: E402
from tokenizer.vq_model import VQConfig, VQModel  # noqa: E402

PARTS = ["sampling", "decoding", "rewards", "logprobs", "update"]
VARIANTS = {
    "main": {},
    "default": {},
    "compile": {"compile": True},
    "bf16": {"bf16": True},
    "bf16_compile": {"bf16": True, "compile": True},
    "bf16_compile_head": {"bf16": True, "compile": True, "bf16_logit_head": True},
}


def brightness(images, prompts, metadata):
    score = images.mean(dim=(1, 2, 3))
    return score, {"brightness": score}


def small_vq(codebook_size: int) -> VQModel:
    """The demo's VQ architecture (ch 16, downsample 4: 8x8 tokens are 32x32 images)."""
    torch.manual_seed(0)
    return VQModel(VQConfig(**{**DemoModels().vq, "codebook_size": codebook_size})).eval()


def caption_encoder(caption_tokens: int = 16, caption_dim: int = 64):
    """Stand-in for the demo's frozen text encoder (excluded from the timing): fixed random features per prompt,
    left-padded like short captions."""
    table = torch.randn(10, caption_tokens, caption_dim, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(10, caption_tokens, dtype=torch.long)
    for i in range(10):
        mask[i, : 4 + i % 5] = 0

    def encode(values: list):
        ids = torch.tensor(values)
        return table[ids] * mask[ids, :, None], mask[ids]

    return encode


def build_trainer(setup: str, samples: int, flags: dict, out: str) -> GRPOTrainer:
    torch.manual_seed(0)
    if setup == "tiny":  # the tiny LlamaGen config
        args = ModelArgs(dim=256, n_layer=4, n_head=4, vocab_size=1024, block_size=64, num_classes=10)
        options = dict(beta=0.1, gen_cfg_cfg_scale=2.0)
        encode = lambda v: (torch.tensor(v), None)  # noqa: E731
    else:  # the demo's GPT-Small t2i and its GRPO settings (demo/settings.py): CFG 3, beta 0, guided log-probs
        args = ModelArgs(
            dim=128, n_layer=4, n_head=4, vocab_size=512, block_size=64, model_type="t2i", caption_dim=64,
            cls_token_num=16,
        )
        options = dict(beta=0.0, gen_cfg_cfg_scale=3.0)
        encode = caption_encoder()
    policy = GPT(args)
    with torch.no_grad():  # a spread distribution, as a trained model has, instead of LlamaGen's zero head
        torch.nn.init.normal_(policy.output.weight, std=2.0 / args.dim**0.5)
    vq = small_vq(args.vocab_size)
    config = GRPOConfig(
        output_dir=out,
        max_steps=10_000,
        num_generations=8,
        per_device_train_batch_size=samples,
        **options,
        report_to="none",
        image_log_steps=0,
        save_steps=0,
        learning_rate=1e-5,
        **flags,
    )
    accelerator = Accelerator(cpu=True, mixed_precision="bf16" if config.bf16 else "no")
    return GRPOTrainer(
        config,
        policy,
        lambda t: vq.decode_to_images(t, 8),
        brightness,
        ClassPrompts(10, 0),
        encode,
        accelerator,
    )


def _fused_single_query(q, k, v, mask):
    """Main's decode attention: SDPA's fused kernel also for one query."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def one_step(trainer: GRPOTrainer, as_main: bool) -> dict[str, float]:
    swap = patch.object(gpt_layers, "single_query_attention", _fused_single_query) if as_main else nullcontext()
    with swap:
        start = time.perf_counter()
        rollout = trainer.make_rollout()
        mid = time.perf_counter()
        trainer.update(rollout)
        end = time.perf_counter()
    parts = {p: rollout.seconds[p] for p in PARTS[:-1]}
    parts["update"] = end - mid
    parts["total"] = end - start
    parts["rollout"] = mid - start
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up step)")
    parser.add_argument("--samples", default="8,32", help="samples per step of the tiny config")
    parser.add_argument("--demo", action="store_true", help="also the demo's step (48 samples), ~1 min more")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # one process steps every variant's trainer: each compiled model adds its own graphs to the shared compiled
    # functions, beyond dynamo's default of 8 per function (a training run holds 2-4)
    torch._dynamo.config.recompile_limit = 64
    setups = [("tiny", int(s)) for s in args.samples.split(",")] + ([("demo", 48)] if args.demo else [])
    names = args.variants.split(",")
    # accelerate keeps one process-wide mixed-precision state: build the fp32 trainers first (their autocast is
    # off for good), then the bf16 ones.
    order = sorted(names, key=lambda n: VARIANTS[n].get("bf16", False))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for name in order:
            if VARIANTS[name].get("bf16") and not any(VARIANTS[n].get("bf16") for n, _ in trainers):
                AcceleratorState._reset_state(True)
            for setup, samples in setups:
                out = f"{tmp}/{name}-{setup}{samples}"
                trainers[(name, (setup, samples))] = build_trainer(setup, samples, VARIANTS[name], out)
        first = {key: one_step(t, key[0] == "main") for key, t in trainers.items()}  # warm-up (and compile)
        timed = {key: [] for key in trainers}
        for _ in range(args.steps):
            for key, trainer in trainers.items():
                timed[key].append(one_step(trainer, key[0] == "main"))
        for setup in setups:
            main_total = statistics.median(r["total"] for r in timed[("main", setup)]) if "main" in names else None
            for name in names:
                rows = timed[(name, setup)]
                med = {p: statistics.median(r[p] for r in rows) for p in [*PARTS, "rollout", "total"]}
                results.append(
                    {
                        "config": setup[0],
                        "samples": setup[1],
                        "variant": name,
                        "seconds": med,
                        "speed_vs_main": main_total / med["total"] if main_total else None,
                        "decode_over_sampling": med["decoding"] / med["sampling"],
                        "first_step_extra_seconds": first[(name, setup)]["total"] - med["total"],
                    }
                )
    emit_json({"threads": args.threads, "steps": args.steps, "results": results}, args.json)


if __name__ == "__main__":
    main()
