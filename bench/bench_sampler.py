"""Rollout throughput by precision and decode path, against LlamaGen's published decode, with FLOP accounting.

    python bench/bench_sampler.py [--threads 1] [--repeats 3] [--batch 16] [--gpt-b-tokens 24] [--json out.json]
    python bench/bench_sampler.py --recompute   # the older table: KV cache vs recomputing the prefix

Variants, timed interleaved (one round runs each once) on the same weights and batch (B prompts x CFG = 2B rows):

- ``llamagen``: LlamaGen's decode written from the published algorithm (a layer loop over our weights): a cache
  of the full sequence length, every step attending to all slots through a causal-mask row with SDPA, CFG,
  softmax then ``torch.multinomial``;
- ``eager_fp32`` / ``eager_bf16``: our ``generate`` (prefix cache) on fp32 weights / a bf16 inference copy;
- ``compiled_fp32`` / ``compiled_bf16``: ``generate(compile_mode="default")`` (static cache, one graph);
- ``compiled_bf16_head``: ``compiled_bf16`` with the logit head in bf16 too (``--bf16_logit_head``).

Models: GPT-B (c2i, vocab 16384, 256-token grid; only the first ``--gpt-b-tokens`` tokens are sampled to keep
the run short) and the demo's GPT-Small (t2i, 16 caption tokens, 8x8 tokens, vocab 512). Reported: medians,
image tokens/s, speed vs ``llamagen``, compile seconds (first call minus the steady median), achieved GFLOP/s
(the matmul and attention FLOPs a decode must do) against this machine's 1024^2 matmul rate in the same
precision (measured before and after each model's runs; the higher counts), and the bf16 log-prob error on the
sampled tokens (with the fp32 head, and with the bf16 head). JSON goes to stdout (and ``--json``).
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

from autoregressive.models.generate import (  # noqa: E402
    SamplingConfig,
    generate,
    guided_logits,
    policy_logits,
    process_logits,
    sample_tokens,
    token_logprobs,
)
from autoregressive.models.gpt import GPT, apply_rotary_emb, build_gpt  # noqa: E402
from autoregressive.models.precision import inference_copy  # noqa: E402
from bench.report import emit_json  # noqa: E402

VARIANTS = ["llamagen", "eager_fp32", "eager_bf16", "compiled_fp32", "compiled_bf16", "compiled_bf16_head"]


def _llamagen_step(model: GPT, x: torch.Tensor, input_pos: torch.Tensor, caches, key_ok) -> torch.Tensor:
    """LlamaGen's ``Transformer.forward`` at ``input_pos`` with a full-length cache, from the published algorithm:
    write k/v at ``input_pos``, attend to every slot through the causal-mask rows (SDPA), fp32 logits."""
    slots = caches[0][0].shape[2]
    mask = torch.arange(slots)[None, :] <= input_pos[:, None]  # causal_mask[input_pos]
    mask = (mask[None] & key_ok[:, None, :]) | (torch.arange(slots)[None, None, :] == input_pos[None, :, None])
    mask = mask.unsqueeze(1)
    freqs = model._freqs_cis[input_pos]
    for layer, (k_cache, v_cache) in zip(model.layers, caches):
        att = layer.attention
        h = layer.attention_norm(x)
        bsz, seqlen, _ = h.shape
        q, k, v = att.wqkv(h).split([att.n_head * att.head_dim] * 3, dim=-1)
        q = apply_rotary_emb(q.view(bsz, seqlen, att.n_head, att.head_dim), freqs).transpose(1, 2)
        k = apply_rotary_emb(k.view(bsz, seqlen, att.n_head, att.head_dim), freqs).transpose(1, 2)
        k_cache[:, :, input_pos] = k
        v_cache[:, :, input_pos] = v.view(bsz, seqlen, att.n_head, att.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask)
        x = x + att.wo(y.transpose(1, 2).reshape(bsz, seqlen, -1))
        x = x + layer.feed_forward(layer.ffn_norm(x))
    return model.output(model.norm(x)).float()[:, -1]


@torch.no_grad()
def llamagen_generate(model: GPT, cond, mask, n_tokens: int, cfg_scale: float, gen: torch.Generator):
    """LlamaGen's ``generate``: a cache of the full sequence length, every step attending to all of its slots
    through a causal-mask row, CFG on the doubled batch, softmax then ``torch.multinomial`` (eager, fp32)."""
    both = torch.cat([cond, model.null_condition_like(cond)])
    rows, t, c = both.shape[0], model.cls_token_num, model.config
    caches = [
        (torch.zeros(rows, c.n_head, t + n_tokens, c.head_dim), torch.zeros(rows, c.n_head, t + n_tokens, c.head_dim))
        for _ in model.layers
    ]
    key_ok = torch.ones(rows, t + n_tokens, dtype=torch.bool)
    if mask is not None:
        key_ok[:, :t] = torch.cat([mask, mask]).bool()
    logits = _llamagen_step(model, model.embed_condition(both), torch.arange(t), caches, key_ok)
    tokens = []
    for n in range(n_tokens):
        cond_logits, uncond_logits = logits.chunk(2)
        probs = torch.softmax(uncond_logits + cfg_scale * (cond_logits - uncond_logits), dim=-1)
        token = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        tokens.append(token)
        if n + 1 < n_tokens:
            x = model.tok_embeddings(token.repeat(2)[:, None])
            logits = _llamagen_step(model, x, torch.tensor([t + n]), caches, key_ok)
    return torch.stack(tokens, 1)


def decode_flops(model: GPT, rows: int, n_tokens: int) -> float:
    """Multiply-adds x 2 of a rollout: linear layers and the output head per row and position, plus attention
    scores and values over the causal prefix (prefill included)."""
    c = model.config
    hidden = c.ffn_hidden_dim
    per_layer = c.dim * (c.n_head + 2 * c.n_kv_head) * c.head_dim + c.dim * c.dim + 3 * c.dim * hidden
    linear = c.n_layer * per_layer + c.dim * c.vocab_size
    positions = c.cls_token_num + n_tokens - 1
    attention = sum(2 * c.n_layer * c.dim * (p + 1) for p in range(positions))
    return 2.0 * rows * (positions * linear + attention)


def matmul_rate(dtype: torch.dtype, m: int = 1024, k: int = 1024, n: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of an (m, k) @ (k, n) matmul: at 1024^2 the machine's ceiling in this precision; at a decode
    step's shape (rows x dim x FFN width) what its largest linear layer can reach."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    times = []
    for _ in range(max(repeats, int(2e9 // (2 * m * k * n)))):  # at least ~2 GFLOP of work in total
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times) / 1e9


def build(name: str) -> tuple[GPT, int]:
    torch.manual_seed(0)
    if name == "GPT-B":
        model = build_gpt("GPT-B", block_size=256)
    else:  # the demo's sizes (demo/pretrain.py DemoModels): 32px images, VQ downsample 4, T5-like captions
        model = build_gpt(
            "GPT-Small", model_type="t2i", block_size=64, vocab_size=512, caption_dim=64, cls_token_num=16
        )
    with torch.no_grad():  # LlamaGen zero-initialises the head; give the logits a spread (std ~2) instead
        torch.nn.init.normal_(model.output.weight, std=2.0 / model.config.dim**0.5)
    return model.eval(), model.config.block_size


def conditions(model: GPT, batch: int):
    if model.config.model_type == "c2i":
        return torch.arange(batch) % 1000, None
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(batch, model.cls_token_num, model.config.caption_dim, generator=g)
    mask = torch.ones(batch, model.cls_token_num, dtype=torch.long)
    mask[:, : model.cls_token_num // 4] = 0  # left padding, as short captions have
    return feats * mask[..., None], mask


def bf16_error(model: GPT, low: GPT, cond, mask, cfg: SamplingConfig, n_tokens: int) -> dict[str, float]:
    """|Δ log p| of the bf16 sampler's tokens vs fp32 on the same tokens, and greedy tokens that change."""
    out = generate(low, cond, n_tokens, cfg, mask, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = policy_logits(model, cond, out.tokens, cfg, mask)
        low_tf = policy_logits(low, cond, out.tokens, cfg, mask)
    delta = (out.logprobs - token_logprobs(ref, out.tokens, cfg)).abs()
    return {
        "max_abs_dlogp": delta.max().item(),
        "mean_abs_dlogp": delta.mean().item(),
        "mean_logp_fp32": token_logprobs(ref, out.tokens, cfg).mean().item(),
        "greedy_changed_fraction": (ref.argmax(-1) != low_tf.argmax(-1)).float().mean().item(),
    }


def bench_model(name: str, args, rates: dict[str, float]) -> dict:
    model, block = build(name)
    n_tokens = block if name != "GPT-B" else min(args.gpt_b_tokens, block)
    cond, mask = conditions(model, args.batch)
    cfg = SamplingConfig(cfg_scale=2.0)
    low_dtype = torch.bfloat16
    low = inference_copy(model, low_dtype)
    low_head = inference_copy(model, low_dtype, keep_fp32=())

    def run(variant: str, seed: int):
        gen = torch.Generator().manual_seed(seed)
        if variant == "llamagen":
            return llamagen_generate(model, cond, mask, n_tokens, cfg.cfg_scale, gen)
        weights = {"eager_bf16": low, "compiled_bf16": low, "compiled_bf16_head": low_head}.get(variant, model)
        mode = "default" if variant.startswith("compiled") else None
        return generate(weights, cond, n_tokens, cfg, mask, gen, compile_mode=mode)

    first = {}
    for v in VARIANTS:  # warm-up; compiled variants compile here
        start = time.perf_counter()
        run(v, 0)
        first[v] = time.perf_counter() - start
    samples = {v: [] for v in VARIANTS}
    for r in range(args.repeats):
        for v in VARIANTS:
            start = time.perf_counter()
            run(v, r + 1)
            samples[v].append(time.perf_counter() - start)
    flops = decode_flops(model, 2 * args.batch, n_tokens)
    base = statistics.median(samples["llamagen"])
    # the ceiling measured again after the runs; the higher of the two counts (the machine's speed drifts)
    ceilings = {p: max(rates[p], matmul_rate(dtype)) for p, dtype in [("fp32", torch.float32), ("bf16", low_dtype)]}
    rows = {}
    for v in VARIANTS:
        t = statistics.median(samples[v])
        ceiling = ceilings["bf16" if "bf16" in v else "fp32"]
        rows[v] = {
            "seconds": t,
            "tokens_per_s": args.batch * n_tokens / t,
            "speed_vs_llamagen": base / t,
            "gflops": flops / t / 1e9,
            "fraction_of_matmul_ceiling": flops / t / 1e9 / ceiling,
            "compile_seconds": max(first[v] - t, 0.0) if v.startswith("compiled") else 0.0,
        }
    rows_n, c = 2 * args.batch, model.config
    return {
        "model": name,
        "decode_shape_matmul_gflops": {
            p: matmul_rate(dt, rows_n, c.dim, c.ffn_hidden_dim)
            for p, dt in [("fp32", torch.float32), ("bf16", low_dtype)]
        },
        "matmul_ceiling_gflops": ceilings,
        "rows": 2 * args.batch,
        "tokens": n_tokens,
        "gflop_per_rollout": flops / 1e9,
        "variants": rows,
        "bf16_error": bf16_error(model, low, cond, mask, cfg, n_tokens),
        "bf16_head_error": bf16_error(model, low_head, cond, mask, cfg, n_tokens),
    }


# ------------------------------------------------------------------------------ the older comparison
@torch.no_grad()
def full_recompute_step(model, cond, tokens, cfg, gen):
    """One new token by a full forward over condition + all previous tokens (no cache)."""
    both = torch.cat([cond, model.null_condition_like(cond)])
    seq = torch.cat([tokens, tokens[:, :1]], dim=1).repeat(2, 1)  # dummy last token: only its prediction is used
    logits = model(seq, both)[:, -1]
    step = process_logits(guided_logits(logits, cfg, True), cfg.temperature, cfg.top_k, cfg.top_p)
    return sample_tokens(step, gen)[0]


def recompute_table(args) -> None:
    """KV cache vs full recompute, 256 tokens; the recompute rollout is timed at 6 prefix lengths and integrated
    (trapezoid rule: a step's cost depends only on its prefix length)."""
    cfg = SamplingConfig(cfg_scale=2.0)
    print("| model | cached tok/s | full-recompute tok/s | speed-up |")
    print("|---|---|---|---|")
    for size in ["GPT-Small", "GPT-B"]:
        torch.manual_seed(0)
        model = build_gpt(size, block_size=256).eval()
        cond = torch.arange(args.batch) % 1000
        gen = torch.Generator().manual_seed(0)
        cached = statistics.median(
            _timed(generate, model, cond, 256, cfg, generator=gen) for _ in range(args.repeats)
        )
        lengths = [round(i * 255 / 5) for i in range(6)]
        per_step = [
            _timed(full_recompute_step, model, cond, torch.randint(0, 16384, (args.batch, n)), cfg, gen)
            for n in lengths
        ]
        full = sum((l1 - l0) * (t0 + t1) / 2 for l0, l1, t0, t1 in zip(lengths, lengths[1:], per_step, per_step[1:]))
        full += per_step[-1]
        tokens = args.batch * 256
        print(f"| {size} | {tokens / cached:.0f} | {tokens / full:.1f} | {full / cached:.1f}x |")


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="prompts per rollout (rows = 2x with CFG)")
    parser.add_argument("--gpt-b-tokens", type=int, default=24, help="tokens sampled on GPT-B (of 256)")
    parser.add_argument("--models", default="GPT-Small,GPT-B")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--recompute", action="store_true", help="the older cached-vs-recompute table instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.recompute:
        recompute_table(args)
        return
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    result = {
        "threads": args.threads,
        "repeats": args.repeats,
        "batch_prompts": args.batch,
        "matmul_gflops_1024": rates,
        "models": [bench_model(name, args, rates) for name in args.models.split(",")],
    }
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
