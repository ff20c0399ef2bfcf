"""Sequence attention: the written-out form equals PyTorch's fused kernel, and bf16 on CPU runs it in fp32."""

from unittest.mock import patch

import pytest
import torch
import torch.nn.functional as F

from autoregressive.models import gpt_layers
from autoregressive.models.gpt_layers import explicit_attention, sequence_attention


def _qkv(batch=3, heads=2, length=7, head_dim=8, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    # scaled up so attention is far from uniform and a misplaced mask or scale shows
    return [(3 * torch.randn(batch, heads, length, head_dim, generator=g)).to(dtype) for _ in range(3)]


def _padded_caption_mask(batch=3, length=7, caption=3):
    """The model's t2i mask: causal, padded caption keys hidden, the diagonal always attending."""
    keys = torch.arange(length)
    causal = keys[None, :] <= keys[:, None]
    key_ok = torch.ones(batch, length, dtype=torch.bool)
    for row in range(batch):
        key_ok[row, :row % caption] = False
    mask = (causal[None] & key_ok[:, None, :]) | torch.eye(length, dtype=torch.bool)[None]
    return mask.unsqueeze(1)


@pytest.mark.parametrize("kind", ["causal", "mask"])
def test_explicit_attention_equals_the_fused_kernel_with_gradients(kind):
    q, k, v = (t.requires_grad_() for t in _qkv())
    mask, causal = (None, True) if kind == "causal" else (_padded_caption_mask(), False)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    fused_grads = torch.autograd.grad(fused.square().sum(), (q, k, v))
    written = explicit_attention(q, k, v, mask, is_causal=causal)
    written_grads = torch.autograd.grad(written.square().sum(), (q, k, v))
    torch.testing.assert_close(written, fused, atol=1e-5, rtol=1e-5)
    for a, b in zip(written_grads, fused_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)  # sharp softmax: fp32 summation order


def test_explicit_attention_drops_probabilities_like_the_fused_kernel():
    q, k, v = _qkv()
    assert F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=1.0).abs().max() == 0
    assert explicit_attention(q, k, v, None, is_causal=True, dropout_p=1.0).abs().max() == 0
    assert explicit_attention(q, k, v, None, is_causal=True, dropout_p=0.5).ne(
        explicit_attention(q, k, v, None, is_causal=True)
    ).any()


def test_bf16_on_cpu_runs_in_fp32_outside_the_fused_kernel():
    q, k, v = _qkv(dtype=torch.bfloat16)
    mask = _padded_caption_mask()
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)

    def no_low_precision_fused(q, *args, **kwargs):
        raise AssertionError(f"the fused kernel ran in {q.dtype} on CPU")

    fused_forbidden = patch.object(gpt_layers.F, "scaled_dot_product_attention", no_low_precision_fused)
    with fused_forbidden, torch.autocast("cpu", dtype=torch.bfloat16):  # as in a --bf16 update
        out = sequence_attention(q, k, v, mask, is_causal=False)
    assert out.dtype == torch.bfloat16
    # fp32 all the way, then one rounding to bf16 (8 significant bits)
    torch.testing.assert_close(out.float(), reference, atol=1e-6, rtol=2**-8)


def test_fp32_keeps_the_fused_kernel():
    q, k, v = _qkv()
    calls = []
    fused = F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return fused(*args, **kwargs)

    with patch.object(gpt_layers.F, "scaled_dot_product_attention", counted):
        sequence_attention(q, k, v, None, is_causal=True)
    assert calls == [1]
