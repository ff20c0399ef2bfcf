"""No secret given to a run reaches anything the run writes: checkpoints, logs, TensorBoard, metrics."""

import argparse
from pathlib import Path

import torch

import train_c2i
from scripts.flags import SECRET_SET, saved_run_config
from tests.grpo_fixtures import tiny_gpt_ckpt, tiny_run_flags, tiny_vq

KEY = "sk-ar-grpo-test-Zq81XyW0secret"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_an_api_key_flag_reaches_no_file_and_no_log(tmp_path, capfd):
    vq = tmp_path / "vq.pt"
    torch.save({"model": tiny_vq().state_dict()}, vq)
    gpt = tiny_gpt_ckpt(tmp_path, num_classes=15)
    out = tmp_path / "run"
    flags = tiny_run_flags(gpt, vq, out, "--num_classes", "15", "--reward_funcs", "shapes", "--reward_api_key", KEY)
    flags += ["--report_to", "tensorboard", "--geneval_url", f"http://user:{KEY}@127.0.0.1:9/"]
    train_c2i.main(flags)
    written = _files(out)
    names = {p.name for p in written}
    assert {"trainer_state.json", "metrics.jsonl", "gpt_final.pt", "model.safetensors"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    leaks = [str(p) for p in written if KEY.encode() in p.read_bytes()]
    assert not leaks, f"the API key was written to {leaks}"
    captured = capfd.readouterr()
    assert KEY not in captured.out and KEY not in captured.err
    state = (out / "checkpoint-2" / "trainer_state.json").read_text()
    assert f'"reward_api_key": "{SECRET_SET}"' in state  # that a key was set is still on record


def test_saved_run_config_keeps_the_rest_and_notes_an_unset_key():
    args = argparse.Namespace(
        reward_api_key=None, learning_rate=1e-5, deqa_url="http://h:1/", paths=["a"], obj=object()
    )
    assert saved_run_config(args) == {
        "reward_api_key": None,
        "learning_rate": 1e-5,
        "deqa_url": "http://h:1/",
        "paths": ["a"],
    }
