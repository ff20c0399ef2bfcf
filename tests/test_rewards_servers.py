"""deqa / geneval clients against a real HTTP server on 127.0.0.1 that speaks the reward-server protocol
(pickled or JSON request with JPEG images; pickled or JSON answer), plus the restricted unpickler. Hostile
servers and servers in training are in test_rewards_hostile_servers.py."""

from __future__ import annotations

import json
import os
import pickle
import time
from collections import OrderedDict

import numpy as np
import pytest

from reward_utils.base import RewardError
from reward_utils.remote import RetryPolicy
from reward_utils.reward_server import DeQAReward, GenEvalReward, RewardServerClient
from reward_utils.safe_pickle import UnsafePickleError, safe_loads
from tests.helpers import ScriptedServer, dead_url, decode_jpeg_means, deqa_handler, flat_images, server_client

LEVELS = [0.1, 0.3, 0.5, 0.7, 0.9]


@pytest.mark.parametrize("wire_format", ["pickle", "json"])
def test_deqa_scores_in_order_across_concurrent_batches(wire_format):
    with ScriptedServer(deqa_handler) as server:
        reward = DeQAReward(server_client(server.url, wire_format=wire_format))
        scores = reward(flat_images(LEVELS), ["p"] * 5)
    np.testing.assert_allclose(scores.numpy(), LEVELS, atol=0.01)  # JPEG of a flat image is ~lossless
    assert server.requests == 3  # batches of 2, 2, 1


def test_connection_is_reused_between_requests():
    with ScriptedServer(deqa_handler) as server:
        reward = DeQAReward(server_client(server.url, max_concurrency=1))
        reward(flat_images(LEVELS), ["p"] * 5)
        reward(flat_images(LEVELS), ["p"] * 5)
    assert server.requests == 6
    assert len(server.ports) == 1, f"one kept-alive connection expected, saw client ports {server.ports}"


def test_concurrency_is_bounded():
    def slow(server, path, headers, body):
        time.sleep(0.2)
        return deqa_handler(server, path, headers, body)

    with ScriptedServer(slow) as server:
        DeQAReward(server_client(server.url, batch_size=1, max_concurrency=2))(flat_images(LEVELS), ["p"] * 5)
    assert server.peak_in_flight == 2


def test_json_answer_accepted_from_pickle_client():
    def json_answer(server, path, headers, body):
        data = pickle.loads(body)
        return 200, "application/json", json.dumps({"outputs": decode_jpeg_means(data["images"])}).encode()

    with ScriptedServer(json_answer) as server:
        scores = DeQAReward(server_client(server.url))(flat_images([0.2, 0.8]), ["a", "b"])
    np.testing.assert_allclose(scores.numpy(), [0.2, 0.8], atol=0.01)


def test_geneval_sends_metadata_and_reads_the_chosen_key():
    seen = []

    def geneval(server, path, headers, body):
        data = pickle.loads(body)
        seen.append((data["only_strict"], [m["tag"] for m in data["meta_datas"]]))
        n = len(data["images"])
        answer = {
            "scores": [0.5] * n,
            "rewards": [float(len(m["tag"])) for m in data["meta_datas"]],
            "strict_rewards": [0.0] * n,
            "group_rewards": {},
            "group_strict_rewards": {},
        }
        return 200, "application/octet-stream", pickle.dumps(answer)

    tags = ["counting", "colors", "position"]
    metadata = [{"geneval": {"tag": t, "include": [{"class": "cat", "count": 1}], "prompt": t}} for t in tags]
    with ScriptedServer(geneval) as server:
        rewards = GenEvalReward(server_client(server.url), only_strict=True)(flat_images([0.5] * 3), tags, metadata)
        strict = GenEvalReward(server_client(server.url), score_key="strict_rewards")(
            flat_images([0.5] * 3), tags, metadata
        )
    assert rewards.tolist() == [8.0, 6.0, 8.0]
    assert strict.tolist() == [0.0, 0.0, 0.0]
    assert sorted(seen[:2]) == [(True, ["counting", "colors"]), (True, ["position"])]


def test_geneval_without_metadata_names_the_prompt():
    reward = GenEvalReward(server_client(dead_url()))
    with pytest.raises(RewardError, match=r"metadata\[1\]\['geneval'\].*prompt #1 'two cats'"):
        reward(flat_images([0.5, 0.5]), ["a dog", "two cats"], [{"geneval": {"tag": "x"}}, {}])


def test_server_errors_then_success_is_retried():
    def flaky(server, path, headers, body):
        if server.requests <= 2:
            return 500, "text/plain", b"Traceback: CUDA out of memory"
        return deqa_handler(server, path, headers, body)

    with ScriptedServer(flaky) as server:
        scores = DeQAReward(server_client(server.url, batch_size=8))(flat_images([0.4]), ["p"])
    assert server.requests == 3
    assert abs(scores.item() - 0.4) < 0.01


def test_persistent_500_gives_clear_error_after_last_retry():
    def broken(server, path, headers, body):
        return 500, "text/plain", b"Traceback: CUDA out of memory"

    with ScriptedServer(broken) as server, pytest.raises(RewardError) as info:
        DeQAReward(server_client(server.url, batch_size=8))(flat_images([0.4]), ["p"])
    message = str(info.value)
    assert (
        server.url in message
        and "3 attempt" in message
        and "HTTP 500" in message
        and "CUDA out of memory" in message
    )
    assert server.requests == 3


def test_client_error_is_not_retried():
    with (
        ScriptedServer(lambda s, p, h, b: (404, "text/plain", b"no such route")) as server,
        pytest.raises(RewardError, match="HTTP 404: no such route"),
    ):
        DeQAReward(server_client(server.url, batch_size=8))(flat_images([0.4]), ["p"])
    assert server.requests == 1


def test_slow_server_times_out():
    def slow(server, path, headers, body):
        time.sleep(1.5)
        return deqa_handler(server, path, headers, body)

    with ScriptedServer(slow) as server:
        start = time.monotonic()
        with pytest.raises(RewardError, match=r"no complete answer within 0.3 s.*attempt 1"):
            DeQAReward(server_client(server.url, timeout=0.3, retry=RetryPolicy(2, 0.05)))(flat_images([0.4]), ["p"])
        elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"a 0.3 s deadline took {elapsed:.2f} s"


def test_dead_server_fails_fast_with_its_address():
    url = dead_url()
    start = time.monotonic()
    with pytest.raises(RewardError, match=rf"deqa.*{url}.*3 attempt.*cannot connect"):
        DeQAReward(server_client(url))(flat_images([0.4]), ["p"])
    assert time.monotonic() - start < 3.0


def test_garbage_answer_is_rejected():
    with (
        ScriptedServer(lambda s, p, h, b: (200, "text/html", b"<html>502 Bad Gateway</html>")) as server,
        pytest.raises(RewardError, match="unusable answer.*neither JSON nor a pickle.*Bad Gateway"),
    ):
        DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"])


def test_wrong_shaped_answer_is_rejected():
    def short_answer(server, path, headers, body):
        return 200, "application/octet-stream", pickle.dumps({"outputs": [0.5]})

    with (
        ScriptedServer(short_answer) as server,
        pytest.raises(RewardError, match="expected 2 values under 'outputs'"),
    ):
        DeQAReward(server_client(server.url))(flat_images([0.4, 0.6]), ["p", "q"])


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_answer_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"outputs": [_Evil(str(marker))]})
    with (
        ScriptedServer(lambda s, p, h, b: (200, "application/octet-stream", payload)) as server,
        pytest.raises(RewardError, match=r"refusing to unpickle global (posix|nt)\.system"),
    ):
        DeQAReward(server_client(server.url))(flat_images([0.4]), ["p"])
    assert not marker.exists()
    pickle.loads(payload)  # the same bytes really do run code when unpickled naively
    assert marker.exists()


def test_safe_loads_allows_plain_data_only():
    data = {
        "outputs": [0.5, 1, True, None, "x", b"y"],
        "numpy": [np.float32(0.25), np.float64(0.5), np.int64(3)],
        "set": {1, 2},
        "ordered": OrderedDict(a=1),
        "nested": ({"k": [1.5]},),
    }
    for protocol in (2, 4, 5):
        assert safe_loads(pickle.dumps(data, protocol=protocol)) == data
    for forbidden in (np.array([1.0, 2.0]), eval, np.array(["a"], dtype=object)[0:1]):
        with pytest.raises(UnsafePickleError):
            safe_loads(pickle.dumps({"outputs": forbidden}))
    with pytest.raises(UnsafePickleError, match="numpy scalar|numpy dtype"):
        safe_loads(pickle.dumps(np.str_("text")))


def test_client_repr_hides_api_key():
    secret = "sk-test-do-not-log"
    assert secret not in repr(RewardServerClient("http://127.0.0.1:1", api_key=secret))
