"""Pickle payloads for refusal tests: unpickling one creates a marker file, so a test can see code ran."""

from __future__ import annotations

from pathlib import Path

import torch


class CreatesMarker:
    """``pickle.loads`` of this object calls ``open(marker, "w")``: the side effect proves code execution."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_payload(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file (what .pt/.pth/.bin/.pkl loaders read) whose unpickling creates ``marker``."""
    torch.save({"state_dict": CreatesMarker(marker)}, path)
    return path
