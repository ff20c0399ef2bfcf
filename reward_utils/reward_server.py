"""Clients of the reward-server HTTP service (``deqa``, ``geneval``), as run by upstream AR-GRPO / Flow-GRPO.

Protocol: ``POST /`` with a batch of JPEG-encoded images (plus GenEval metadata); the answer is a dict of
per-image lists. Two wire formats:

- ``pickle`` (what the upstream Flask servers speak): the request is ``pickle.dumps(dict)`` with JPEG bytes;
  the answer is decoded with :mod:`reward_utils.safe_pickle`, which only admits plain data;
- ``json``: ``{"images": [base64 JPEG, ...], ...}`` with ``Content-Type: application/json``.

Either way a JSON answer is accepted. Batches are sent concurrently up to a bound over kept-alive connections;
every request has a total deadline, a bounded answer size and bounded retries (:mod:`reward_utils.remote`), and
a decoded answer must stay within :class:`~reward_utils.answer_limits.ResponseLimits` (nesting, elements).
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from reward_utils.answer_limits import AnswerTooLarge, ResponseLimits, check_plain_data, excerpt
from reward_utils.backend import RewardFactory, from_env, option
from reward_utils.base import Prompt, RewardError, RewardFunction
from reward_utils.remote import HttpEndpoint, RemoteOptions, RetryPolicy
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


def decode_json(content: bytes, limits: ResponseLimits) -> Any:
    """``json.loads`` within ``limits``; nesting too deep for the parser is an :class:`AnswerTooLarge`."""
    try:
        value = json.loads(content)
    except RecursionError:
        raise AnswerTooLarge(f"nested deeper than {limits.max_depth} levels") from None
    return check_plain_data(value, limits)


def decode_answer(content: bytes, content_type: str, limits: ResponseLimits | None = None) -> Any:
    """JSON if the server says so (or it looks like JSON), else a *restricted* unpickle; else an error."""
    limits = limits or ResponseLimits()
    stripped = content.lstrip()
    if "json" in content_type.lower() or stripped[:1] in (b"{", b"["):
        return decode_json(content, limits)
    if content[:1] == b"\x80":  # pickle protocol >= 2
        return safe_loads(content, limits)
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
        limits: ResponseLimits | None = None,
    ):
        if wire_format not in ("pickle", "json"):
            raise ValueError(f"wire_format must be 'pickle' or 'json', got {wire_format!r}")
        if batch_size < 1 or max_concurrency < 1:
            raise ValueError("batch_size and max_concurrency must be >= 1")
        self.url, self.timeout, self.wire_format = url, timeout, wire_format
        self.retry = retry or RetryPolicy()
        self.limits = limits or ResponseLimits()
        self.max_concurrency, self.batch_size, self.jpeg_quality = max_concurrency, batch_size, jpeg_quality
        self.endpoint = HttpEndpoint(url, timeout, self.retry, max_concurrency, self.limits)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def __repr__(self) -> str:  # never shows the API key
        return f"RewardServerClient(url={self.url!r}, wire_format={self.wire_format!r})"

    def _encode(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        if self.wire_format == "pickle":
            return pickle.dumps(payload), {**self._headers, "Content-Type": "application/octet-stream"}
        payload = {**payload, "images": [base64.b64encode(b).decode("ascii") for b in payload["images"]]}
        return json.dumps(payload).encode("utf-8"), {**self._headers, "Content-Type": "application/json"}

    def _decode(self, content_type: str, content: bytes, what: str) -> Any:
        try:
            return decode_answer(content, content_type, self.limits)
        except AnswerTooLarge as err:
            raise RewardError(
                f"{what}: server {self.url} sent an answer over the limit ({err}): {excerpt(content)}"
            ) from None
        except (ValueError, pickle.UnpicklingError) as err:
            raise RewardError(
                f"{what}: server {self.url} sent an unusable answer ({excerpt(str(err))}): {excerpt(content)}"
            ) from None

    def post_many(self, payloads: Sequence[dict[str, Any]], what: str) -> list[Any]:
        """Decoded answers to ``payloads``, sent concurrently; ``what`` names the reward in errors."""
        answers = self.endpoint.post_all([self._encode(p) for p in payloads], what)
        return [self._decode(content_type, content, what) for content_type, content in answers]

    def post(self, payload: dict[str, Any], what: str) -> Any:
        """One request with retries within the deadline; ``what`` names the reward in errors."""
        return self.post_many([payload], what)[0]

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
        answers = self.post_many([make_payload(jpegs[start:stop], start, stop) for start, stop in spans], what)
        scores = [extract(answer, stop - start) for answer, (start, stop) in zip(answers, spans)]
        return torch.tensor([score for chunk in scores for score in chunk], dtype=torch.float32)


def numbers_from(answer: Any, key: str, count: int, where: str) -> list[float]:
    """``answer[key]`` as ``count`` floats, or a RewardError saying what the server sent instead.

    Booleans are refused: ``[True, ...]`` is not a score, and reading it as 1.0 would hide a broken server.
    """
    if not isinstance(answer, dict) or key not in answer:
        keys = excerpt(list(answer)) if isinstance(answer, dict) else type(answer).__name__
        raise RewardError(f"{where}: answer has no {key!r} list (got {keys})")
    values = answer[key]
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise RewardError(f"{where}: expected {count} values under {key!r}, got {excerpt(values)}")
    out = []
    for i, value in enumerate(values):
        kind = type(value).__name__
        is_bool = isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"
        if is_bool or isinstance(value, (str, bytes, bytearray)) or not hasattr(value, "__float__"):
            raise RewardError(
                f"{where}: value #{i} under {key!r} is {excerpt(value)} ({kind}), not a number: {excerpt(values)}"
            )
        try:
            out.append(float(value))
        except (OverflowError, ValueError, TypeError) as err:
            raise RewardError(f"{where}: value #{i} under {key!r} is not a usable number ({err})") from None
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


@dataclass
class ServerOptions(RemoteOptions):
    ENV_VARS: ClassVar[dict[str, str]] = {"geneval_url": "GENEVAL_URL", "deqa_url": "DEQA_URL"}

    geneval_url: str | None = option(
        from_env("GENEVAL_URL", "http://127.0.0.1:18085"), "GenEval reward-server URL (env GENEVAL_URL)"
    )
    geneval_only_strict: bool = option(False, "ask the GenEval server for strict scoring only")
    geneval_score_key: str = option(
        "rewards", "which GenEval answer list is the reward", choices=("rewards", "strict_rewards", "scores")
    )
    deqa_url: str | None = option(
        from_env("DEQA_URL", "http://127.0.0.1:18086"), "DeQA reward-server URL (env DEQA_URL)"
    )
    reward_server_format: str = option("pickle", "reward-server wire format", choices=("pickle", "json"))
    reward_server_batch_size: int = option(64, "images per reward-server request")

    def client(self, url_flag: str) -> RewardServerClient:
        return RewardServerClient(
            self.required_url(url_flag),
            batch_size=self.reward_server_batch_size,
            wire_format=self.reward_server_format,
            **self.client_settings(),
        )


OPTIONS = ServerOptions
REWARDS: dict[str, RewardFactory] = {
    "deqa": lambda o, cache: DeQAReward(o.client("deqa_url")),
    "geneval": lambda o, cache: GenEvalReward(o.client("geneval_url"), o.geneval_only_strict, o.geneval_score_key),
}
