"""Stops a run whose reward keeps failing under ``--on_bad_reward skip_group``.

Skipping a group is meant for the odd prompt a reward cannot score. When the reward itself is broken (a server
that is down, a model that returns NaN), skipping every group would train on nothing and still end with exit
code 0 and a "final" model equal to the start; this guard turns that into an error naming the reward's last
failure.
"""

from __future__ import annotations

from collections import deque


class SkippedGroupsGuard:
    """Stop when every group of one rollout was skipped, or when more than ``max_fraction`` of the groups of
    the last ``window`` rollouts were (judged only once ``window`` rollouts have been seen)."""

    def __init__(self, max_fraction: float, window: int):
        if not 0 <= max_fraction <= 1 or window < 1:
            raise ValueError(f"need 0 <= max_fraction <= 1 and window >= 1, got {max_fraction}, {window}")
        self.max_fraction, self.window = max_fraction, window
        self.history: deque[tuple[int, int]] = deque(maxlen=window)
        self.last_error = ""  # this process's latest reward failure, named when the run stops

    def note(self, errors: list[str]) -> None:
        """Remember this process's latest reward failure (other processes report theirs in their logs)."""
        if errors:
            self.last_error = errors[-1]

    def check(self, skipped: int, groups: int, where: str) -> None:
        """Record one rollout (counts over all processes); raise, naming the last failure, if the run must stop."""
        reason = self.update(skipped, groups)
        if reason:
            last = self.last_error or "(raised on another process; see its log)"
            raise RuntimeError(
                f"--on_bad_reward skip_group: stopping at {where}: {reason}; last reward error: {last}"
            )

    def update(self, skipped: int, groups: int) -> str | None:
        """Record one rollout; return why the run must stop, or None."""
        self.history.append((skipped, groups))
        if groups and skipped == groups:
            return f"every group of the rollout ({groups}) was skipped because its reward failed"
        total_skipped = sum(s for s, _ in self.history)
        total = sum(g for _, g in self.history)
        if len(self.history) == self.window and total and total_skipped / total > self.max_fraction:
            return (
                f"{total_skipped} of the {total} groups of the last {self.window} rollouts were skipped because"
                f" their reward failed (more than --skip_group_max_fraction {self.max_fraction:g})"
            )
        return None
