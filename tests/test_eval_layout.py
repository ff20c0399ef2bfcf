"""The evaluation side's wiring without sampling: which weights a MODEL_OR_CKPT and STEP resolve to, the layout
the trainer writes and the evaluation scripts read, DrawBench's default reward list, and the import layers
(evaluation never imports the trainer)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sampling import drawbench_rewards
from sampling.common import resolve_gpt_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_resolve_gpt_checkpoint(tmp_path):
    weights = tmp_path / "c2i.pt"
    weights.write_bytes(b"x")
    assert resolve_gpt_checkpoint(weights) == weights
    with pytest.raises(ValueError, match="STEP 300 was given"):
        resolve_gpt_checkpoint(weights, "300")
    run = tmp_path / "run"
    for step in (100, 200):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x")
    (run / "checkpoint-300").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no gpt_final.pt .*available steps: 100, 200, 300"):
        resolve_gpt_checkpoint(run)
    assert resolve_gpt_checkpoint(run, "200") == run / "checkpoint-200" / "model.safetensors"
    assert resolve_gpt_checkpoint(run / "checkpoint-100") == run / "checkpoint-100" / "model.safetensors"
    with pytest.raises(FileNotFoundError, match="no checkpoint-50 folder"):
        resolve_gpt_checkpoint(run, "50")
    with pytest.raises(FileNotFoundError, match="no model weights"):
        resolve_gpt_checkpoint(run, "latest")  # checkpoint-300 has no weights
    (run / "gpt_final.pt").write_bytes(b"x")
    assert resolve_gpt_checkpoint(run, "") == run / "gpt_final.pt"


def test_drawbench_default_rewards_add_servers_when_addressed(monkeypatch):
    base = ["--gpt_ckpt", "x.pt", "--vq_ckpt", "vq.pt", "--prompts", "p.csv", "--outdir", "o"]
    for var in ("DEQA_URL", "UNIFIEDREWARD_URL"):
        monkeypatch.delenv(var, raising=False)
    names = drawbench_rewards.reward_names(drawbench_rewards.parse_args(base))
    assert names == ["clip_text", "hpsv2_text", "imagereward", "pickscore", "aesthetic"]
    monkeypatch.setenv("DEQA_URL", "http://127.0.0.1:1")
    args = drawbench_rewards.parse_args([*base, "--unifiedreward_url", "http://127.0.0.1:2"])
    assert drawbench_rewards.reward_names(args)[-2:] == ["deqa", "unifiedreward"]
    args = drawbench_rewards.parse_args([*base, "--reward_funcs", "pickscore"])
    assert drawbench_rewards.reward_names(args) == ["pickscore"]


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        (
            ["sampling.sample_c2i_fid", "sampling.sample_geneval", "sampling.drawbench_rewards", "fid_evaluation"],
            ["grpo", "grpo_trainer", "train_c2i", "train_t2i"],
        ),
        (
            ["autoregressive.build", "autoregressive.run_layout"],
            ["grpo", "grpo_trainer", "img_gen_grpo_rewards", "reward_utils", "sampling", "evaluation", "demo"],
        ),
    ],
)
def test_evaluation_and_models_do_not_import_the_trainer(modules, forbidden):
    """Evaluation reads a run's folder through autoregressive/run_layout.py, never through the trainer package."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}
    assert not loaded & set(forbidden), f"{modules} import {sorted(loaded & set(forbidden))}"


def test_the_evaluation_side_finds_what_the_trainer_writes(tmp_path):
    """One layout module: the folders and files a training run writes are the ones the evaluation scripts load."""
    from safetensors.torch import load_file

    from autoregressive.run_layout import FINAL_MODEL, MODEL_FILE, checkpoint_dir
    from tests.grpo_fixtures import make_trainer

    trainer = make_trainer(tmp_path, max_steps=2, save_steps=1)
    trainer.train()
    assert resolve_gpt_checkpoint(tmp_path) == tmp_path / FINAL_MODEL
    assert resolve_gpt_checkpoint(tmp_path, "latest") == checkpoint_dir(tmp_path, 2) / MODEL_FILE
    assert resolve_gpt_checkpoint(checkpoint_dir(tmp_path, 1)) == checkpoint_dir(tmp_path, 1) / MODEL_FILE
    final = torch.load(tmp_path / FINAL_MODEL, weights_only=True)["model"]
    latest = load_file(checkpoint_dir(tmp_path, 2) / MODEL_FILE)
    assert final.keys() == latest.keys() and all(torch.equal(final[k], latest[k]) for k in final)
