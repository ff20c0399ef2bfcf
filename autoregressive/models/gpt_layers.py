"""The building blocks of LlamaGen's GPT: its config, RMSNorm, SwiGLU, 2-D RoPE, attention with KV caches, and
the condition embedders. Parameter names equal LlamaGen's, so its checkpoints load strictly into :class:`GPT`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelArgs:
    """LlamaGen's ``ModelArgs`` (same names). Dropouts default to 0: RL needs a deterministic policy.

    LlamaGen's ``class_dropout_prob``, ``max_batch_size`` and ``max_seq_len`` are left out: nothing here reads
    them (condition dropout is a pretraining choice, and the KV cache is sized per call).
    """

    dim: int = 4096
    n_layer: int = 32
    n_head: int = 32
    n_kv_head: int | None = None
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    rope_base: float = 10000
    norm_eps: float = 1e-5
    initializer_range: float = 0.02
    token_dropout_p: float = 0.0
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.0
    ffn_dropout_p: float = 0.0
    drop_path_rate: float = 0.0
    num_classes: int = 1000
    caption_dim: int = 2048
    model_type: str = "c2i"
    vocab_size: int = 16384
    cls_token_num: int = 1
    block_size: int = 256

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.model_type not in ("c2i", "t2i"):
            raise ValueError(f"model_type must be 'c2i' or 't2i', got {self.model_type!r}")
        if self.dim % self.n_head:
            raise ValueError(f"dim {self.dim} is not divisible by n_head {self.n_head}")
        if math.isqrt(self.block_size) ** 2 != self.block_size:
            raise ValueError(f"block_size {self.block_size} is not a square grid of image tokens")
        if self.drop_path_rate:
            raise ValueError("drop_path_rate > 0 is not supported (stochastic depth is a pretraining tool)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def grid_size(self) -> int:
        return math.isqrt(self.block_size)

    @property
    def ffn_hidden_dim(self) -> int:
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return -(-hidden // self.multiple_of) * self.multiple_of


class RMSNorm(nn.Module):
    """Normalise in fp32, cast back, then apply the gain (LlamaGen's order)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        hidden = args.ffn_hidden_dim
        self.w1 = nn.Linear(args.dim, hidden, bias=False)
        self.w3 = nn.Linear(args.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, args.dim, bias=False)
        self.dropout = nn.Dropout(args.ffn_dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class KVCache:
    """Preallocated keys/values of one layer; a plain object so it never enters the state dict."""

    def __init__(self, batch: int, n_kv_head: int, max_len: int, head_dim: int, dtype, device):
        shape = (batch, n_kv_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def update(self, start: int, k: torch.Tensor, v: torch.Tensor):
        """Write positions start.. and return the filled prefix (everything a causal query may see)."""
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class StaticKVCache(nn.Module):
    """A fixed-size cache written at tensor positions, so a decode step has the same shapes at every token.

    Queries attend to all ``max_len`` slots under a position mask (unwritten slots are masked out). Keys and
    values are non-persistent buffers: outside the state dict, yet static addresses for CUDA graphs.
    """

    def __init__(self, batch: int, n_kv_head: int, max_len: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (batch, n_kv_head, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Write positions ``input_pos`` (L,) and return the whole cache (the mask hides unwritten slots)."""
        self.k.index_copy_(2, input_pos, k.to(self.k.dtype))
        self.v.index_copy_(2, input_pos, v.to(self.v.dtype))
        return self.k, self.v


def apply_rotary_emb(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2k], x[2k+1]) in fp32. x: (B, L, H, hd); freqs: (L, hd/2, 2) cos/sin."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    f = freqs.view(1, xs.shape[1], 1, xs.shape[3], 2)
    cos, sin = f[..., 0], f[..., 1]
    x0, x1 = xs[..., 0], xs[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1)
    return out.flatten(3).type_as(x)


def precompute_freqs_cis_2d(grid_size: int, head_dim: int, base: float, cls_token_num: int) -> torch.Tensor:
    """(T + grid², hd/2, 2) table: rows then columns on the pair halves; condition rows are all zero."""
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    angles = torch.outer(torch.arange(grid_size, dtype=torch.float32), freqs)  # (grid, half/2)
    rows = angles[:, None, :].expand(grid_size, grid_size, -1)
    cols = angles[None, :, :].expand(grid_size, grid_size, -1)
    grid = torch.cat([rows, cols], dim=-1).reshape(grid_size * grid_size, half)
    table = torch.stack([grid.cos(), grid.sin()], dim=-1)
    return torch.cat([torch.zeros(cls_token_num, half, 2), table])


def single_query_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Attention of one query per row (a decode step) as two batched matmuls, softmax in fp32.

    For a single query the fused CPU kernel's per-call setup rivals the work itself; this is the same computation
    (tested against the teacher-forced pass) without it, and plain ops that torch.compile fuses. ``mask`` is boolean.
    """
    scores = (q @ k.transpose(-2, -1)).float() * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1).to(v.dtype) @ v


def sequence_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Attention over a sequence (prefill, teacher-forced passes) with PyTorch's fused kernel, in fp32 on CPU.

    The CPU's fused kernel is slower in bf16 than in fp32, most of all in the backward (docs/performance.md), so
    bf16/fp16 inputs on CPU are cast up for it and the result cast back; fp32 scores are also the more exact.
    """
    if q.device.type != "cpu" or q.dtype == torch.float32:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p)
    with torch.autocast("cpu", enabled=False):
        y = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p
        )
    return y.to(q.dtype)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = args.n_head, args.n_kv_head, args.head_dim
        total = (args.n_head + 2 * args.n_kv_head) * args.head_dim
        self.wqkv = nn.Linear(args.dim, total, bias=False)
        self.wo = nn.Linear(args.dim, args.dim, bias=False)
        self.attn_dropout_p = args.attn_dropout_p
        self.resid_dropout = nn.Dropout(args.resid_dropout_p)
        self.kv_cache: KVCache | StaticKVCache | None = None

    def forward(self, x, freqs, start, mask, is_causal):
        bsz, seqlen, _ = x.shape
        q_size, kv_size = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        q, k, v = self.wqkv(x).split([q_size, kv_size, kv_size], dim=-1)
        q = apply_rotary_emb(q.view(bsz, seqlen, self.n_head, self.head_dim), freqs)
        k = apply_rotary_emb(k.view(bsz, seqlen, self.n_kv_head, self.head_dim), freqs)
        v = v.view(bsz, seqlen, self.n_kv_head, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if self.kv_cache is not None:
            k, v = self.kv_cache.update(start, k, v)
        if self.n_kv_head != self.n_head:
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if seqlen == 1 and not self.training:
            y = single_query_attention(q, k.to(q.dtype), v.to(q.dtype), mask)
        else:
            dropout_p = self.attn_dropout_p if self.training else 0.0
            y = sequence_attention(q, k.to(q.dtype), v.to(q.dtype), mask, is_causal, dropout_p)
        y = y.transpose(1, 2).reshape(bsz, seqlen, -1)
        return self.resid_dropout(self.wo(y))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, freqs, start, mask, is_causal):
        h = x + self.attention(self.attention_norm(x), freqs, start, mask, is_causal)
        return h + self.feed_forward(self.ffn_norm(h))


class ClassEmbedder(nn.Module):
    """Class table with one extra row, the null class used for classifier-free guidance."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        labels = labels.reshape(-1).long()
        if drop is not None:
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        return self.embedding_table(labels).unsqueeze(1)


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    """Projects text-encoder features; the learned null caption lives in caption space (before the MLP)."""

    def __init__(self, caption_dim: int, dim: int, token_num: int):
        super().__init__()
        self.cap_proj = MLP(caption_dim, dim, dim)
        self.register_buffer("uncond_embedding", torch.randn(token_num, caption_dim) / caption_dim**0.5)

    def forward(self, captions: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        if drop is not None:
            null = self.uncond_embedding.to(captions.dtype).expand_as(captions)
            captions = torch.where(drop[:, None, None], null, captions)
        return self.cap_proj(captions.to(self.cap_proj.fc1.weight.dtype))  # fp32 text features, bf16 copies
