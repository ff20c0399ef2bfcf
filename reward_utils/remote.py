"""What every remote reward shares: bounded retries with exponential backoff and a clear final error.

A reward server that is down must stop training with a message naming the server and its last answer, after
a bounded time; it must never turn into silent zeros (upstream retried 1000 times, or scored 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reward_utils.base import RewardError

T = TypeVar("T")


class TransientError(Exception):
    """A failure worth retrying (connection refused, timeout, 5xx, 429, an unparseable VLM answer)."""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in total; before try k (k >= 2) sleep ``min(backoff * 2**(k-2), max_backoff)`` s."""

    attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy backoff values must be >= 0")

    def delay(self, attempt: int) -> float:
        """Sleep before ``attempt`` (1-based); zero before the first."""
        return 0.0 if attempt <= 1 else min(self.backoff * 2 ** (attempt - 2), self.max_backoff)

    def run(self, call: Callable[[], T], what: str) -> T:
        """Run ``call``; retry on :class:`TransientError`; other exceptions propagate at once.

        After the last attempt raise :class:`RewardError` naming ``what`` (reward + server address) and the
        last failure, so the log says which server said what.
        """
        last: TransientError | None = None
        for attempt in range(1, self.attempts + 1):
            time.sleep(self.delay(attempt))
            try:
                return call()
            except TransientError as err:
                last = err
        raise RewardError(f"{what}: failed after {self.attempts} attempt(s); last error: {last}") from last


def short(text: str | bytes, limit: int = 300) -> str:
    """A bounded, printable excerpt of a server answer for error messages."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
