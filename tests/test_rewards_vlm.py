"""VLM judges: answer parsing on real-looking outputs and the OpenAI-compatible client against a real HTTP server
on 127.0.0.1 speaking ``/v1/chat/completions``. The in-process Qwen2.5-VL judge is in test_rewards_vlm_local.py."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

import img_gen_grpo_rewards as rewards
from reward_utils.base import RewardError
from reward_utils.chat_client import ChatClient
from reward_utils.remote import RetryPolicy
from reward_utils.vlm_answers import AnswerError, parse_final_score, parse_json_score
from reward_utils.vlm_judge import ServerJudge
from tests.helpers import ScriptedServer, dead_url, flat_images

# ----------------------------------------------------------------------------------------------- parsing

QWEN_STYLE = """```json
{
"description": "The image shows a golden retriever sitting on grass; its left ear is partly missing.",
"score": 3.5,
"explanation": "Matches the prompt (1 score). One ear is incomplete (0.5 score). Looks real (1 score). Total 3.5."
}
```"""


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (QWEN_STYLE, 3.5),
        ('```json\n{\n    "score": 0,\n}\n```', 0.0),  # the trailing comma of the prompt's own example
        ('Here is my evaluation: {"description": "a cat", "score": "4/5"} Hope this helps!', 4.0),
        ("{'score': 2.5}", 2.5),
        ('{"description": "braces } and { inside", "score": 1}', 1.0),
        ('{"scores": {"realism": 1}, "score": 3}', 3.0),
        ('```json\n{"description": "A dog {odd}", "score": 4.5, "explanation": "The dog', 4.5),  # cut off
        ('```\n{"score": 2}\n```\nThe score is 2.', 2.0),
        ("\u201cscore\u201d: 1.5", 1.5),
        # broken JSON (single quotes, trailing comma) plus a misleading number in prose: repair must win
        ("{'description': 'a dog', 'score': 2.5,}\nNote: the maximum score: 5", 2.5),
    ],
)
def test_parse_json_score_on_real_looking_answers(answer, expected):
    assert parse_json_score(answer, "score", 0.0, 5.0) == expected


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("I'm sorry, I can't evaluate this image.", "no 'score' number"),
        ('{"score": 7}', r"outside \[0.0, 5.0\]"),
        ('{"score": "high"}', "no 'score' number"),
        ("", "no 'score' number"),
    ],
)
def test_parse_json_score_rejects_answers_without_a_usable_score(answer, message):
    with pytest.raises(AnswerError, match=message):
        parse_json_score(answer, "score", 0.0, 5.0)


def test_parse_final_score():
    assert parse_final_score("The caption matches well.\nFinal Score: 4") == 4.0
    assert parse_final_score("Alignment good. Final Score: **3.5**") == 3.5
    assert parse_final_score("Final Score: 2\n...on reflection, Final Score: 3") == 3.0
    with pytest.raises(AnswerError, match="outside"):
        parse_final_score("Final Score: 0")
    with pytest.raises(AnswerError, match="no 'Final Score"):
        parse_final_score("The image is nice. Score 4/5")


# ----------------------------------------------------------------------------------------------- chat server


def completion(text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": "judge",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def parse_request(body: bytes) -> tuple[dict, str, str, float]:
    """(request, question text, image mime, mean grey level of the image)."""
    request = json.loads(body)
    content = request["messages"][0]["content"]
    url = next(c["image_url"]["url"] for c in content if c["type"] == "image_url")
    text = next(c["text"] for c in content if c["type"] == "text")
    mime, data = url.removeprefix("data:").split(";base64,")
    level = float(np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))).mean() / 255)
    return request, text, mime, level


def grey_judge(server, path, headers, body):
    """Answers score = 5 x grey level, the way Qwen formats it."""
    request, text, mime, level = parse_request(body)
    server.seen.append((path, headers.get("Authorization"), request, text, mime))
    return (
        200,
        "application/json",
        completion(f'```json\n{{"description": "grey", "score": {5 * level:.3f}}}\n```'),
    )


def server_options(url: str, **kw) -> rewards.RewardOptions:
    defaults = dict(
        qwenvl_mode="server",
        qwenvl_url=f"{url}/v1",
        unifiedreward_url=f"{url}/v1",
        reward_timeout=5.0,
        reward_retries=3,
        reward_backoff=0.05,
        reward_api_key="sk-secret-test-key",
    )
    return rewards.RewardOptions(**{**defaults, **kw})


def scripted(handler) -> ScriptedServer:
    server = ScriptedServer(handler)
    server.seen = []
    return server


def test_qwen_server_reward_end_to_end():
    with scripted(grey_judge) as server:
        composer = rewards.build_reward(["qwenvl_3b_text", "qwenvl_3b"], options=server_options(server.url))
        images = flat_images([0.2, 0.6])
        np.testing.assert_allclose(
            composer.functions["qwenvl_3b_text"](images, ["a red car", "two dogs"]).numpy(),
            [0.25, 0.75],
            atol=0.02,
        )
        np.testing.assert_allclose(
            composer.functions["qwenvl_3b"](images, [207, 1]).numpy(), [0.25, 0.75], atol=0.02
        )
    path, auth, request, text, mime = server.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-secret-test-key" and mime == "image/jpeg"
    assert request["model"] == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert request["temperature"] == 0.6 and request["top_k"] == 10
    texts = {seen[3] for seen in server.seen}
    assert any('"a red car"' in t for t in texts) and any('"a photo of golden retriever"' in t for t in texts)
    assert composer.functions["qwenvl_3b"].judge is composer.functions["qwenvl_3b_text"].judge  # one client


def test_fake_and_weird_rewards_use_prompt_free_questions():
    def answer(server, path, headers, body):
        _, text, _, _ = parse_request(body)
        server.seen.append(text)
        return (
            200,
            "application/json",
            completion('{"score": 1}' if "AI-generated" in text else '{"score": 0}'),
        )

    with scripted(answer) as server:
        composer = rewards.build_reward(["qwenvl_fake", "qwenvl_weird"], options=server_options(server.url))
        _, values = composer(flat_images([0.5]), ["whatever caption"])
    assert values["qwenvl_fake"].item() == 0.25 and values["qwenvl_weird"].item() == 0.0
    assert not any("whatever caption" in t for t in server.seen)


def test_unparseable_answer_is_asked_again_then_fails_clearly():
    def flaky_judge(server, path, headers, body):
        _, text, _, level = parse_request(body)
        server.seen.append(level)
        if level > 0.5 and len(server.seen) <= 2:  # the bright image first gets a refusal
            return 200, "application/json", completion("I cannot rate images of this kind.")
        return 200, "application/json", completion(f'{{"score": {5 * level:.3f}}}')

    with scripted(flaky_judge) as server:
        reward = rewards.build_reward(["qwenvl_3b_text"], options=server_options(server.url))
        values = reward.functions["qwenvl_3b_text"](flat_images([0.2, 0.8]), ["a", "b"])
        assert server.requests == 3  # both images once, only the refused one again
        np.testing.assert_allclose(values.numpy(), [0.25, 1.0], atol=0.02)

    def refusing(server, path, headers, body):
        return 200, "application/json", completion("I cannot rate images of this kind.")

    with scripted(refusing) as server:
        reward = rewards.build_reward(["qwenvl_3b_text"], options=server_options(server.url, vlm_attempts=2))
        with pytest.raises(RewardError, match=r"qwenvl_3b_text.*prompt #0 'a cat'.*2 attempt.*I cannot rate"):
            reward(flat_images([0.5]), ["a cat"])
        assert server.requests == 2


def test_unifiedreward_final_score_over_png():
    def unified(server, path, headers, body):
        request, text, mime, level = parse_request(body)
        server.seen.append((mime, text, request))
        return 200, "application/json", completion(f"Good alignment.\nFinal Score: {1 + 4 * level:.2f}")

    with scripted(unified) as server:
        reward = rewards.build_reward(["unifiedreward"], options=server_options(server.url))
        values = reward(flat_images([0.0, 1.0]), ["a cat on a mat", "a dog"])[1]["unifiedreward"]
    np.testing.assert_allclose(values.numpy(), [0.2, 1.0], atol=0.01)
    mime, text, request = server.seen[0]
    assert mime == "image/png" and "Final Score" in text and request["model"] == "UnifiedReward-7b-v1.5"


def test_chat_server_errors_retries_timeouts_and_dead_server():
    client_kw = {"timeout": 5.0, "retry": RetryPolicy(3, 0.05)}

    def flaky(server, path, headers, body):
        if server.requests <= 2:
            return 503, "application/json", b'{"error": "model loading"}'
        return grey_judge(server, path, headers, body)

    with scripted(flaky) as server:
        client = ChatClient(f"{server.url}/v1", "judge", api_key="sk-secret-test-key", **client_kw)
        answer = ServerJudge(client).answer(flat_images([0.4]), ["q"], "reward 'x'")
        assert server.requests == 3 and '"score": 2.0' in answer[0]

    with scripted(lambda s, p, h, b: (503, "application/json", b'{"error": "model loading"}')) as server:
        client = ChatClient(f"{server.url}/v1", "judge", api_key="sk-secret-test-key", **client_kw)
        with pytest.raises(RewardError) as info:
            ServerJudge(client).answer(flat_images([0.4]), ["q"], "reward 'x'")
        assert (
            server.url in str(info.value)
            and "HTTP 503" in str(info.value)
            and "model loading" in str(info.value)
        )
        assert "sk-secret-test-key" not in str(info.value) and "sk-secret-test-key" not in repr(client)

    with scripted(lambda s, p, h, b: (401, "application/json", b'{"error": "bad key"}')) as server:
        client = ChatClient(f"{server.url}/v1", "judge", **client_kw)
        with pytest.raises(RewardError, match="HTTP 401.*bad key"):
            ServerJudge(client).answer(flat_images([0.4]), ["q"], "reward 'x'")
        assert server.requests == 1

    def slow(server, path, headers, body):
        time.sleep(1.5)
        return grey_judge(server, path, headers, body)

    with scripted(slow) as server:
        client = ChatClient(f"{server.url}/v1", "judge", timeout=0.3, retry=RetryPolicy(2, 0.05))
        start = time.monotonic()
        with pytest.raises(RewardError, match="no complete answer within 0.3 s"):
            ServerJudge(client).answer(flat_images([0.4]), ["q"], "reward 'x'")
        assert time.monotonic() - start < 1.4

    url = dead_url()
    start = time.monotonic()
    with pytest.raises(RewardError, match=rf"{url}/v1.*3 attempt.*cannot connect"):
        ServerJudge(ChatClient(f"{url}/v1", "judge", **client_kw)).answer(
            flat_images([0.4]), ["q"], "reward 'x'"
        )
    assert time.monotonic() - start < 3.0


def test_chat_concurrency_is_bounded():
    def slow(server, path, headers, body):
        time.sleep(0.2)
        return grey_judge(server, path, headers, body)

    with scripted(slow) as server:
        client = ChatClient(f"{server.url}/v1", "judge", max_concurrency=3, retry=RetryPolicy(1))
        ServerJudge(client).answer(flat_images([0.1] * 7), ["q"] * 7, "reward 'x'")
    assert server.peak_in_flight == 3


def test_non_completion_body_is_rejected():
    with scripted(lambda s, p, h, b: (200, "application/json", b'{"unexpected": true}')) as server:
        client = ChatClient(f"{server.url}/v1", "judge", retry=RetryPolicy(1))
        with pytest.raises(RewardError, match="without message content|unusable answer"):
            ServerJudge(client).answer(flat_images([0.4]), ["q"], "reward 'x'")
