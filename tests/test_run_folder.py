"""A finished run is never overwritten by accident: a non-empty --output_dir needs resume or an explicit overwrite."""

import json

import pytest

import train_c2i
from tests.grpo_fixtures import make_trainer


def _steps(folder):
    return [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_finished_run_is_refused_not_overwritten(tmp_path):
    make_trainer(tmp_path, max_steps=2).train()
    final = (tmp_path / "gpt_final.pt").read_bytes()
    with pytest.raises(FileExistsError, match="is not empty") as info:
        make_trainer(tmp_path, max_steps=1, seed=7)
    message = str(info.value)
    assert str(tmp_path) in message and "gpt_final.pt" in message and "--overwrite_output_dir" in message
    assert (tmp_path / "gpt_final.pt").read_bytes() == final
    assert _steps(tmp_path) == [1, 2]


def test_overwrite_output_dir_clears_the_old_run(tmp_path):
    make_trainer(tmp_path, max_steps=2, save_steps=1).train()
    (tmp_path / "notes.txt").write_text("left by the old run")
    make_trainer(tmp_path, max_steps=1, seed=7, overwrite_output_dir=True).train()
    assert _steps(tmp_path) == [1]  # not [1, 2, 1]: the old run's lines are gone
    assert not (tmp_path / "notes.txt").exists() and not (tmp_path / "checkpoint-2").exists()
    assert (tmp_path / "gpt_final.pt").is_file()


def test_an_empty_existing_folder_is_fine(tmp_path):
    make_trainer(tmp_path, max_steps=1).train()
    assert _steps(tmp_path) == [1]


def test_the_cli_refuses_before_any_model_loads(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "gpt_final.pt").write_bytes(b"a finished run")
    # The checkpoints do not exist: reaching model loading would fail differently.
    argv = ["--gpt_ckpt", str(tmp_path / "absent.pt"), "--vq_ckpt", str(tmp_path / "absent_vq.pt")]
    argv += ["--reward_funcs", "shapes", "--output_dir", str(out)]
    with pytest.raises(SystemExit, match="gpt_final.pt"):  # a message, not a traceback
        train_c2i.main(argv)
    assert (out / "gpt_final.pt").read_bytes() == b"a finished run"


def test_the_cli_names_a_missing_checkpoint_before_any_model_loads(tmp_path):
    for name in ("not_a_gpt.pt", "not_a_vq.pt"):  # loading either would fail with another message
        (tmp_path / name).write_bytes(b"garbage")
    argv = ["--gpt_ckpt", str(tmp_path / "not_a_gpt.pt"), "--vq_ckpt", str(tmp_path / "not_a_vq.pt")]
    argv += ["--reward_funcs", "shapes", "--output_dir", str(tmp_path / "run"), "--resume_from_checkpoint", "latest"]
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        train_c2i.main(argv)
