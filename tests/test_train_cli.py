"""train_c2i.py / train_t2i.py end to end from flags: tiny checkpoints on disk, a real registered reward."""

import json

import pytest
import torch

import train_c2i
import train_t2i
from autoregressive.models.gpt import build_gpt, load_gpt_weights
from tests.grpo_fixtures import TINY_RUN_FLAGS, tiny_gpt_ckpt, tiny_run_flags, tiny_vq

T2I = ["--gpt_type", "t2i", "--caption_dim", "32", "--cls_token_num", "48", "--text_encoder", "tiny"]


@pytest.fixture()
def vq_ckpt(tmp_path):
    path = tmp_path / "vq.pt"
    torch.save({"model": tiny_vq().state_dict()}, path)
    return path


def test_c2i_cli_trains_saves_and_logs(tmp_path, vq_ckpt):
    gpt = tiny_gpt_ckpt(tmp_path, num_classes=15)
    out = tmp_path / "run"
    extra = ["--num_classes", "15", "--reward_funcs", "shapes", "shapes_strict", "--reward_weights", "1", "0.5"]
    metrics = train_c2i.main(tiny_run_flags(gpt, vq_ckpt, out, *extra))
    assert {"reward/shapes_mean", "reward/shapes_strict_mean", "kl"} <= set(metrics)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    first = rows[0]
    expected = first["reward/shapes_mean"] + 0.5 * first["reward/shapes_strict_mean"]
    assert first["reward/total_mean"] == pytest.approx(expected, abs=1e-5)
    assert (out / "samples" / "step_000000.png").is_file() and (out / "checkpoint-2").is_dir()
    reloaded = build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15)
    load_gpt_weights(reloaded, out / "gpt_final.pt")


def test_t2i_cli_with_tiny_text_encoder(tmp_path, vq_ckpt):
    gpt = tiny_gpt_ckpt(tmp_path, model_type="t2i", caption_dim=32, cls_token_num=48)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a red circle\na photo of two blue squares\n")
    out = tmp_path / "run"
    extra = [*T2I, "--dataset_name", str(prompts), "--reward_funcs", "shapes"]
    metrics = train_t2i.main(tiny_run_flags(gpt, vq_ckpt, out, *extra))
    assert 0.0 <= metrics["reward/shapes_mean"] <= 1.0


def test_missing_checkpoint_names_download_and_demo(tmp_path, vq_ckpt, capsys):
    with pytest.raises(SystemExit) as info:
        train_c2i.main(tiny_run_flags(tmp_path / "nope.pt", vq_ckpt, tmp_path / "run", "--reward_funcs", "shapes"))
    message = str(info.value)
    assert "nope.pt" in message and "FoundationVision/LlamaGen" in message and "run_demo.sh" in message


def test_size_mismatch_suggests_the_right_model(tmp_path, vq_ckpt):
    torch.manual_seed(0)
    small = build_gpt("GPT-Small", block_size=16, vocab_size=48, num_classes=15)
    path = tmp_path / "small.pt"
    torch.save({"model": small.state_dict()}, path)
    extra = ["--num_classes", "15", "--reward_funcs", "shapes"]
    with pytest.raises(Exception, match="GPT-Small"):
        train_c2i.main(tiny_run_flags(path, vq_ckpt, tmp_path / "run", *extra))


def test_help_lists_upstream_flag_names(capsys):
    with pytest.raises(SystemExit):
        train_t2i.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in [
        "--beta",
        "--num_generations",
        "--per_device_train_batch_size",
        "--gen_cfg_cfg_scale",
        "--epsilon_high",
        "--num_iterations",
        "--exit_step",
        "--vq_ckpt",
        "--gpt_type",
        "--cls_token_num",
        "--dataset_name",
        "--reward_funcs",
        "--reward_weights",
        "--report_to",
    ]:
        assert flag in text


# ----------------------------------------------------------------------------------------------- early errors


@pytest.fixture()
def unloadable(tmp_path):
    """Checkpoint files that exist but fail as soon as anything loads them: an error about anything else
    proves the check ran before the models were built."""
    gpt, vq = tmp_path / "gpt_garbage.pt", tmp_path / "vq_garbage.pt"
    gpt.write_bytes(b"not a checkpoint")
    vq.write_bytes(b"not a checkpoint")
    return ["--gpt_ckpt", str(gpt), "--vq_ckpt", str(vq), "--output_dir", str(tmp_path / "run")]


def test_bad_prompt_file_fails_before_any_model_loads(tmp_path, unloadable):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "a red circle"}\n{"caption": "no prompt key"}\n')
    with pytest.raises(SystemExit) as info:
        train_t2i.main([*TINY_RUN_FLAGS, *unloadable, *T2I, "--dataset_name", str(prompts), "--reward_funcs", "shapes"])
    assert f"{prompts}:2" in str(info.value)


def test_a_huge_prompt_is_refused_naming_file_and_line(tmp_path, unloadable):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n" + "a blue square " * 20_000 + "\n")
    with pytest.raises(SystemExit) as info:
        train_t2i.main([*TINY_RUN_FLAGS, *unloadable, *T2I, "--dataset_name", str(prompts), "--reward_funcs", "shapes"])
    message = str(info.value)
    assert f"{prompts}:2" in message and "280000 characters" in message and "--max_prompt_chars" in message
    assert len(message) < 500
    with pytest.raises(SystemExit, match=r"prompts.txt: \d+ bytes, more than the 1000 allowed"):
        train_t2i.main(
            [*TINY_RUN_FLAGS, *unloadable, *T2I, "--dataset_name", str(prompts), "--reward_funcs", "shapes",
             "--max_prompt_file_bytes", "1000"]
        )  # fmt: skip


def test_missing_reward_funcs_is_a_clear_message(tmp_path, unloadable):
    with pytest.raises(SystemExit, match=r"no reward functions given: pass --reward_funcs NAME.*shapes"):
        train_c2i.main([*TINY_RUN_FLAGS, *unloadable])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--hps_checkpoint", "missing/hps.pt"], "--hps_checkpoint missing/hps.pt: file not found"),
        (["--fid_reference_stats", "missing/ref.npz"], "--fid_reference_stats missing/ref.npz: file not found"),
        (["--clip_model", "./missing_clip"], "--clip_model ./missing_clip: folder not found"),
        (["--resume_from_checkpoint", "latest"], "--resume_from_checkpoint latest: no complete checkpoint"),
        (["--reward_funcs", "shapes", "shapez"], r"unknown reward function\(s\) \['shapez'\]"),
    ],
)
def test_missing_files_and_bad_flags_fail_before_any_model_loads(tmp_path, unloadable, flags, expected):
    reward = [] if "--reward_funcs" in flags else ["--reward_funcs", "shapes"]
    with pytest.raises(SystemExit, match=expected):
        train_c2i.main([*TINY_RUN_FLAGS, *unloadable, *reward, *flags])


def test_training_starts_from_an_upstream_checkpoint_folder_and_from_our_run(tmp_path):
    """--gpt_ckpt / --vq_ckpt may name upstream AR-GRPO's checkpoint-N folder (sharded, prefixed keys), and
    --gpt_ckpt our own finished run's folder: the weights load strictly and training runs."""
    from tests.helpers import make_upstream_checkpoint, upstream_models

    gpt, vq = upstream_models()
    upstream = make_upstream_checkpoint(tmp_path / "checkpoints" / "run" / "checkpoint-300", gpt, vq, shards=2)
    first = tmp_path / "from_upstream"
    train_c2i.main(tiny_run_flags(upstream, upstream, first, "--reward_funcs", "noise_control", "--max_steps", "1"))
    model = load_gpt_weights(build_gpt("GPT-Tiny", block_size=16, vocab_size=48), first / "gpt_final.pt")
    assert model.output.weight.shape == gpt.output.weight.shape
    second = tmp_path / "from_our_run"
    train_c2i.main(tiny_run_flags(first, upstream, second, "--reward_funcs", "noise_control", "--max_steps", "1"))
    assert (second / "gpt_final.pt").is_file()
