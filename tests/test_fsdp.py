"""``--fsdp``: two processes sharding the policy with FSDP2 over gloo (CPU) train exactly like two DDP processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoregressive.models.gpt import build_gpt, load_gpt_weights
from tests.grpo_fixtures import DOWNSAMPLE, IMAGE_SIZE, VOCAB, make_trainer, tiny_vq
from tests.helpers import tiny_gpt

ROOT = Path(__file__).resolve().parents[1]
LR = 1e-2
WORKER = f"""
import sys
from pathlib import Path
import torch
from grpo.launch import end_run, make_accelerator
from grpo.sharding import model_state_dict
from tests.grpo_fixtures import make_trainer

LR = {LR!r}
torch.set_num_threads(1)
output_dir, fsdp, bf16, steps, exit_step, resume = sys.argv[1:7]
accelerator = make_accelerator(mixed_precision="bf16" if bf16 == "1" else "no")
trainer = make_trainer(
    output_dir, accelerator=accelerator, max_steps=int(steps), exit_step=int(exit_step),
    resume_from_checkpoint=None if resume == "-" else resume, fsdp=fsdp == "1", bf16=bf16 == "1",
    per_device_train_batch_size=4, gradient_accumulation_steps=2, beta=0.05, learning_rate=LR, adam_epsilon=1e-4,
    save_steps=1, max_grad_norm=0.3,  # below the gradient norm (~0.46): clipping acts
)
if fsdp == "1":  # the policy and the frozen reference hold one shard each, not whole tensors
    from torch.distributed.tensor import DTensor
    for model in (trainer.model, trainer.ref_model):
        assert all(isinstance(p, DTensor) for p in model.parameters())
trainer.train()
state = model_state_dict(accelerator, trainer.model)  # every process takes part; the main one gets it whole
if accelerator.is_main_process:
    torch.save(state, Path(output_dir) / "state.pt")
end_run(accelerator)  # as the training scripts end
"""


def _run(tmp_path: Path, name: str, fsdp: bool, steps: int = 2, exit_step: int = -1, resume: str = "-",
         bf16: bool = False) -> dict[str, torch.Tensor]:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker)]
    cmd += [str(out), str(int(fsdp)), str(int(bf16)), str(steps), str(exit_step), resume]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out / "state.pt", weights_only=True)


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_fsdp_matches_ddp_and_writes_a_strict_final_model(tmp_path, bf16):
    """Same global batch, gradient accumulation over two micro-batches, clipping acting: the sharded run ends two steps
    with the DDP run's parameters. Both sum the same per-process gradients (DDP all-reduces, FSDP reduce-scatters),
    so only fp32 round-off may differ: tolerance 0.1% of one Adam step, while training moves weights by ~lr. Under
    bf16 autocast that round-off (one fp32 ulp of some weights after the first step) flips bf16 roundings in the
    second step's forward, which Adam turns into step-sized differences of a few weights: measured up to 2.6% of one
    Adam step, tolerance 5%. A shard whose gradient is lost differs by whole steps; a scaled one shows in the
    gradient norm (checked below)."""
    ddp = _run(tmp_path, "ddp", fsdp=False, bf16=bf16)
    fsdp = _run(tmp_path, "fsdp", fsdp=True, bf16=bf16)
    start = tiny_gpt("c2i", seed=1, block_size=(IMAGE_SIZE // DOWNSAMPLE) ** 2, vocab_size=VOCAB, sharp=False)
    assert set(fsdp) == set(ddp) == set(start.state_dict())
    moved = max((ddp[k] - v).abs().max().item() for k, v in start.state_dict().items())
    assert moved > LR
    tolerance = (5e-2 if bf16 else 1e-3) * LR
    for key in ddp:
        torch.testing.assert_close(fsdp[key], ddp[key], atol=tolerance, rtol=0, msg=key)
    rows_ddp, rows_fsdp = _metrics(tmp_path / "ddp"), _metrics(tmp_path / "fsdp")
    assert [r["step"] for r in rows_fsdp] == [1, 2] == [r["step"] for r in rows_ddp]
    for a, b in zip(rows_ddp, rows_fsdp):
        assert b["reward/total_mean"] == a["reward/total_mean"]  # the same samples: the gathered policy sampled
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)  # the norm over every shard
    final = torch.load(tmp_path / "fsdp" / "gpt_final.pt", weights_only=True)
    assert set(final) == {"model", "steps"} and final["steps"] == 2
    loaded = load_gpt_weights(start, tmp_path / "fsdp" / "gpt_final.pt")  # strict
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, fsdp[key]), key


@pytest.mark.slow
def test_fsdp_resume_continues_like_the_straight_run(tmp_path):
    """A checkpoint written under --fsdp (full model and optimizer state) resumes bit for bit."""
    straight = _run(tmp_path, "straight", fsdp=True, steps=3)
    _run(tmp_path, "split", fsdp=True, steps=3, exit_step=1)
    checkpoint = tmp_path / "split" / "checkpoint-1"
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    assert "layers.0.attention.wqkv.weight" in optimizer["state"]  # whole and keyed by name, not one shard
    resumed = _run(tmp_path, "split", fsdp=True, steps=3, resume="latest")
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


@pytest.mark.slow
def test_train_c2i_with_fsdp_under_torchrun(tmp_path):
    """The command a user runs: train_c2i.py --fsdp under torchrun (CPU, gloo) trains, logs each step once and
    writes a strict-loadable final model."""
    vq, gpt = tmp_path / "vq.pt", tmp_path / "gpt.pt"
    torch.save({"model": tiny_vq().state_dict()}, vq)
    torch.manual_seed(0)
    torch.save({"model": build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15).state_dict()}, gpt)
    out = tmp_path / "run"
    flags = [
        *("--gpt_model", "GPT-Tiny", "--gpt_ckpt", str(gpt), "--num_classes", "15", "--codebook_size", "48"),
        *("--vq_model", "VQ-Tiny", "--vq_ckpt", str(vq), "--image_size", "16", "--downsample_size", "4"),
        *("--max_steps", "2", "--num_generations", "4", "--per_device_train_batch_size", "4", "--fsdp"),
        *("--reward_funcs", "shapes", "--report_to", "none", "--image_log_steps", "0", "--save_steps", "1"),
        *("--eval_steps", "2", "--eval_num_prompts", "3", "--output_dir", str(out)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("ACCELERATE_USE_CPU", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*cmd, str(ROOT / "train_c2i.py"), *flags], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _metrics(out)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert [r["step"] for r in rows if "eval/total_mean" in r] == [0, 2]  # 3 prompts over 2 processes: 2 + 1
    model = build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15)
    load_gpt_weights(model, out / "gpt_final.pt")  # strict
    checkpoint = load_gpt_weights(build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15),
                                  out / "checkpoint-2" / "model.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint.state_dict()[key]), key


def test_fsdp_without_a_distributed_launch_is_refused(tmp_path):
    """One plain process has nothing to shard over: an error naming the flag, not a silently unsharded run."""
    with pytest.raises(ValueError, match=r"--fsdp .* 1 process.*torchrun"):
        make_trainer(tmp_path / "out", fsdp=True)


@pytest.mark.slow
def test_checkpoints_move_between_ddp_and_fsdp(tmp_path):
    """Checkpoints have one layout: a DDP checkpoint (optimizer state keyed by position) resumes under --fsdp, an
    FSDP one (keyed by name) under DDP, and both continue like the straight DDP run, up to the round-off of the two
    reductions (tolerance as above)."""
    straight = _run(tmp_path, "straight", fsdp=False, steps=3)
    for first, then in ((False, True), (True, False)):
        name = f"{'fsdp' if first else 'ddp'}-then-{'fsdp' if then else 'ddp'}"
        _run(tmp_path, name, fsdp=first, steps=3, exit_step=1)
        resumed = _run(tmp_path, name, fsdp=then, steps=3, resume="latest")
        for key in straight:
            torch.testing.assert_close(resumed[key], straight[key], atol=1e-3 * LR, rtol=0, msg=f"{name} {key}")


def test_fsdp_on_one_process_is_refused_before_any_model_loads(tmp_path):
    """Through the training script: the refusal names the flag, and the (unreadable) checkpoint is never read."""
    import train_c2i
    from tests.grpo_fixtures import tiny_run_flags, tiny_vq

    vq = tmp_path / "vq.pt"
    torch.save({"model": tiny_vq().state_dict()}, vq)
    gpt = tmp_path / "gpt.pt"
    gpt.write_bytes(b"not a checkpoint")  # loading it would fail with a different message
    with pytest.raises(SystemExit, match=r"--fsdp .* 1 process"):
        train_c2i.main(tiny_run_flags(gpt, vq, tmp_path / "out", "--reward_funcs", "noise_control", "--fsdp"))


T2I_WORKER = """
import sys
from pathlib import Path
import torch
from autoregressive.models.generate import SamplingConfig, generate
from grpo.launch import end_run, make_accelerator
from grpo.sharding import gathered, shard_model
from tests.helpers import t2i_condition, tiny_gpt
torch.set_num_threads(1)
accelerator = make_accelerator()
model = tiny_gpt("t2i", block_size=16)  # sharp attention: a wrong slot or mask changes the tokens
cond, mask = t2i_condition(model, 4, pad=[0, 1, 2, 3])
cfg = SamplingConfig(cfg_scale=2.0)
whole = generate(model, cond, cfg=cfg, cond_mask=mask, generator=torch.Generator().manual_seed(0)).tokens
sharded = shard_model(model, accelerator.device)  # in place
with gathered(sharded):
    tokens = generate(sharded, cond, cfg=cfg, cond_mask=mask, generator=torch.Generator().manual_seed(0)).tokens
Path(sys.argv[1], f"equal{accelerator.process_index}").write_text(str(torch.equal(tokens, whole)))
end_run(accelerator)
"""


@pytest.mark.slow
def test_a_sharded_t2i_policy_samples_the_unsharded_tokens(tmp_path):
    """Caption conditioning through shard_model (its one-token forward through the root takes caption features):
    the gathered sharded policy samples exactly the tokens of the unsharded one."""
    worker = tmp_path / "t2i_worker.py"
    worker.write_text(T2I_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker)]
    result = subprocess.run([*cmd, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    assert [(tmp_path / f"equal{rank}").read_text() for rank in (0, 1)] == ["True", "True"]
