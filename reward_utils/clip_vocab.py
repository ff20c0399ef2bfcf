"""CLIP's text tokenizer without a download: the vocabulary rebuilt from the BPE merges that open_clip ships.

This is the construction the published CLIP vocabulary uses, so token ids equal the real CLIP ids. Tests and
benchmarks pair it with random-weight CLIP models so that nothing touches a model hub.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path


def _byte_symbols() -> list[str]:
    """CLIP's reversible byte -> unicode table, in vocabulary order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_clip_tokenizer_files(directory: Path) -> Path:
    """``vocab.json`` + ``merges.txt`` for a Hugging Face ``CLIPTokenizer``, built from open_clip's BPE file."""
    bpe = Path(importlib.util.find_spec("open_clip").origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = _byte_symbols()
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return directory


def clip_tokenizer(directory: Path):
    """A ``CLIPTokenizer`` whose files are written to ``directory`` (which must outlive the tokenizer's use)."""
    from transformers import CLIPTokenizer

    write_clip_tokenizer_files(directory)
    return CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
