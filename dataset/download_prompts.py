"""Fetch the prompt files AR-GRPO trains and evaluates on, from their public sources.

    python -m dataset.download_prompts                    # everything (COCO needs a ~250 MB zip)
    python -m dataset.download_prompts geneval drawbench  # only the benchmark prompts

Targets (paths relative to ``--root``, the repository by default):
- ``geneval``: ``benchmark/geneval/prompts/evaluation_metadata.jsonl``, ``.../object_names.txt`` and
  GenEval's ``LICENSE`` (MIT), from the GenEval GitHub repository (djghosh13/geneval).
- ``drawbench``: ``benchmark/drawbench/drawbench_test_1000.json``, upstream AR-GRPO's DrawBench file (the 200
  prompts, each 5 times) from its GitHub repository at a fixed commit, checked against its sha256: pinned.
- ``drawbench_sheet``: ``benchmark/drawbench/drawbench.csv``, the Imagen team's live DrawBench sheet exported as
  CSV (columns ``Prompts``, ``Category``; 200 prompts): has the categories, but is not pinned (it may change).
- ``coco``: ``dataset/coco_captions_30000.json``, 30,000 captions (one per image) sampled here with a fixed seed
  from COCO's caption annotations (``annotations_trainval2014.zip`` by default, kept in ``dataset/.cache``).
  This is this project's list, not upstream's file.
- ``coco_upstream``: ``dataset/coco_captions_30000_upstream.json``, upstream AR-GRPO's COCO caption file (what
  its T2I run trained on) from its GitHub repository at the same commit, checked against its git object id.

Every file is checked with the project's own parser before it is moved into place; an existing valid file
is kept unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from dataset.benchmark_prompts import load_drawbench, load_geneval_metadata, load_object_names
from dataset.coco_captions import read_json_from_zip, sample_coco_captions, to_conversation_records
from dataset.downloads import (
    DownloadError,
    Validator,
    download_file,
    file_sha256,
    git_blob_sha1,
    write_text_atomically,
)
from dataset.prompt_files import load_prompts

REPO_ROOT = Path(__file__).resolve().parents[1]

GENEVAL_BASE_URL = "https://raw.githubusercontent.com/djghosh13/geneval/main"
GENEVAL_DIR = Path("benchmark/geneval")
# upstream AR-GRPO (Kwai-Klear/AR-GRPO) at a fixed commit; its files are pinned by checksum
UPSTREAM_COMMIT = "65947ad869cae0f36e4009f947b5b9da9e95a469"
UPSTREAM_RAW_URL = f"https://raw.githubusercontent.com/Kwai-Klear/AR-GRPO/{UPSTREAM_COMMIT}"
DRAWBENCH_URL = f"{UPSTREAM_RAW_URL}/benchmark/drawbench/drawbench_test_1000.json"
DRAWBENCH_SHA256 = "da444f3c90aba875ed6655c2e5731794ddfc762e202ddaf9ca1e7312dd7d0624"
DRAWBENCH_BYTES = 354_187
DRAWBENCH_PATH = Path("benchmark/drawbench/drawbench_test_1000.json")
DRAWBENCH_SHEET_URL = ("https://docs.google.com/spreadsheets/d/1y7nAbmR4FREi6npB1u-Bo3GFdwdOPYJc617rBOxIRHY"
                       "/gviz/tq?tqx=out:csv")
DRAWBENCH_SHEET_PATH = Path("benchmark/drawbench/drawbench.csv")
DRAWBENCH_SIZE = 200
COCO_URL_TEMPLATE = "http://images.cocodataset.org/annotations/annotations_trainval{year}.zip"
COCO_CACHE_DIR = Path("dataset/.cache")
COCO_UPSTREAM_URL = f"{UPSTREAM_RAW_URL}/dataset/coco_captions_30000.json"
COCO_UPSTREAM_GIT_BLOB = "aeaead5c7b501c7daf0f1a5f1367b3ca1b001529"  # its entry in upstream's tree at that commit
COCO_UPSTREAM_MAX_BYTES = 64 << 20
COCO_UPSTREAM_PATH = Path("dataset/coco_captions_30000_upstream.json")
TARGETS = ("geneval", "drawbench", "drawbench_sheet", "coco", "coco_upstream")


def _non_empty_text(path: Path) -> None:
    if not path.read_text(encoding="utf-8").strip():
        raise ValueError(f"{path}: empty file")


def _check_drawbench(path: Path) -> None:
    records = load_drawbench(path)  # distinct prompts (upstream's file repeats each 5 times)
    if len(records) != DRAWBENCH_SIZE:
        print(f"warning: {path} has {len(records)} distinct prompts; DrawBench had {DRAWBENCH_SIZE} when this "
              f"script was written", file=sys.stderr)


def _keep_existing(dest: Path, validate: Validator, force: bool) -> bool:
    """True if ``dest`` is there and valid (and not forced); an invalid one is an error, not a skip."""
    if force or not dest.exists():
        return False
    try:
        validate(dest)
    except (ValueError, OSError) as err:
        raise DownloadError(
            f"{dest} exists but is not valid ({err}); rerun with --force to replace it") from err
    print(f"kept existing {dest}")
    return True


def _fetch(url: str, dest: Path, validate: Validator, force: bool, timeout: float, progress: bool) -> Path:
    if not _keep_existing(dest, validate, force):
        download_file(url, dest, timeout=timeout, validate=validate, progress=progress)
        print(f"wrote {dest}  <- {url}")
    return dest


def fetch_geneval(root: Path, base_url: str = GENEVAL_BASE_URL, force: bool = False, timeout: float = 60.0,
                  progress: bool = True) -> list[Path]:
    """GenEval's prompt metadata, object names and licence."""
    files: list[tuple[str, Callable[[Path], object]]] = [
        ("prompts/evaluation_metadata.jsonl", load_geneval_metadata),
        ("prompts/object_names.txt", load_object_names),
        ("LICENSE", _non_empty_text),
    ]
    base = base_url.rstrip("/")
    return [_fetch(f"{base}/{name}", root / GENEVAL_DIR / name, check, force, timeout, progress)
            for name, check in files]


def _pinned(check: Validator, sha256: str | None = None, git_blob: str | None = None) -> Validator:
    """``check`` after the file's checksum matches the pinned one (a downloaded or an existing file)."""

    def validate(path: Path) -> None:
        if sha256 is not None and file_sha256(path) != sha256:
            raise ValueError(f"{path}: sha256 {file_sha256(path)} is not the pinned {sha256}")
        if git_blob is not None and git_blob_sha1(path) != git_blob:
            raise ValueError(f"{path}: git object id {git_blob_sha1(path)} is not the pinned {git_blob}")
        check(path)

    return validate


def fetch_drawbench(root: Path, url: str = DRAWBENCH_URL, force: bool = False, timeout: float = 60.0,
                    progress: bool = True, sha256: str = DRAWBENCH_SHA256, max_bytes: int = DRAWBENCH_BYTES) -> Path:
    """Upstream's DrawBench file at a fixed commit, verified by sha256 (``url`` may be a mirror of it)."""
    dest = root / DRAWBENCH_PATH
    validate = _pinned(_check_drawbench, sha256=sha256)
    if not _keep_existing(dest, validate, force):
        download_file(url, dest, timeout=timeout, validate=validate, progress=progress, sha256=sha256,
                      max_bytes=max_bytes)
        print(f"wrote {dest}  <- {url} (sha256 {sha256})")
    return dest


def fetch_drawbench_sheet(root: Path, url: str = DRAWBENCH_SHEET_URL, force: bool = False, timeout: float = 60.0,
                          progress: bool = True) -> Path:
    """The live DrawBench sheet as CSV, kept verbatim (with categories; not pinned)."""
    return _fetch(url, root / DRAWBENCH_SHEET_PATH, _check_drawbench, force, timeout, progress)


def fetch_coco_upstream(root: Path, url: str = COCO_UPSTREAM_URL, force: bool = False, timeout: float = 60.0,
                        progress: bool = True, git_blob: str = COCO_UPSTREAM_GIT_BLOB,
                        max_bytes: int = COCO_UPSTREAM_MAX_BYTES) -> Path:
    """Upstream's COCO caption file at a fixed commit, verified by its git object id."""
    dest = root / COCO_UPSTREAM_PATH
    validate = _pinned(load_prompts, git_blob=git_blob)
    if not _keep_existing(dest, validate, force):
        download_file(url, dest, timeout=timeout, validate=validate, progress=progress, max_bytes=max_bytes)
        print(f"wrote {dest}  <- {url} (git object {git_blob})")
    return dest


def coco_output_path(root: Path, num_captions: int) -> Path:
    return root / "dataset" / f"coco_captions_{num_captions}.json"


def fetch_coco_captions(root: Path, year: int = 2014, split: str = "val", num_captions: int = 30_000,
                        seed: int = 0, url: str | None = None, force: bool = False, timeout: float = 60.0,
                        progress: bool = True) -> Path:
    """Download COCO caption annotations (cached zip) and write the seeded caption sample."""
    dest = coco_output_path(root, num_captions)

    def check_output(path: Path) -> None:
        count = len(load_prompts(path))
        if count != num_captions:
            raise ValueError(f"{path}: expected {num_captions} prompts, found {count}")

    if _keep_existing(dest, check_output, force):
        return dest
    member = f"annotations/captions_{split}{year}.json"
    zip_url = url or COCO_URL_TEMPLATE.format(year=year)
    zip_path = root / COCO_CACHE_DIR / f"annotations_trainval{year}.zip"

    def check_zip(path: Path) -> None:
        read_json_from_zip(path, member)

    try:  # the zip is only a cache: a valid one is reused even with --force, a broken one is replaced
        check_zip(zip_path)
        print(f"using cached {zip_path}")
    except (ValueError, OSError):
        download_file(zip_url, zip_path, timeout=timeout, validate=check_zip, progress=progress)
    annotations = read_json_from_zip(zip_path, member)
    records = to_conversation_records(sample_coco_captions(annotations, num_captions, seed))
    text = json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    write_text_atomically(dest, text, validate=check_output)
    print(f"wrote {dest}  ({num_captions} captions of {member}, seed {seed})")
    return dest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"what to fetch: {', '.join(TARGETS)} or all (default: all)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="folder the default paths are under")
    parser.add_argument("--force", action="store_true", help="download again even if a valid file exists")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--coco-year", type=int, choices=(2014, 2017), default=2014)
    parser.add_argument("--coco-split", choices=("train", "val"), default="val")
    parser.add_argument("--num-captions", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the COCO caption sample")
    parser.add_argument("--geneval-base-url", default=GENEVAL_BASE_URL,
                        help="base URL of (a mirror of) the GenEval repository")
    parser.add_argument("--drawbench-url", default=DRAWBENCH_URL,
                        help="URL of (a mirror of) upstream's DrawBench JSON; its sha256 must match the pinned one")
    parser.add_argument("--drawbench-sheet-url", default=DRAWBENCH_SHEET_URL, help="URL of the DrawBench sheet CSV")
    parser.add_argument("--coco-upstream-url", default=COCO_UPSTREAM_URL,
                        help="URL of (a mirror of) upstream's COCO caption file; its git object id must match")
    parser.add_argument("--coco-url", default=None,
                        help="URL of the COCO annotations zip (default: cocodataset.org)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in (*TARGETS, "all")]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)} or all")
    targets = TARGETS if not args.targets or "all" in args.targets else tuple(dict.fromkeys(args.targets))
    common = {"force": args.force, "timeout": args.timeout, "progress": not args.no_progress}
    try:
        if "geneval" in targets:
            fetch_geneval(args.root, args.geneval_base_url, **common)
        if "drawbench" in targets:
            fetch_drawbench(args.root, args.drawbench_url, **common)
        if "drawbench_sheet" in targets:
            fetch_drawbench_sheet(args.root, args.drawbench_sheet_url, **common)
        if "coco_upstream" in targets:
            fetch_coco_upstream(args.root, args.coco_upstream_url, **common)
        if "coco" in targets:
            fetch_coco_captions(args.root, args.coco_year, args.coco_split, args.num_captions, args.seed,
                                args.coco_url, **common)
    except (DownloadError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
