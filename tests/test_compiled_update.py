"""``--compile`` also compiles the teacher-forced passes: same log-probs, entropies and gradients as eager, traced
once, and a trainer that updates like the eager one.

Tolerance: fp32 throughout; the compiled graph fuses and reorders reductions (log-softmax, entropy, matmul
epilogues), so values agree to float32 round-off over a 48-token vocabulary and 2 layers: 1e-5 absolute on
log-probs and entropies; gradients 5e-5 absolute (the test model's sharpened attention amplifies round-off in
them; seen: 1.4e-5). A wrong guidance mix, mask or position moves them by 1e-3 or more.
"""

import torch
import torch._dynamo
from torch._dynamo.utils import counters

from autoregressive.models.generate import SamplingConfig, compiled_sequence_logprobs, sequence_logprobs
from tests.grpo_fixtures import flat_params, make_trainer
from tests.helpers import t2i_condition, tiny_gpt

ATOL = 1e-5


def _loss_and_grads(fn, model, cond, tokens, cfg, mask):
    model.zero_grad(set_to_none=True)
    logp, entropy = fn(model, cond, tokens, cfg, mask, "cfg", with_entropy=True)
    (logp.square().mean() + entropy.mean()).backward()
    return logp.detach(), entropy.detach(), [p.grad.clone() for p in model.parameters()]


def test_compiled_logprobs_entropy_and_gradients_equal_eager(fresh_dynamo):
    """Caption conditioning with padding (the trainer test below is class-conditional)."""
    model = tiny_gpt("t2i", block_size=16)  # sharp attention: a wrong position or mask moves the values
    cond, mask = t2i_condition(model, 4, pad=[0, 1, 2, 3])
    tokens = torch.randint(0, model.config.vocab_size, (4, 16), generator=torch.Generator().manual_seed(0))
    cfg = SamplingConfig(cfg_scale=2.5, temperature=0.9)
    eager = _loss_and_grads(sequence_logprobs, model, cond, tokens, cfg, mask)
    compiled_fn = compiled_sequence_logprobs()
    compiled = _loss_and_grads(compiled_fn, model, cond, tokens, cfg, mask)
    torch.testing.assert_close(compiled[0], eager[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(compiled[1], eager[1], atol=ATOL, rtol=0)
    for got, want in zip(compiled[2], eager[2], strict=True):
        torch.testing.assert_close(got, want, atol=5 * ATOL, rtol=0)
    with torch._dynamo.config.patch(error_on_recompile=True):  # a second step reuses the traced graph
        _loss_and_grads(compiled_fn, model, cond, tokens.flip(0), cfg, mask)


def test_trainer_compile_updates_like_eager_and_traces_once(tmp_path, fresh_dynamo):
    """Two steps with the reference pass (beta > 0) and two micro-batches per step: the compiled trainer ends with
    the eager trainer's weights, and its second step compiles nothing new."""
    flags = dict(max_steps=1, per_device_train_batch_size=8, gradient_accumulation_steps=2, steps_per_generation=2)
    eager, compiled = (make_trainer(tmp_path / name, compile=c, **flags) for name, c in (("e", False), ("c", True)))
    eager.train()
    compiled.train()
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 3  # the decode step, the reference pass and the update (with its backward)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for trainer in (eager, compiled):
            trainer.config.max_steps = 2
            trainer.train()
    assert counters["stats"]["unique_graphs"] == graphs
    torch.testing.assert_close(flat_params(compiled), flat_params(eager), atol=1e-4, rtol=0)
    assert not torch.equal(flat_params(compiled), flat_params(make_trainer(tmp_path / "start")))
