"""Clients of the reward-server HTTP service (``deqa``, ``geneval``), as run by upstream AR-GRPO / Flow-GRPO.

Protocol: ``POST /`` with a batch of JPEG-encoded images (plus GenEval metadata); the answer is a dict of
per-image lists. Two wire formats:

- ``pickle`` (what the upstream Flask servers speak): the request is ``pickle.dumps(dict)`` with JPEG bytes;
  the answer is decoded with :mod:`reward_utils.safe_pickle`, which only admits plain data;
- ``json``: ``{"images": [base64 JPEG, ...], ...}`` with ``Content-Type: application/json``.

Either way a JSON answer is accepted. One ``requests.Session`` keeps connections alive; batches are sent
concurrently up to a bound; each request has a timeout and bounded retries with backoff.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import torch

from reward_utils.base import Prompt, RewardError, RewardFunction
from reward_utils.remote import RetryPolicy, TransientError, short
from reward_utils.safe_pickle import safe_loads
from reward_utils.tensor_transforms import to_uint8

WireFormat = Literal["pickle", "json"]
UPSTREAM_JPEG_QUALITY = 75
"""PIL's default, which the upstream clients used when JPEG-encoding for the servers."""


def encode_jpeg_batch(images: torch.Tensor, quality: int = UPSTREAM_JPEG_QUALITY) -> list[bytes]:
    """JPEG bytes of a float ``(B, 3, H, W)`` batch in [0, 1], via torchvision (nvJPEG when on CUDA)."""
    from torchvision.io import encode_jpeg

    encoded = encode_jpeg(list(to_uint8(images)), quality=quality)
    return [bytes(e.cpu().numpy().tobytes()) for e in encoded]


def decode_answer(content: bytes, content_type: str) -> Any:
    """JSON if the server says so (or it looks like JSON), else a *restricted* unpickle; else an error."""
    stripped = content.lstrip()
    if "json" in content_type.lower() or stripped[:1] in (b"{", b"["):
        return json.loads(content)
    if content[:1] == b"\x80":  # pickle protocol >= 2
        return safe_loads(content)
    raise ValueError("answer is neither JSON nor a pickle")


class RewardServerClient:
    """Posts batches to one reward server and returns its decoded answers, in order."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 4,
        batch_size: int = 64,
        wire_format: WireFormat = "pickle",
        jpeg_quality: int = UPSTREAM_JPEG_QUALITY,
        api_key: str | None = None,
    ):
        import requests
        from requests.adapters import HTTPAdapter

        if wire_format not in ("pickle", "json"):
            raise ValueError(f"wire_format must be 'pickle' or 'json', got {wire_format!r}")
        if batch_size < 1 or max_concurrency < 1:
            raise ValueError("batch_size and max_concurrency must be >= 1")
        self.url, self.timeout, self.wire_format = url, timeout, wire_format
        self.retry = retry or RetryPolicy()
        self.max_concurrency, self.batch_size, self.jpeg_quality = max_concurrency, batch_size, jpeg_quality
        self._requests = requests
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_concurrency, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def __repr__(self) -> str:  # never shows the API key
        return f"RewardServerClient(url={self.url!r}, wire_format={self.wire_format!r})"

    def _encode(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        if self.wire_format == "pickle":
            return pickle.dumps(payload), {**self._headers, "Content-Type": "application/octet-stream"}
        payload = {**payload, "images": [base64.b64encode(b).decode("ascii") for b in payload["images"]]}
        return json.dumps(payload).encode("utf-8"), {**self._headers, "Content-Type": "application/json"}

    def post(self, payload: dict[str, Any], what: str) -> Any:
        """One request with retries; ``what`` names the reward in errors."""
        body, headers = self._encode(payload)
        requests = self._requests

        def attempt() -> Any:
            try:
                response = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
            except requests.Timeout as err:
                raise TransientError(f"no answer within {self.timeout} s ({type(err).__name__})") from err
            except requests.ConnectionError as err:
                raise TransientError(f"cannot connect: {err}") from err
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientError(f"HTTP {response.status_code}: {short(response.content)}")
            if response.status_code != 200:
                raise RewardError(
                    f"{what}: server {self.url} answered HTTP {response.status_code}:"
                    f" {short(response.content)}"
                )
            try:
                return decode_answer(response.content, response.headers.get("Content-Type", ""))
            except (ValueError, pickle.UnpicklingError, EOFError) as err:
                raise RewardError(
                    f"{what}: server {self.url} sent an unusable answer ({err}): {short(response.content)}"
                ) from err

        return self.retry.run(attempt, f"{what}: server {self.url}")

    def score_batches(
        self,
        images: torch.Tensor,
        make_payload: Callable[[list[bytes], int, int], dict[str, Any]],
        extract: Callable[[Any, int], list[float]],
        what: str,
    ) -> torch.Tensor:
        """JPEG-encode, split into batches of ``batch_size``, post them concurrently, concatenate the scores.

        ``make_payload(jpegs, start, stop)`` builds the request for images ``start:stop``;
        ``extract(answer, n)`` returns the ``n`` scores of one answer.
        """
        jpegs = encode_jpeg_batch(images, self.jpeg_quality)
        spans = [(s, min(s + self.batch_size, len(jpegs))) for s in range(0, len(jpegs), self.batch_size)]

        def run(span: tuple[int, int]) -> list[float]:
            start, stop = span
            answer = self.post(make_payload(jpegs[start:stop], start, stop), what)
            return extract(answer, stop - start)

        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(spans))) as pool:
            results = list(pool.map(run, spans))
        return torch.tensor([score for chunk in results for score in chunk], dtype=torch.float32)


def numbers_from(answer: Any, key: str, count: int, where: str) -> list[float]:
    """``answer[key]`` as ``count`` floats, or a RewardError saying what the server sent instead."""
    if not isinstance(answer, dict) or key not in answer:
        keys = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        raise RewardError(f"{where}: answer has no {key!r} list (got {keys})")
    values = answer[key]
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise RewardError(f"{where}: expected {count} values under {key!r}, got {short(repr(values))}")
    out = []
    for value in values:
        if isinstance(value, str) or not hasattr(value, "__float__"):
            raise RewardError(f"{where}: non-numeric value {value!r} under {key!r}")
        out.append(float(value))
    return out


class DeQAReward(RewardFunction):
    """``deqa``: DeQA-Score from the reward server (the server already divides by 5); prompts ignored."""

    name = "deqa"
    device = None

    def __init__(self, client: RewardServerClient):
        self.client = client

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        where = f"reward {self.name!r}: server {self.client.url}"
        return self.client.score_batches(
            images,
            make_payload=lambda jpegs, start, stop: {"images": jpegs},
            extract=lambda answer, n: numbers_from(answer, "outputs", n, where),
            what=f"reward {self.name!r}",
        )


class GenEvalReward(RewardFunction):
    """``geneval``: GenEval object-detection reward; each sample needs ``metadata[i]["geneval"]``.

    That value is the sample's GenEval metadata line (dict with ``tag``, ``include``, ...).
    ``score_key`` picks the server's answer list: ``rewards`` (1/0 correct, upstream's choice),
    ``strict_rewards`` or ``scores``.
    """

    name = "geneval"
    device = None
    SCORE_KEYS = ("rewards", "strict_rewards", "scores")

    def __init__(self, client: RewardServerClient, only_strict: bool = False, score_key: str = "rewards"):
        if score_key not in self.SCORE_KEYS:
            raise ValueError(f"geneval score_key must be one of {self.SCORE_KEYS}, got {score_key!r}")
        self.client, self.only_strict, self.score_key = client, only_strict, score_key

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        rows = []
        for i, prompt in enumerate(prompts):
            row = metadata[i].get("geneval") if metadata is not None else None
            if not isinstance(row, dict):
                raise RewardError(
                    f"reward {self.name!r} needs metadata[{i}]['geneval'] (the GenEval metadata line)"
                    f" for prompt #{i} {prompt!r}"
                )
            rows.append(row)
        where = f"reward {self.name!r}: server {self.client.url}"
        return self.client.score_batches(
            images,
            make_payload=lambda jpegs, start, stop: {
                "images": jpegs,
                "meta_datas": rows[start:stop],
                "only_strict": self.only_strict,
            },
            extract=lambda answer, n: numbers_from(answer, self.score_key, n, where),
            what=f"reward {self.name!r}",
        )
