"""Cached decoding must reproduce the teacher-forced forward pass (fp32, tight tolerance)."""

import pytest
import torch

from autoregressive.models.generate import SamplingConfig, cfg_batch, generate, sequence_logprobs
from tests.helpers import t2i_condition, tiny_gpt

ATOL = 2e-5  # fp32 logits of magnitude ~10; cached and full passes differ only by summation order


def _conditions(model, batch):
    if model.config.model_type == "c2i":
        return torch.tensor([3, 7, 1][:batch]), None
    return t2i_condition(model, batch, pad=[0, 2, 4][:batch])


@pytest.mark.parametrize("model_type", ["c2i", "t2i"])
def test_cached_logits_equal_full_forward(model_type):
    model = tiny_gpt(model_type)
    cond, mask = _conditions(model, 3)
    tokens = torch.randint(0, model.config.vocab_size, (3, model.block_size))
    full = model(tokens, cond, mask)
    with torch.no_grad(), model.kv_cache(3, model.block_size, cond_mask=mask):
        steps = [model.prefill(cond)]
        for n in range(model.block_size - 1):
            steps.append(model.decode_step(tokens[:, n], n))
    cached = torch.stack(steps, dim=1)
    assert full.abs().max() > 1.0  # a real signal, not all-zero logits
    torch.testing.assert_close(cached, full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model_type", ["c2i", "t2i"])
@pytest.mark.parametrize("cfg_scale,cfg_interval", [(1.0, -1), (3.0, -1), (3.0, 5)])
def test_sampler_logprobs_equal_full_forward_recomputation(model_type, cfg_scale, cfg_interval):
    model = tiny_gpt(model_type)
    cond, mask = _conditions(model, 3)
    cfg = SamplingConfig(
        cfg_scale=cfg_scale, cfg_interval=cfg_interval, temperature=0.9, top_k=20, top_p=0.95
    )
    out = generate(model, cond, cfg=cfg, cond_mask=mask, generator=torch.Generator().manual_seed(0))
    assert out.tokens.shape == (3, model.block_size)
    assert torch.isfinite(out.logprobs).all()
    with torch.no_grad():
        recomputed = sequence_logprobs(model, cond, out.tokens, cfg, mask)
    torch.testing.assert_close(out.logprobs, recomputed, atol=ATOL, rtol=0)


def test_padded_caption_positions_are_invisible_to_image_tokens():
    """Changing a padded caption slot's features must not change any image-token logit."""
    model = tiny_gpt("t2i")
    feats, mask = t2i_condition(model, 1, pad=[3])
    tokens = torch.randint(0, model.config.vocab_size, (1, model.block_size))
    base = model(tokens, feats, mask)
    poked = feats.clone()
    poked[0, :3] = torch.randn(3, feats.shape[-1]) * 5
    moved = model(tokens, poked, mask)
    torch.testing.assert_close(moved, base, atol=1e-6, rtol=0)
    poked_real = feats.clone()
    poked_real[0, 4] += 5
    assert (model(tokens, poked_real, mask) - base).abs().max() > 1e-3


def test_cfg_batch_uses_null_condition_with_inherited_mask():
    model = tiny_gpt("t2i")
    feats, mask = t2i_condition(model, 2, pad=[0, 2])
    both, both_mask = cfg_batch(model, feats, mask, SamplingConfig(cfg_scale=2.0))
    assert both.shape[0] == 4
    torch.testing.assert_close(both[2], model.cls_embedding.uncond_embedding)
    assert torch.equal(both_mask[2:], mask)
    labels, no_mask = cfg_batch(tiny_gpt("c2i"), torch.tensor([4, 5]), None, SamplingConfig(cfg_scale=2.0))
    assert labels.tolist() == [4, 5, 10, 10] and no_mask is None
