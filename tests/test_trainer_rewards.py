"""The trainer's side of rewards: a bad value is reported under its function's name, and rewards with
randomness draw it from each sample's seed, so a resumed run scores exactly as an uninterrupted one."""

import json

import pytest
import torch

import img_gen_grpo_rewards as rewards
from tests.grpo_fixtures import brightness_reward, flat_params, make_trainer


def _rows(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_a_non_finite_part_is_reported_under_its_own_name(tmp_path):
    def reward_with_a_broken_part(images, prompts, metadata):
        score = brightness_reward(images, prompts, metadata)[0]
        broken = score.clone()
        broken[3] = float("inf")
        return score + broken, {"brightness": score, "edge_detector": broken}

    with pytest.raises(RuntimeError) as info:
        make_trainer(tmp_path, reward=reward_with_a_broken_part, max_steps=1).train()
    assert "reward 'edge_detector' returned inf for prompt #3" in str(info.value)


def test_noise_control_rewards_survive_a_resume(tmp_path):
    def trainer(out, **kw):
        return make_trainer(out, reward=rewards.build_reward(["noise_control"]), max_steps=4, **kw)

    straight = trainer(tmp_path / "straight")
    straight.train()
    trainer(tmp_path / "split", exit_step=2).train()
    resumed = trainer(tmp_path / "split", resume_from_checkpoint="latest")
    resumed.train()
    key = "reward/noise_control_mean"
    expected = {r["step"]: r[key] for r in _rows(tmp_path / "straight") if key in r}
    got = {r["step"]: r[key] for r in _rows(tmp_path / "split") if key in r and r["step"] > 2}
    assert got and all(got[step] == expected[step] for step in got), (got, expected)
    assert torch.equal(flat_params(resumed), flat_params(straight))


def test_noise_draws_follow_the_sample_seed_not_the_batch():
    reward = rewards.build_reward(["noise_control"])
    images = torch.zeros(4, 3, 8, 8)
    meta = [{"sample_seed": s} for s in (11, 12, 13, 14)]
    whole = reward(images, [0] * 4, meta)[0]
    halves = torch.cat([reward(images[:2], [0] * 2, meta[:2])[0], reward(images[2:], [0] * 2, meta[2:])[0]])
    torch.testing.assert_close(whole, halves, rtol=0, atol=0)
    assert len(whole.unique()) == 4
