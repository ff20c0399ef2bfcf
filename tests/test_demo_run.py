"""The demo pipeline end to end at toy size: every stage runs and leaves what a person looks at.

(The claim that GRPO raises the held-out score is measured by the full demo, see docs/demo.md; at this size
the models are untrained and only the mechanics are checked.)
"""

import json
from collections import Counter

import pytest
import torch

from dataset.prompts import load_prompts
from demo.evaluator import paired_gain
from demo.pretrain import DemoModels
from demo.run import DemoSettings, cache_folder, grpo_prompt_file, main, pretrain, run
from demo.world import TAGS, parse_caption, prompt_pool


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
    """Trained on one object per image, the c2i VQ lost two or three of the five colours (docs/demo.md)."""
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


def test_reward_presets_reach_the_trainer_flags(tmp_path):
    from demo.run import grpo_flags

    def rewards(settings):
        flags = grpo_flags(settings, DemoModels(), tmp_path / "vq.pt", tmp_path / "gpt.pt", tmp_path, tmp_path / "t5")
        funcs = flags[flags.index("--reward_funcs") + 1 : flags.index("--reward_weights")]
        weights = flags[flags.index("--reward_weights") + 1 : flags.index("--reward_weights") + 1 + len(funcs)]
        return dict(zip(funcs, map(float, weights)))

    assert rewards(DemoSettings()) == {"shapes_clean": 1.0, "shapes_exact": 0.5}
    assert rewards(DemoSettings(reward="geneval_rules")) == {"shapes": 1.0, "shapes_strict": 0.5}
    assert rewards(DemoSettings(reward="noise_control")) == {"noise_control": 1.0}
    with pytest.raises(SystemExit, match="--reward must be"):
        main(["--reward", "clip", "--out", str(tmp_path / "never")])
    with pytest.raises(SystemExit, match="--logp_guidance must be one of cfg, cond"):
        main(["--logp_guidance", "full", "--out", str(tmp_path / "never")])
    with pytest.raises(SystemExit, match="--threads must be >= 0"):
        main(["--threads", "-1", "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


def test_grpo_prompts_give_every_tag_an_equal_share(tmp_path):
    """The metric averages over tags, so GRPO must train on them equally often, whatever each pool's size.

    The trainer draws prompts uniformly from the file's lines; repeats are what keep the small pools in.
    """
    path = grpo_prompt_file(DemoSettings(task="t2i", seed=3), tmp_path)
    captions = [r.text for r in load_prompts(path)]
    shares = Counter(parse_caption(c).tag for c in captions)
    assert set(shares) == set(TAGS) and max(shares.values()) - min(shares.values()) <= 1, shares
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

    from demo.run import hacking_vs_honest, run_folder

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

    from demo.run import idle_cores

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
