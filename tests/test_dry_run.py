"""bench.dry_run --small: the real-size dry run's command at tiny widths, through its command line.

The real-size run (many minutes, most of the machine's memory) is not part of the suite; docs/scaling.md has its
numbers. This checks that the command builds every model through the project's loaders (the registry's reward
models have the parameter counts of the files the run wrote), runs one GRPO step and reports every number the
docs quote.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reward_utils.scaling import VLM_DIVISOR

ROOT = Path(__file__).resolve().parents[1]
PHASES = ["sampling", "decoding", "rewards", "logprobs", "update"]
REWARDS = ["clip_distance", "clip_quantize", "hpsv2", "hpsv2_quantize", "maniqa", "qwenvl_3b", "qwenvl_fake",
           "qwenvl_weird"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("dry_run") / "dry_run.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.dry_run", "--small", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)  # stdout is the JSON alone; the trainer's messages go to stderr
    assert printed == json.loads(out.read_text())
    assert "dry run (small)" in done.stderr and "peak" in done.stderr
    return printed


def test_every_phase_and_reward_is_timed(result):
    time = result["time"]
    for phase in PHASES:
        assert math.isfinite(time[f"{phase}_s"]) and time[f"{phase}_s"] > 0, phase
    assert sorted(time["per_reward_s"]) == sorted(REWARDS)
    assert all(s > 0 for s in time["per_reward_s"].values())
    assert sum(time["per_reward_s"].values()) <= time["rewards_s"] * 1.01


def test_models_come_from_the_written_files(result):
    """Each reward model the registry built has the size of the random-weight file the run wrote for it."""
    built, written = result["params_built"], result["params"]
    assert sorted(built) == ["clip", "gpt", "hps", "maniqa", "qwen"]
    for name, count in built.items():
        assert count == written[name] > 0, name
    assert written["gpt_reference"] == written["gpt"]  # beta 0.1: the frozen reference copy exists


def test_rewards_scored_every_image(result):
    rewards = result["rewards"]
    for name in REWARDS:
        assert math.isfinite(rewards[f"reward/{name}_mean"]), name
    for judge in ("qwenvl_3b", "qwenvl_fake", "qwenvl_weird"):  # the forced answer {"score": 1}, parsed
        assert rewards[f"reward/{judge}_mean"] == pytest.approx(1 / VLM_DIVISOR)
    assert math.isfinite(result["loss"])


def test_memory_is_reported_against_the_plan(result):
    memory = result["memory"]
    assert 0 < memory["rss_before_models_gb"] < memory["rss_after_build_gb"] <= memory["peak_build_gb"] + 0.05
    assert memory["peak_step_gb"] >= memory["rss_after_build_gb"] - 0.05
    plan = memory["plan"]
    assert plan["first_step_peak_gb"] > plan["other_models_gb"] > 0
    measured = memory["measured_peak_above_baseline_gb"]
    assert memory["relative_error_first_step"] == pytest.approx(plan["first_step_peak_gb"] / measured - 1)
    above_build = memory["measured_peak_above_build_start_gb"]
    assert 0 < above_build <= measured
    assert memory["relative_error_vs_build_start"] == pytest.approx(plan["first_step_peak_gb"] / above_build - 1)
    config = result["config"]
    assert config["image_tokens"] == (config["image_size"] // 16) ** 2 and config["threads"] == 1
