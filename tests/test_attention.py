"""Sequence attention: PyTorch's fused kernel, in fp32 when the model runs in bf16 on CPU."""

from unittest.mock import patch

import torch
import torch.nn.functional as F

from autoregressive.models import gpt_layers
from autoregressive.models.gpt_layers import sequence_attention


def _qkv(batch=3, heads=2, length=7, head_dim=8, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    # scaled up so attention is far from uniform and a misplaced mask shows
    return [(3 * torch.randn(batch, heads, length, head_dim, generator=g)).to(dtype) for _ in range(3)]


def _padded_caption_mask(batch=3, length=7, caption=3):
    """The model's t2i mask: causal, padded caption keys hidden, the diagonal always attending."""
    keys = torch.arange(length)
    causal = keys[None, :] <= keys[:, None]
    key_ok = torch.ones(batch, length, dtype=torch.bool)
    for row in range(batch):
        key_ok[row, : row % caption] = False
    mask = (causal[None] & key_ok[:, None, :]) | torch.eye(length, dtype=torch.bool)[None]
    return mask.unsqueeze(1)


def _recording_sdpa(dtypes: list):
    fused = F.scaled_dot_product_attention

    def record(q, *args, **kwargs):
        dtypes.append(q.dtype)
        return fused(q, *args, **kwargs)

    return patch.object(gpt_layers.F, "scaled_dot_product_attention", record)


def test_bf16_on_cpu_runs_the_fused_kernel_in_fp32_with_gradients():
    q, k, v = (t.requires_grad_() for t in _qkv(dtype=torch.bfloat16))
    mask = _padded_caption_mask()
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    reference = F.scaled_dot_product_attention(q32, k32, v32, attn_mask=mask)
    dtypes = []
    with _recording_sdpa(dtypes), torch.autocast("cpu", dtype=torch.bfloat16):  # as in a --bf16 update
        out = sequence_attention(q, k, v, mask, is_causal=False)
    assert dtypes == [torch.float32] and out.dtype == torch.bfloat16
    # fp32 all the way, then one rounding to bf16 (8 significant bits)
    torch.testing.assert_close(out.float(), reference, atol=1e-6, rtol=2**-8)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad.bfloat16())
    reference.backward(grad.bfloat16().float())
    for low, exact in ((q, q32), (k, k32), (v, v32)):
        assert low.grad.dtype == torch.bfloat16
        torch.testing.assert_close(low.grad.float(), exact.grad, atol=1e-5, rtol=2**-7)


def test_fp32_and_causal_keep_the_kernel_as_it_is():
    q, k, v = _qkv()
    dtypes = []
    with _recording_sdpa(dtypes):
        out = sequence_attention(q, k, v, None, is_causal=True)
    assert dtypes == [torch.float32]
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=0, rtol=0)
