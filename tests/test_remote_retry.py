"""The remote rewards' retry schedule is urllib3's ``Retry``: first retry at once, then exponential backoff with
jitter, capped, within the request's total deadline. (Servers, ``Retry-After`` and deadlines end to end are in
tests/test_rewards_hostile_servers.py.)"""

import asyncio
import time

import pytest

from reward_utils.base import RewardError
from reward_utils.remote import RetryPolicy, TransientError


def _waits(policy: RetryPolicy) -> list[float]:
    schedule, waits = policy.schedule(), []
    for _ in range(policy.attempts - 1):
        schedule = schedule.increment(error=TransientError("HTTP 500"))
        waits.append(schedule.get_backoff_time())
    return waits


def test_backoff_doubles_with_bounded_jitter_and_a_cap():
    policy = RetryPolicy(attempts=6, backoff=0.1, max_backoff=0.5, jitter=0.05)
    runs = [_waits(policy) for _ in range(50)]
    for waits in runs:
        assert waits[0] == 0.0
        for wait, base in zip(waits[1:], (0.2, 0.4, 0.5, 0.5), strict=True):  # backoff * 2**(n-1), capped
            assert base <= wait <= min(base + 0.05, 0.5)
    assert len({round(waits[1], 9) for waits in runs}) > 1, "no jitter: concurrent clients would retry in step"
    assert _waits(RetryPolicy(attempts=3, backoff=0.1, jitter=0.0)) == [0.0, 0.2]


def test_retry_after_header_in_seconds_or_http_date():
    assert RetryPolicy.retry_after("2") == 2.0
    assert RetryPolicy.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert RetryPolicy.retry_after("soon") is None and RetryPolicy.retry_after(None) is None


def test_run_retries_transient_errors_then_gives_up_naming_the_last():
    calls = []

    async def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise TransientError(f"HTTP 503 #{len(calls)}")
        return "ok"

    policy = RetryPolicy(attempts=3, backoff=0.01, jitter=0.0)
    assert asyncio.run(policy.run(flaky, timeout=5.0, what="reward 'x': server s")) == "ok" and len(calls) == 3

    async def down():
        raise TransientError("cannot connect")

    with pytest.raises(RewardError, match=r"reward 'x': server s: failed after 3 attempt\(s\); last error: cannot"):
        asyncio.run(policy.run(down, timeout=5.0, what="reward 'x': server s"))


def test_a_wait_past_the_deadline_ends_the_request_at_once():
    async def busy():
        raise TransientError("HTTP 429", retry_after=30.0)

    start = time.monotonic()
    with pytest.raises(RewardError, match="would cross the 1 s deadline"):
        asyncio.run(RetryPolicy(attempts=5, backoff=0.01).run(busy, timeout=1.0, what="reward 'x'"))
    assert time.monotonic() - start < 0.5
