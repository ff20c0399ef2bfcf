"""Pull a numeric score out of a VLM judge's free-text answer.

Judges are asked for JSON but answer with code fences, prose around the JSON, trailing commas, single quotes,
"3.5/5" strings or truncated objects. Parsing tries, in order: each fenced block, each balanced ``{...}``
object, a lightly repaired copy of those, and finally a ``"score": <number>`` pattern anywhere in the text.
When nothing yields a number in range it raises :class:`AnswerError` quoting the answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.S)
_OPEN_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*)$", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")
_FINAL_SCORE = re.compile(r"Final Score\s*[:：]\s*\**\s*([-+]?\d+(?:\.\d+)?)", re.I)


class AnswerError(ValueError):
    """The answer holds no usable score."""


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` span, tracking strings so braces inside them don't count."""
    spans, depth, start, in_string, escaped = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _repair(candidate: str) -> str:
    candidate = candidate.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'")
    candidate = _TRAILING_COMMA.sub(r"\1", candidate)
    if '"' not in candidate:
        candidate = candidate.replace("'", '"')
    return candidate


def _json_objects(text: str) -> list[dict[str, Any]]:
    blocks = [m.group(1) for m in _FENCE.finditer(text)]
    if not blocks:
        unclosed = _OPEN_FENCE.search(text)
        blocks = [unclosed.group(1)] if unclosed else []
    candidates = []
    for source in [*blocks, text]:
        candidates.extend(_balanced_objects(source) or [source.strip()])
    objects = []
    for candidate in candidates:
        for attempt in (candidate, _repair(candidate)):
            try:
                value = json.loads(attempt)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                objects.append(value)
                break
    return objects


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _NUMBER.match(value)
        return float(match.group(1)) if match else None
    return None


def parse_json_score(text: str, key: str = "score", low: float = 0.0, high: float = 5.0) -> float:
    """The number under ``key`` in the answer's JSON, checked to lie in ``[low, high]``."""
    found: list[float] = []
    for obj in _json_objects(text):
        if key in obj:
            number = _as_number(obj[key])
            if number is not None:
                found.append(number)
    if not found:
        quote = "[\"'\u201c\u201d]?"
        pattern = re.compile(rf"{quote}{re.escape(key)}{quote}\s*[:=]\s*{quote}([-+]?\d+(?:\.\d+)?)", re.I)
        found = [float(m.group(1)) for m in pattern.finditer(text)]
    if not found:
        raise AnswerError(f"no {key!r} number in answer: {_excerpt(text)}")
    score = found[-1]
    if not low <= score <= high:
        raise AnswerError(f"{key!r} = {score} is outside [{low}, {high}] in answer: {_excerpt(text)}")
    return score


def parse_final_score(text: str, low: float = 1.0, high: float = 5.0) -> float:
    """UnifiedReward's ``Final Score: x`` (the last one if repeated), checked against the range."""
    matches = _FINAL_SCORE.findall(text)
    if not matches:
        raise AnswerError(f"no 'Final Score: x' in answer: {_excerpt(text)}")
    score = float(matches[-1])
    if not low <= score <= high:
        raise AnswerError(f"Final Score {score} is outside [{low}, {high}] in answer: {_excerpt(text)}")
    return score


def _excerpt(text: str, limit: int = 300) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
