"""A small client for OpenAI-compatible chat servers (vLLM, SGLang, ...) that judge images.

One ``openai.OpenAI`` client (its HTTP pool reuses connections) with the library's own retries off, so that
retries, backoff and the final error message are ours and the same for every remote reward. Requests for a
batch run concurrently up to ``max_concurrency``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reward_utils.base import RewardError
from reward_utils.remote import RetryPolicy, TransientError, short


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
    ):
        from openai import OpenAI

        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.base_url, self.model, self.timeout = base_url.rstrip("/"), model, timeout
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self.sampling = dict(sampling or {})
        self.max_tokens = max_tokens
        # "EMPTY" is the conventional placeholder for servers started without --api-key.
        self._client = OpenAI(
            base_url=self.base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=0
        )

    def __repr__(self) -> str:  # never shows the API key
        return f"ChatClient(base_url={self.base_url!r}, model={self.model!r})"

    def ask(self, question: str, image: bytes, mime: str, what: str) -> str:
        """One chat completion with an image, retried on transport failures; returns the answer text."""
        import openai

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
        extra_body = {k: v for k, v in self.sampling.items() if k not in ("temperature", "top_p")}
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            **{k: v for k, v in self.sampling.items() if k in ("temperature", "top_p")},
        }
        if extra_body:
            kwargs["extra_body"] = extra_body
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens

        def attempt() -> str:
            try:
                completion = self._client.chat.completions.create(**kwargs)
            except openai.APITimeoutError as err:
                raise TransientError(f"no answer within {self.timeout} s") from err
            except openai.APIConnectionError as err:
                raise TransientError(f"cannot connect: {err}") from err
            except openai.APIStatusError as err:
                detail = f"HTTP {err.status_code}: {short(err.response.text)}"
                if err.status_code >= 500 or err.status_code == 429:
                    raise TransientError(detail) from err
                raise RewardError(f"{what}: server {self.base_url} answered {detail}") from err
            except openai.APIError as err:  # e.g. a 200 whose body is not a chat completion
                raise RewardError(f"{what}: server {self.base_url} sent an unusable answer: {err}") from err
            choices = getattr(completion, "choices", None)
            if not choices or getattr(choices[0].message, "content", None) is None:
                raise RewardError(
                    f"{what}: server {self.base_url} sent a completion without message content:"
                    f" {short(repr(completion))}"
                )
            return choices[0].message.content

        return self.retry.run(attempt, f"{what}: server {self.base_url}")

    def ask_many(self, questions: Sequence[str], images: Sequence[bytes], mime: str, what: str) -> list[str]:
        """Answers in order; at most ``max_concurrency`` requests in flight."""
        if len(questions) != len(images):
            raise ValueError(f"{len(questions)} questions for {len(images)} images")
        if not questions:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(questions))) as pool:
            return list(pool.map(lambda qi: self.ask(qi[0], qi[1], mime, what), zip(questions, images)))
