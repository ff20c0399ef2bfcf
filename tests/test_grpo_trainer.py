"""The trainer end to end on a tiny real GPT + VQ: learning signal, bookkeeping, resume, bad rewards."""

import json
import math
import os
import signal

import pytest
import torch

from autoregressive.models.generate import SamplingConfig, generate, sequence_logprobs
from autoregressive.models.gpt import load_gpt_weights
from grpo.checkpointing import list_checkpoints
from grpo.config import GRPOConfig
from grpo.loss import grpo_loss
from grpo_trainer import INTERRUPTED_EXIT_CODE, TrainingInterrupted
from tests.grpo_fixtures import brightness_reward, flat_params, make_trainer
from tests.helpers import MAX_ABS_DLOGP, MEAN_ABS_DLOGP, tiny_gpt


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def _evaluate(trainer, n=128):
    """Mean reward and its standard error on a fixed set of labels and seeds."""
    labels = torch.arange(n) % 10
    gens = [torch.Generator().manual_seed(10_000 + i) for i in range(n)]
    tokens = generate(trainer.policy.eval(), labels, cfg=trainer.sampling, generator=gens).tokens
    trainer.policy.train()
    rewards = brightness_reward(trainer.decode_images(tokens), [], [])[0]
    return rewards.mean().item(), rewards.std().item() / math.sqrt(n)


def test_grpo_raises_a_simple_reward(tmp_path):
    trainer = make_trainer(
        tmp_path,
        max_steps=20,
        num_generations=8,
        per_device_train_batch_size=32,
        beta=0.0,
        learning_rate=1e-2,
    )
    before, se_before = _evaluate(trainer)
    trainer.train()
    after, se_after = _evaluate(trainer)
    # Not luck: the gain must exceed 4 combined standard errors of the two 128-sample estimates.
    assert after - before > 4 * math.hypot(se_before, se_after), (before, after, se_before, se_after)
    rows = _metrics(tmp_path)
    assert len(rows) == 20 and rows[-1]["reward/total_mean"] > rows[0]["reward/total_mean"]


def _class_dependent_reward(images, prompts, metadata):
    """Bright images for even classes, dark ones for odd: only a policy that reads its condition gains."""
    brightness = images.mean(dim=(1, 2, 3))
    odd = torch.tensor([int(p) % 2 for p in prompts], dtype=torch.bool, device=images.device)
    score = torch.where(odd, 1 - brightness, brightness)
    return score, {"class_dependent": score}


def test_grpo_learns_a_reward_that_depends_on_the_prompt(tmp_path):
    # The brightness test above passes even if samples are scored against the wrong prompts; this one does not.
    trainer = make_trainer(
        tmp_path,
        reward=_class_dependent_reward,
        max_steps=30,
        num_generations=8,
        per_device_train_batch_size=32,
        beta=0.0,
        learning_rate=1e-2,
    )

    def gap(n=160):
        labels = torch.arange(n) % 10
        gens = [torch.Generator().manual_seed(20_000 + i) for i in range(n)]
        tokens = generate(trainer.policy.eval(), labels, cfg=trainer.sampling, generator=gens).tokens
        trainer.policy.train()
        brightness = trainer.decode_images(tokens).mean(dim=(1, 2, 3))
        even, odd = brightness[labels % 2 == 0], brightness[labels % 2 == 1]
        se = math.hypot(even.std().item() / math.sqrt(len(even)), odd.std().item() / math.sqrt(len(odd)))
        return (even.mean() - odd.mean()).item(), se

    before, se_before = gap()
    trainer.train()
    after, se_after = gap()
    # Even classes must end up brighter than odd ones by more than 4 combined standard errors of the change.
    assert after - before > 4 * math.hypot(se_before, se_after), (before, after, se_before, se_after)


def test_beta_zero_builds_no_reference_and_first_pass_ratio_is_one(tmp_path):
    trainer = make_trainer(tmp_path / "a", beta=0.0, max_steps=1)
    assert trainer.ref_model is None
    trainer.train()
    row = _metrics(tmp_path / "a")[0]
    assert row["ratio/mean"] == 1.0 and row["clip/low"] == 0 and row["clip/high"] == 0 and row["kl"] == 0
    with_ref = make_trainer(tmp_path / "b", beta=0.1, max_steps=1)
    assert with_ref.ref_model is not None
    assert not any(p.requires_grad for p in with_ref.ref_model.parameters())


def test_reused_rollouts_store_old_logprobs_and_clip(tmp_path):
    trainer = make_trainer(
        tmp_path, num_iterations=3, max_steps=3, learning_rate=5e-2, epsilon=0.05, beta=0.0
    )
    trainer.train()
    rows = _metrics(tmp_path)
    assert rows[0]["ratio/mean"] == pytest.approx(1.0, abs=1e-6)  # first pass: policy == old policy
    assert rows[1]["ratio/mean"] != pytest.approx(1.0, abs=1e-4)  # later passes see a moved policy
    assert max(r["clip/low"] + r["clip/high"] for r in rows[1:]) > 0


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_update_moves_logprob_in_the_direction_of_the_advantage(sign):
    model = tiny_gpt("c2i", sharp=False).train()
    cfg = SamplingConfig(cfg_scale=2.0)
    labels = torch.tensor([1, 2])
    tokens = generate(model, labels, cfg=cfg, generator=torch.Generator().manual_seed(0)).tokens
    before = sequence_logprobs(model, labels, tokens, cfg).sum(-1).detach()
    logp = sequence_logprobs(model, labels, tokens, cfg)
    loss = grpo_loss(logp, logp.detach(), torch.tensor([sign, 0.0])).loss
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 1e-2 * p.grad
    after = sequence_logprobs(model, labels, tokens, cfg).sum(-1).detach()
    assert sign * (after[0] - before[0]) > 1e-3


def test_resume_continues_exactly(tmp_path):
    straight = make_trainer(tmp_path / "straight", max_steps=4)
    straight.train()
    first = make_trainer(tmp_path / "split", max_steps=4, exit_step=2)
    first.train()
    assert first.step == 2 and [p.name for p in list_checkpoints(tmp_path / "split")] == ["checkpoint-2"]
    second = make_trainer(tmp_path / "split", max_steps=4, resume_from_checkpoint="latest")
    second.train()
    assert second.step == 4
    assert torch.equal(flat_params(second), flat_params(straight))


def test_checkpoints_rotate_and_final_model_is_llamagen_layout(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=3, save_steps=1, save_total_limit=2)
    trainer.train()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]
    saved = torch.load(tmp_path / "gpt_final.pt", weights_only=True)
    assert set(saved) >= {"model"}
    fresh = tiny_gpt("c2i", seed=99, block_size=16, vocab_size=48, sharp=False)
    load_gpt_weights(fresh, tmp_path / "gpt_final.pt")
    assert torch.equal(flat_params(trainer), torch.cat([p.flatten() for p in fresh.parameters()]))


def test_nan_reward_stops_with_the_function_and_prompt_named(tmp_path):
    from reward_utils.base import RewardError, check_scores

    def nan_reward(images, prompts, metadata):
        scores = brightness_reward(images, prompts, metadata)[0].clone()
        scores[5] = float("nan")
        return check_scores("broken_reward", scores, prompts), {}

    trainer = make_trainer(tmp_path, reward=nan_reward)
    with pytest.raises(RuntimeError, match="broken_reward") as info:
        trainer.train()
    assert isinstance(info.value.__cause__, RewardError)
    assert "prompt #5" in str(info.value)


def test_skip_mode_drops_and_counts_failing_groups(tmp_path):
    unscorable = []

    def flaky_reward(images, prompts, metadata):
        unscorable.append(unscorable[0] if unscorable else prompts[0])  # the first class ever seen
        if unscorable[0] in prompts:
            raise ValueError(f"cannot score class {unscorable[0]} (batch {prompts})")
        return brightness_reward(images, prompts, metadata)

    trainer = make_trainer(tmp_path, reward=flaky_reward, on_bad_reward="skip_group", max_steps=3)
    trainer.train()
    rows = _metrics(tmp_path)
    assert sum(r["groups/skipped"] for r in rows) >= 1
    assert all(math.isfinite(r["loss"]) for r in rows)


def _sigterm_on_second_call():
    """A brightness reward that sends this process SIGTERM while it scores the second rollout."""
    calls = {"n": 0}

    def reward_then_sigterm(images, prompts, metadata):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return brightness_reward(images, prompts, metadata)

    return reward_then_sigterm


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path):
    trainer = make_trainer(tmp_path, reward=_sigterm_on_second_call(), max_steps=10)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.train()
    assert info.value.code == INTERRUPTED_EXIT_CODE != 0  # a launcher sees a stopped run, not a finished one
    assert trainer.step == 2 and info.value.checkpoint == tmp_path / "checkpoint-2"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2"]
    assert not (tmp_path / "gpt_final.pt").exists()  # evaluation scripts take it as the sign of a finished run
    assert signal.getsignal(signal.SIGTERM) is not trainer._on_sigterm  # handler restored
    resumed = make_trainer(tmp_path, max_steps=3, resume_from_checkpoint="latest")
    resumed.train()
    assert (tmp_path / "gpt_final.pt").is_file()


def test_sigterm_during_the_last_rollout_still_finishes(tmp_path):
    make_trainer(tmp_path, reward=_sigterm_on_second_call(), max_steps=2).train()  # no TrainingInterrupted
    assert (tmp_path / "gpt_final.pt").is_file()


def test_exit_step_saves_but_writes_no_final_model(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=3, exit_step=1)
    trainer.train()
    assert trainer.step == 1 and [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-1"]
    assert not (tmp_path / "gpt_final.pt").exists()


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warmup_steps_ramp_the_learning_rate(tmp_path, schedule):
    # transformers' plain "constant" schedule ignores warm-up; the trainer must not.
    trainer = make_trainer(tmp_path, lr_scheduler_type=schedule, warmup_steps=4, max_steps=8, learning_rate=1e-3)
    rates = []
    for _ in range(6):
        rates.append(trainer.scheduler.get_last_lr()[0])
        trainer.scheduler.step()
    assert rates[:4] == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4])
    assert rates[4] == pytest.approx(1e-3)


SAMPLER_LOGP_ATOL = 2e-5  # fp32: cached decode and teacher-forced pass differ only by summation order


def _count_forward_calls(model):
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


def test_sampler_logprobs_equal_the_trainers_teacher_forced_logprobs(tmp_path):
    trainer = make_trainer(tmp_path, top_k=0, cfg_interval=6)
    assert trainer.sampler_is_policy
    policy = trainer.policy.eval()
    labels = torch.tensor([1, 4, 4, 7])
    out = generate(policy, labels, cfg=trainer.sampling, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        dist, guidance = trainer.policy_dist, trainer.config.logp_guidance
        recomputed = sequence_logprobs(policy, labels, out.tokens, dist, None, guidance)
    assert out.logprobs.min() < -1.0  # a real distribution, not near-certain tokens
    torch.testing.assert_close(out.logprobs, recomputed, atol=SAMPLER_LOGP_ATOL, rtol=0)


def test_reused_rollouts_take_old_logprobs_from_the_sampler_without_a_second_pass(tmp_path):
    trainer = make_trainer(tmp_path, num_iterations=2, beta=0.0, top_k=0)
    calls, handle = _count_forward_calls(trainer.policy)
    rollout = trainer.make_rollout()
    handle.remove()
    assert calls == []  # no teacher-forced pass: the sampler's log-probs are the old policy's
    recomputed = trainer._frozen_logprobs(trainer.policy, rollout.cond, rollout.tokens, rollout.cond_mask)
    torch.testing.assert_close(rollout.old_logp, recomputed, atol=SAMPLER_LOGP_ATOL, rtol=0)


@pytest.mark.parametrize(
    "overrides", [dict(top_k=5), dict(top_p=0.9), dict(logp_guidance="cond")]
)
def test_old_logprobs_are_recomputed_when_the_sampler_is_not_the_policy(tmp_path, overrides):
    trainer = make_trainer(tmp_path, num_iterations=2, beta=0.0, **{"top_k": 0, **overrides})
    assert not trainer.sampler_is_policy
    calls, handle = _count_forward_calls(trainer.policy)
    rollout = trainer.make_rollout()
    handle.remove()
    assert len(calls) >= 1 and rollout.old_logp is not None


def test_dropout_in_the_policy_means_old_logprobs_are_recomputed(tmp_path):
    trainer = make_trainer(tmp_path, num_iterations=2, beta=0.0, top_k=0)
    assert trainer.sampler_is_policy
    trainer.policy.config.resid_dropout_p = 0.1  # the training-mode forward would differ from the eval sampler
    assert not trainer.sampler_is_policy


@pytest.fixture
def fresh_accelerate_state():
    """bf16 needs an Accelerator with another mixed precision than the process-wide state other tests built."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def test_bf16_samples_and_scores_with_bf16_copies_and_trains_fp32_weights(tmp_path, fresh_accelerate_state):

    trainer = make_trainer(tmp_path, bf16=True, num_iterations=2, beta=0.1, top_k=0, max_steps=2)
    assert not trainer.sampler_is_policy  # bf16 cached and teacher-forced passes round differently
    assert trainer.ref_model.layers[0].feed_forward.w1.weight.dtype == torch.bfloat16
    rollout = trainer.make_rollout()
    assert trainer._sampling_copy.layers[0].feed_forward.w1.weight.dtype == torch.bfloat16
    assert trainer._sampling_copy.output.weight.dtype == trainer.ref_model.output.weight.dtype == torch.float32
    assert rollout.images.dtype == torch.float32 and rollout.old_logp.dtype == torch.float32
    with torch.no_grad():
        fp32 = sequence_logprobs(trainer.policy, rollout.cond, rollout.tokens, trainer.policy_dist)
    delta = (rollout.old_logp - fp32).abs()
    assert 0 < delta.max() <= MAX_ABS_DLOGP  # bf16 really ran, within the accepted tolerance
    before = trainer.policy.output.weight.detach().clone()
    trainer.train()
    assert trainer.policy.output.weight.dtype == torch.float32
    assert not torch.equal(trainer.policy.output.weight, before)
    with trainer.rollout_weights() as sampler:
        refreshed = sampler.layers[0].feed_forward.w1.weight
        assert torch.equal(refreshed, trainer.policy.layers[0].feed_forward.w1.weight.to(torch.bfloat16))


def test_bf16_logit_head_rounds_the_copies_logits_within_tolerance(tmp_path, fresh_accelerate_state):
    trainer = make_trainer(tmp_path, bf16=True, bf16_logit_head=True, num_iterations=2, beta=0.1, top_k=0)
    assert trainer._sampling_copy.output.weight.dtype == trainer.ref_model.output.weight.dtype == torch.bfloat16
    rollout = trainer.make_rollout()
    with torch.no_grad():
        fp32 = sequence_logprobs(trainer.policy, rollout.cond, rollout.tokens, trainer.policy_dist)
    for low in (rollout.old_logp, rollout.ref_logp):
        assert low.dtype == torch.float32
        delta = (low - fp32).abs()
        assert 0 < delta.max() <= MAX_ABS_DLOGP and delta.mean() <= MEAN_ABS_DLOGP


def test_bf16_logit_head_without_a_bf16_copy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--bf16_logit_head needs a bf16 copy"):
        GRPOConfig(output_dir=str(tmp_path), bf16_logit_head=True)
    with pytest.raises(ValueError, match="--bf16_logit_head needs a bf16 copy"):  # no reference without a KL term
        GRPOConfig(output_dir=str(tmp_path), bf16_logit_head=True, torch_dtype="bfloat16", beta=0.0)
    GRPOConfig(output_dir=str(tmp_path), bf16_logit_head=True, torch_dtype="bfloat16", beta=0.1)  # a bf16 reference


def test_frozen_logprob_passes_take_the_whole_rollout_unless_memory_requires_chunks(tmp_path):
    kwargs = dict(num_iterations=2, beta=0.1, top_k=5, num_generations=4, per_device_train_batch_size=8)
    kwargs["steps_per_generation"] = 2  # 16 samples per rollout, two micro-batches of 8
    whole = make_trainer(tmp_path / "whole", **kwargs)
    calls, handle = _count_forward_calls(whole.ref_model)
    rollout = whole.make_rollout()
    handle.remove()
    assert rollout.tokens.shape[0] == 16 and len(calls) == 1  # one batch, not one per micro-batch
    # A budget of ~3 rows of logits (CFG branches + guided + log-softmax, fp32) splits the pass, same values.
    per_row_gb = 4 * rollout.tokens.shape[1] * whole.policy.config.vocab_size * 4 / 2**30
    chunked = make_trainer(tmp_path / "chunked", logprob_memory_gb=3.5 * per_row_gb, **kwargs)
    calls, handle = _count_forward_calls(chunked.ref_model)
    again = chunked.make_rollout()
    handle.remove()
    assert len(calls) == 6  # ceil(16 / 3)
    assert torch.equal(again.tokens, rollout.tokens)
    torch.testing.assert_close(again.ref_logp, rollout.ref_logp, atol=1e-5, rtol=0)
