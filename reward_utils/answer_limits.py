"""Bounds on what a reward server may send back, and short excerpts of it for error messages.

A server's answer is untrusted input: a few bytes of pickle can ask for a huge allocation, a JSON or pickle
answer can nest deeper than any code that walks it, and printing a large answer in an error message costs as
much memory as the answer itself. The body is capped while it is read (``max_bytes``); the decoded value is
walked once, iteratively, against ``max_depth`` and ``max_items``; messages quote at most :func:`excerpt`.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BYTES = 8 * 2**20
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_ITEMS = 1_000_000
EXCERPT_CHARS = 200


class AnswerTooLarge(ValueError):
    """An answer exceeded a :class:`ResponseLimits` bound."""


@dataclass(frozen=True)
class ResponseLimits:
    """``max_bytes``: body size (and so any str/bytes in it); ``max_depth``: container nesting;
    ``max_items``: container elements counted over the whole answer (shared references count each time)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_items: int = DEFAULT_MAX_ITEMS

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_depth, self.max_items) < 1:
            raise ValueError(f"response limits must be >= 1, got {self}")


def check_plain_data(value: Any, limits: ResponseLimits) -> Any:
    """Return ``value`` if its nesting and element count are within ``limits``, else raise AnswerTooLarge.

    Iterative, so a deep answer cannot exhaust the stack; a self-referencing one exceeds ``max_depth``.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    items = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (str, bytes, bytearray)):
            if len(node) > limits.max_bytes:
                raise AnswerTooLarge(f"a {type(node).__name__} of {len(node)} > {limits.max_bytes} bytes")
            continue
        if isinstance(node, dict):
            children = [c for pair in node.items() for c in pair]
        elif isinstance(node, (list, tuple, set, frozenset)):
            children = node
        else:
            continue
        if depth >= limits.max_depth:
            raise AnswerTooLarge(f"nested deeper than {limits.max_depth} levels")
        items += len(node)
        if items > limits.max_items:
            raise AnswerTooLarge(f"more than {limits.max_items} elements in all")
        stack.extend((child, depth + 1) for child in children)
    return value


class _ShortRepr(reprlib.Repr):
    """reprlib, plus bytes/bytearray/int, which plain reprlib would print in full before truncating."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 3, 6, 6, 6, 6
        self.maxstring, self.maxother, self.maxlong = 60, 60, 40

    def repr_bytes(self, value: bytes, level: int) -> str:
        return self._cut(repr(bytes(value[: self.maxstring])), len(value), "bytes")

    def repr_bytearray(self, value: bytearray, level: int) -> str:
        return self._cut(f"bytearray({bytes(value[: self.maxstring])!r})", len(value), "bytearray")

    def repr_int(self, value: int, level: int) -> str:
        if value.bit_length() > 128:
            return f"<int of {value.bit_length()} bits>"
        return repr(value)

    def _cut(self, text: str, size: int, kind: str) -> str:
        return text if size <= self.maxstring else f"{text}...<{kind} of {size}>"


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped, printable rendering of any value: a raw body (bytes: its text if it is UTF-8, else
    its bytes), a message (str), or a decoded answer."""
    if isinstance(value, (bytes, bytearray)):
        head = bytes(value[: limit * 4])
        try:
            decoded = head.decode("utf-8")
        except UnicodeDecodeError as err:  # text cut inside a character is still text; binary is shown as bytes
            decoded = head[: err.start].decode("utf-8") if err.start > len(head) - 4 else None
        text = repr(head) if decoded is None else decoded.strip().encode("unicode_escape").decode("ascii")
        more = f"... ({len(value)} bytes)" if len(value) > len(head) or len(text) > limit else ""
        return text[:limit] + more
    if isinstance(value, str):
        text = value[: limit * 4].encode("unicode_escape").decode("ascii")  # no control characters reach a terminal
        return text if len(text) <= limit and len(value) <= limit * 4 else text[:limit] + "..."
    try:
        text = _ShortRepr().repr(value)
    except Exception as err:  # a repr that raises must not hide the real error being reported
        text = f"<{type(value).__name__}: repr failed with {type(err).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."
