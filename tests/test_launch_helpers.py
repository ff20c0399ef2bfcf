"""The shell helpers every launcher sources (scripts/launch.sh): process count and early input checks."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bash(snippet: str, tmp_path: Path, nvidia_smi_output: str | None = None, **env: str):
    """Run ``snippet`` after sourcing scripts/launch.sh; ``nvidia_smi_output`` fakes the GPU listing."""
    path = os.environ["PATH"]
    if nvidia_smi_output is not None:
        fake = tmp_path / "bin"
        fake.mkdir(exist_ok=True)
        tool = fake / "nvidia-smi"
        tool.write_text(f"#!/bin/sh\nprintf '{nvidia_smi_output}'\n")
        tool.chmod(0o755)
        path = f"{fake}:{path}"
    full_env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    full_env.update(env, PATH=path)
    return subprocess.run(
        ["bash", "-c", f"source '{REPO}/scripts/launch.sh'; {snippet}"],
        env=full_env,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("listing", "env", "expected"),
    [
        ("GPU 0: A100\\nGPU 1: A100\\n", {}, "2"),
        ("", {}, "1"),  # nvidia-smi present but no GPU: one (CPU) process, not "0"
        ("GPU 0: A100\\nGPU 1: A100\\n", {"CUDA_VISIBLE_DEVICES": "0,3,5"}, "3"),
    ],
)
def test_count_gpus(tmp_path, listing, env, expected):
    result = _bash("count_gpus", tmp_path, nvidia_smi_output=listing, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_require_file_stops_naming_the_file_the_hint_and_the_demo(tmp_path):
    missing = tmp_path / "gone.pt"
    result = _bash(f"require_file '{missing}' 'GPT checkpoint (GPT_CKPT)' 'Get it there.'; echo went-on", tmp_path)
    assert result.returncode == 1
    assert "went-on" not in result.stdout
    assert "GPT checkpoint (GPT_CKPT) not found" in result.stderr and "gone.pt" in result.stderr
    assert "Get it there." in result.stderr and "run_demo.sh" in result.stderr
    present = tmp_path / "here.pt"
    present.write_bytes(b"x")
    result = _bash(f"require_file '{present}' 'GPT checkpoint' 'hint'; echo went-on", tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "went-on"
