"""Memory options: gradient checkpointing, bf16 frozen weights (--torch_dtype) and LoRA adapters (--use_peft)."""

from __future__ import annotations

import pytest
import torch

import autoregressive.models.gpt as gpt_module
import train_c2i
from autoregressive.models.generate import SamplingConfig, generate, sequence_logprobs
from autoregressive.models.gpt import build_gpt, load_gpt_weights
from grpo.checkpointing import MODEL_FILE, list_checkpoints
from grpo.model_setup import freeze
from tests.grpo_fixtures import (
    DOWNSAMPLE,
    IMAGE_SIZE,
    TINY_RUN_FLAGS,
    VOCAB,
    flat_params,
    make_trainer,
    tiny_gpt_ckpt,
    tiny_vq,
)
from tests.helpers import MAX_ABS_DLOGP, tiny_gpt

TINY = dict(block_size=(IMAGE_SIZE // DOWNSAMPLE) ** 2, vocab_size=VOCAB, sharp=False)


def _count_block_calls(model) -> list[bool]:
    """Record every transformer-block forward (grad mode at the call); the recompute in a backward runs it again.

    (Module forward hooks are not a reliable count: the checkpoint's recompute does not fire them.)"""
    calls: list[bool] = []
    for layer in model.layers:
        forward = layer.forward

        def counted(*args, _forward=forward, **kwargs):
            calls.append(torch.is_grad_enabled())
            return _forward(*args, **kwargs)

        layer.forward = counted
    return calls


def _loss_and_grads(model, tokens, labels):
    model.zero_grad(set_to_none=True)
    logits = model(tokens, labels)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


# ------------------------------------------------------------------------------------ gradient checkpointing
def test_gradient_checkpointing_gives_equal_gradients_and_recomputes_each_block_in_the_backward():
    model = tiny_gpt("c2i", seed=2, block_size=16).train()
    tokens = torch.randint(0, 48, (3, 16), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 2, 3])
    calls = _count_block_calls(model)
    plain = _loss_and_grads(model, tokens, labels)
    plain_calls = len(calls)
    model.gradient_checkpointing_enable()
    calls.clear()
    recomputed = _loss_and_grads(model, tokens, labels)
    assert plain_calls == model.config.n_layer
    assert len(calls) == 2 * model.config.n_layer  # forward, then once more in the backward
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_gradient_checkpointing_is_off_for_sampling_and_no_grad_passes(monkeypatch):
    model = tiny_gpt("c2i", seed=2, block_size=16)
    model.gradient_checkpointing_enable()
    used: list[int] = []
    real = gpt_module.checkpoint
    monkeypatch.setattr(gpt_module, "checkpoint", lambda *a, **k: used.append(1) or real(*a, **k))
    labels = torch.tensor([1, 2])
    generate(model.eval(), labels, cfg=SamplingConfig(cfg_scale=2.0), generator=torch.Generator().manual_seed(0))
    model.train()
    with torch.no_grad():
        model(torch.zeros(2, 16, dtype=torch.long), labels)
    assert used == []
    model(torch.zeros(2, 16, dtype=torch.long), labels).sum().backward()
    assert len(used) == model.config.n_layer  # the spy does see the update's forward


def saved_activation_bytes(model, tokens, labels) -> int:
    """Bytes the autograd graph keeps for the backward of one training forward (the activation memory)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(tokens, labels).sum()
    return total


def test_gradient_checkpointing_keeps_fewer_activations_for_the_backward():
    model = tiny_gpt("c2i", seed=2, block_size=64, n_layer=4).train()
    tokens = torch.randint(0, 48, (4, 64), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 2, 3, 4])
    kept = saved_activation_bytes(model, tokens, labels)
    model.gradient_checkpointing_enable()
    assert saved_activation_bytes(model, tokens, labels) < kept / 3  # block inputs only, not their insides


def test_gradient_checkpointing_trains_the_same_policy(tmp_path):
    plain = make_trainer(tmp_path / "plain", max_steps=2)
    plain.train()
    checkpointed = make_trainer(tmp_path / "ckpt", max_steps=2, gradient_checkpointing=True)
    assert checkpointed.policy.gradient_checkpointing
    checkpointed.train()
    torch.testing.assert_close(flat_params(checkpointed), flat_params(plain), rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------------------------------------- torch_dtype
def _nbytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_bf16_reference_halves_its_memory_and_keeps_logprobs_close(tmp_path):
    fp32 = make_trainer(tmp_path / "fp32")
    bf16 = make_trainer(tmp_path / "bf16", torch_dtype="bfloat16")
    ref32, ref16 = fp32.ref_model, bf16.ref_model
    head = dict(ref16.named_parameters())["output.weight"]
    assert head.dtype == torch.float32  # the logit head stays fp32, so log-probs are not rounded to bf16
    assert all(p.dtype == torch.bfloat16 for n, p in ref16.named_parameters() if n != "output.weight")
    assert _nbytes(ref16) == (_nbytes(ref32) + head.numel() * 4) // 2
    assert all(p.dtype == torch.float32 for p in bf16.policy.parameters())  # fp32 master weights
    rollout = bf16.make_rollout()
    with torch.no_grad():
        exact = sequence_logprobs(ref32, rollout.cond, rollout.tokens, bf16.policy_dist)
    delta = (rollout.ref_logp - exact).abs()
    assert 0 < delta.max() <= MAX_ABS_DLOGP  # bf16 really ran, within the accepted tolerance


def test_bf16_vq_decoder_decodes_close_to_fp32():
    vq = tiny_vq()
    low = freeze(tiny_vq(), torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in low.parameters())
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        exact, rounded = vq.decode_to_images(tokens, 4), low.decode_to_images(tokens, 4).float()
    assert 0 < (rounded - exact).abs().max() <= 0.05


# ------------------------------------------------------------------------------------------------- LoRA
LORA = dict(use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-2)


def _base_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}


def test_lora_step_changes_only_adapters_and_the_optimizer_sees_only_them(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1, **LORA)
    adapters = [n for n, p in trainer.policy.named_parameters() if p.requires_grad]
    assert adapters and all("lora_" in n for n in adapters)
    wrapped = {n.split(".")[-4] for n in adapters}
    assert wrapped == {"wqkv", "wo", "w1", "w2", "w3"}
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(adapters)
    base = _base_weights(trainer.policy)
    lora_b = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if "lora_B" in n}
    trainer.train()
    after = _base_weights(trainer.policy)
    assert all(torch.equal(after[k], v) for k, v in base.items())  # base weights bit-identical
    moved = [n for n, p in trainer.policy.named_parameters() if "lora_B" in n and not torch.equal(p, lora_b[n])]
    assert moved


def test_lora_reference_is_the_base_model_with_adapters_disabled(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1, **LORA)
    trainer.train()  # the adapters are non-zero now, so the policy differs from the base
    rollout = trainer.make_rollout()
    base = tiny_gpt("c2i", seed=1, **TINY)  # the fixture's policy before LoRA: the same seed
    with torch.no_grad():
        expected = sequence_logprobs(base, rollout.cond, rollout.tokens, trainer.policy_dist)
        policy = sequence_logprobs(trainer.policy.eval(), rollout.cond, rollout.tokens, trainer.policy_dist)
    assert torch.equal(rollout.ref_logp, expected)
    assert not torch.allclose(policy, expected)  # the adapters were really off for the reference
    assert trainer.ref_model is trainer.policy  # no second copy of the weights
    assert trainer.policy.training is False and all("lora_" not in n for n, _ in base.named_parameters())


def test_lora_final_model_is_merged_into_llamagen_layout(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2, **LORA)
    trainer.train()
    plain = tiny_gpt("c2i", seed=99, **TINY)
    load_gpt_weights(plain, tmp_path / "gpt_final.pt")  # strict: LlamaGen's keys, no adapter keys
    tokens = torch.randint(0, VOCAB, (3, 16), generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 4, 7])
    with torch.no_grad():
        expected = trainer.policy.eval()(tokens, labels)
        merged = plain.eval()(tokens, labels)
        base = tiny_gpt("c2i", seed=1, **TINY)(tokens, labels)
    torch.testing.assert_close(merged, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(base, expected, atol=1e-3)  # training moved the policy: the merge carries it


def test_lora_checkpoint_stores_adapters_and_resume_continues_exactly(tmp_path):
    straight = make_trainer(tmp_path / "straight", max_steps=4, **LORA)
    straight.train()
    first = make_trainer(tmp_path / "split", max_steps=4, exit_step=2, **LORA)
    first.train()
    (checkpoint,) = list_checkpoints(tmp_path / "split")
    saved = torch.load(checkpoint / MODEL_FILE, weights_only=True)
    assert any("lora_A" in k for k in saved) and any("lora_B" in k for k in saved)
    second = make_trainer(tmp_path / "split", max_steps=4, resume_from_checkpoint="latest", **LORA)
    second.train()
    assert torch.equal(flat_params(second), flat_params(straight))


def test_unknown_lora_target_is_an_error_naming_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--lora_target_modules"):
        make_trainer(tmp_path, lora_target_modules=["q_proj"], **LORA)


def test_lora_dropout_means_old_logprobs_are_recomputed(tmp_path):
    trainer = make_trainer(tmp_path, num_iterations=2, **{**LORA, "lora_dropout": 0.1})
    assert not trainer.sampler_is_policy  # the update's forward drops adapter inputs; sampling does not


# ---------------------------------------------------------------------------------------------- the CLI
def test_cli_trains_with_every_memory_option(tmp_path):
    vq_ckpt = tmp_path / "vq.pt"
    torch.save({"model": tiny_vq().state_dict()}, vq_ckpt)
    gpt, out = tiny_gpt_ckpt(tmp_path, num_classes=15), tmp_path / "run"
    argv = [*TINY_RUN_FLAGS, "--gpt_ckpt", str(gpt), "--vq_ckpt", str(vq_ckpt), "--num_classes", "15"]
    argv += ["--reward_funcs", "shapes", "--output_dir", str(out), "--torch_dtype", "bfloat16"]
    argv += ["--gradient_checkpointing", "--use_peft", "--lora_r", "4", "--lora_target_modules", "wqkv", "w2"]
    trainer = train_c2i.build_trainer(*train_c2i.parse_args(argv))
    assert trainer.policy.gradient_checkpointing and trainer.ref_model is trainer.policy
    assert {n.split(".")[-4] for n, p in trainer.policy.named_parameters() if p.requires_grad} == {"wqkv", "w2"}
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        exact = tiny_vq().decode_to_images(tokens, 4)  # the VQ checkpoint holds tiny_vq()'s weights
    decoded = trainer.decode_images(tokens).float()
    assert 0 < (decoded - exact).abs().max() <= 0.05  # the decoder ran in bf16
    trainer.train()
    reloaded = build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15)
    load_gpt_weights(reloaded, out / "gpt_final.pt")
