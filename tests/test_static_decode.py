"""The static-shape decode step: same tokens as the prefix cache, and torch.compile traces it only once.

Tolerance: fp32 logits through a full-size masked cache differ from the prefix cache only by summation order
(masked slots contribute exact zeros), so sampled tokens must be identical and log-probs equal to 2e-5.
"""

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from autoregressive.models.generate import SamplingConfig, generate
from tests.grpo_fixtures import make_trainer
from tests.helpers import t2i_condition, tiny_gpt

ATOL = 2e-5


def _conditions(model, batch):
    if model.config.model_type == "c2i":
        return torch.arange(batch) % 10, None
    return t2i_condition(model, batch, pad=[i % 4 for i in range(batch)])


@pytest.mark.parametrize("model_type", ["c2i", "t2i"])
@pytest.mark.parametrize("cfg_scale", [1.0, 3.0])
def test_static_cache_samples_the_same_tokens_as_the_prefix_cache(model_type, cfg_scale):
    model = tiny_gpt(model_type, block_size=36)  # sharp attention: a wrong slot or mask moves the logits
    cond, mask = _conditions(model, 4)
    cfg = SamplingConfig(cfg_scale=cfg_scale, temperature=0.9)
    prefix = generate(model, cond, cfg=cfg, cond_mask=mask, generator=torch.Generator().manual_seed(1))
    static = generate(
        model, cond, cfg=cfg, cond_mask=mask, generator=torch.Generator().manual_seed(1), static_cache=True
    )
    assert torch.equal(static.tokens, prefix.tokens)
    torch.testing.assert_close(static.logprobs, prefix.logprobs, atol=ATOL, rtol=0)


def test_static_cache_stays_out_of_the_state_dict():
    model = tiny_gpt("t2i")
    keys = set(model.state_dict())
    with model.kv_cache(2, 4, static=True):
        assert set(model.state_dict()) == keys
    assert model.layers[0].attention.kv_cache is None
    with model.kv_cache(2, 4):  # a prefix cache still fits where the static one was
        model.prefill(t2i_condition(model, 2)[0])


def test_compiled_step_is_traced_once_and_samples_the_eager_tokens(fresh_dynamo):
    model = tiny_gpt("t2i", block_size=16)
    cond, mask = _conditions(model, 3)
    cfg = SamplingConfig(cfg_scale=2.0)

    def sample(seed, **kwargs):
        return generate(model, cond, cfg=cfg, cond_mask=mask, generator=torch.Generator().manual_seed(seed), **kwargs)

    compiled = sample(0, compile_mode="default")  # 15 decode steps at 15 positions
    assert counters["stats"]["unique_graphs"] == 1
    eager = sample(0)
    assert torch.equal(compiled.tokens, eager.tokens)
    torch.testing.assert_close(compiled.logprobs, eager.logprobs, atol=ATOL, rtol=0)
    with torch._dynamo.config.patch(error_on_recompile=True):
        again = sample(1, compile_mode="default")  # a second rollout reuses the graph
    assert torch.equal(again.tokens, sample(1).tokens)
    assert counters["stats"]["unique_graphs"] == 1


def test_trainer_compile_flag_samples_the_same_rollout(tmp_path, fresh_dynamo):
    eager = make_trainer(tmp_path / "eager", beta=0.0).make_rollout()
    compiled = make_trainer(tmp_path / "compiled", beta=0.0, compile=True).make_rollout()
    assert counters["stats"]["unique_graphs"] == 1  # beta 0: no reference pass, the decode step is the one graph
    assert torch.equal(compiled.tokens, eager.tokens)
