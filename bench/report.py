"""The benchmarks' one output convention: indented JSON on stdout, and the same text in ``--json`` if given."""

from __future__ import annotations

import json
from pathlib import Path


def emit_json(result: dict, path: Path | None) -> str:
    """Print ``result`` as JSON and write it to ``path`` too (when set); return the text."""
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        path.write_text(text + "\n")
    return text
