"""bf16 inference copies: what they do to the log-probs that GRPO uses, with the tolerance we accept.

bf16 keeps 8 significant bits, so each logit moves by ~1e-2 of its size. We accept per-token |Δ log p| up to
0.15 nats (an importance ratio within exp(±0.15), inside PPO's 0.2 clip), a mean of 0.03 nats, and greedy
(argmax) changes at no more than 3% of positions (only near-ties flip). The tiny model is sharp (q/k scaled)
so attention, RoPE and masks are exercised, and t2i captions are padded.
"""

import pytest
import torch

from autoregressive.models.generate import (
    SamplingConfig,
    cfg_batch,
    generate,
    guided_logits,
    policy_logits,
    token_logprobs,
)
from autoregressive.models.precision import inference_copy, refresh_from
from tests.helpers import MAX_ABS_DLOGP, MAX_GREEDY_CHANGED, MEAN_ABS_DLOGP, t2i_condition, tiny_gpt


def _conditions(model, batch):
    if model.config.model_type == "c2i":
        return torch.arange(batch) % 10, None
    return t2i_condition(model, batch, pad=[i % 4 for i in range(batch)])


@torch.no_grad()
def _cached_logits(model, cond, tokens, cfg, mask):
    """The sampler's path: guided logits of each given token from prefill + cached decode steps."""
    model_cond, model_mask = cfg_batch(model, cond, mask, cfg)
    guided = cfg.guided_positions(tokens.shape[1]).tolist()
    steps = []
    with model.kv_cache(model_cond.shape[0], tokens.shape[1], cond_mask=model_mask):
        logits = model.prefill(model_cond)
        for n in range(tokens.shape[1]):
            steps.append(guided_logits(logits, cfg, guided[n]))
            if n + 1 < tokens.shape[1]:
                logits = model.decode_step(tokens[:, n].repeat(2), n)
    return torch.stack(steps, dim=1)


@pytest.mark.parametrize("model_type", ["c2i", "t2i"])
def test_bf16_copy_keeps_logprobs_of_sampled_tokens_within_tolerance(model_type):
    model = tiny_gpt(model_type, block_size=64)
    cfg = SamplingConfig(cfg_scale=2.0)
    cond, mask = _conditions(model, 8)
    tokens = generate(model, cond, cfg=cfg, cond_mask=mask, generator=torch.Generator().manual_seed(0)).tokens
    low = inference_copy(model, torch.bfloat16)
    assert low.layers[0].attention.wqkv.weight.dtype == low.tok_embeddings.weight.dtype == torch.bfloat16
    assert low.output.weight.dtype == model.output.weight.dtype == torch.float32  # the logit head stays fp32
    with torch.no_grad():
        reference = policy_logits(model, cond, tokens, cfg, mask)
        teacher_forced = policy_logits(low, cond, tokens, cfg, mask)
    cached = _cached_logits(low, cond, tokens, cfg, mask)
    assert teacher_forced.dtype == cached.dtype == torch.float32  # logits and the distribution stay fp32
    ref_logp = token_logprobs(reference, tokens, cfg)
    assert ref_logp.mean() < -1.0  # a spread distribution, where rounding can matter
    for low_logits in (teacher_forced, cached):
        delta = (token_logprobs(low_logits, tokens, cfg) - ref_logp).abs()
        assert 0 < delta.max() <= MAX_ABS_DLOGP, delta.max()  # > 0: the copy really is bf16
        assert delta.mean() <= MEAN_ABS_DLOGP, delta.mean()
        changed = (low_logits.argmax(-1) != reference.argmax(-1)).float().mean()
        assert changed <= MAX_GREEDY_CHANGED, changed


def test_bf16_cache_follows_the_weights_dtype():
    low = inference_copy(tiny_gpt("c2i"), torch.bfloat16)
    with low.kv_cache(2, 4):
        assert low.layers[0].attention.kv_cache.k.dtype == torch.bfloat16


def test_refresh_copies_the_current_weights_in_place():
    model = tiny_gpt("t2i")
    low = inference_copy(model, torch.bfloat16)
    storage = low.layers[0].feed_forward.w1.weight.data_ptr()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert not torch.equal(low.output.weight, model.output.weight)
    refresh_from(low, model)
    assert low.layers[0].feed_forward.w1.weight.data_ptr() == storage
    for a, b in zip(low.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b.to(a.dtype))
