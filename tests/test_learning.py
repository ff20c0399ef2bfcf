"""GRPO learns a prompt-dependent reward on both tasks, with the trainer's default log-probs, on every seed.

``demo.learning`` trains the demo's pretrained models (built once per session) on the fraction of pixels in
the colour the prompt names, through the training scripts' own wiring. A pass needs the reward to rise for
*every* colour, by at least MIN_Z paired standard errors over the same prompts and seeds, on each of three
seeds: one lucky trajectory cannot pass, and neither can a policy that paints everything one colour (its
other colours fall). The control trains on rewards shuffled across the rollout's samples and must not gain:
that shows the statistic measures learning from the reward, not drift.
"""

from __future__ import annotations

import pytest

from demo.learning import LearningSettings, learning_run
from demo.pretrain import DemoModels
from demo.run import DemoSettings, cache_folder, pretrain

MIN_Z = 3.0
# 40 steps and 16 seeds per prompt: at 30 steps and 8 seeds, blue on the 2-thread t2i seed-0 base rose
# 0.08 -> 0.24 with z = 2.7 only (the 1-thread runs in docs/trainer.md all had z >= 8).
SETTINGS = LearningSettings(steps=40, learning_rate=3e-4, eval_seeds_per_prompt=16)


def _base(demo_root, task: str) -> dict:
    settings, models = DemoSettings(task=task), DemoModels()
    cache = cache_folder(demo_root, settings, models)
    vq, gpt, _ = pretrain(settings, models, cache)
    return {"vq": vq, "gpt": gpt, "text": cache / "text_encoder"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("task", ["t2i", "c2i"])
def test_grpo_raises_the_reward_of_every_colour(task, seed, demo_root, tmp_path):
    result = learning_run(task, _base(demo_root, task), tmp_path, seed, SETTINGS)
    assert result["logp_guidance"] == "cfg"  # the trainer's default, not set by the test
    weak = {c: round(r["z"], 1) for c, r in result["per_colour"].items() if r["z"] < MIN_Z}
    assert not weak, f"{task} seed {seed}: colours that did not rise clearly (z): {weak}; {result['per_colour']}"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["t2i", "c2i"])
def test_shuffled_rewards_do_not_raise_the_reward(task, demo_root, tmp_path):
    result = learning_run(task, _base(demo_root, task), tmp_path, 0, SETTINGS, control=True)
    overall = result["overall"]
    assert overall["z"] < MIN_Z, f"{task}: shuffled rewards raised the true reward: {overall}"
    risen = [c for c, r in result["per_colour"].items() if r["z"] >= MIN_Z]
    assert len(risen) < len(result["per_colour"]), f"{task}: every colour rose on shuffled rewards"
