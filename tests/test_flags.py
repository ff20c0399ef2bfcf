"""The one flag system: --config files, the boolean convention, and the shell launchers' argument lists parse."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

import train_c2i
import train_t2i
from sampling import drawbench_rewards, sample_c2i_fid, sample_geneval

REPO = Path(__file__).resolve().parents[1]
REQUIRED = ["--gpt_ckpt", "gpt.pt", "--vq_ckpt", "vq.pt"]


# ------------------------------------------------------------------------------------------------ --config
def test_config_file_values_apply_and_flags_override(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "gpt_ckpt: from_file.pt\nvq_ckpt: vq.pt\nbeta: 0.5\nlearning_rate: 3.0e-6\nbf16: true\n"
        "reward_funcs: [clip_text, hpsv2]\nreward_weights: [1, 0.5]\ngpt_config: {dim: 64}\nepsilon_high: null\n"
    )
    model, _, config, rewards = train_c2i.parse_args(["--config", str(recipe), "--beta", "0.1"])
    assert model.gpt_ckpt == "from_file.pt" and json.loads(model.gpt_config) == {"dim": 64}
    assert config.beta == 0.1  # the command line wins
    assert config.learning_rate == 3e-6 and config.bf16 is True and config.epsilon_high is None
    assert rewards.reward_funcs == ["clip_text", "hpsv2"] and rewards.reward_weights == [1.0, 0.5]
    _, _, config, _ = train_c2i.parse_args(["--bf16", "false", "--config", str(recipe)])
    assert config.bf16 is False  # wherever --config stands, the command line's flags override the file


def test_config_json_file_for_a_sampling_script(tmp_path):
    recipe = tmp_path / "eval.json"
    recipe.write_text(json.dumps({"gpt_ckpt": "g.pt", "vq_ckpt": "v.pt", "sample_dir": "out", "cfg_scale": 4.0}))
    args = sample_c2i_fid.parse_args(["--config", str(recipe), "--num_fid_samples", "10"])
    assert (args.gpt_ckpt, args.sample_dir, args.cfg_scale, args.num_fid_samples) == ("g.pt", "out", 4.0, 10)


def test_config_file_unknown_key_is_rejected_naming_file_and_key(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("beta: 0.1\nlearnig_rate: 1.0e-5\n")
    with pytest.raises(SystemExit) as info:
        train_c2i.parse_args([*REQUIRED, "--config", str(recipe)])
    assert str(recipe) in str(info.value) and "'learnig_rate'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- beta\n", "expected a mapping"), ("beta: [1\n", "not readable"), (None, "file not found")],
)
def test_config_file_that_is_not_a_mapping_is_rejected(tmp_path, text, expected):
    recipe = tmp_path / "recipe.yaml"
    if text is not None:
        recipe.write_text(text)
    with pytest.raises(SystemExit, match=expected) as info:
        train_c2i.parse_args([*REQUIRED, "--config", str(recipe)])
    assert str(recipe) in str(info.value)


def test_a_dataclass_check_is_a_message_not_a_traceback():
    with pytest.raises(SystemExit, match="must be a multiple of num_generations"):
        train_c2i.parse_args([*REQUIRED, "--num_generations", "3"])


# ------------------------------------------------------------------------------------------------- booleans
@pytest.mark.parametrize(
    ("flags", "expected"),
    [([], False), (["--bf16"], True), (["--bf16", "true"], True), (["--bf16", "false"], False)],
)
def test_boolean_convention_is_the_same_for_training_and_evaluation(flags, expected):
    assert train_c2i.parse_args([*REQUIRED, *flags])[2].bf16 is expected
    assert train_t2i.parse_args([*REQUIRED, "--dataset_name", "p.txt", *flags])[2].bf16 is expected
    assert sample_c2i_fid.parse_args([*REQUIRED, "--sample_dir", "s", *flags]).bf16 is expected
    assert sample_geneval.parse_args([*REQUIRED, "--metadata_file", "m", "--outdir", "o", *flags]).bf16 is expected


def test_no_prefix_turns_off_an_option_that_defaults_to_true():
    base = [*REQUIRED, "--sample_dir", "s"]
    assert sample_c2i_fid.parse_args(base).progress is True
    assert sample_c2i_fid.parse_args([*base, "--no_progress"]).progress is False
    assert sample_c2i_fid.parse_args([*base, "--progress", "false"]).progress is False


def test_config_file_may_spell_an_option_as_its_no_flag(tmp_path):
    recipe = tmp_path / "eval.yaml"
    recipe.write_text("no_progress: true\n")
    args = sample_c2i_fid.parse_args([*REQUIRED, "--sample_dir", "s", "--config", str(recipe)])
    assert args.progress is False


def test_task_defaults_follow_the_script_and_gpt_type():
    c2i = train_c2i.parse_args(REQUIRED)[0]
    t2i = train_t2i.parse_args([*REQUIRED, "--dataset_name", "p.txt"])[0]
    assert (c2i.gpt_type, c2i.image_size, c2i.cls_token_num) == ("c2i", 384, 1)
    assert (t2i.gpt_type, t2i.image_size, t2i.cls_token_num) == ("t2i", 256, 120)
    drawbench = drawbench_rewards.parse_args([*REQUIRED, "--prompts", "p.csv", "--outdir", "o"])
    assert (drawbench.cfg_scale, drawbench.top_k, drawbench.per_proc_batch_size) == (7.5, 2000, 16)


def test_help_never_shows_an_api_key_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("REWARD_API_KEY", "sk-from-env-1234")
    with pytest.raises(SystemExit):
        train_c2i.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "--reward_api_key" in out and "sk-from-env-1234" not in out


# ------------------------------------------------------------------------------------------------ launchers
def _recorded_argv(tmp_path: Path, script: str, args: list[str], env: dict[str, str]) -> list[str]:
    """Run a launcher with PYTHON set to a recorder; the arguments the launcher passed to the interpreter."""
    record = tmp_path / "argv.bin"
    recorder = tmp_path / "python"
    recorder.write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" > "{record}"\n')
    recorder.chmod(recorder.stat().st_mode | stat.S_IEXEC)
    full_env = {**os.environ, "PYTHON": str(recorder), "NPROC": "1", "CUDA_VISIBLE_DEVICES": "", **env}
    subprocess.run(["bash", str(REPO / script), *args], env=full_env, check=True, timeout=60, capture_output=True)
    return record.read_bytes().decode().split("\0")[:-1]


@pytest.fixture()
def files(tmp_path) -> dict[str, str]:
    names = ["gpt.pt", "vq.pt", "prompts.json", "metadata.jsonl", "drawbench.csv"]
    for name in names:
        (tmp_path / name).write_text("x")
    return {name: str(tmp_path / name) for name in names}


@pytest.mark.parametrize("script", ["run_c2i_train.sh", "run_t2i_train.sh"])
@pytest.mark.parametrize(("recipe", "logp_guidance"), [(None, "cfg"), ("recommended", "cfg"), ("paper", "cond")])
def test_training_launchers_parse(tmp_path, files, script, recipe, logp_guidance):
    env = {"GPT_CKPT": files["gpt.pt"], "VQ_CKPT": files["vq.pt"], "DATASET": files["prompts.json"], "T5_PATH": "tiny"}
    env["OUTPUT_DIR"] = str(tmp_path / "out")
    if recipe:
        env["RECIPE"] = recipe
    argv = _recorded_argv(tmp_path, script, ["--beta", "0.2"], env)
    module = train_c2i if "c2i" in script else train_t2i
    entry = f"{module.__name__}.py"
    model, _, config, rewards = module.parse_args(argv[argv.index(entry) + 1 :])
    assert model.gpt_ckpt == files["gpt.pt"] and config.bf16 is True and config.beta == 0.2  # the flag wins
    assert len(rewards.reward_funcs) == len(rewards.reward_weights) == 8
    assert config.logp_guidance == logp_guidance and config.output_dir == str(tmp_path / "out")


def test_training_launcher_takes_a_recipe_file_and_refuses_a_missing_one(tmp_path, files):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("gpt_model: GPT-B\nbeta: 0.3\n")
    env = {"GPT_CKPT": files["gpt.pt"], "VQ_CKPT": files["vq.pt"], "RECIPE": str(recipe)}
    argv = _recorded_argv(tmp_path, "run_c2i_train.sh", [], env)
    model, _, config, _ = train_c2i.parse_args(argv[argv.index("train_c2i.py") + 1 :])
    assert (model.gpt_model, config.beta) == ("GPT-B", 0.3)
    with pytest.raises(subprocess.CalledProcessError) as info:
        _recorded_argv(tmp_path, "run_c2i_train.sh", [], {**env, "RECIPE": "papr"})
    assert b"recipe (RECIPE) not found: papr" in info.value.stderr


@pytest.mark.parametrize(
    ("script", "module", "extra_env"),
    [
        ("test.sh", sample_c2i_fid, {}),
        ("test_t2i.sh", sample_geneval, {"GENEVAL_METADATA": "metadata.jsonl"}),
        ("test_t2i_rewards_drawbench.sh", drawbench_rewards, {"DRAWBENCH": "drawbench.csv"}),
    ],
)
def test_evaluation_launchers_parse(tmp_path, files, script, module, extra_env):
    env = {"VQ_CKPT": files["vq.pt"], "TEXT_ENCODER": "tiny", "OUT_ROOT": str(tmp_path / "results")}
    env.update({key: files[name] for key, name in extra_env.items()})
    argv = _recorded_argv(tmp_path, script, [files["gpt.pt"], "", "", "3.0", "--bf16"], env)
    assert argv[:2] == ["-m", module.__name__]
    args = module.parse_args(argv[2:])
    assert args.gpt_ckpt == files["gpt.pt"] and args.cfg_scale == 3.0 and args.bf16 is True
    assert args.ckpt_step == ""  # an empty STEP: the evaluation scripts then pick gpt_final.pt


def test_t2i_paper_recipe_trains_on_upstreams_caption_file_by_default(tmp_path, files):
    if (REPO / "dataset" / "coco_captions_30000_upstream.json").exists():
        pytest.skip("this checkout has upstream's caption file; the test needs it absent")
    env = {"GPT_CKPT": files["gpt.pt"], "VQ_CKPT": files["vq.pt"], "T5_PATH": "tiny", "RECIPE": "paper"}
    with pytest.raises(subprocess.CalledProcessError) as info:
        _recorded_argv(tmp_path, "run_t2i_train.sh", [], env)
    stderr = info.value.stderr.decode()
    assert "coco_captions_30000_upstream.json" in stderr and "download_prompts coco_upstream" in stderr
