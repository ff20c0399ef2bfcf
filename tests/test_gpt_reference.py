"""The model's forward pass against a deliberately naive re-derivation of LlamaGen's semantics.

Written from the spec (interleaved-pair 2-D RoPE, zeroed condition rows, RMSNorm in fp32 before the gain,
SwiGLU, masked causal attention), loop by loop, so a layout or masking slip in the fast code shows up.
"""

import math

import torch
import torch.nn.functional as F

from tests.helpers import t2i_condition, tiny_gpt


def naive_rope(x, positions, grid, cls_token_num, base=10000.0):
    """x: (L, hd). Pair k=(x[2k], x[2k+1]); first half of pairs rotate by row, second half by column."""
    hd = x.shape[-1]
    half = hd // 2
    out = torch.zeros_like(x)
    for i, p in enumerate(positions):
        if p < cls_token_num:
            continue  # condition rows: cos = sin = 0
        r, c = divmod(p - cls_token_num, grid)
        for k in range(half):
            j = k if k < half // 2 else k - half // 2
            angle = (r if k < half // 2 else c) * base ** (-2 * j / half)
            a, b = x[i, 2 * k], x[i, 2 * k + 1]
            out[i, 2 * k] = a * math.cos(angle) - b * math.sin(angle)
            out[i, 2 * k + 1] = b * math.cos(angle) + a * math.sin(angle)
    return out


def naive_forward(model, tokens, cond, cond_mask=None):
    cfg = model.config
    t, hd, grid = cfg.cls_token_num, cfg.head_dim, cfg.grid_size
    x = torch.cat([model.embed_condition(cond), model.tok_embeddings(tokens[:, :-1])], dim=1)
    L = x.shape[1]
    allowed = torch.ones(x.shape[0], L, L, dtype=torch.bool).tril()
    if cond_mask is not None:
        allowed[:, :, :t] &= cond_mask[:, None, :].bool()
        allowed |= torch.eye(L, dtype=torch.bool)

    def rms(v, w):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * w

    for layer in model.layers:
        att = layer.attention
        h = rms(x, layer.attention_norm.weight)
        q, k, v = att.wqkv(h).split(cfg.dim, dim=-1)
        heads = []
        for b in range(x.shape[0]):
            per_head = []
            for hh in range(cfg.n_head):
                sl = slice(hh * hd, (hh + 1) * hd)
                qh = naive_rope(q[b, :, sl], range(L), grid, t)
                kh = naive_rope(k[b, :, sl], range(L), grid, t)
                scores = (qh @ kh.T) / math.sqrt(hd)
                scores = scores.masked_fill(~allowed[b], float("-inf"))
                per_head.append(scores.softmax(-1) @ v[b, :, sl])
            heads.append(torch.cat(per_head, dim=-1))
        x = x + att.wo(torch.stack(heads))
        ff = layer.feed_forward
        h = rms(x, layer.ffn_norm.weight)
        x = x + ff.w2(F.silu(ff.w1(h)) * ff.w3(h))
    logits = model.output(rms(x, model.norm.weight))
    return logits[:, t - 1 :]


def test_c2i_forward_matches_naive_reference():
    model = tiny_gpt("c2i")
    labels = torch.tensor([2, 9])
    tokens = torch.randint(0, model.config.vocab_size, (2, model.block_size))
    with torch.no_grad():
        torch.testing.assert_close(
            model(tokens, labels), naive_forward(model, tokens, labels), atol=1e-4, rtol=0
        )


def test_t2i_forward_with_padding_matches_naive_reference():
    model = tiny_gpt("t2i")
    feats, mask = t2i_condition(model, 2, pad=[0, 3])
    tokens = torch.randint(0, model.config.vocab_size, (2, model.block_size))
    with torch.no_grad():
        ours = model(tokens, feats, mask)
        ref = naive_forward(model, tokens, feats, mask)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
