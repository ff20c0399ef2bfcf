"""A run's output folder belongs to one run: a finished run is never silently overwritten or mixed with another."""

from __future__ import annotations

import shutil
from pathlib import Path

_SHOWN = 4


def check_output_dir(output_dir: str | Path, *, overwrite: bool, resuming: bool) -> None:
    """Refuse a non-empty ``output_dir`` unless the run resumes or the user asked to overwrite it.

    Read-only, so every process can call it before anything loads (the error comes early and on every rank).
    """
    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"--output_dir {root}: exists and is not a folder")
    if resuming or not root.is_dir():
        return
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        return
    if overwrite:
        if Path.cwd().resolve().is_relative_to(root.resolve()):
            raise ValueError(f"--overwrite_output_dir: refusing to clear {root}, which holds the working directory")
        return
    shown = ", ".join(entries[:_SHOWN]) + (f", ... ({len(entries)} entries)" if len(entries) > _SHOWN else "")
    raise FileExistsError(
        f"--output_dir {root} is not empty ({shown}): it may hold another run. Pass --resume_from_checkpoint "
        "latest to continue it, --overwrite_output_dir true to delete its contents and start over, or another "
        "--output_dir."
    )


def clear_output_dir(output_dir: str | Path) -> None:
    """Delete everything inside ``output_dir`` (the folder itself stays: it may be a mount point)."""
    for entry in Path(output_dir).iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
