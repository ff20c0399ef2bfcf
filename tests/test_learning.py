"""GRPO learns a prompt-dependent reward on both tasks, with the trainer's default log-probs, seed after seed.

``demo.learning`` trains the demo's pretrained models (built once per session) on the fraction of pixels in
the colour the prompt names, through the training scripts' own wiring. A pass needs, on each of three seeds,
the overall reward to rise by at least MIN_Z paired standard errors over the same prompts and seeds, and every
colour to rise by MIN_Z on every seed but at most one (seed, colour) cell per task: a policy that paints
everything one colour loses several colours, and one lucky trajectory cannot pass (docs/trainer.md has the
runs that set the spare cell and show upstream's ``cond`` log-probs failing). The control trains on
rewards shuffled across the rollout's samples and must not gain: the statistic measures learning from the
reward, not drift.
"""

from __future__ import annotations

import pytest

from demo.learning import LearningSettings, base_settings, learning_run
from demo.pretrain import DemoModels, cache_folder, pretrain

MIN_Z = 3.0
SEEDS = (0, 1, 2)
MAX_WEAK_CELLS = 1
# 40 steps and 16 seeds per prompt: at 30 steps and 8 seeds, blue on the 2-thread t2i seed-0 base rose
# 0.08 -> 0.24 with z = 2.7 only (the 1-thread runs in docs/trainer.md all had z >= 8).
SETTINGS = LearningSettings(steps=40, learning_rate=3e-4, eval_seeds_per_prompt=16)


def _base(demo_root, task: str) -> dict:
    settings, models = base_settings(task), DemoModels()
    cache = cache_folder(demo_root, settings, models)
    vq, gpt, _ = pretrain(settings, models, cache)
    return {"vq": vq, "gpt": gpt, "text": cache / "text_encoder"}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["t2i", "c2i"])
def test_grpo_raises_the_reward_of_every_colour_seed_after_seed(task, demo_root, tmp_path):
    weak = {}
    for seed in SEEDS:
        result = learning_run(task, _base(demo_root, task), tmp_path / f"seed{seed}", seed, SETTINGS)
        assert result["logp_guidance"] == "cfg"  # the trainer's default, not set by the test
        assert result["overall"]["z"] >= MIN_Z, f"{task} seed {seed}: {result['overall']}"
        weak.update({(seed, c): round(r["z"], 1) for c, r in result["per_colour"].items() if r["z"] < MIN_Z})
    assert len(weak) <= MAX_WEAK_CELLS, f"{task}: (seed, colour) cells that did not rise clearly (z): {weak}"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["t2i", "c2i"])
def test_shuffled_rewards_do_not_raise_the_reward(task, demo_root, tmp_path):
    result = learning_run(task, _base(demo_root, task), tmp_path, 0, SETTINGS, control=True)
    overall = result["overall"]
    assert overall["z"] < MIN_Z, f"{task}: shuffled rewards raised the true reward: {overall}"
    risen = [c for c, r in result["per_colour"].items() if r["z"] >= MIN_Z]
    assert len(risen) < len(result["per_colour"]), f"{task}: every colour rose on shuffled rewards"
