"""Sequence attention on CPU in bf16: PyTorch's fused kernel in bf16 against the model's path (the same kernel in fp32).

    python bench/bench_attention.py [--threads 1] [--repeats 7] [--json out.json]

Why ``sequence_attention`` runs the fused kernel in fp32 for bf16 inputs on CPU. Shapes (rows x heads x length x
head dim) are those of a teacher-forced pass with CFG: the tiny step config at 8 samples, the demo's step (t2i,
padded captions, boolean mask) and GPT-B at 16 samples. Variants, timed interleaved, medians, forward + backward and
forward only: ``fused_bf16`` (SDPA on the bf16 inputs, what the model did before) and ``ours``
(``sequence_attention`` on the same bf16 inputs), each eager and compiled (``_compiled``). JSON goes to stdout (and
``--json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoregressive.models.gpt_layers import sequence_attention  # noqa: E402
from bench.report import emit_json  # noqa: E402

SHAPES = {  # name: (rows, heads, length, head_dim, caption positions with a padding mask, or 0 for causal only)
    "tiny step, 8 samples": (16, 4, 65, 64, 0),
    "demo step, 48 samples": (96, 4, 79, 32, 16),
    "GPT-B, 16 samples": (32, 12, 257, 64, 0),
}


def inputs(rows: int, heads: int, length: int, head_dim: int, caption: int):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(rows, heads, length, head_dim, generator=g).bfloat16() for _ in range(3))
    if not caption:
        return q, k, v, None, True
    keys = torch.arange(length)
    key_ok = torch.ones(rows, length, dtype=torch.bool)
    for row in range(rows):
        key_ok[row, : row % (caption // 2)] = False  # left-padded captions
    mask = (keys[None, :] <= keys[:, None])[None] & key_ok[:, None, :]
    return q, k, v, (mask | torch.eye(length, dtype=torch.bool)[None]).unsqueeze(1), False


def variants(mask, causal) -> dict:
    def fused_bf16(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)

    def ours(q, k, v):
        return sequence_attention(q, k, v, mask, causal)

    eager = {"fused_bf16": fused_bf16, "ours": ours}
    compiled = {f"{name}_compiled": torch.compile(fn, dynamic=False) for name, fn in eager.items()}
    return {**eager, **compiled}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_shape(shape, repeats: int) -> dict:
    q, k, v, mask, causal = inputs(*shape)
    grad = torch.randn_like(q)
    runs = variants(mask, causal)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]

    def backward(fn):
        return lambda: fn(*leaves).backward(grad)

    def forward(fn):
        def run():
            with torch.no_grad():
                fn(q, k, v)

        return run

    samples = {(name, kind): [] for name in runs for kind in ("forward_backward", "forward")}
    for r in range(repeats + 1):  # the first round warms up
        for name, fn in runs.items():
            for kind, make in (("forward_backward", backward), ("forward", forward)):
                seconds = timed(make(fn))
                if r:
                    samples[(name, kind)].append(seconds)
    ms = {f"{name}_{kind}_ms": 1e3 * statistics.median(s) for (name, kind), s in samples.items()}
    return {
        "shape": dict(zip(["rows", "heads", "length", "head_dim", "caption"], shape, strict=True)),
        **ms,
        "speedup_forward_backward": ms["fused_bf16_forward_backward_ms"] / ms["ours_forward_backward_ms"],
        "speedup_forward": ms["fused_bf16_forward_ms"] / ms["ours_forward_ms"],
        "speedup_compiled_forward_backward": (
            ms["fused_bf16_compiled_forward_backward_ms"] / ms["ours_compiled_forward_backward_ms"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "threads": args.threads,
        "repeats": args.repeats,
        "shapes": {name: bench_shape(shape, args.repeats) for name, shape in SHAPES.items()},
    }
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
