"""GenEval images from a text-to-image GPT, in the folder layout GenEval's evaluator reads.

    torchrun --nproc_per_node N -m sampling.sample_geneval --gpt_ckpt CKPT --vq_ckpt VQ \\
        --metadata_file evaluation_metadata.jsonl --outdir OUTDIR

For line k of GenEval's ``evaluation_metadata.jsonl`` this writes ``--n_samples`` images to
``OUTDIR/{k:05d}/samples/{j:04d}.png`` and the line itself to ``OUTDIR/{k:05d}/metadata.jsonl``. Then run
GenEval's detector on OUTDIR (docs/evaluation.md). Existing images are kept, so a run resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dataset.prompts import load_geneval_metadata
from grpo.cli import add_model_args
from sampling.common import (
    ProcessLayout,
    add_sampling_args,
    check_run_record,
    resolve_gpt_checkpoint,
    run_in_processes,
    sampling_record,
)
from sampling.prompt_folders import lines_digest, make_prompt_images, prepare_prompt_folders
from sampling.sampler import add_text_encoder_args, check_vq_file, text_encoder_record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, "t2i")
    add_text_encoder_args(parser)
    add_sampling_args(parser, cfg_scale=7.5, top_k=2000, batch_size=16)
    group = parser.add_argument_group("GenEval")
    group.add_argument("--metadata_file", required=True, help="GenEval's prompts/evaluation_metadata.jsonl")
    group.add_argument("--outdir", required=True, help="image folder for GenEval's evaluate_images.py")
    group.add_argument("--n_samples", type=int, default=4, help="images per prompt (GenEval uses 4)")
    args = parser.parse_args(argv)
    if args.n_samples < 1:
        parser.error(f"--n_samples must be >= 1, got {args.n_samples}")
    return args


def run(args: argparse.Namespace, layout: ProcessLayout) -> Path:
    entries = load_geneval_metadata(args.metadata_file)
    args.gpt_ckpt = str(resolve_gpt_checkpoint(args.gpt_ckpt, args.ckpt_step))
    check_vq_file(args)
    outdir = Path(args.outdir)
    lines = [entry.raw_line for entry in entries]
    extra = {**text_encoder_record(args), "prompts_sha256": lines_digest(lines)}
    check_run_record(outdir, sampling_record(args, Path(args.gpt_ckpt), extra), layout)
    prepare_prompt_folders(outdir, lines, args.n_samples, layout)
    progress = layout.is_main and not args.no_progress
    make_prompt_images(args, layout, [entry.prompt for entry in entries], outdir, args.n_samples, progress)
    if layout.is_main:
        print(f"GenEval images for {len(entries)} prompts x {args.n_samples} are in {outdir}")
    return outdir


def main(argv: list[str] | None = None) -> Path:
    return run_in_processes(run, parse_args(argv))


if __name__ == "__main__":
    main()
