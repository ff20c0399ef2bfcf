"""Reward servers that misbehave on purpose, at the byte level on 127.0.0.1 (byte drip in headers and body, a
1 GiB ``bytearray`` pickle, oversized, deeply nested or boolean answers, a connection closed mid-answer,
``Retry-After``, a stop request), and remote rewards inside training (``skip_group``, SIGTERM)."""

from __future__ import annotations

import contextlib
import os
import pickle
import time

import numpy as np
import pytest
import torch

from reward_utils.base import RewardError
from reward_utils.remote import RetryPolicy
from reward_utils.reward_server import DeQAReward
from tests.helpers import ScriptedServer, deqa_handler, flat_images, server_client


class RawServer:
    """HTTP/1.1 on 127.0.0.1 at the byte level: reads each request (headers + Content-Length body) and lets
    ``respond(server, sock, request_number)`` write whatever bytes it likes, at whatever pace, then closes."""

    def __init__(self, respond):
        import socketserver
        import threading

        self.respond, self.requests, self.lock = respond, 0, threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                head = b""
                while b"\r\n\r\n" not in head:
                    data = self.request.recv(65536)
                    if not data:
                        return
                    head += data
                header, _, body = head.partition(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in header.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")), 0,
                )
                while len(body) < length:
                    body += self.request.recv(65536)
                with outer.lock:
                    outer.requests += 1
                    number = outer.requests
                with contextlib.suppress(OSError):  # the client gave up: what the deadline tests want
                    outer.respond(outer, self.request, number)

        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.tcp.daemon_threads = True
        self.thread = threading.Thread(target=self.tcp.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.tcp.server_address[1]}"

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.tcp.shutdown()
        self.tcp.server_close()


def http_answer(body: bytes, content_type: str = "application/octet-stream", extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def drip(data: bytes, every: float, stop_after: float = 20.0):
    """A responder that sends ``data`` one byte every ``every`` seconds (for at most ``stop_after`` s)."""

    def respond(server, sock, number):
        end = time.monotonic() + stop_after
        for byte in data:
            if time.monotonic() > end:
                return
            sock.sendall(bytes([byte]))
            time.sleep(every)

    return respond


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_drip_server_is_cut_at_the_total_deadline(phase):
    answer = http_answer(pickle.dumps({"outputs": [0.5]}))
    head_size = answer.index(b"\r\n\r\n") + 4

    def respond(server, sock, number):
        if phase == "body":
            sock.sendall(answer[:head_size])
        drip(answer if phase == "headers" else answer[head_size:], every=0.5)(server, sock, number)

    with RawServer(respond) as server:
        reward = DeQAReward(server_client(server.url, timeout=1.5, retry=RetryPolicy(3, 0.05)))
        start = time.monotonic()
        with pytest.raises(RewardError) as info:
            reward(flat_images([0.4]), ["p"])
        elapsed = time.monotonic() - start
    # one byte every 0.5 s never trips a per-read timeout; the deadline covers the whole request
    assert 1.4 < elapsed < 2.2, f"a 1.5 s deadline ended after {elapsed:.2f} s"
    message = str(info.value)
    assert "'deqa'" in message and server.url in message and "no complete answer within 1.5 s" in message


def _peak_traced_bytes(call) -> tuple[int, BaseException | None]:
    """Peak Python allocation during ``call``, after one ordinary request has done every import."""
    import tracemalloc

    with ScriptedServer(deqa_handler) as server:
        DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"])
    tracemalloc.start()
    try:
        call()
        caught = None
    except BaseException as err:  # noqa: BLE001 -- returned to the test, which asserts on it
        caught = err
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, caught


class _HugeBytearray:
    def __reduce__(self):
        return (bytearray, (2**30,))


def test_huge_bytearray_pickle_is_refused_without_allocating():
    payload = pickle.dumps({"outputs": [_HugeBytearray()]})
    assert len(payload) < 64  # a few bytes that ask for 1 GiB
    with ScriptedServer(lambda s, p, h, b: (200, "application/octet-stream", payload)) as server:
        reward = DeQAReward(server_client(server.url))
        peak, error = _peak_traced_bytes(lambda: reward(flat_images([0.4]), ["p"]))
    assert isinstance(error, RewardError), error
    message = str(error)
    assert "refusing bytearray(int)" in message and "'deqa'" in message and server.url in message
    assert len(message) < 1000
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB while refusing the answer"


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_answer_is_refused_while_streaming(chunked):
    body = pickle.dumps({"outputs": [0.5], "padding": b"x" * (4 * 2**20)})
    whole = http_answer(body)  # built before memory is traced: the server shares this process

    def respond(server, sock, number):
        if not chunked:
            sock.sendall(whole)
            return
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 65536):
            piece = body[start : start + 65536]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")

    from reward_utils.answer_limits import ResponseLimits

    with RawServer(respond) as server:
        reward = DeQAReward(server_client(server.url, limits=ResponseLimits(max_bytes=2**20)))
        peak, error = _peak_traced_bytes(lambda: reward(flat_images([0.4]), ["p"]))
    assert isinstance(error, RewardError), error
    assert "over the limit" in str(error) and str(2**20) in str(error) and server.url in str(error)
    assert peak < 3 * 2**20, f"peak {peak / 2**20:.1f} MiB for a 1 MiB limit"


@pytest.mark.parametrize("wire", ["pickle", "json"])
def test_deeply_nested_answer_is_a_clear_error(wire):
    if wire == "pickle":
        nested: list = [0.5]
        for _ in range(200):
            nested = [nested]
        answer = (200, "application/octet-stream", pickle.dumps({"outputs": nested}))
    else:
        answer = (200, "application/json", b'{"outputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with ScriptedServer(lambda s, p, h, b: answer) as server, pytest.raises(RewardError) as info:
        DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"])
    message = str(info.value)
    assert "nested deeper than 32 levels" in message and "'deqa'" in message and server.url in message
    assert len(message) < 1000


def test_boolean_scores_are_refused():
    answer = (200, "application/octet-stream", pickle.dumps({"outputs": [True, np.bool_(False)]}))
    with ScriptedServer(lambda s, p, h, b: answer) as server, pytest.raises(RewardError) as info:
        DeQAReward(server_client(server.url))(flat_images([0.4, 0.6]), ["p", "q"])
    message = str(info.value)
    assert "value #0 under 'outputs' is True (bool), not a number" in message
    assert "'deqa'" in message and server.url in message


def test_connection_closed_mid_answer_is_retried_then_reported():
    full = http_answer(pickle.dumps({"outputs": [0.25]}))

    def cut(server, sock, number):
        sock.sendall(full[: len(full) - 5])  # headers promise more than is sent, then the server hangs up

    with RawServer(cut) as server, pytest.raises(RewardError) as info:
        DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"])
    message = str(info.value)
    assert server.requests == 3 and "3 attempt" in message and "connection closed mid-answer" in message
    assert "'deqa'" in message and server.url in message

    def cut_once(server, sock, number):
        sock.sendall(full if number > 1 else full[:-5])

    with RawServer(cut_once) as server:
        assert DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"]).tolist() == [0.25]
    assert server.requests == 2


def test_retry_after_is_honoured_within_the_deadline():
    def respond(server, sock, number):
        if number == 1:
            sock.sendall(b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy")
        else:
            sock.sendall(http_answer(pickle.dumps({"outputs": [0.75]})))

    with RawServer(respond) as server:
        start = time.monotonic()
        assert DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"]).tolist() == [0.75]
        assert time.monotonic() - start >= 1.0  # urllib3 would retry a first failure at once
    with RawServer(respond) as server, pytest.raises(RewardError, match="would cross the 0.5 s deadline.*HTTP 503"):
        DeQAReward(server_client(server.url, timeout=0.5))(flat_images([0.4]), ["p"])


def test_error_messages_quote_only_a_short_escaped_excerpt():
    garbage = b"\x1b[31mHACKED\x1b[0m" + b"A" * 100_000
    with (
        ScriptedServer(lambda s, p, h, b: (200, "text/html", garbage)) as server,
        pytest.raises(RewardError) as info,
    ):
        DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"])
    message = str(info.value)
    assert len(message) < 1000 and "\x1b" not in message and "HACKED" in message


def test_stop_request_interrupts_a_wait_at_once():
    import threading

    from reward_utils.remote import RewardInterrupted, clear_stop, request_stop

    with RawServer(drip(http_answer(b"{}"), every=0.5)) as server:
        reward = DeQAReward(server_client(server.url, timeout=30.0))
        threading.Timer(0.5, request_stop).start()
        start = time.monotonic()
        try:
            with pytest.raises(RewardInterrupted, match=rf"'deqa': server {server.url}: stop requested"):
                reward(flat_images([0.4]), ["p"])
        finally:
            clear_stop()
        assert time.monotonic() - start < 1.5
    with ScriptedServer(deqa_handler) as server:  # after clear_stop, rewards are awaited again
        assert abs(DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"]).item() - 0.4) < 0.01


# ----------------------------------------------------------------------------------------------- servers in training


def _deqa_trainer(tmp_path, url: str, **overrides):
    from img_gen_grpo_rewards import RewardOptions, build_reward
    from tests.grpo_fixtures import make_trainer

    options = RewardOptions(deqa_url=url, reward_retries=2, reward_backoff=0.05, **overrides.pop("options", {}))
    return make_trainer(tmp_path, reward=build_reward(["deqa"], options=options, device="cpu"), **overrides)


def test_skip_group_with_an_always_failing_server_stops_naming_the_reward(tmp_path):
    from tests.grpo_fixtures import flat_params

    broken = (500, "text/plain", b"Traceback: CUDA out of memory")
    with ScriptedServer(lambda s, p, h, b: broken) as server:
        trainer = _deqa_trainer(tmp_path, server.url, on_bad_reward="skip_group", max_steps=3)
        start = flat_params(trainer).clone()
        with pytest.raises(RuntimeError) as info:
            trainer.train()
    message = str(info.value)
    assert "every group of the rollout (2) was skipped" in message
    assert "'deqa'" in message and server.url in message and "HTTP 500" in message and "CUDA out of memory" in message
    assert trainer.step == 0 and torch.equal(flat_params(trainer), start)
    assert not (tmp_path / "gpt_final.pt").exists()


def test_sigterm_ends_a_run_waiting_on_a_reward(tmp_path):
    import signal
    import threading

    from grpo_trainer import INTERRUPTED_EXIT_CODE, TrainingInterrupted

    with RawServer(drip(http_answer(b"{}"), every=0.5)) as server:
        trainer = _deqa_trainer(tmp_path, server.url, options={"reward_timeout": 60.0})
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        start = time.monotonic()
        with pytest.raises(TrainingInterrupted) as info:
            trainer.train()
        elapsed = time.monotonic() - start
    assert elapsed < 5.0, f"the run waited {elapsed:.1f} s after SIGTERM for a 60 s deadline"
    assert info.value.code == INTERRUPTED_EXIT_CODE
    assert (tmp_path / "checkpoint-0" / "trainer_state.json").is_file()  # resumable: nothing was applied yet
    assert not (tmp_path / "gpt_final.pt").exists()
    assert signal.getsignal(signal.SIGTERM) is not trainer._on_sigterm  # handler restored
    with ScriptedServer(deqa_handler) as server:  # and rewards may be awaited again after the run
        assert abs(DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"]).item() - 0.4) < 0.01
