"""Generic prompt files: one loader for every layout of a list of prompts.

Layouts (detected from the suffix, then the content):
- ``.txt``: one prompt per line; blank lines are skipped, the text is kept as written.
- ``.csv``: a header row with a ``prompt`` / ``prompts`` / ``caption`` / ``text`` column (case-insensitive);
  the other columns go to the metadata.
- JSON array (any other suffix, first character ``[``): strings, ``{"prompt": ...}`` objects, or upstream
  AR-GRPO's conversation records ``{"id", "conversations": [{"from": "human", "value": PROMPT}, ...]}``.
- JSON lines (first character ``{`` or ``"``): one such record per line, e.g. GenEval's
  ``evaluation_metadata.jsonl``.

Every record keeps its source: ``metadata["index"]`` (0-based position), ``metadata["line"]`` (1-based
line it starts on), ``metadata["record"]`` (the parsed object; ``None`` for plain text) and, when the
record has one, ``metadata["tag"]``. JSON lines also keep ``metadata["raw_line"]`` verbatim.
``metadata["geneval"]`` holds the GenEval metadata line the ``geneval`` reward needs: the record itself
for a GenEval ``evaluation_metadata.jsonl`` line, or upstream's ``geneval_json`` field of a conversation
record.
"""

from __future__ import annotations

import json
from pathlib import Path

from dataset.prompt_parsing import (
    PromptFileError,
    PromptRecord,
    checked_prompt,
    iter_csv_rows,
    iter_json_array,
    iter_json_lines,
    prompt_from_object,
    read_text,
)

CSV_PROMPT_COLUMNS = ("prompt", "prompts", "caption", "text")
MAX_PROMPT_CHARS = 4000
"""Longest prompt accepted. T2I captions are a few hundred characters; the text encoder keeps ~120 tokens."""
MAX_FILE_BYTES = 256 * 2**20
"""Largest prompt file read into memory."""


def detect_format(path: str | Path, text: str) -> str:
    """Return ``"txt"``, ``"csv"``, ``"json"`` or ``"jsonl"`` for a file's suffix and content."""
    suffix = Path(path).suffix.lower()
    if suffix == ".txt":
        return "txt"
    if suffix == ".csv":
        return "csv"
    head = text.lstrip()[:1]
    if head == "[":
        return "json"
    if head in ('{', '"'):
        return "jsonl"
    if suffix in (".json", ".jsonl"):
        raise PromptFileError(path, f"a {suffix} prompt file must start with '[' (JSON array) or '{{' "
                                    f"(JSON lines), found {text.lstrip()[:20]!r}", 1)
    return "txt"


def _with_tag(metadata: dict, obj: object) -> dict:
    """Lift the fields downstream code looks for: the record's ``tag``, and its GenEval metadata line."""
    if not isinstance(obj, dict):
        return metadata
    if "tag" in obj:
        metadata["tag"] = obj["tag"]
    if isinstance(obj.get("geneval_json"), dict):  # upstream's t2i records carry it under this key
        metadata["geneval"] = obj["geneval_json"]
    elif isinstance(obj.get("include"), list) and "tag" in obj:  # a GenEval metadata line itself
        metadata["geneval"] = obj
    return metadata


def _load_txt(path: Path, text: str) -> list[PromptRecord]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            records.append(PromptRecord(line, {"index": len(records), "line": number, "record": None}))
    return records


def _load_csv(path: Path, text: str) -> list[PromptRecord]:
    records = []
    for number, column, row in iter_csv_rows(path, text, CSV_PROMPT_COLUMNS):
        prompt = checked_prompt(path, number, row[column], f"column {column!r}")
        extra = {k: v for k, v in row.items() if k != column}
        records.append(PromptRecord(prompt, {"index": len(records), "line": number, "record": extra}))
    return records


def _load_json(path: Path, text: str) -> list[PromptRecord]:
    records = []
    for number, obj in iter_json_array(path, text):
        prompt = prompt_from_object(path, number, obj)
        meta = {"index": len(records), "line": number, "record": obj if isinstance(obj, dict) else None}
        records.append(PromptRecord(prompt, _with_tag(meta, obj)))
    return records


def _load_jsonl(path: Path, text: str) -> list[PromptRecord]:
    records = []
    for number, raw, obj in iter_json_lines(path, text):
        prompt = prompt_from_object(path, number, obj)
        meta = {"index": len(records), "line": number, "record": obj if isinstance(obj, dict) else None,
                "raw_line": raw}
        records.append(PromptRecord(prompt, _with_tag(meta, obj)))
    return records


def _is_single_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


_LOADERS = {"txt": _load_txt, "csv": _load_csv, "json": _load_json, "jsonl": _load_jsonl}


def load_prompts(
    path: str | Path, max_chars: int = MAX_PROMPT_CHARS, max_bytes: int = MAX_FILE_BYTES
) -> list[PromptRecord]:
    """Load every prompt of a training/evaluation prompt file, in file order.

    Raises ``PromptFileError`` (a ``ValueError``) naming the file, the line and the problem for a
    missing, empty, oversized or malformed file, a record without a prompt, an empty prompt, a non-string
    prompt or a prompt longer than ``max_chars`` characters.
    """
    path = Path(path)
    text = read_text(path, max_bytes)
    if not text.strip():
        raise PromptFileError(path, "empty file: no prompts")
    fmt = detect_format(path, text)
    if fmt == "jsonl" and text.strip().count("\n") and _is_single_json_object(text):
        raise PromptFileError(path, "the file is one JSON object spread over several lines; expected a JSON "
                                    "array of prompts/records or one JSON record per line", 1)
    records = _LOADERS[fmt](path, text)
    if not records:
        raise PromptFileError(path, f"no prompts found (read as {fmt})")
    for record in records:
        if len(record.text) > max_chars:
            raise PromptFileError(
                path,
                f"prompt of {len(record.text)} characters, more than the {max_chars} allowed"
                f" (--max_prompt_chars): {record.text[:60]!r}...",
                record.metadata.get("line"),
            )
    return records
