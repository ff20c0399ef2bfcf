"""A torchrun launch on a machine without CUDA must give every process its own rank (not N copies of one job)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
from grpo.launch import make_accelerator
a = make_accelerator()
print(f"rank={a.process_index} of={a.num_processes} main={a.is_main_process}", flush=True)
"""


def test_torchrun_on_cpu_gives_distinct_ranks(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("ACCELERATE_USE_CPU", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(probe)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("rank="))
    assert lines == ["rank=0 of=2 main=True", "rank=1 of=2 main=False"]


def test_fsdp_config_on_cpu_is_refused_not_ignored(tmp_path):
    """An FSDP config is refused (accelerate would drop it on a CPU launch; sampling would see one shard on GPUs)."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "CUDA_VISIBLE_DEVICES": "",
        "ACCELERATE_USE_FSDP": "true",  # what `accelerate launch --config_file fsdp.yaml` exports
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(probe)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode != 0
    assert "asks for FSDP" in result.stderr and "does not support yet" in result.stderr
