"""Watching a run: the banner, saved/final lines, throughput and memory, captioned grids, trackers, held-out eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train_c2i
from grpo.heldout_eval import heldout_prompts
from grpo.prompt_sources import ClassPrompts, ListPrompts, TrainingPrompt
from grpo.sample_grid import captioned_grid
from grpo.watch import hparams, tracker_names, wandb_installed
from tests.grpo_fixtures import TINY_RUN_FLAGS, make_trainer, tiny_gpt_ckpt, tiny_vq


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _dark(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("L")) < 128


# ------------------------------------------------------------------------------------- banner, lines, figures
def test_banner_saved_and_final_lines_and_step_figures(tmp_path, capsys):
    out = tmp_path / "run"
    make_trainer(out, max_steps=4, save_steps=2, image_log_steps=2).train()
    printed = capsys.readouterr().out
    assert "AR-GRPO training run" in printed
    assert "trainable" in printed and "class-to-image, 10 classes" in printed
    assert "1 process(es) on cpu" in printed
    assert "2 prompts x 4 images = 8 images per optimizer step" in printed
    assert "brightness_reward" in printed and f"output     {out.resolve()}" in printed
    assert "log-probs  cfg" in printed and "precision  fp32" in printed
    assert f"saved checkpoint-2 to {out / 'checkpoint-2'}" in printed
    assert f"saved checkpoint-4 to {out / 'checkpoint-4'}" in printed
    assert f"final model: {out / 'gpt_final.pt'}" in printed
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for row in rows:  # one optimizer step per rollout here, so each step carries its rollout's rate
        assert row["throughput/images_per_s"] > 0 and row["throughput/tokens_per_s"] > 0
        assert 0.01 < row["memory/peak_rss_gb"] < 1024  # CPU: the process's peak resident set
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000000.png", "step_000002.png"]


# --------------------------------------------------------------------------------------------- sample grids
def test_captioned_grid_draws_the_prompt_and_each_reward_where_the_plain_grid_is_blank():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16)
    rewards = torch.tensor([0.1, 0.2, 0.3, 0.4])
    parts = {"brightness": rewards * 2, "shapes": rewards * 3}
    plain = captioned_grid(images)
    only_rewards = captioned_grid(images, rewards=rewards, parts=parts)
    captioned = captioned_grid(images, "a red cube on a table", rewards, parts)
    header = captioned.height - only_rewards.height
    assert header > 0 and captioned.width == plain.width
    assert _dark(captioned.crop((0, 0, captioned.width, header))).sum() > 20  # the prompt's text
    cells = plain.height - 4  # image rows of the plain grid (without its bottom padding)
    below = np.asarray(only_rewards)[cells:]
    assert np.array_equal(np.asarray(only_rewards)[:cells], np.asarray(plain)[:cells])  # same images
    assert _dark(Image.fromarray(below)).sum() > 20  # the rewards' text, where the plain grid has nothing
    assert only_rewards.height - plain.height >= 3 * 8  # total + two parts, one line each


def test_a_long_prompt_wraps_within_the_grid_width():
    images = torch.zeros(2, 3, 16, 16)
    short = captioned_grid(images, "a cat")
    long = captioned_grid(images, " ".join(["a very long caption"] * 30))
    assert long.width == short.width and long.height > short.height


# ------------------------------------------------------------------------------------------------ trackers
def _ea(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_gets_scalars_images_and_the_run_config_as_hparams(tmp_path, vq_ckpt):
    from tensorboard.plugins.hparams import plugin_data_pb2

    gpt = tiny_gpt_ckpt(tmp_path, num_classes=15)
    out = tmp_path / "run"
    flags = [*TINY_RUN_FLAGS, "--gpt_ckpt", str(gpt), "--vq_ckpt", str(vq_ckpt), "--num_classes", "15", "--output_dir"]
    flags += [str(out), "--reward_funcs", "shapes", "--report_to", "tensorboard", "--run_name", "my-run"]
    train_c2i.main(flags)
    folders = {p.parent for p in (out / "tensorboard").rglob("events.out.tfevents.*")}
    by_tag: dict[str, object] = {}
    session = None
    for folder in folders:
        accumulator = _ea(folder)
        for tag in accumulator.Tags()["scalars"]:
            by_tag[tag] = accumulator.Scalars(tag)
        for tag in accumulator.Tags()["images"]:
            by_tag[tag] = accumulator.Images(tag)
        try:
            content = accumulator.PluginTagToContent("hparams")
        except KeyError:  # no hparams in this folder
            content = {}
        if "_hparams_/session_start_info" in content:
            session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert [e.step for e in by_tag["reward/total_mean"]] == [1, 2]
    assert [e.step for e in by_tag["throughput/images_per_s"]] == [1, 2]
    assert [e.step for e in by_tag["samples"]] == [0, 1]
    assert session is not None, "no hparams in the TensorBoard events"
    recorded = session.session_start_info.hparams
    assert recorded["learning_rate"].number_value == pytest.approx(1e-5)
    assert recorded["gpt_model"].string_value == "GPT-Tiny"
    assert recorded["reward_funcs"].string_value == "shapes"
    assert recorded["run_name"].string_value == "my-run"


def test_hparams_are_flat_scalars_and_text():
    flat = hparams({"lr": 1e-5, "funcs": ["a", "b"], "ckpt": None, "nested": {"x": 1, "y": {"z": True}}})
    assert flat == {"lr": 1e-5, "funcs": "a b", "ckpt": "None", "nested/x": 1, "nested/y/z": True}


@pytest.mark.skipif(wandb_installed(), reason="checks the error given when wandb is missing")
def test_report_to_wandb_without_the_package_fails_before_any_model_loads(tmp_path, vq_ckpt):
    broken = tmp_path / "gpt.pt"
    broken.write_bytes(b"not a checkpoint: loading it would fail with another error")
    flags = [*TINY_RUN_FLAGS, "--gpt_ckpt", str(broken), "--vq_ckpt", str(vq_ckpt), "--output_dir", str(tmp_path / "o")]
    flags += ["--reward_funcs", "shapes"]
    with pytest.raises(SystemExit, match="--report_to wandb: the wandb package is not installed"):
        train_c2i.main([*flags, "--report_to", "wandb"])
    assert tracker_names("all") == ["tensorboard"]  # `all`: the installed ones
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ held-out eval
def _eval_rows(out: Path) -> list[dict]:
    return [r for r in _rows(out) if any(k.startswith("eval/") for k in r)]


def test_eval_steps_log_heldout_rewards_on_fixed_seeds(tmp_path):
    frozen = tmp_path / "frozen"
    make_trainer(frozen, max_steps=2, eval_steps=1, eval_num_prompts=6, learning_rate=0.0).train()
    rows = _eval_rows(frozen)
    assert [r["step"] for r in rows] == [0, 1, 2]  # the start, then every step
    assert set(rows[0]) == {"step", "eval/total_mean", "eval/brightness_mean"}
    assert rows[0]["eval/total_mean"] == rows[1]["eval/total_mean"] == rows[2]["eval/total_mean"]  # same weights

    trained = tmp_path / "trained"
    make_trainer(trained, max_steps=4, eval_steps=2, eval_num_prompts=6).train()
    rows = _eval_rows(trained)
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert rows[0]["eval/total_mean"] == _eval_rows(frozen)[0]["eval/total_mean"]  # same start, same seeds
    assert rows[2]["eval/total_mean"] != rows[0]["eval/total_mean"]  # the curve follows the model


def test_heldout_prompts_are_fixed_distinct_and_from_the_file_when_given(tmp_path):
    config = make_trainer(tmp_path / "x", eval_num_prompts=5).config
    classes = [p.value for p in heldout_prompts(ClassPrompts(100, 3), config)]
    assert classes == [p.value for p in heldout_prompts(ClassPrompts(100, 3), config)]
    assert len(set(classes)) == 5
    training = ListPrompts([TrainingPrompt(f"train {i}") for i in range(20)], 3)
    assert {p.value for p in heldout_prompts(training, config)} <= {f"train {i}" for i in range(20)}
    held_out = tmp_path / "geneval.txt"
    held_out.write_text("a red cube\na blue ball\n")
    config.eval_prompts = str(held_out)
    assert sorted(p.value for p in heldout_prompts(training, config)) == ["a blue ball", "a red cube"]
    with pytest.raises(ValueError, match="--eval_prompts: a prompt file is for text-to-image runs"):
        heldout_prompts(ClassPrompts(100, 3), config)


@pytest.fixture()
def vq_ckpt(tmp_path):
    path = tmp_path / "vq.pt"
    torch.save({"model": tiny_vq().state_dict()}, path)
    return path


EVAL_WORKER = """
import sys
import torch
sys.path.insert(0, sys.argv[2])
from grpo.launch import end_run, make_accelerator
from tests.grpo_fixtures import make_trainer
torch.set_num_threads(1)
per_device = 8 // int(sys.argv[3])
accelerator = make_accelerator()
make_trainer(sys.argv[1], accelerator=accelerator, max_steps=1, per_device_train_batch_size=per_device,
             eval_steps=1, eval_num_prompts=5, learning_rate=0.0).train()
end_run(accelerator)
"""


@pytest.mark.slow
def test_two_processes_share_the_heldout_prompts_and_log_what_one_process_logs(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    worker = tmp_path / "eval_worker.py"
    worker.write_text(EVAL_WORKER)
    rows = {}
    for nproc in (1, 2):
        out = tmp_path / f"p{nproc}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(worker)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
        result = subprocess.run([*cmd, str(out), str(root), str(nproc)], env=env, capture_output=True, text=True,
                                timeout=600, cwd=root)  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        rows[nproc] = _eval_rows(out)
    assert [r["step"] for r in rows[2]] == [0, 1]  # logged once, by the main process
    for one, two in zip(rows[1], rows[2], strict=True):
        assert two["eval/total_mean"] == pytest.approx(one["eval/total_mean"], abs=1e-6)


T2I_FLAGS = ["--gpt_type", "t2i", "--caption_dim", "32", "--cls_token_num", "48", "--text_encoder", "tiny"]


def test_t2i_run_evaluates_the_prompt_file_and_captions_its_grids(tmp_path, vq_ckpt):
    import train_t2i

    gpt = tiny_gpt_ckpt(tmp_path, model_type="t2i", caption_dim=32, cls_token_num=48)
    prompts, held_out = tmp_path / "prompts.txt", tmp_path / "drawbench.txt"
    prompts.write_text("a photo of a red circle\na photo of two blue squares\n")
    held_out.write_text("a photo of a green triangle\na photo of two blue circles\na photo of a red square\n")
    out = tmp_path / "run"
    flags = [*TINY_RUN_FLAGS, *T2I_FLAGS, "--gpt_ckpt", str(gpt), "--vq_ckpt", str(vq_ckpt)]
    flags += ["--dataset_name", str(prompts)]
    flags += ["--reward_funcs", "shapes", "--output_dir", str(out), "--eval_steps", "1", "--eval_prompts"]
    train_t2i.main([*flags, str(held_out)])
    rows = _eval_rows(out)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert {"eval/total_mean", "eval/shapes_mean"} <= set(rows[0])
    grid = Image.open(out / "samples" / "step_000000.png")
    assert _dark(grid.crop((0, 0, grid.width, 12))).sum() > 20  # the caption's first line


def test_a_missing_eval_prompt_file_fails_before_any_model_loads(tmp_path, vq_ckpt):
    import train_t2i

    broken = tmp_path / "gpt.pt"
    broken.write_bytes(b"not a checkpoint: loading it would fail with another error")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a red circle\n")
    flags = [*TINY_RUN_FLAGS, *T2I_FLAGS, "--gpt_ckpt", str(broken), "--vq_ckpt", str(vq_ckpt)]
    flags += ["--reward_funcs", "shapes"]
    flags += ["--dataset_name", str(prompts), "--output_dir", str(tmp_path / "o"), "--eval_steps", "5"]
    with pytest.raises(SystemExit, match="nope.txt"):
        train_t2i.main([*flags, "--eval_prompts", str(tmp_path / "nope.txt")])


def test_a_resumed_run_replaces_tensorboard_events_after_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    options = dict(max_steps=2, save_steps=1, report_to="tensorboard", save_total_limit=3)
    first = make_trainer(out, **options)  # no accelerator given: the trainer makes one with the trackers asked for
    first.train()
    resume = str(out / "checkpoint-1")
    again = make_trainer(out, accelerator=first.accelerator, resume_from_checkpoint=resume, **options)
    again.train()  # the same accelerator: its trackers were finished and cleared, so this run starts its own
    assert first.accelerator.trackers == []
    folder = next(p.parent for p in (out / "tensorboard").rglob("events.out.tfevents.*") if "hparams" not in str(p))
    steps = [e.step for e in _ea(folder).Scalars("reward/total_mean")]
    assert steps == [1, 2]  # step 2 once: the resumed run's, the first run's purged
