"""A torchrun launch on a machine without CUDA must give every process its own rank (not N copies of one job)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoregressive.models.gpt import build_gpt
from tests.grpo_fixtures import tiny_vq

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys
from pathlib import Path
from grpo.launch import make_accelerator
a = make_accelerator()
line = f"rank={a.process_index} of={a.num_processes} main={a.is_main_process}"
Path(sys.argv[1], f"rank{a.process_index}.txt").write_text(line)
"""


def test_torchrun_on_cpu_gives_distinct_ranks(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("ACCELERATE_USE_CPU", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(probe), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = sorted(p.read_text() for p in tmp_path.glob("rank*.txt"))  # files: ranks' stdout lines may interleave
    assert lines == ["rank=0 of=2 main=True", "rank=1 of=2 main=False"]


def test_fsdp_config_on_cpu_is_refused_not_ignored(tmp_path):
    """An accelerate FSDP config is refused and points to --fsdp (accelerate would drop it on a CPU launch)."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "CUDA_VISIBLE_DEVICES": "",
        "ACCELERATE_USE_FSDP": "true",  # what `accelerate launch --config_file fsdp.yaml` exports
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(probe), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode != 0
    assert "asks for FSDP" in result.stderr and "pass --fsdp" in result.stderr


def _train_c2i(tmp_path, name: str, nproc: int, per_device: int) -> list[dict]:
    """train_c2i.py from the command line under torchrun: tiny checkpoints, a weight-free reward."""
    vq, gpt = tmp_path / "vq.pt", tmp_path / "gpt.pt"
    if not gpt.exists():
        torch.save({"model": tiny_vq().state_dict()}, vq)
        torch.manual_seed(0)
        torch.save({"model": build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15).state_dict()}, gpt)
    out = tmp_path / name
    flags = [
        *("--gpt_model", "GPT-Tiny", "--gpt_ckpt", str(gpt), "--num_classes", "15", "--codebook_size", "48"),
        *("--vq_model", "VQ-Tiny", "--vq_ckpt", str(vq), "--image_size", "16", "--downsample_size", "4"),
        *("--max_steps", "2", "--num_generations", "4", "--per_device_train_batch_size", str(per_device)),
        *("--reward_funcs", "shapes", "--report_to", "none", "--image_log_steps", "0", "--save_steps", "0"),
        *("--learning_rate", "1e-2", "--adam_epsilon", "1e-4", "--output_dir", str(out)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("ACCELERATE_USE_CPU", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    result = subprocess.run(
        [*cmd, str(ROOT / "train_c2i.py"), *flags], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_c2i_under_torchrun_on_cpu_is_one_job_over_two_ranks(tmp_path):
    """Two ranks with half the per-process batch each run the same job as one process: each step is logged once,
    and the per-step metrics of the global batch agree (rewards exactly; gradient-based values up to the
    round-off of an all-reduce)."""
    one = _train_c2i(tmp_path, "one", nproc=1, per_device=8)
    two = _train_c2i(tmp_path, "two", nproc=2, per_device=4)
    assert [row["step"] for row in two] == [1, 2] == [row["step"] for row in one]
    for a, b in zip(one, two):
        assert b["reward/total_mean"] == a["reward/total_mean"]  # same prompts, same samples, same images
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


END_PROBE = """
import sys
from pathlib import Path
from grpo.launch import end_run, make_accelerator
a = make_accelerator()
Path(sys.argv[1], f"finished{a.process_index}").touch()
end_run(a)
Path(sys.argv[1], f"went_on{a.process_index}").touch()
"""


@pytest.mark.parametrize("nproc", [1, 2])
def test_end_run_exits_every_process_with_status_0(tmp_path, nproc):
    """Two processes leave inside end_run with status 0; one process returns from it and goes on."""
    probe = tmp_path / "end_probe.py"
    probe.write_text(END_PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(probe)]
    result = subprocess.run([*cmd, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("finished*")) == [f"finished{i}" for i in range(nproc)]
    assert sorted(p.name for p in tmp_path.glob("went_on*")) == ([] if nproc == 2 else ["went_on0"])
