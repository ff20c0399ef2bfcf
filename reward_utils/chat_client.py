"""A small client for OpenAI-compatible chat servers (vLLM, SGLang, ...) that judge images.

It speaks the one call it needs (``POST {base_url}/chat/completions`` with an image and a question) through
:class:`reward_utils.remote.HttpEndpoint`, so a judge server gets the same guarantees as every remote reward:
a total deadline per request, a bounded answer size and nesting, bounded retries with backoff, and a wait that
a stop request ends. Requests for a batch run concurrently up to ``max_concurrency``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from reward_utils.answer_limits import AnswerTooLarge, ResponseLimits, check_plain_data, excerpt
from reward_utils.base import RewardError
from reward_utils.remote import HttpEndpoint, RetryPolicy


class ChatClient:
    """Sends (image, question) pairs to ``{base_url}/chat/completions`` and returns the answer texts."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        sampling: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        limits: ResponseLimits | None = None,
    ):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.base_url, self.model, self.timeout = base_url.rstrip("/"), model, timeout
        self.retry = retry or RetryPolicy()
        self.limits = limits or ResponseLimits()
        self.max_concurrency = max_concurrency
        self.sampling = dict(sampling or {})
        self.max_tokens = max_tokens
        self.endpoint = HttpEndpoint(
            f"{self.base_url}/chat/completions", timeout, self.retry, max_concurrency, self.limits
        )
        # "EMPTY" is the conventional placeholder for servers started without --api-key.
        self._headers = {"Authorization": f"Bearer {api_key or 'EMPTY'}", "Content-Type": "application/json"}

    def __repr__(self) -> str:  # never shows the API key
        return f"ChatClient(base_url={self.base_url!r}, model={self.model!r})"

    def _request(self, question: str, image: bytes, mime: str) -> bytes:
        data_url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url}},
                    {"type": "text", "text": question},
                ],
            }
        ]
        # sampling keys beyond the OpenAI schema (top_k, ...) go in the body too, as vLLM and SGLang read them
        body: dict[str, Any] = {"model": self.model, "messages": messages, **self.sampling}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return json.dumps(body).encode("utf-8")

    def _content(self, answer: bytes, what: str) -> str:
        where = f"{what}: server {self.base_url}"
        try:
            completion = check_plain_data(json.loads(answer), self.limits)
        except RecursionError:
            raise RewardError(f"{where} sent an answer nested deeper than the JSON parser allows") from None
        except AnswerTooLarge as err:
            raise RewardError(f"{where} sent an answer over the limit ({err}): {excerpt(answer)}") from None
        except ValueError as err:
            raise RewardError(f"{where} sent an unusable answer ({err}): {excerpt(answer)}") from None
        try:
            content = completion["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise RewardError(f"{where} sent a completion without message content: {excerpt(answer)}")
        return content

    def ask(self, question: str, image: bytes, mime: str, what: str) -> str:
        """One chat completion with an image, retried on transport failures; returns the answer text."""
        return self.ask_many([question], [image], mime, what)[0]

    def ask_many(self, questions: Sequence[str], images: Sequence[bytes], mime: str, what: str) -> list[str]:
        """Answers in order; at most ``max_concurrency`` requests in flight."""
        if len(questions) != len(images):
            raise ValueError(f"{len(questions)} questions for {len(images)} images")
        if not questions:
            return []
        requests = [(self._request(q, image, mime), self._headers) for q, image in zip(questions, images)]
        return [self._content(answer, what) for _, answer in self.endpoint.post_all(requests, what)]
