"""The rule that stops a run whose reward keeps failing under --on_bad_reward skip_group."""

import pytest

from grpo.skip_guard import SkippedGroupsGuard


def test_a_rollout_with_every_group_skipped_stops_at_once():
    guard = SkippedGroupsGuard(max_fraction=0.9, window=10)
    assert guard.update(1, 4) is None
    assert "every group of the rollout (4) was skipped" in guard.update(4, 4)


def test_fraction_over_a_full_window():
    guard = SkippedGroupsGuard(max_fraction=0.5, window=3)
    assert guard.update(3, 4) is None  # 75 % but the window is not full yet
    assert guard.update(1, 4) is None
    reason = guard.update(3, 4)  # 7 of 12 > 0.5
    assert reason is not None and "7 of the 12 groups of the last 3 rollouts" in reason
    fresh = SkippedGroupsGuard(max_fraction=0.5, window=3)
    assert [fresh.update(2, 4) for _ in range(5)] == [None] * 5  # exactly half is not more than half


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SkippedGroupsGuard(1.5, 10)
    with pytest.raises(ValueError):
        SkippedGroupsGuard(0.5, 0)
