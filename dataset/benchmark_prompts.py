"""Loaders for the evaluation prompt sets, which need more than a list of strings.

GenEval: its evaluator reads, for every image folder, the exact ``evaluation_metadata.jsonl`` line the
images were made from, so each line is kept verbatim (``GenEvalEntry.raw_line``) next to the parsed dict.

DrawBench: 200 prompts (Imagen, Saharia et al. 2022). Two layouts are read:
- the Imagen Google sheet exported as CSV (columns ``Prompts``, ``Category``), which is what
  ``dataset/download_prompts.py`` fetches;
- upstream AR-GRPO's ``drawbench_test_1000.json``: a JSON list of 1000 conversation records
  (``id``, ``image_num``, ``conversations``) that holds each of the 200 prompts exactly 5 times in a
  shuffled order, with no categories. Upstream's evaluation script generates ``sample_num`` images per
  record, i.e. 5 x ``sample_num`` images per prompt. ``load_drawbench`` merges repeats by default
  (first-occurrence order, the record ids and repeat count kept in the metadata) so each prompt is
  scored once; pass ``dedupe=False`` for the 1000 records as upstream iterates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset.prompt_files import load_prompts
from dataset.prompt_parsing import (
    PromptFileError,
    PromptRecord,
    checked_prompt,
    iter_csv_rows,
    iter_json_lines,
    read_text,
)


@dataclass(frozen=True)
class GenEvalEntry:
    """One GenEval task: the parsed line plus the line itself, byte-for-byte, for the evaluator."""

    prompt: str
    tag: str
    metadata: dict[str, Any]
    raw_line: str
    line: int


def _check_object_specs(path: Path, line: int, obj: dict, key: str, required: bool) -> None:
    if key not in obj:
        if required:
            raise PromptFileError(path, f"GenEval metadata has no {key!r} list", line)
        return
    specs = obj[key]
    if not isinstance(specs, list) or (required and not specs):
        raise PromptFileError(path, f"GenEval {key!r} must be a non-empty list of objects", line)
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
            raise PromptFileError(
                path, f"every GenEval {key!r} item needs a string 'class', got {spec!r:.80}", line)
        count = spec.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise PromptFileError(
                path, f"GenEval {key!r} item {spec['class']!r} needs an integer 'count' >= 0, got {count!r}",
                line)


def load_geneval_metadata(path: str | Path) -> list[GenEvalEntry]:
    """Parse GenEval's ``evaluation_metadata.jsonl``, checking the fields its evaluator relies on."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise PromptFileError(path, "empty file: no GenEval metadata lines")
    entries = []
    for number, raw, obj in iter_json_lines(path, text):
        if not isinstance(obj, dict):
            raise PromptFileError(
                path, f"a GenEval metadata line must be a JSON object, got {type(obj).__name__}", number)
        if "prompt" not in obj:
            raise PromptFileError(path, "GenEval metadata line has no 'prompt'", number)
        prompt = checked_prompt(path, number, obj["prompt"], "'prompt'")
        tag = obj.get("tag")
        if not isinstance(tag, str) or not tag:
            raise PromptFileError(
                path, f"GenEval metadata line needs a non-empty string 'tag', got {tag!r}", number)
        _check_object_specs(path, number, obj, "include", required=True)
        _check_object_specs(path, number, obj, "exclude", required=False)
        entries.append(GenEvalEntry(prompt=prompt, tag=tag, metadata=obj, raw_line=raw, line=number))
    return entries


def load_object_names(path: str | Path) -> list[str]:
    """Parse GenEval's ``object_names.txt`` (one detector class name per line, no blanks, no repeats)."""
    path = Path(path)
    text = read_text(path)
    names: list[str] = []
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            raise PromptFileError(path, "blank line in the object name list", number)
        if name in names:
            raise PromptFileError(path, f"object name {name!r} repeats line {names.index(name) + 1}", number)
        names.append(name)
    if not names:
        raise PromptFileError(path, "empty file: no object names")
    return names


def _load_drawbench_csv(path: Path, text: str) -> list[PromptRecord]:
    records = []
    for number, column, row in iter_csv_rows(path, text, ("prompts", "prompt")):
        prompt = checked_prompt(path, number, row[column], f"column {column!r}")
        meta = {"index": len(records), "line": number, "category": row.get("category") or None, "record": row}
        records.append(PromptRecord(prompt, meta))
    return records


def _merge_repeats(records: list[PromptRecord]) -> list[PromptRecord]:
    first: dict[str, dict[str, Any]] = {}
    for record in records:
        meta = record.metadata
        source = meta.get("record") or {}
        if record.text not in first:
            merged = dict(meta, index=len(first), repeats=0, ids=[], lines=[])
            first[record.text] = merged
        merged = first[record.text]
        merged["repeats"] += 1
        merged["lines"].append(meta["line"])
        if isinstance(source, dict) and "id" in source:
            merged["ids"].append(source["id"])
    return [PromptRecord(text, meta) for text, meta in first.items()]


def load_drawbench(path: str | Path, dedupe: bool = True) -> list[PromptRecord]:
    """Load DrawBench prompts from the sheet CSV or upstream's repeated JSON (see the module docstring).

    With ``dedupe`` each distinct prompt appears once, in first-occurrence order, with ``repeats``,
    ``ids`` (upstream record ids) and ``lines`` in its metadata.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        text = read_text(path)
        if not text.strip():
            raise PromptFileError(path, "empty file: no DrawBench prompts")
        records = _load_drawbench_csv(path, text)
        if not records:
            raise PromptFileError(path, "no DrawBench prompts found")
    else:
        records = load_prompts(path)
    return _merge_repeats(records) if dedupe else records
