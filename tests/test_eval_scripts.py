"""Evaluation samplers end to end on CPU: tiny random-weight c2i/t2i GPTs and a tiny VQ, real code paths.

- c2i FID samples: PNG + npz layout, the npz equals the PNGs, samples recomputed independently (class
  i % num_classes, seed (seed, i), bicubic resize) match, resume does no work, a deleted sample comes back
  identical; test.sh on an accelerate checkpoint-N folder with two processes gives the same pixels.
- GenEval: the folder layout GenEval's evaluate_images.py walks, metadata.jsonl == the line verbatim.
- DrawBench: rewards from the registry (a tiny local CLIP), JSON/table parse back and match a rescoring.
"""

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
import torch.nn.functional as F
from PIL import Image

from autoregressive.models.generate import SamplingConfig, generate
from autoregressive.models.seeding import sample_generators
from sampling import drawbench_rewards, sample_c2i_fid, sample_geneval
from tests.eval_models import (
    EVAL_SIZE,
    N_FID,
    NUM_CLASSES,
    REPO,
    SHARED,
    c2i_argv,
    model_flags,
    mtimes,
    tiny_gpt,
)
from tokenizer.vq_model import VQ_Tiny


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


# ------------------------------------------------------------------------------------------------- c2i
@pytest.fixture(scope="module")
def c2i_run(models, tmp_path_factory) -> Path:
    sample_dir = tmp_path_factory.mktemp("c2i") / "samples"
    argv = ["--gpt_ckpt", str(models / "c2i.pt"), *model_flags(models, "c2i"), "--sample_dir", str(sample_dir)]
    argv += ["--num_fid_samples", str(N_FID), "--image_size_eval", str(EVAL_SIZE), "--per_proc_batch_size", "3"]
    npz = sample_c2i_fid.main(argv)
    assert npz == sample_dir.with_name("samples.npz")
    return sample_dir


def test_c2i_pngs_and_npz_layout(c2i_run):
    names = sorted(p.name for p in c2i_run.glob("*.png"))
    assert names == [f"{i:06d}.png" for i in range(N_FID)]
    with np.load(c2i_run.with_name("samples.npz")) as npz:
        images, labels = npz["arr_0"], npz["arr_1"]
    assert images.dtype == np.uint8 and images.shape == (N_FID, EVAL_SIZE, EVAL_SIZE, 3)
    np.testing.assert_array_equal(labels, np.arange(N_FID) % NUM_CLASSES)
    for i in range(N_FID):
        np.testing.assert_array_equal(images[i], png(c2i_run / f"{i:06d}.png"))
    assert len({images[i].tobytes() for i in range(N_FID)}) == N_FID, "samples must differ from each other"


def test_c2i_samples_recomputed_independently(models, c2i_run):
    """Sample i = class i % num_classes, seed (seed, i), VQ decode, bicubic resize, round to 8 bits."""
    model = tiny_gpt("c2i")
    model.load_state_dict(torch.load(models / "c2i.pt")["model"])
    vq = VQ_Tiny(codebook_size=48)
    vq.load_state_dict(torch.load(models / "vq.pt")["model"])
    indices = [5, 1]
    labels = torch.tensor([i % NUM_CLASSES for i in indices])
    generators = sample_generators(0, [(i,) for i in indices], torch.device("cpu"))
    tokens = generate(model, labels, cfg=SamplingConfig(cfg_scale=2.0), generator=generators).tokens
    images = F.interpolate(vq.decode_to_images(tokens, 4), size=(EVAL_SIZE, EVAL_SIZE), mode="bicubic")
    expected = (images * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for row, i in enumerate(indices):
        np.testing.assert_array_equal(png(c2i_run / f"{i:06d}.png"), expected[row])


def test_c2i_resume_skips_finished_and_remakes_missing(models, c2i_run, tmp_path, capsys):
    sample_dir = tmp_path / "resume"
    argv = c2i_argv(models, sample_dir, "--per_proc_batch_size", "4")
    sample_c2i_fid.main(argv)
    before = mtimes(sample_dir.parent)
    sample_c2i_fid.main(argv)
    assert mtimes(sample_dir.parent) == before, "a finished run must not rewrite anything"
    assert "7 of 7 samples exist" in capsys.readouterr().out

    (sample_dir / "000004.png").unlink()
    sample_c2i_fid.main(argv)
    after = mtimes(sample_dir.parent)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"resume/000004.png", "resume.npz"}
    # Batch size 4 here, 3 in c2i_run: per-sample seeds make the pixels identical.
    for i in range(N_FID):
        np.testing.assert_array_equal(png(sample_dir / f"{i:06d}.png"), png(c2i_run / f"{i:06d}.png"))

    (sample_dir / "000002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"000002.png: unreadable PNG"):
        sample_c2i_fid.main(argv)


def test_c2i_refuses_to_mix_settings(models, c2i_run):
    with pytest.raises(ValueError, match="cfg_scale: was 2.0, now 3.0"):
        sample_c2i_fid.main(c2i_argv(models, c2i_run, "--cfg_scale", "3.0"))


def test_test_sh_two_processes_on_accelerate_checkpoint(models, c2i_run, tmp_path):
    """test.sh MODEL_OR_CKPT GPU STEP CFG with an AR-GRPO output folder: checkpoint-3/model.safetensors as
    accelerate's save_state writes it, two processes (CPU, gloo), batch 2: same pixels as one process."""
    from accelerate import Accelerator

    from grpo.checkpointing import save_checkpoint

    model = tiny_gpt("c2i")
    model.load_state_dict(torch.load(models / "c2i.pt")["model"])
    accelerator = Accelerator(cpu=True)
    prepared = accelerator.prepare(model)
    run_dir = tmp_path / "run"
    checkpoint = save_checkpoint(accelerator, run_dir, 3, {"step": 3}, total_limit=2, model=prepared)
    assert (checkpoint / "model.safetensors").is_file()
    del prepared

    env = dict(os.environ, PYTHON=sys.executable, GPT_MODEL="GPT-Tiny", VQ_CKPT=str(models / "vq.pt"))
    env.update(IMAGE_SIZE="16", IMAGE_SIZE_EVAL=str(EVAL_SIZE), NUM_FID_SAMPLES=str(N_FID), PER_PROC_BATCH_SIZE="2")
    env.update(OUT_ROOT=str(tmp_path / "results"), OMP_NUM_THREADS="1")
    extra = ["--vq_model", "VQ-Tiny", "--codebook_size", "48", "--downsample_size", "4"]
    extra += ["--num_classes", str(NUM_CLASSES), "--no_progress"]
    command = ["bash", str(REPO / "test.sh"), str(run_dir), "0,1", "3", "2.0", *extra]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout

    sample_dir = tmp_path / "results" / "vis_out_run_3_2.0"
    record = json.loads((sample_dir / "sampling_config.json").read_text())
    assert record["gpt_ckpt"] == str((checkpoint / "model.safetensors").resolve())
    with np.load(sample_dir.with_name(sample_dir.name + ".npz")) as npz:
        images = npz["arr_0"]
    assert images.shape == (N_FID, EVAL_SIZE, EVAL_SIZE, 3)
    for i in range(N_FID):
        np.testing.assert_array_equal(images[i], png(c2i_run / f"{i:06d}.png"))


def test_shell_scripts_fail_early_naming_the_download(models, tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT_ROOT=str(tmp_path))
    result = subprocess.run(
        ["bash", str(REPO / "test.sh"), str(tmp_path / "nope.pt"), "cpu"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "nope.pt" in result.stderr and "FoundationVision/LlamaGen" in result.stderr
    env["VQ_CKPT"] = str(tmp_path / "missing_vq.pt")
    for script in ("test_t2i.sh", "test_t2i_rewards_drawbench.sh"):
        result = subprocess.run(
            ["bash", str(REPO / script), str(models / "t2i.pt"), "cpu"], env=env, capture_output=True, text=True
        )
        assert result.returncode != 0
        assert "missing_vq.pt" in result.stderr and "peizesun/llamagen_t2i" in result.stderr
    assert not list(tmp_path.glob("vis_out*")), "nothing may be written before the inputs are checked"


# --------------------------------------------------------------------------------------------- GenEval
def geneval_lines() -> list[str]:
    """Real GenEval lines of three tasks, plus one re-serialized compactly: the copy must stay byte-exact."""
    path = SHARED / "data" / "geneval" / "evaluation_metadata.jsonl"
    if not path.is_file():
        pytest.skip(f"GenEval metadata not available at {path}")
    wanted, lines = ["single_object", "counting", "position", "color_attr"], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if wanted and json.loads(line)["tag"] == wanted[0]:
            lines.append(line)
            wanted.pop(0)
    lines[-1] = json.dumps(json.loads(lines[-1]), separators=(",", ":"))
    return lines


def evaluator_view(outdir: Path) -> list[tuple[dict, list[str]]]:
    """What GenEval's evaluate_images.py walks: digit folders, json.load(metadata.jsonl), samples/\\d+.png."""
    found = []
    for sub in sorted(os.listdir(outdir)):
        folder = outdir / sub
        if not folder.is_dir() or not sub.isdigit():
            continue
        with open(folder / "metadata.jsonl") as handle:
            metadata = json.load(handle)
        images = [n for n in sorted(os.listdir(folder / "samples")) if re.match(r"\d+\.png", n)]
        found.append((metadata, images))
    return found


def test_geneval_via_test_t2i_sh_then_resume(models, tmp_path, capsys):
    """test_t2i.sh (one CPU process) makes the folder; the Python entry point with the same settings resumes it
    without touching a file (so the script passes exactly these settings)."""
    lines = geneval_lines()
    metadata_file = tmp_path / "evaluation_metadata.jsonl"
    metadata_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = dict(os.environ, PYTHON=sys.executable, GPT_MODEL="GPT-Tiny", VQ_CKPT=str(models / "vq.pt"))
    env.update(TEXT_ENCODER="tiny", IMAGE_SIZE="16", GENEVAL_METADATA=str(metadata_file), N_SAMPLES="2")
    env.update(PER_PROC_BATCH_SIZE="3", OUT_ROOT=str(tmp_path / "results"), OMP_NUM_THREADS="1")
    command = ["bash", str(REPO / "test_t2i.sh"), str(models / "t2i.pt"), "cpu", "", "1.0", *model_flags(models, "t2i")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outdir = tmp_path / "results" / "vis_out_t2i_1.0"

    view = evaluator_view(outdir)
    assert [metadata for metadata, _ in view] == [json.loads(line) for line in lines]
    assert all(images == ["0000.png", "0001.png"] for _, images in view)
    assert sorted(p.name for p in outdir.iterdir() if p.is_dir()) == [f"{k:05d}" for k in range(len(lines))]
    for k, line in enumerate(lines):
        assert (outdir / f"{k:05d}" / "metadata.jsonl").read_text(encoding="utf-8") == line + "\n"
    arrays = [png(outdir / f"{k:05d}" / "samples" / f"{j:04d}.png") for k in range(len(lines)) for j in range(2)]
    assert all(a.shape == (16, 16, 3) for a in arrays)
    assert len({a.tobytes() for a in arrays}) == len(arrays), "every sample has its own seed"

    before = mtimes(outdir)
    argv = ["--gpt_ckpt", str(models / "t2i.pt"), *model_flags(models, "t2i"), "--metadata_file", str(metadata_file)]
    argv += ["--outdir", str(outdir), "--n_samples", "2", "--cfg_scale", "1.0", "--per_proc_batch_size", "5"]
    sample_geneval.main(argv)
    assert mtimes(outdir) == before
    assert "8 of 8 images exist" in capsys.readouterr().out

    with pytest.raises(ValueError, match="beyond --n_samples 1"):
        sample_geneval.main([*argv, "--n_samples", "1"])
    metadata_file.write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="prompts_sha256"):
        sample_geneval.main(argv)


# ------------------------------------------------------------------------------------------- DrawBench
@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    from transformers import CLIPImageProcessor, CLIPTokenizer

    from reward_utils.clip_vocab import write_clip_tokenizer_files
    from tests.helpers import tiny_clip

    folder = write_clip_tokenizer_files(tmp_path_factory.mktemp("clip"))
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    tiny_clip().save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def test_drawbench_rewards_json_table_and_resume(models, tiny_clip_dir, tmp_path, capsys):
    from img_gen_grpo_rewards import RewardOptions, build_reward
    from sampling.images import images_to_tensor

    prompts = ["A red colored car.", "A black apple, and a green backpack.", "A small blue book on a red book."]
    prompt_file = tmp_path / "drawbench.csv"
    rows = [f'"{p}",{c}' for p, c in zip(prompts, ["Colors", "Colors", "Positional"])]
    prompt_file.write_text("Prompts,Category\n" + "\n".join(rows) + "\n", encoding="utf-8")
    outdir = tmp_path / "drawbench"
    argv = ["--gpt_ckpt", str(models / "t2i.pt"), *model_flags(models, "t2i"), "--prompts", str(prompt_file)]
    argv += ["--outdir", str(outdir), "--n_samples", "2", "--cfg_scale", "1.0", "--per_proc_batch_size", "4"]
    argv += ["--reward_funcs", "clip_text", "--clip_model", str(tiny_clip_dir), "--reward_device", "cpu"]
    results = drawbench_rewards.main(argv)
    printed = capsys.readouterr().out

    saved = json.loads((outdir / "drawbench_rewards.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert [row["prompt"] for row in saved["per_prompt"]] == prompts
    assert [row["category"] for row in saved["per_prompt"]] == ["Colors", "Colors", "Positional"]
    metric = saved["metrics"]["clip_text"]
    assert metric["metric"] == "CLIP score" and metric["images"] == 6

    # Rescore the stored PNGs with the registry's reward: the per-image values must be what was saved.
    scorer = build_reward(["clip_text"], None, RewardOptions(clip_model=str(tiny_clip_dir)), "cpu")
    all_values = []
    for k, prompt in enumerate(prompts):
        stored = json.loads((outdir / f"{k:05d}" / "scores.json").read_text())
        arrays = [png(outdir / f"{k:05d}" / "samples" / f"{j:04d}.png") for j in range(2)]
        _, values = scorer(images_to_tensor(arrays), [prompt] * 2)
        np.testing.assert_allclose(stored["scores"]["clip_text"], values["clip_text"].numpy(), atol=1e-6)
        all_values += stored["scores"]["clip_text"]
    assert metric["reward_mean"] == pytest.approx(np.mean(all_values), abs=1e-9)
    assert metric["score_mean"] == pytest.approx(np.mean(all_values) / 5.0, abs=1e-9)  # cosine = reward / 5
    assert np.std(all_values) > 0, "the images of different prompts should not score the same"

    table = [line.split() for line in (outdir / "drawbench_rewards.txt").read_text().splitlines()]
    assert table[0] == ["metric", "reward", "score", "score_std", "reward_mean", "images"]
    assert table[1][:3] == ["CLIP", "score", "clip_text"]
    assert float(table[1][3]) == pytest.approx(metric["score_mean"], abs=1e-4)
    assert "  ".join(table[1]) in "  ".join(printed.split())

    before = {k: v for k, v in mtimes(outdir).items() if not k.startswith("drawbench_rewards")}
    drawbench_rewards.main(argv)
    after = {k: v for k, v in mtimes(outdir).items() if not k.startswith("drawbench_rewards")}
    assert after == before, "a finished run must neither resample nor rescore"
    assert "0 of 3 prompts to score" in capsys.readouterr().out

    drawbench_rewards.main([*argv, "--hps_version", "v2.0"])  # other reward settings: stored scores are stale
    assert "3 of 3 prompts to score" in capsys.readouterr().out
