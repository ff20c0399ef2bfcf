"""GenEval's image-folder layout (used for DrawBench too) and the t2i sampling loop that fills it.

    OUTDIR/<prompt index, 5 digits>/metadata.jsonl          the prompt's record, one JSON line
    OUTDIR/<prompt index, 5 digits>/samples/<4 digits>.png  its images

GenEval's ``evaluation/evaluate_images.py`` walks the sub-folders whose names are all digits, ``json.load``s
their ``metadata.jsonl`` and scores every ``samples/`` file matching ``\\d+\\.png``; anything else in OUTDIR
(our run record, temporary files starting with a dot) is ignored by it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from autoregressive.build import build_text_encoder
from sampling.common import ProcessLayout, batches, check_cpu_budget, write_run_record
from sampling.images import save_png
from sampling.sampler import SamplerArguments, build_sampler, estimated_parameters

T2I_DEFAULTS = {"gpt_type": "t2i", "cfg_scale": 7.5, "top_k": 2000, "per_proc_batch_size": 16}
"""Flag defaults of the scripts that fill prompt folders (LlamaGen's text-to-image sampling settings)."""


@dataclass(kw_only=True)
class PromptImagesArguments(SamplerArguments):
    """Flags of a script that writes ``--n_samples`` images per prompt into prompt folders."""

    n_samples: int = field(default=4, metadata={"help": "images per prompt (GenEval uses 4)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_samples < 1:
            raise ValueError(f"--n_samples must be >= 1, got {self.n_samples}")

METADATA_FILE = "metadata.jsonl"
SAMPLES_DIR = "samples"
_SAMPLE_NAME = re.compile(r"^(\d+)\.png$")


def prompt_folder(outdir: Path, index: int) -> Path:
    return outdir / f"{index:05d}"


def sample_path(outdir: Path, index: int, sample: int) -> Path:
    return prompt_folder(outdir, index) / SAMPLES_DIR / f"{sample:04d}.png"


def lines_digest(lines: Sequence[str]) -> str:
    """Identifies a prompt list in the run record, so a folder is never resumed with other prompts."""
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def prepare_prompt_folders(outdir: Path, lines: Sequence[str], n_samples: int, layout: ProcessLayout) -> None:
    """Write each folder's ``metadata.jsonl`` (the line verbatim) and refuse folders that hold other prompts or
    more samples than asked for (GenEval would score those too)."""
    for index, line in enumerate(lines):
        folder = prompt_folder(outdir, index)
        metadata = folder / METADATA_FILE
        if metadata.is_file() and metadata.read_text(encoding="utf-8") != line + "\n":
            raise ValueError(
                f"{metadata} holds another prompt than line {index + 1} ({line[:80]!r}); use another output folder"
            )
        samples = folder / SAMPLES_DIR
        if samples.is_dir():
            extra = sorted(
                p.name for p in samples.iterdir() if (m := _SAMPLE_NAME.match(p.name)) and int(m.group(1)) >= n_samples
            )
            if extra:
                raise ValueError(
                    f"{samples} holds {len(extra)} sample(s) beyond --n_samples {n_samples} ({', '.join(extra[:3])}); "
                    "the evaluator would score them too: delete them or use another output folder"
                )
    layout.barrier()
    if layout.is_main:
        for index, line in enumerate(lines):
            metadata = prompt_folder(outdir, index) / METADATA_FILE
            if not metadata.is_file():
                metadata.parent.mkdir(parents=True, exist_ok=True)
                tmp = metadata.with_name(f".{METADATA_FILE}.tmp")
                tmp.write_text(line + "\n", encoding="utf-8")
                os.replace(tmp, metadata)
    layout.barrier()


def make_prompt_images(
    args: SamplerArguments,
    layout: ProcessLayout,
    captions: Sequence[str],
    outdir: Path,
    n_samples: int,
    progress: bool,
    record: dict,
) -> int:
    """Sample every missing image (caption i, sample j), keyed (i, j) for its seed; returns how many were missing.

    ``record`` (the settings) is written to OUTDIR once the models have loaded, before the first image."""
    missing = [
        (index, j)
        for index in range(len(captions))
        for j in range(n_samples)
        if not sample_path(outdir, index, j).is_file()
    ]
    layout.barrier()  # every process listed the folders before anyone writes to them
    if layout.is_main:
        total = len(captions) * n_samples
        print(f"{total - len(missing)} of {total} images exist in {outdir}; {len(missing)} to make")
    if missing:
        check_cpu_budget(args, layout, len(missing), estimated_parameters(args))
        sampler = build_sampler(args, layout.device)
        encoder = build_text_encoder(args, layout.device)
    write_run_record(outdir, record, layout)
    mine = layout.share(missing)
    if mine:
        for chunk in tqdm(list(batches(mine, args.per_proc_batch_size)), desc="sampling", disable=not progress):
            emb, mask = encoder.encode([captions[index] for index, _ in chunk])
            images = sampler(emb, keys=chunk, cond_mask=mask)
            for (index, j), image in zip(chunk, images):
                save_png(image, sample_path(outdir, index, j))
    layout.barrier()
    return len(missing)
