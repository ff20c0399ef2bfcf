"""GenEval images from a text-to-image GPT, in the folder layout GenEval's evaluator reads.

    torchrun --nproc_per_node N -m sampling.sample_geneval --gpt_ckpt CKPT --vq_ckpt VQ \\
        --metadata_file evaluation_metadata.jsonl --outdir OUTDIR

For line k of GenEval's ``evaluation_metadata.jsonl`` this writes ``--n_samples`` images to
``OUTDIR/{k:05d}/samples/{j:04d}.png`` and the line itself to ``OUTDIR/{k:05d}/metadata.jsonl``. Then run
GenEval's detector on OUTDIR (docs/evaluation.md). Existing images are kept, so a run resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dataset.prompts import load_geneval_metadata
from sampling.common import (
    ProcessLayout,
    check_run_record,
    run_in_processes,
    sampling_record,
)
from sampling.prompt_folders import (
    T2I_DEFAULTS,
    PromptImagesArguments,
    lines_digest,
    make_prompt_images,
    prepare_prompt_folders,
)
from sampling.sampler import parse_sampling_flags, resolve_model_files, text_encoder_record


@dataclass(kw_only=True)
class GenEvalArguments(PromptImagesArguments):
    metadata_file: str = field(metadata={"help": "GenEval's prompts/evaluation_metadata.jsonl"})
    outdir: str = field(metadata={"help": "image folder for GenEval's evaluate_images.py"})


def parse_args(argv: list[str] | None = None) -> GenEvalArguments:
    return parse_sampling_flags(GenEvalArguments, argv, __doc__, **T2I_DEFAULTS)


def run(args: GenEvalArguments, layout: ProcessLayout) -> Path:
    entries = load_geneval_metadata(args.metadata_file)
    gpt_ckpt = resolve_model_files(args)
    outdir = Path(args.outdir)
    lines = [entry.raw_line for entry in entries]
    extra = {**text_encoder_record(args), "prompts_sha256": lines_digest(lines)}
    record = sampling_record(args, gpt_ckpt, extra)
    check_run_record(outdir, record)
    prepare_prompt_folders(outdir, lines, args.n_samples, layout)
    progress = layout.is_main and args.progress
    make_prompt_images(args, layout, [entry.prompt for entry in entries], outdir, args.n_samples, progress, record)
    if layout.is_main:
        print(f"GenEval images for {len(entries)} prompts x {args.n_samples} are in {outdir}")
    return outdir


def main(argv: list[str] | None = None) -> Path:
    return run_in_processes(run, parse_args(argv))


if __name__ == "__main__":
    main()
