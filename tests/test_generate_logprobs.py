"""``sequence_logprobs``, the one log-probability function of training: batched rows equal single rows, it
equals the sampler's log-probs and an independent entropy, and the trainer's stored log-probs are its output."""

import pytest
import torch

from autoregressive.models.generate import SamplingConfig, generate, policy_logits, sequence_logprobs
from tests.grpo_fixtures import make_trainer
from tests.helpers import t2i_condition, tiny_gpt

ATOL = 2e-5  # fp32, logits of magnitude ~10: batched and single-row passes differ only by summation order
RTOL = 0.0


def _conditions(model, batch):
    if model.config.model_type == "c2i":
        return torch.tensor([3, 7, 1, 0][:batch]), None
    return t2i_condition(model, batch, pad=[0, 2, 4, 1][:batch])


CONFIGS = [
    SamplingConfig(temperature=0.9),
    SamplingConfig(cfg_scale=3.0, temperature=0.9),
    SamplingConfig(cfg_scale=3.0, cfg_interval=5, temperature=1.1),
]


@pytest.mark.parametrize("model_type", ["c2i", "t2i"])
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("guidance", ["cfg", "cond"])
def test_batched_rows_equal_single_rows(model_type, cfg, guidance):
    model = tiny_gpt(model_type).eval()
    cond, mask = _conditions(model, 4)
    torch.manual_seed(0)
    tokens = torch.randint(0, model.config.vocab_size, (4, model.block_size))
    with torch.no_grad():
        batched = sequence_logprobs(model, cond, tokens, cfg, mask, guidance)
        rows = [
            sequence_logprobs(model, cond[i : i + 1], tokens[i : i + 1], cfg, row_mask, guidance)
            for i in range(4)
            for row_mask in [None if mask is None else mask[i : i + 1]]
        ]
    assert batched.shape == tokens.shape and bool((batched < 0).all())
    torch.testing.assert_close(batched, torch.cat(rows), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("model_type", ["c2i", "t2i"])
@pytest.mark.parametrize("cfg", CONFIGS + [SamplingConfig(cfg_scale=2.0, top_k=20, top_p=0.95)])
def test_equal_to_the_samplers_logprobs(model_type, cfg):
    model = tiny_gpt(model_type).eval()
    cond, mask = _conditions(model, 4)
    generators = [torch.Generator().manual_seed(100 + i) for i in range(4)]
    sampled = generate(model, cond, cfg=cfg, cond_mask=mask, generator=generators)
    with torch.no_grad():
        recomputed = sequence_logprobs(model, cond, sampled.tokens, cfg, mask)
    torch.testing.assert_close(recomputed, sampled.logprobs, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("guidance", ["cfg", "cond"])
def test_entropy_is_that_of_the_same_distribution(guidance):
    model = tiny_gpt("t2i")
    cond, mask = _conditions(model, 3)
    cfg = SamplingConfig(cfg_scale=2.5, temperature=0.8)
    tokens = torch.randint(0, model.config.vocab_size, (3, model.block_size))
    logp, entropy = sequence_logprobs(model, cond, tokens, cfg, mask, guidance, with_entropy=True)
    alone = sequence_logprobs(model, cond, tokens, cfg, mask, guidance)
    assert torch.equal(logp, alone)
    logits = policy_logits(model, cond, tokens, cfg, mask, guidance).detach() / cfg.temperature
    expected = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(entropy.detach(), expected, atol=1e-5, rtol=1e-5)
    entropy.sum().backward()  # the entropy bonus trains through it
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_iterations": 2, "logp_guidance": "cond"},  # old log-probs from a teacher-forced pass
        {"num_iterations": 2},  # the sampler draws from the policy: old log-probs are the sampler's
    ],
)
def test_trainer_stores_sequence_logprobs(tmp_path, overrides):
    trainer = make_trainer(tmp_path, beta=0.1, temperature=0.8, **overrides)
    rollout = trainer.make_rollout()
    args = (rollout.cond, rollout.tokens, trainer.policy_dist, rollout.cond_mask, trainer.config.logp_guidance)
    with torch.no_grad():
        policy = sequence_logprobs(trainer.policy, *args)
        reference = sequence_logprobs(trainer.ref_model, *args)
    assert rollout.old_logp is not None and rollout.ref_logp is not None
    torch.testing.assert_close(rollout.old_logp, policy, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(rollout.ref_logp, reference, atol=ATOL, rtol=RTOL)
