"""Rollout throughput: KV-cached decoding vs recomputing the whole prefix for every new token.

    python bench/bench_sampler.py [--threads 2] [--repeats 3]

Both strategies run in the same process on the same model and batch (B prompts x CFG = 2B rows); the
table reports image tokens per second (medians) and the speed-up. For GPT-B the full-recompute rollout is
too slow to run whole on a CPU, so it is timed at evenly spaced prefix lengths and integrated (trapezoid rule):
the cost of one step depends only on the prefix length.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoregressive.models.generate import (  # noqa: E402
    SamplingConfig,
    generate,
    guided_logits,
    process_logits,
    sample_tokens,
)
from autoregressive.models.gpt import build_gpt  # noqa: E402


@torch.no_grad()
def full_recompute_step(model, cond, tokens, cfg, gen):
    """One new token by a full forward over condition + all previous tokens (no cache)."""
    both = torch.cat([cond, model.null_condition_like(cond)])
    seq = torch.cat([tokens, tokens[:, :1]], dim=1).repeat(2, 1)  # dummy last token: only its prediction is used
    logits = model(seq, both)[:, -1]
    step = process_logits(guided_logits(logits, cfg, True), cfg.temperature, cfg.top_k, cfg.top_p)
    return sample_tokens(step, gen)[0]


def time_cached(model, cond, cfg, n_tokens, repeats):
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        generate(model, cond, n_tokens, cfg, generator=torch.Generator().manual_seed(r))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_full(model, cond, cfg, n_tokens, repeats, points=None):
    """Seconds for a full-recompute rollout; exact loop when ``points`` is None, else integrated."""
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    if points is None:
        times = []
        for _ in range(repeats):
            tokens = torch.zeros(cond.shape[0], 0, dtype=torch.long)
            start = time.perf_counter()
            for _ in range(n_tokens):
                tokens = torch.cat([tokens, full_recompute_step(model, cond, tokens, cfg, gen)[:, None]], dim=1)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    lengths = [round(i * (n_tokens - 1) / (points - 1)) for i in range(points)]
    per_step = []
    for length in lengths:
        tokens = torch.randint(0, vocab, (cond.shape[0], length))
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            full_recompute_step(model, cond, tokens, cfg, gen)
            samples.append(time.perf_counter() - start)
        per_step.append(statistics.median(samples))
    total = 0.0
    for (l0, t0), (l1, t1) in zip(zip(lengths, per_step), zip(lengths[1:], per_step[1:])):
        total += (l1 - l0) * (t0 + t1) / 2
    return total + per_step[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="prompts per rollout (rows = 2x with CFG)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = SamplingConfig(cfg_scale=2.0, top_k=0)
    rows = []
    for name, kwargs, n_tokens, points in [
        ("GPT-Small (4x128)", {}, 256, None),
        ("GPT-B (12x768)", {}, 256, 6),
    ]:
        size = "GPT-Small" if name.startswith("GPT-Small") else "GPT-B"
        torch.manual_seed(0)
        model = build_gpt(size, block_size=256, **kwargs).eval()
        cond = torch.arange(args.batch) % 1000
        cached = time_cached(model, cond, cfg, n_tokens, args.repeats)
        full = time_full(model, cond, cfg, n_tokens, args.repeats, points)
        tokens = args.batch * n_tokens
        rows.append((name, tokens / cached, tokens / full, full / cached, "integrated" if points else "measured"))
    print(f"batch {args.batch} prompts x CFG, 256 tokens, {args.threads} threads, median of {args.repeats}")
    print("| model | cached tok/s | full-recompute tok/s | speed-up | full-recompute timing |")
    print("|---|---|---|---|---|")
    for name, c, f, s, how in rows:
        print(f"| {name} | {c:.0f} | {f:.1f} | {s:.1f}x | {how} |")


if __name__ == "__main__":
    main()
