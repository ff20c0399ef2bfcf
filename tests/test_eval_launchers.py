"""The evaluation launchers in upstream AR-GRPO's form: ``bash test.sh NAME GPU STEP CFG`` on tiny runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sampling import sample_c2i_fid
from tests.eval_models import CAPTION_TOKENS, EVAL_SIZE, N_FID, REPO, c2i_argv, model_flags, mtimes


# ------------------------------------------------------------------------ upstream's launcher form
def launcher_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The launchers' environment with no model flags set: the run's saved settings must supply them."""
    env = {k: v for k, v in os.environ.items() if k not in ("GPT_MODEL", "VQ_CKPT", "IMAGE_SIZE", "TEXT_ENCODER")}
    env.update(PYTHON=sys.executable, OMP_NUM_THREADS="1", OUT_ROOT=str(tmp_path / "results"))
    env.update(IMAGE_SIZE_EVAL=str(EVAL_SIZE), NUM_FID_SAMPLES=str(N_FID), PER_PROC_BATCH_SIZE="4")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def trained_c2i(models, tmp_path_factory) -> Path:
    """A tiny c2i GRPO run trained by train_c2i.py into WORKDIR/outputs/my_c2i (checkpoint-1, gpt_final.pt)."""
    import train_c2i

    workdir = tmp_path_factory.mktemp("work")
    model = [flag for flag in model_flags(models, "c2i") if flag != "--no_progress"]
    flags = ["--gpt_ckpt", str(models / "c2i.pt"), *model, "--max_steps", "1"]
    flags += ["--num_generations", "4", "--per_device_train_batch_size", "8", "--report_to", "none"]
    flags += ["--image_log_steps", "0", "--save_steps", "1", "--reward_funcs", "shapes"]
    train_c2i.main([*flags, "--output_dir", str(workdir / "outputs" / "my_c2i")])
    return workdir


def test_test_sh_run_name_gpu_step_cfg_reads_the_saved_model_flags(models, trained_c2i, tmp_path, capsys):
    """`bash test.sh NAME 0 STEP CFG` as upstream's README: NAME under outputs/, STEP its checkpoint, and the
    model flags (GPT-Tiny, VQ-Tiny, 16 px, 10 classes, the VQ file) from the run's saved config, none repeated."""
    env = launcher_env(tmp_path)
    command = ["bash", str(REPO / "test.sh"), "my_c2i", "0", "1", "2.0", "--no_progress"]
    result = subprocess.run(command, env=env, cwd=trained_c2i, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model flags from" in result.stdout and "gpt_model=GPT-Tiny" in result.stdout
    sample_dir = tmp_path / "results" / "vis_out_my_c2i_1_2.0"
    checkpoint = trained_c2i / "outputs" / "my_c2i" / "checkpoint-1"
    record = json.loads((sample_dir / "sampling_config.json").read_text())
    assert record["gpt_ckpt"] == str((checkpoint / "model.safetensors").resolve())
    assert (record["gpt_model"], record["vq_model"], record["image_size"]) == ("GPT-Tiny", "VQ-Tiny", 16)
    assert record["vq_ckpt"] == str((models / "vq.pt").resolve())
    with np.load(sample_dir.with_name(sample_dir.name + ".npz")) as npz:
        assert npz["arr_0"].shape == (N_FID, EVAL_SIZE, EVAL_SIZE, 3)

    # The same settings spelled out resume the folder without a change: the saved flags were exactly these.
    before = mtimes(sample_dir)
    argv = ["--gpt_ckpt", str(checkpoint), *model_flags(models, "c2i"), "--sample_dir", str(sample_dir)]
    sample_c2i_fid.main(argv + ["--num_fid_samples", str(N_FID), "--image_size_eval", str(EVAL_SIZE)])
    assert mtimes(sample_dir) == before
    # A command-line flag overrides a saved one (here: refused, as the folder holds GPT-Tiny samples).
    with pytest.raises(ValueError, match="gpt_model: was 'GPT-Tiny', now 'GPT-Small'"):
        sample_c2i_fid.main(["--gpt_ckpt", str(checkpoint), "--gpt_model", "GPT-Small",
            "--sample_dir", str(sample_dir)])


def test_test_sh_upstream_checkpoint_folder_by_run_name(tmp_path):
    """Upstream's own layout: checkpoints/NAME/checkpoint-300 with config.json and a prefixed model.safetensors
    holding GPT and VQ; `bash test.sh NAME 0 300 2.0` needs nothing else."""
    from tests.helpers import make_upstream_checkpoint, upstream_models

    gpt, vq = upstream_models()
    make_upstream_checkpoint(tmp_path / "checkpoints" / "up_c2i" / "checkpoint-300", gpt, vq)
    command = ["bash", str(REPO / "test.sh"), "up_c2i", "0", "300", "2.0", "--no_progress"]
    result = subprocess.run(command, env=launcher_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    weights = tmp_path / "checkpoints" / "up_c2i" / "checkpoint-300" / "model.safetensors"
    record = json.loads((tmp_path / "results" / "vis_out_up_c2i_300_2.0" / "sampling_config.json").read_text())
    assert record["gpt_ckpt"] == record["vq_ckpt"] == str(weights.resolve())
    assert record["gpt_model"] == "GPT-Tiny" and record["image_size"] == 16


def test_unknown_run_name_says_where_it_looked(tmp_path):
    command = ["bash", str(REPO / "test.sh"), "no_such_run", "0", "100", "2.0"]
    result = subprocess.run(command, env=launcher_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "'no_such_run' is neither a file or folder nor a run name under outputs/ or checkpoints/" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_full_evaluation_on_the_cpu_needs_an_opt_in(trained_c2i, tmp_path):
    """Empty GPU on a CPU-only machine: said out loud, and 50,000 samples are refused (with how long they would
    take) before any model loads or any file is written; ALLOW_CPU=1 runs a larger-than-tiny count."""
    env = launcher_env(tmp_path, NUM_FID_SAMPLES="50000")
    command = ["bash", str(REPO / "test.sh"), "my_c2i", "", "1", "2.0", "--no_progress"]
    result = subprocess.run(command, env=env, cwd=trained_c2i, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "GPU not given and no CUDA device found" in result.stderr
    assert "no CUDA device: 50000 images with GPT-Tiny" in result.stderr and "--allow_cpu" in result.stderr
    assert re.search(r"takes about \d+ hours", result.stderr)
    assert not (tmp_path / "results").exists()

    env = launcher_env(tmp_path, NUM_FID_SAMPLES="101", ALLOW_CPU="1")
    result = subprocess.run(command, env=env, cwd=trained_c2i, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "results" / "vis_out_my_c2i_1_2.0").glob("*.png"))) == 101


def test_failed_attempt_leaves_nothing_that_blocks_the_fixed_rerun(models, tmp_path):
    """A wrong --gpt_model fails at load time; the rerun with the right one must not be refused."""
    from autoregressive.checkpoint import CheckpointError

    sample_dir = tmp_path / "samples"
    argv = c2i_argv(models, sample_dir)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        sample_c2i_fid.main([*argv, "--gpt_model", "GPT-Small"])
    assert not (sample_dir / "sampling_config.json").exists()
    sample_c2i_fid.main(argv)
    assert json.loads((sample_dir / "sampling_config.json").read_text())["gpt_model"] == "GPT-Tiny"


def test_saved_model_flags_are_defaults_that_flags_and_config_override(trained_c2i, tmp_path):
    run = trained_c2i / "outputs" / "my_c2i"
    base = ["--gpt_ckpt", str(run), "--ckpt_step", "1", "--sample_dir", str(tmp_path / "s")]
    args = sample_c2i_fid.parse_args(base)
    assert (args.gpt_model, args.vq_model, args.image_size, args.num_classes) == ("GPT-Tiny", "VQ-Tiny", 16, 10)
    assert (args.codebook_size, args.downsample_size) == (48, 4)
    assert sample_c2i_fid.parse_args([*base, "--image_size", "32"]).image_size == 32
    config = tmp_path / "eval.yaml"
    config.write_text("gpt_model: GPT-Small\n")
    args = sample_c2i_fid.parse_args([*base, "--config", str(config)])
    assert args.gpt_model == "GPT-Small" and args.vq_model == "VQ-Tiny"
    # gpt_final.pt carries no settings of its own: the newest checkpoint's are the run's.
    assert sample_c2i_fid.parse_args(base[:2] + base[4:]).gpt_model == "GPT-Tiny"


def test_test_t2i_sh_run_name_reads_the_t2i_run_settings(models, tmp_path):
    """`bash test_t2i.sh NAME "" STEP CFG` on a tiny t2i run: the text encoder, caption size and caption budget
    come from the run's saved config; an empty GPU without CUDA says it runs on the CPU (a few images: allowed)."""
    import train_t2i

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a red circle\na photo of two blue squares\n")
    model = [flag for flag in model_flags(models, "t2i") if flag != "--no_progress"]
    flags = ["--gpt_ckpt", str(models / "t2i.pt"), *model, "--gpt_type", "t2i", "--dataset_name", str(prompts)]
    flags += ["--max_steps", "1", "--num_generations", "4", "--per_device_train_batch_size", "8"]
    flags += ["--report_to", "none", "--image_log_steps", "0", "--save_steps", "1", "--reward_funcs", "shapes"]
    train_t2i.main([*flags, "--output_dir", str(tmp_path / "outputs" / "my_t2i")])

    metadata = tmp_path / "metadata.jsonl"
    lines = [{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}]
    metadata.write_text("".join(json.dumps(line) + "\n" for line in lines))
    env = launcher_env(tmp_path, GENEVAL_METADATA=str(metadata), N_SAMPLES="2")
    command = ["bash", str(REPO / "test_t2i.sh"), "my_t2i", "", "1", "2.0", "--no_progress"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    if not torch.cuda.is_available():
        assert "GPU not given and no CUDA device found: sampling on the CPU" in result.stderr
    record = json.loads((tmp_path / "results" / "vis_out_my_t2i_1_2.0" / "sampling_config.json").read_text())
    saved = (record["text_encoder"], record["cls_token_num"], record["gpt_model"])
    assert saved == ("tiny", CAPTION_TOKENS, "GPT-Tiny")
    assert len(list((tmp_path / "results" / "vis_out_my_t2i_1_2.0").rglob("*.png"))) == 2
