"""The logged metrics are pure functions of a rollout and of the update's micro-batches, checked on hand-made
inputs; the per-group scoring behind --on_bad_reward skip_group; the skip_group stop naming the last error."""

import math

import pytest
import torch

from grpo.loss import LossOutput
from grpo.metrics import MicroBatchStats, Stopwatch, rollout_metrics, step_metrics
from grpo.prompt_sources import TrainingPrompt
from grpo.rollout import Rollout
from grpo.scoring import score_all, score_groups_apart
from grpo.skip_guard import SkippedGroupsGuard


def _rollout(rewards, group_ok, tied, tokens):
    g = len(rewards) // len(group_ok)
    group_ok = torch.tensor(group_ok)
    rewards = torch.tensor(rewards)
    parts = {"a": torch.where(group_ok.repeat_interleave(g), rewards * 2, torch.tensor(float("nan")))}
    return Rollout(
        prompts=[TrainingPrompt(i) for i in range(len(group_ok))],
        cond=torch.zeros(len(rewards), dtype=torch.long),
        cond_mask=None,
        tokens=torch.tensor(tokens),
        images=torch.zeros(len(rewards), 3, 2, 2),
        rewards=rewards,
        reward_parts=parts,
        group_ok=group_ok,
        tied=torch.tensor(tied),
        advantages=torch.tensor([1.0, -1.0, 0.0, 0.0]),
        token_mask=torch.ones(len(rewards), len(tokens[0])),
        seconds={"sampling": 2.0, "rewards": 0.5},
    )


def test_rollout_metrics_leave_skipped_groups_out_of_the_reward_statistics():
    rollout = _rollout([0.2, 0.6, 0.0, 0.0], [True, False], [False, True], [[1, 2, 3], [1, 5, 6], [4, 4, 4], [4, 4, 4]])
    m = rollout_metrics(rollout)
    scored = torch.tensor([0.2, 0.6])
    assert m["reward/total_mean"] == pytest.approx(scored.mean().item())
    assert m["reward/total_std"] == pytest.approx(scored.std().item())
    assert m["reward/a_mean"] == pytest.approx(2 * scored.mean().item()) and not math.isnan(m["reward/a_std"])
    assert m["groups/skipped"] == 1.0 and m["groups/tied_fraction"] == 0.5
    assert m["advantage/abs_max"] == 1.0
    assert m["diversity/in_group"] == pytest.approx((2 / 3 + 0) / 2)  # group 0 differs at 2 of 3 tokens
    assert m["time/sampling"] == 2.0 and m["time/rewards"] == 0.5
    assert m["throughput/tokens_per_s"] == pytest.approx(12 / 2.0)


def test_rollout_metrics_gather_the_global_batch():
    rollout = _rollout([0.2, 0.6, 0.1, 0.3], [True, True], [False, False], [[1, 2], [1, 3], [2, 2], [2, 1]])
    twice = rollout_metrics(rollout, gather=lambda t: torch.cat([t, t]))
    assert twice["groups/skipped"] == 0.0
    assert twice["reward/total_mean"] == pytest.approx(0.3)
    assert twice["reward/total_std"] == pytest.approx(torch.tensor([0.2, 0.6, 0.1, 0.3] * 2).std().item())
    assert twice["throughput/tokens_per_s"] == pytest.approx(2 * 8 / 2.0)  # both processes' sampling rates


def test_all_groups_skipped_gives_nan_mean_and_zero_std():
    rollout = _rollout([0.0, 0.0, 0.0, 0.0], [False, False], [True, True], [[1], [1], [2], [2]])
    m = rollout_metrics(rollout)
    assert math.isnan(m["reward/total_mean"]) and m["reward/total_std"] == 0.0 and m["groups/skipped"] == 2.0


def test_step_metrics_average_micro_batches_and_sum_their_time():
    def stats(loss, seconds):
        out = LossOutput(*(torch.tensor(v) for v in (loss, 0.1, 0.0, 0.5, 1.0)))
        return MicroBatchStats.of(out, torch.tensor(2.0), seconds=seconds)

    m = step_metrics([stats(1.0, 0.25), stats(3.0, 0.5)], grad_norm=4.0, learning_rate=1e-3)
    assert m == pytest.approx(
        {
            "loss": 2.0,
            "kl": 0.1,
            "clip/low": 0.0,
            "clip/high": 0.5,
            "ratio/mean": 1.0,
            "entropy": 2.0,
            "time/update": 0.75,
            "grad_norm": 4.0,
            "learning_rate": 1e-3,
        }
    )


def test_stopwatch_laps_are_consecutive():
    clock = Stopwatch(torch.device("cpu"))
    first = clock.lap("a")
    second = clock.lap("b")
    assert clock.seconds == {"a": first, "b": second} and first >= 0 and second >= 0


def _by_prompt(images, prompts, metadata):
    if "bad" in prompts:
        raise ValueError("cannot score 'bad'")
    score = images.mean(dim=(1, 2, 3))
    return score, {"mean": score}


def test_groups_scored_apart_skip_only_the_failing_group(capsys):
    images = torch.rand(6, 3, 2, 2)
    values = ["ok", "ok", "bad", "bad", "fine", "fine"]
    with pytest.raises(ValueError):
        score_all(_by_prompt, images, values, [{}] * 6, 2)
    scores = score_groups_apart(_by_prompt, images, values, [{}] * 6, 2, "step 7")
    assert scores.group_ok.tolist() == [True, False, True]
    assert scores.errors == ["ValueError: cannot score 'bad'"]
    expected = images.mean(dim=(1, 2, 3))
    torch.testing.assert_close(scores.total[[0, 1, 4, 5]], expected[[0, 1, 4, 5]])
    assert scores.total[2:4].tolist() == [0.0, 0.0] and scores.parts["mean"][2:4].isnan().all()
    assert "step 7: skipping the group of prompt 'bad'" in capsys.readouterr().out


def test_skip_group_stop_names_the_last_reward_error():
    guard = SkippedGroupsGuard(max_fraction=0.9, window=10)
    guard.note(["ValueError: first"])
    guard.note([])
    guard.check(1, 4, "step 3")  # not yet
    with pytest.raises(RuntimeError, match=r"stopping at step 3: every group .* last reward error: ValueError: first"):
        guard.check(4, 4, "step 3")
    with pytest.raises(RuntimeError, match="raised on another process"):
        SkippedGroupsGuard(0.9, 10).check(2, 2, "step 0")
