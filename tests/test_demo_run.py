"""The demo pipeline end to end at toy size: every stage runs and leaves what a person looks at.

(The claim that GRPO raises the held-out score is measured by the full demo, see docs/demo.md; at this size
the models are untrained and only the mechanics are checked.)
"""

import json
from collections import Counter
from dataclasses import replace

import pytest
import torch

import train_c2i
import train_t2i
from dataset.prompts import load_prompts
from demo import grpo_run, heldout
from demo.evaluator import paired_gain
from demo.pretrain import (
    DemoModels,
    build_demo_gpt,
    cache_folder,
    cache_key,
    pretrain,
    pretraining_data,
    tokenizer_scenes,
)
from demo.run import main, parse_args, run
from demo.settings import TASK_DEFAULTS, DemoSettings
from demo.world import TAGS, parse_caption, prompt_pool
from img_gen_grpo_rewards import RewardArguments
from scripts.flags import saved_run_config
from tokenizer.vq_model import VQConfig, VQModel


@pytest.mark.slow
def test_demo_pipeline_runs_and_reports(tmp_path):
    settings = DemoSettings(
        task="t2i",
        pretrain_prompts=16,
        images_per_prompt=2,
        vq_steps=3,
        gpt_steps=3,
        eval_samples=16,
        grpo_steps=2,
        num_generations=4,
        prompts_per_step=2,
    )
    models = DemoModels(gpt_model="GPT-Tiny", caption_tokens=16, caption_dim=32)
    summary = run(settings, tmp_path, models)
    folder = tmp_path / "t2i_seed0"
    for name in ["summary.json", "report.md", "samples_before.png", "samples_after.png", "reward_curve.png"]:
        assert (folder / name).is_file(), name
    saved = json.loads((folder / "summary.json").read_text())
    assert saved["num_eval_samples"] == 16 and set(saved["before"]["per_tag"]) == set(saved["after"]["per_tag"])
    assert 0 <= saved["before"]["overall"] <= 1 and saved["improvement_points"] == pytest.approx(
        100 * (saved["after"]["overall"] - saved["before"]["overall"])
    )
    assert saved["paired_strict"]["n"] == 16 and "z =" in (folder / "report.md").read_text()
    assert saved["objects_per_image"]["asked"] >= 1 and saved["objects_per_image"]["before"] >= 0
    # clutter-proof accuracy: never above GenEval's (an exact image is a correct one), and in the report
    for phase in ("before", "after"):
        assert 0 <= saved[f"exact_{phase}"] <= saved[phase]["overall"]
    assert saved["paired_exact"]["n"] == 16 and "no extra objects" in (folder / "report.md").read_text()
    assert (tmp_path / "cache").is_dir() and list((tmp_path / "cache").glob("*/text_encoder/config.json"))
    assert summary["pretrain"]["cached"] is False
    again = run(settings, tmp_path, models)  # second run reuses the pretrained artifacts
    assert again["pretrain"]["cached"] is True


@pytest.mark.slow
def test_c2i_and_t2i_share_one_tokenizer_trained_on_scenes(tmp_path):
    """Trained on one object per image, the c2i VQ lost colours (docs/demo.md): both tasks share the scenes' VQ."""
    models = DemoModels(gpt_model="GPT-Tiny", caption_tokens=16, caption_dim=32)
    paths, infos = {}, {}
    for task in ("c2i", "t2i"):
        settings = DemoSettings(task=task, pretrain_prompts=8, images_per_prompt=2, vq_steps=3, gpt_steps=1)
        paths[task], _, infos[task] = pretrain(settings, models, cache_folder(tmp_path, settings, models))
    assert paths["t2i"] == paths["c2i"]
    assert "vq_seconds" in infos["c2i"] and "vq_seconds" not in infos["t2i"]  # trained once, by the first task
    # trained on the t2i scenes even when c2i asks first: the same weights as a VQ trained for t2i alone
    alone = pretrain(settings, models, tmp_path / "alone" / "t2i")[0]
    trained_first = torch.load(paths["c2i"], map_location="cpu", weights_only=True)["model"]
    trained_alone = torch.load(alone, map_location="cpu", weights_only=True)["model"]
    assert trained_first.keys() == trained_alone.keys()
    for name, weight in trained_first.items():
        assert torch.equal(weight, trained_alone[name]), name


def test_paired_gain_matches_hand_computation():
    before, after = [0, 0, 1, 1, 0], [1, 0, 1, 1, 1]  # differences 1, 0, 0, 0, 1
    result = paired_gain(before, after)
    diffs = [1, 0, 0, 0, 1]
    mean = sum(diffs) / 5
    sd = (sum((d - mean) ** 2 for d in diffs) / 4) ** 0.5
    assert result["gain"] == pytest.approx(0.4) and result["se"] == pytest.approx(sd / 5**0.5)
    assert result["z"] == pytest.approx(0.4 / (sd / 5**0.5)) and result["n"] == 5
    assert paired_gain([1, 0], [0, 1])["z"] == pytest.approx(0.0)
    assert paired_gain([1, 0], [1, 0])["z"] == 0.0  # nothing changed: z is 0, not NaN
    assert paired_gain([0, 0], [1, 1])["z"] == float("inf")
    with pytest.raises(ValueError, match="at least 2"):
        paired_gain([1], [0])


def _trainer_inputs(settings: DemoSettings, folder, rewards: RewardArguments | None = None) -> tuple:
    """The config objects the demo hands to the training script's ``build_trainer``."""
    base = grpo_run.BaseModels(vq=folder / "vq.pt", gpt=folder / "gpt.pt", text_encoder=folder / "t5")
    prompt_file = grpo_run.grpo_prompt_file(settings, folder) if settings.task == "t2i" else None
    return (
        grpo_run.model_arguments(settings.task, DemoModels(), base),
        grpo_run.data_arguments(settings.task, prompt_file),
        grpo_run.grpo_config(settings, folder / "grpo"),
        rewards or grpo_run.reward_arguments(settings.reward),
    )


def test_reward_presets_reach_the_trainer_flags(tmp_path, capsys):
    def rewards(settings):
        rewards = _trainer_inputs(settings, tmp_path)[3]
        return dict(zip(rewards.reward_funcs, rewards.reward_weights, strict=True))

    assert rewards(DemoSettings()) == {"shapes_clean": 1.0, "shapes_exact": 0.5}
    assert rewards(DemoSettings(reward="geneval_rules")) == {"shapes": 1.0, "shapes_strict": 0.5}
    assert rewards(DemoSettings(reward="noise_control")) == {"noise_control": 1.0}
    with pytest.raises(SystemExit, match="--reward must be"):
        main(["--reward", "clip", "--out", str(tmp_path / "never")])
    with pytest.raises(SystemExit, match="--logp_guidance must be one of cfg, cond"):
        main(["--logp_guidance", "full", "--out", str(tmp_path / "never")])
    with pytest.raises(SystemExit, match="--threads must be >= 0"):
        main(["--threads", "-1", "--out", str(tmp_path / "never")])
    with pytest.raises(SystemExit):
        main(["--no_such_flag", "1", "--out", str(tmp_path / "never")])
    assert "unrecognized arguments: --no_such_flag" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_every_demo_flag_parses_into_the_settings(tmp_path):
    argv = ["--task", "t2i", "--seed", "3", "--learning_rate", "1e-4", "--reward", "geneval_rules"]
    settings, command = parse_args([*argv, "--logp_guidance", "cond", "--out", str(tmp_path), "--threads", "2"])
    expected = DemoSettings(task="t2i", seed=3, learning_rate=1e-4, reward="geneval_rules", logp_guidance="cond")
    assert settings == expected
    assert (command.out, command.threads) == (str(tmp_path), 2)
    assert parse_args([])[0] == DemoSettings()


@pytest.mark.parametrize("task", ["c2i", "t2i"])
def test_the_demo_run_config_reparses_through_the_training_script(task, tmp_path):
    """What the demo hands to ``build_trainer``, saved as a run's config and read back by the training script's
    own parser (``--config``), gives the same objects field by field: the demo runs what the script would."""
    settings = DemoSettings(task=task, seed=5, learning_rate=1e-4, beta=0.02, logp_guidance="cond", temperature=0.7)
    rewards = RewardArguments(reward_funcs=["shapes"], reward_weights=[2.0], geneval_only_strict=True, fid_groups=3)
    inputs = _trainer_inputs(settings, tmp_path, rewards)
    assert inputs[0].gpt_type == task and inputs[2].logp_guidance == "cond" and inputs[2].temperature == 0.7
    config = tmp_path / "run_config.json"
    config.write_text(json.dumps(saved_run_config(*inputs)))
    script = train_t2i if task == "t2i" else train_c2i
    assert script.parse_args(["--config", str(config)]) == inputs


def test_held_out_samples_depend_on_their_index_alone():
    """Before and after GRPO pair sample by sample: sample i's seed must not depend on the batch around it."""
    models = DemoModels(gpt_model="GPT-Tiny")
    settings = DemoSettings(task="c2i")
    prompts = [3, 3, 3, 7]
    gpt, vq = build_demo_gpt(models, "c2i", 0), VQModel(VQConfig(**models.vq)).eval()
    every = heldout.sample(gpt, vq, models.grid, settings, prompts)
    assert every.shape == (4, models.image_size, models.image_size, 3) and every.dtype == "uint8"
    assert (heldout.sample(gpt, vq, models.grid, settings, prompts[:2]) == every[:2]).all()
    assert not (every[0] == every[1]).all()  # one prompt, two indices: two different samples


@pytest.mark.parametrize("tags", [None, ",".join(TAGS), "colors,single_object"])
def test_grpo_prompts_give_every_tag_an_equal_share(tags, tmp_path):
    """The metric averages over tags, so GRPO must train on them equally often, whatever each pool's size.

    The trainer draws prompts uniformly from the file's lines; repeats are what keep the small pools in.
    """
    settings = DemoSettings(task="t2i", seed=3, **({} if tags is None else {"tags": tags}))
    path = grpo_run.grpo_prompt_file(settings, tmp_path)
    captions = [r.text for r in load_prompts(path)]
    shares = Counter(parse_caption(c).tag for c in captions)
    assert set(shares) == set(settings.tag_list) and max(shares.values()) - min(shares.values()) <= 1, shares
    train = {t: {s.caption for s in prompt_pool(t, "train")} for t in TAGS}
    assert all(c in train[parse_caption(c).tag] for c in captions)  # nothing held out leaks into training


@pytest.mark.slow
def test_sigterm_during_grpo_stops_the_demo_without_evaluating_a_partial_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    argv = [sys.executable, "-m", "demo.run", "--task", "t2i", "--out", str(tmp_path), "--threads", "1"]
    argv += ["--pretrain_prompts", "16"]
    argv += ["--images_per_prompt", "2", "--vq_steps", "3", "--gpt_steps", "3", "--eval_samples", "16"]
    argv += ["--grpo_steps", "500", "--num_generations", "4", "--prompts_per_step", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    metrics = tmp_path / "t2i_seed0" / "grpo" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2) and process.poll() is None:
        assert time.monotonic() < deadline, "GRPO never started"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 143, output[-2000:]
    assert "SIGTERM" in output and "[demo] 4/4" not in output
    assert not (tmp_path / "t2i_seed0" / "summary.json").exists()
    assert list((tmp_path / "t2i_seed0" / "grpo").glob("checkpoint-*")), "no resumable checkpoint was saved"


def test_hacking_vs_honest_picture_appears_once_both_runs_exist(tmp_path):
    from PIL import Image
    from torchvision.utils import save_image

    from demo.figures import hacking_vs_honest
    from demo.settings import run_folder

    settings = DemoSettings(task="c2i", seed=4)
    assert hacking_vs_honest(tmp_path, settings) is None  # nothing to compare yet
    for reward, objects in [("clean", 1.2), ("geneval_rules", 6.5)]:
        folder = run_folder(tmp_path, DemoSettings(task="c2i", seed=4, reward=reward))
        folder.mkdir(parents=True)
        summary = {
            "before": {"overall": 0.3},
            "after": {"overall": 0.4},
            "exact_before": 0.1,
            "exact_after": 0.2,
            "objects_per_image": {"asked": 1.0, "before": 2.0, "after": objects},
        }
        (folder / "summary.json").write_text(json.dumps(summary))
        for name in ("samples_before.png", "samples_after.png"):
            save_image(torch.rand(8, 3, 32, 32), folder / name, nrow=4)
        if reward == "clean":
            assert hacking_vs_honest(tmp_path, settings) is None  # the gamed run is still missing
    picture = hacking_vs_honest(tmp_path, settings)
    assert picture == tmp_path / "c2i_seed4_hacking_vs_honest.png"
    grid = Image.open(run_folder(tmp_path, settings) / "samples_after.png")
    assert Image.open(picture).size == (grid.width, 3 * (grid.height + 16))  # before, honest, gamed


def _spin(seconds: float) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_idle_cores_leaves_out_a_core_another_process_keeps_busy():
    import multiprocessing
    import os

    from demo.threads import idle_cores

    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("needs two cores")
    spinners = [multiprocessing.Process(target=_spin, args=(3.0,)) for _ in range(cores - 1)]
    for p in spinners:
        p.start()
    try:
        import time

        time.sleep(0.5)  # let them start spinning
        assert idle_cores() <= cores - 1
    finally:
        for p in spinners:
            p.join()


def test_t2i_tags_choose_the_held_out_prompts_and_the_gpt_but_not_the_tokenizer(tmp_path):
    """``--tags`` narrows the world the t2i GPT learns and is scored on; the shared VQ always sees every tag."""
    models = DemoModels()
    narrow = DemoSettings(task="t2i", tags="single_object,colors")
    wide = DemoSettings(task="t2i", tags=",".join(TAGS))
    prompts = heldout.eval_prompts(narrow)
    assert len(prompts) == narrow.eval_samples
    assert {parse_caption(p).tag for p in prompts} == {"single_object", "colors"}
    assert {parse_caption(p).tag for p in heldout.eval_prompts(wide)} == set(TAGS)
    heldout_colours = {s.caption for s in prompt_pool("colors", "heldout")}
    assert {p for p in prompts if parse_caption(p).tag == "colors"} <= heldout_colours
    assert set(pretraining_data(replace(narrow, pretrain_prompts=8)).tags) == {"single_object", "colors"}
    assert set(tokenizer_scenes(replace(narrow, pretrain_prompts=12)).tags) == set(TAGS)
    assert cache_folder(tmp_path, narrow, models) != cache_folder(tmp_path, wide, models)
    spaced = DemoSettings(task="t2i", tags=" single_object , colors")  # one world, one cache
    assert cache_folder(tmp_path, spaced, models) == cache_folder(tmp_path, narrow, models)
    c2i = [DemoSettings(task="c2i", tags=t) for t in (narrow.tags, wide.tags)]  # classes: tags play no part
    assert cache_folder(tmp_path, c2i[0], models) == cache_folder(tmp_path, c2i[1], models)
    vq_key = {cache_key(s, models, with_task=False) for s in (narrow, wide, *c2i)}
    assert len(vq_key) == 2  # one per pretraining size (t2i pretrains on more prompts), never per tag set


@pytest.mark.parametrize("tags", ["colours", "", "colors,,position,sky", "colors,colors"])
def test_unknown_tags_are_refused_before_any_work(tags):
    with pytest.raises(ValueError, match="--tags"):
        DemoSettings(task="t2i", tags=tags)


def test_unset_pretraining_sizes_take_their_task_default_and_flags_win():
    for task, defaults in TASK_DEFAULTS.items():
        settings = parse_args(["--task", task])[0]
        assert {name: getattr(settings, name) for name in defaults} == defaults
    assert TASK_DEFAULTS["t2i"]["gpt_steps"] > TASK_DEFAULTS["c2i"]["gpt_steps"]
    assert parse_args(["--task", "t2i", "--gpt_steps", "7"])[0].gpt_steps == 7
