"""Low-level pieces shared by the prompt loaders: the record type, the error type, and readers that
remember the line each item came from so a malformed file can be reported as ``file:line: what``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Roles that upstream AR-GRPO / LLaVA-style conversation files use for the user's turn.
HUMAN_ROLES = ("human", "user")


@dataclass(frozen=True)
class PromptRecord:
    """One prompt plus whatever the file said about it (the original record, tag, position...)."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class PromptFileError(ValueError):
    """A prompt file is missing, empty or malformed; the message names the file and, when known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def read_text(path: str | Path, max_bytes: int | None = None) -> str:
    """Read a UTF-8 file (BOM tolerated) of at most ``max_bytes`` with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise PromptFileError(path, "file not found")
    if not path.is_file():
        raise PromptFileError(path, "not a regular file")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise PromptFileError(path, f"{size} bytes, more than the {max_bytes} allowed for a prompt file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise PromptFileError(path, f"not valid UTF-8 text ({err.reason})", line) from err


def line_of(text: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return text.count("\n", 0, offset) + 1


def iter_json_array(path: str | Path, text: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, element)`` for each element of a top-level JSON array.

    ``json.load`` forgets where each element started; scanning the array element by element with
    ``raw_decode`` keeps the line so "record 517 has no prompt" can point at the right place.
    """
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    pos = len(text) - len(text.lstrip(ws))
    if pos >= len(text) or text[pos] != "[":
        raise PromptFileError(path, "expected a JSON array ('[') at the top level", line_of(text, pos))
    pos += 1
    expect_value = True
    first = True
    # Count newlines incrementally: recounting from the start for every element is quadratic.
    counted_to, line = 0, 1
    while True:
        while pos < len(text) and text[pos] in ws:
            pos += 1
        if pos >= len(text):
            raise PromptFileError(path, "bad JSON: the top-level array is not closed", line_of(text, pos))
        if text[pos] == "]" and (first or not expect_value):
            pos += 1
            break
        if not expect_value:
            if text[pos] != ",":
                raise PromptFileError(path, "bad JSON: expected ',' or ']' between array items",
                                      line_of(text, pos))
            pos += 1
            expect_value = True
            continue
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise PromptFileError(path, f"bad JSON: {err.msg}", err.lineno) from err
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        yield line, value
        pos = end
        expect_value = False
        first = False
    rest = text[pos:].lstrip(ws)
    if rest:
        extra_at = len(text) - len(rest)
        raise PromptFileError(path, "bad JSON: extra data after the top-level array", line_of(text, extra_at))


def iter_json_lines(path: str | Path, text: str) -> Iterator[tuple[int, str, Any]]:
    """Yield ``(line, raw_line, value)`` for each non-blank line of a JSON-lines file."""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            raise PromptFileError(path, f"bad JSON line: {err.msg} (column {err.colno})", number) from err
        yield number, raw, value


def iter_csv_rows(path: str | Path, text: str,
                  prompt_columns: tuple[str, ...]) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Yield ``(line, prompt_column, row)`` for each non-blank CSV data row.

    Header names are lower-cased and stripped; the prompt column is the first of ``prompt_columns`` the
    header has (checked on the header, so a file with no usable column fails even without data rows).
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise PromptFileError(path, "empty CSV file (no header row)") from None
    except csv.Error as err:
        raise PromptFileError(path, f"bad CSV: {err}", 1) from err
    names = [name.strip().lower() for name in header]
    column = next((c for c in prompt_columns if c in names), None)
    if column is None:
        wanted = " / ".join(repr(c) for c in prompt_columns)
        raise PromptFileError(path, f"no prompt column: expected a {wanted} column, found {names[:8]}", 1)
    while True:
        # The reader's line_num after a row is the row's last physical line; remember where it started.
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise PromptFileError(path, f"bad CSV: {err}", start) from err
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names) and any(cell.strip() for cell in row[len(names):]):
            raise PromptFileError(path, f"row has {len(row)} fields but the header has {len(names)}", start)
        yield start, column, {name: (row[i] if i < len(row) else "") for i, name in enumerate(names) if name}


def checked_prompt(path: str | Path, line: int | None, value: Any, what: str) -> str:
    """Return ``value`` if it is a usable prompt string, else raise naming the file, line and field."""
    if not isinstance(value, str):
        raise PromptFileError(
            path, f"{what} must be a string, got {type(value).__name__}: {value!r:.80}", line)
    if not value.strip():
        raise PromptFileError(path, f"{what} is empty", line)
    return value


def prompt_from_object(path: str | Path, line: int | None, obj: Any) -> str:
    """Find the prompt text in one record of any supported JSON layout.

    Supported: a bare string; ``{"prompt": ...}`` (GenEval metadata and similar); upstream AR-GRPO's
    ``{"conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": ""}]}``.
    """
    if isinstance(obj, str):
        return checked_prompt(path, line, obj, "prompt")
    if not isinstance(obj, dict):
        raise PromptFileError(
            path, f"expected a prompt string or an object, got {type(obj).__name__}: {obj!r:.80}", line)
    if "prompt" in obj:
        return checked_prompt(path, line, obj["prompt"], "'prompt'")
    if "conversations" in obj:
        turns = obj["conversations"]
        if not isinstance(turns, list) or not turns:
            raise PromptFileError(path, "'conversations' must be a non-empty list of turns", line)
        first = turns[0]
        if not isinstance(first, dict) or "value" not in first:
            raise PromptFileError(path, "the first conversation turn must be an object with a 'value'", line)
        role = first.get("from", first.get("role"))
        if role is not None and role not in HUMAN_ROLES:
            raise PromptFileError(
                path, f"the first conversation turn is from {role!r}; expected one of {HUMAN_ROLES}", line)
        return checked_prompt(path, line, first["value"], "the first conversation turn's 'value'")
    keys = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
    raise PromptFileError(
        path, f"no prompt field: expected 'prompt' or 'conversations', found keys {keys}", line)
