"""What every remote reward shares: one bounded HTTP exchange per request and a clear final error.

Whatever a server does, one request (one batch for the reward server, one image for a chat judge) gets:

- a total deadline (``timeout``): connecting, sending, the whole answer, every retry and every wait between
  retries together. A server that drips one byte a second is cut at the deadline, not after each read;
- bounded memory: the body is streamed and refused past ``ResponseLimits.max_bytes`` (a larger
  ``Content-Length`` is refused before reading); compressed answers are not accepted, so no decompression bomb;
- retries on urllib3's ``Retry`` schedule (exponential backoff with jitter; a ``Retry-After`` header is honoured)
  for transport failures, a connection closed mid-answer, HTTP 5xx and 429 -- while the deadline allows;
- a prompt stop: callers wait in short slices, and after :func:`request_stop` (the trainer's SIGTERM handler)
  every wait raises :class:`RewardInterrupted` and cancels its requests.

Requests run on one background asyncio loop (httpx), so a deadline or a stop cancels a request in any phase,
including while the headers arrive; the calling thread never blocks on a socket. A server that is down stops
training with a message naming the reward, the server and its last answer; it never turns into silent zeros.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from reward_utils.answer_limits import AnswerTooLarge, ResponseLimits, excerpt
from reward_utils.backend import BackendOptions, from_env, option
from reward_utils.base import RewardError

T = TypeVar("T")
WAIT_SLICE = 0.1
"""Seconds between two checks of the stop flag while a caller waits for a server."""


class TransientError(Exception):
    """A failure worth retrying (connection refused or lost, 5xx, 429, an unparseable VLM answer)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RewardInterrupted(BaseException):
    """A stop was requested (SIGTERM) while a remote reward was awaited; the request was cancelled.

    A ``BaseException``, like ``KeyboardInterrupt``: no ``except Exception`` (``--on_bad_reward skip_group``)
    may turn a stop into a skipped group.
    """


_stop = threading.Event()


def request_stop() -> None:
    """Make every current and future wait for a remote reward raise :class:`RewardInterrupted` (signal-safe)."""
    _stop.set()


def clear_stop() -> None:
    """Allow waits again (a new training run in the same process)."""
    _stop.clear()


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries at most, on urllib3's ``Retry`` schedule, within the request's deadline.

    urllib3 retries the first failure at once and then waits ``backoff * 2**(n-1)`` s before retry ``n``
    (capped at ``max_backoff``), plus a uniform jitter of up to ``jitter`` s (default: ``backoff``); a
    server's ``Retry-After`` lengthens the wait. A wait that would cross the deadline ends the request.
    """

    attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    jitter: float | None = None

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0 or (self.jitter or 0) < 0:
            raise ValueError("RetryPolicy backoff values must be >= 0")

    def schedule(self):
        """A fresh urllib3 ``Retry`` for one request."""
        from urllib3.util.retry import Retry

        return Retry(
            total=self.attempts - 1,
            backoff_factor=self.backoff,
            backoff_max=self.max_backoff,
            backoff_jitter=self.backoff if self.jitter is None else self.jitter,
            respect_retry_after_header=True,
        )

    @staticmethod
    def retry_after(header: str | None) -> float | None:
        """Seconds asked for by a ``Retry-After`` header (seconds or HTTP date); None if absent or invalid."""
        if not header:
            return None
        from urllib3.exceptions import InvalidHeader
        from urllib3.util.retry import Retry

        try:
            return Retry().parse_retry_after(header)
        except InvalidHeader:
            return None

    async def run(self, attempt: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
        """Await ``attempt()`` until it succeeds, retrying :class:`TransientError`, all within ``timeout`` s.

        Other exceptions propagate at once. On failure raise :class:`RewardError` naming ``what`` (reward and
        server), the number of attempts and the last failure.
        """
        from urllib3.exceptions import MaxRetryError

        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        schedule, tries, last = self.schedule(), 0, None
        while True:
            tries += 1
            try:
                async with asyncio.timeout_at(end):
                    return await attempt()
            except TimeoutError:
                previous = f"; previous error: {last}" if last else ""
                raise RewardError(
                    f"{what}: no complete answer within {timeout:g} s (the deadline of one request, retries"
                    f" included; --reward_timeout), attempt {tries}{previous}"
                ) from None
            except TransientError as err:
                last = err
            try:
                schedule = schedule.increment(error=last)
            except MaxRetryError:
                raise RewardError(f"{what}: failed after {tries} attempt(s); last error: {last}") from last
            wait = max(schedule.get_backoff_time(), last.retry_after or 0.0)
            if loop.time() + wait >= end:
                raise RewardError(
                    f"{what}: failed after {tries} attempt(s); waiting {wait:.3g} s for another would cross the"
                    f" {timeout:g} s deadline; last error: {last}"
                ) from last
            await asyncio.sleep(wait)


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop for remote rewards, running in a daemon thread (re-made after a fork)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="remote-rewards", daemon=True).start()
        return _loop


def wait_for(coroutine: Coroutine[Any, Any, T], what: str) -> T:
    """Run ``coroutine`` on the background loop and wait for it in short slices, so a stop ends the wait."""
    future = asyncio.run_coroutine_threadsafe(coroutine, _background_loop())
    while True:
        if _stop.is_set():
            future.cancel()
            raise RewardInterrupted(f"{what}: stop requested while waiting for the server; the request was cancelled")
        done, _ = concurrent.futures.wait([future], timeout=WAIT_SLICE)
        if done:
            return future.result()


@dataclass
class HttpEndpoint:
    """One server URL: pooled keep-alive connections, at most ``max_concurrency`` requests in flight."""

    url: str
    timeout: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_concurrency: int = 4
    limits: ResponseLimits = field(default_factory=ResponseLimits)
    _client: Any = field(default=None, init=False, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.timeout <= 0 or self.max_concurrency < 1:
            raise ValueError("timeout must be > 0 and max_concurrency >= 1")

    def _http(self):
        if self._client is None:  # made on the loop thread, where it is used
            import httpx

            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.max_concurrency),
            )
            self._slots = asyncio.Semaphore(self.max_concurrency)
        return self._client

    async def _exchange(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes, str | None]:
        """One attempt: status, content type, the body read up to the byte bound, and ``Retry-After``."""
        import httpx

        cap = self.limits.max_bytes
        headers = {**headers, "Accept-Encoding": "identity"}
        try:
            async with self._http().stream("POST", self.url, content=body, headers=headers) as response:
                encoding = response.headers.get("Content-Encoding", "identity").lower()
                if encoding != "identity":
                    raise AnswerTooLarge(f"a {encoding!r}-compressed answer (only identity encoding is accepted)")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise AnswerTooLarge(f"Content-Length {declared} > {cap} bytes (--reward_max_response_bytes)")
                chunks, size = [], 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > cap:
                        raise AnswerTooLarge(f"more than {cap} bytes (--reward_max_response_bytes)")
                    chunks.append(chunk)
                content_type = response.headers.get("Content-Type", "")
                return response.status_code, content_type, b"".join(chunks), response.headers.get("Retry-After")
        except httpx.TimeoutException as err:
            raise TransientError(f"no answer within {self.timeout:g} s ({type(err).__name__})") from err
        except httpx.ConnectError as err:
            raise TransientError(f"cannot connect: {err}") from err
        except httpx.RemoteProtocolError as err:
            raise TransientError(f"connection closed mid-answer: {err}") from err
        except httpx.TransportError as err:
            raise TransientError(f"connection failed: {type(err).__name__}: {err}") from err

    async def post(self, body: bytes, headers: dict[str, str], what: str) -> tuple[str, bytes]:
        """``(content type, body)`` of a 200 answer, retried and bounded; ``what`` names the reward."""
        where = f"{what}: server {self.url}"

        async def attempt() -> tuple[str, bytes]:
            try:
                status, content_type, content, retry_after = await self._exchange(body, headers)
            except AnswerTooLarge as err:
                raise RewardError(f"{where} sent an answer over the limit: {err}") from None
            if status >= 500 or status == 429:
                raise TransientError(f"HTTP {status}: {excerpt(content)}", self.retry.retry_after(retry_after))
            if status != 200:
                raise RewardError(f"{where} answered HTTP {status}: {excerpt(content)}")
            return content_type, content

        self._http()
        async with self._slots:
            return await self.retry.run(attempt, self.timeout, where)

    def post_all(self, requests: Sequence[tuple[bytes, dict[str, str]]], what: str) -> list[tuple[str, bytes]]:
        """Answers to all ``(body, headers)`` requests, in order; the first failure cancels the others."""

        async def everything() -> list[tuple[str, bytes]]:
            tasks = [asyncio.ensure_future(self.post(body, headers, what)) for body, headers in requests]
            try:
                return list(await asyncio.gather(*tasks))
            finally:
                for task in tasks:
                    task.cancel()

        return wait_for(everything(), f"{what}: server {self.url}")


API_KEY_ENV = "REWARD_API_KEY"


@dataclass
class RemoteOptions(BackendOptions):
    """The options every remote reward shares (deadline, retries, answer limits, API key); the options of a
    backend that asks a server derive from this class."""

    ENV_VARS: ClassVar[dict[str, str]] = {"reward_api_key": API_KEY_ENV}

    reward_timeout: float = option(
        120.0, "total deadline in seconds of one remote request: the whole answer, retries and waits included"
    )
    reward_retries: int = option(
        3, "attempts per remote request within its deadline (connection lost, 5xx, 429, answer cut short)"
    )
    reward_backoff: float = option(
        1.0, "urllib3 backoff factor: waits 0, 2x, 4x ... s between attempts, plus up to x s of jitter"
    )
    reward_max_response_bytes: int = option(8 * 2**20, "largest remote answer body accepted, in bytes")
    reward_max_depth: int = option(32, "deepest nesting of lists/dicts accepted in a remote answer")
    reward_max_items: int = option(1_000_000, "most list/dict elements accepted in one remote answer, in all")
    reward_max_concurrency: int = option(8, "remote requests in flight per reward")
    reward_api_key: str | None = option(
        from_env(API_KEY_ENV, None), f"API key for remote rewards (prefer the env var {API_KEY_ENV})", repr=False
    )

    def client_settings(self) -> dict[str, Any]:
        """The keyword arguments every remote client takes (chat judges and the reward server alike)."""
        return {
            "api_key": self.reward_api_key,
            "timeout": self.reward_timeout,
            "retry": RetryPolicy(attempts=self.reward_retries, backoff=self.reward_backoff),
            "max_concurrency": self.reward_max_concurrency,
            "limits": ResponseLimits(self.reward_max_response_bytes, self.reward_max_depth, self.reward_max_items),
        }
