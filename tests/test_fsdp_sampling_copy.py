"""``--fsdp --bf16``: the bf16 sampling copy is filled one FSDP unit at a time and holds memory during rollouts only,
while sampling, old log-probs, held-out scores and training stay those of DDP ``--bf16`` (2 processes, gloo, CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
LR = 1e-2
WORKER = f"""
import json
import sys
from pathlib import Path
import torch
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor
from grpo.launch import end_run, make_accelerator
from grpo.sharding import model_state_dict
from tests.grpo_fixtures import make_trainer

torch.set_num_threads(1)
output_dir, fsdp = Path(sys.argv[1]), sys.argv[2] == "1"
accelerator = make_accelerator(mixed_precision="bf16")
trainer = make_trainer(
    output_dir, accelerator=accelerator, max_steps=4, fsdp=fsdp, bf16=True, num_iterations=2, beta=0.05,
    per_device_train_batch_size=4, gradient_accumulation_steps=2, learning_rate={LR!r}, adam_epsilon=1e-4,
    eval_steps=4, eval_num_prompts=3,  # two optimizer steps per rollout: two rollouts, evaluations at 0 and 4
)
rollouts = []  # each training rollout's tokens and old log-probs, as the update received them
make_rollout = trainer.make_rollout
def recorded_rollout():
    rollout = make_rollout()
    rollouts.append((rollout.tokens, rollout.old_logp))
    return rollout
trainer.make_rollout = recorded_rollout

# Every explicit unshard (the trainer's sampling path; FSDP's own forward and backward hooks gather through its
# parameter groups instead) records the fp32 bytes then held as whole (non-DTensor) parameters.
model, seen = trainer.model, {{"unshards": 0, "peak_whole_bytes": 0}}
def recording(unshard):
    def unshard_and_record(*args, **kwargs):
        result = unshard(*args, **kwargs)
        whole = sum(p.numel() * p.element_size() for p in model.parameters() if not isinstance(p, DTensor))
        seen["unshards"] += 1
        seen["peak_whole_bytes"] = max(seen["peak_whole_bytes"], whole)
        return result
    return unshard_and_record
units = [m for m in model.modules() if isinstance(m, FSDPModule)]
for unit in units:
    unit.unshard = recording(unit.unshard)
copy_bytes = lambda: sum(t.untyped_storage().nbytes() for t in trainer._sampling_copy.parameters())
seen["copy_bytes_before"] = copy_bytes()
trainer.train()
seen["copy_bytes_after"] = copy_bytes()
seen["units"] = len(units)
policy = trainer.policy
seen["whole_fp32_bytes"] = sum(p.numel() * 4 for p in policy.parameters())
unit_bytes = [sum(p.numel() * 4 for p in m.parameters()) for m in [*policy.layers, policy.output]]
seen["largest_unit_bytes"] = max(*unit_bytes, seen["whole_fp32_bytes"] - sum(unit_bytes))  # the root: the rest
rank = accelerator.process_index
torch.save(rollouts, output_dir / f"rollouts-{{rank}}.pt")
(output_dir / f"seen-{{rank}}.json").write_text(json.dumps(seen))
state = model_state_dict(accelerator, trainer.model)
if accelerator.is_main_process:
    torch.save(state, output_dir / "state.pt")
end_run(accelerator)  # as the training scripts end
"""


def _run(tmp_path: Path, name: str, fsdp: bool) -> Path:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker)]
    result = subprocess.run([*cmd, str(out), str(int(fsdp))], env=env, capture_output=True, text=True, timeout=600,
                            cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("sampling_copy")
    return {"ddp": _run(tmp_path, "ddp", fsdp=False), "fsdp": _run(tmp_path, "fsdp", fsdp=True)}


@pytest.mark.slow
def test_fsdp_bf16_samples_scores_and_trains_like_ddp_bf16(runs):
    """The unit-by-unit copy holds the DDP copy's values: the same tokens, old log-probs (bitwise on the first
    rollout; the second follows one step whose two reductions round differently) and held-out scores, and the
    final weights of DDP up to that round-off (tolerance as in test_fsdp.py)."""
    for rank in (0, 1):
        ddp = torch.load(runs["ddp"] / f"rollouts-{rank}.pt", weights_only=True)
        fsdp = torch.load(runs["fsdp"] / f"rollouts-{rank}.pt", weights_only=True)
        assert len(ddp) == len(fsdp) == 2
        for (tokens_ddp, _), (tokens_fsdp, _) in zip(ddp, fsdp, strict=True):
            assert torch.equal(tokens_fsdp, tokens_ddp)
        assert torch.equal(fsdp[0][1], ddp[0][1])
        torch.testing.assert_close(fsdp[1][1], ddp[1][1], atol=1e-3, rtol=0)
    rows = {k: [json.loads(line) for line in (v / "metrics.jsonl").read_text().splitlines()] for k, v in runs.items()}
    evals = {k: [r["eval/total_mean"] for r in v if "eval/total_mean" in r] for k, v in rows.items()}
    assert len(evals["ddp"]) == 2 and evals["fsdp"] == evals["ddp"]  # steps 0 and 4: the held-out path samples alike
    ddp, fsdp = (torch.load(runs[k] / "state.pt", weights_only=True) for k in ("ddp", "fsdp"))
    assert set(fsdp) == set(ddp)
    for key in ddp:
        torch.testing.assert_close(fsdp[key], ddp[key], atol=1e-3 * LR, rtol=0, msg=key)


@pytest.mark.slow
def test_fsdp_bf16_rollout_gathers_one_unit_at_a_time_and_frees_the_copy(runs):
    """While the copy is refreshed no more than one fp32 unit is whole (never the whole fp32 policy), and between
    rollouts, from construction to the end of training, the copy holds no storage."""
    for rank in (0, 1):
        seen = json.loads((runs["fsdp"] / f"seen-{rank}.json").read_text())
        rollouts = 2 + 2  # two training rollouts, two held-out evaluations
        assert seen["unshards"] == rollouts * seen["units"]  # every unit, once per rollout
        assert 0 < seen["peak_whole_bytes"] <= seen["largest_unit_bytes"] < seen["whole_fp32_bytes"]
        assert seen["copy_bytes_before"] == 0
        assert seen["copy_bytes_after"] == 0



def test_a_freed_copy_holds_no_storage_and_comes_back_whole_and_tied():
    """free_storage keeps the tensors (so the copy's modules stay as built) but no bytes; allocate_storage gives each
    storage back at its full size, once where two parameters share one (tied weights)."""
    from autoregressive.models.precision import inference_copy, refresh_from
    from grpo.sharding import allocate_storage, free_storage
    from tests.helpers import tiny_gpt

    model = tiny_gpt("c2i")
    copy = inference_copy(model, torch.bfloat16)
    shapes = {name: (p.shape, p.dtype) for name, p in copy.named_parameters()}
    free_storage(copy)
    assert all(p.untyped_storage().nbytes() == 0 for p in copy.parameters())
    allocate_storage(copy)
    assert {name: (p.shape, p.dtype) for name, p in copy.named_parameters()} == shapes
    assert all(p.untyped_storage().nbytes() == p.numel() * p.element_size() for p in copy.parameters())
    refresh_from(copy, model)  # takes the weights like a fresh copy
    assert torch.equal(copy.layers[0].attention.wqkv.weight, model.layers[0].attention.wqkv.weight.bfloat16())

    tied = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(4, 6))
    tied[1].weight = tied[0].weight
    free_storage(tied)
    allocate_storage(tied)
    assert tied[1].weight.data_ptr() == tied[0].weight.data_ptr()
    assert tied[0].weight.untyped_storage().nbytes() == 6 * 4 * 4
