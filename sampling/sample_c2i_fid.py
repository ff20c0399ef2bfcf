"""Class-conditional samples for the ImageNet FID suite: PNGs plus one npz in the evaluator's layout.

    torchrun --nproc_per_node N -m sampling.sample_c2i_fid --gpt_ckpt CKPT --vq_ckpt VQ --sample_dir DIR

Sample i has class ``i % num_classes`` (50 per class for the default 50,000) and is written as
``DIR/{i:06d}.png``; then ``DIR.npz`` gets every sample in index order (``arr_0`` uint8 N x H x W x 3,
``arr_1`` the class ids), ready for ``fid_evaluation.py REF.npz DIR.npz``. Images are resized to
``--image_size_eval`` (bicubic, as LlamaGen) before they are stored, because the ImageNet reference batch is
256 px. Existing PNGs are kept (the run resumes) and the npz is rebuilt only when samples changed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.npz_io import NpzArrayReader, write_sample_npz
from sampling.common import (
    ProcessLayout,
    batches,
    check_cpu_budget,
    check_run_record,
    run_in_processes,
    sampling_record,
    write_run_record,
)
from sampling.images import read_png, save_png
from sampling.sampler import (
    SamplerArguments,
    build_sampler,
    estimated_parameters,
    parse_sampling_flags,
    resolve_model_files,
)


@dataclass(kw_only=True)
class FIDArguments(SamplerArguments):
    sample_dir: str = field(metadata={"help": "folder of the PNG samples (the npz goes beside it)"})
    npz_path: str | None = field(default=None, metadata={"help": "sample batch to write (default: SAMPLE_DIR.npz)"})
    num_fid_samples: int = field(default=50_000, metadata={"help": "number of samples"})
    image_size_eval: int = field(
        default=256,
        metadata={
            "help": "resize samples to this size before storing them (the reference batch is 256 px); "
            "0 keeps --image_size"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_fid_samples < 1:
            raise ValueError(f"--num_fid_samples must be >= 1, got {self.num_fid_samples}")
        if self.image_size_eval < 0:
            raise ValueError(f"--image_size_eval must be >= 0, got {self.image_size_eval}")


def parse_args(argv: list[str] | None = None) -> FIDArguments:
    return parse_sampling_flags(FIDArguments, argv, __doc__, gpt_type="c2i", cfg_scale=2.0, top_k=0)


def png_path(sample_dir: Path, index: int) -> Path:
    return sample_dir / f"{index:06d}.png"


def npz_is_current(npz_path: Path, pngs: list[Path], size: int) -> bool:
    """The npz already holds these samples: right shape and written after the newest PNG."""
    if not npz_path.is_file():
        return False
    try:
        with NpzArrayReader(npz_path) as reader:
            shape = reader.shape
    except (ValueError, KeyError) as err:
        print(f"rebuilding {npz_path}: {err}", file=sys.stderr)
        return False
    newest = max(p.stat().st_mtime_ns for p in pngs)
    return shape == (len(pngs), size, size, 3) and npz_path.stat().st_mtime_ns >= newest


def write_npz(npz_path: Path, pngs: list[Path], labels: np.ndarray, size: int, progress: bool) -> int:
    def rows():
        for chunk in batches(pngs, 256):
            yield np.stack([read_png(p, size) for p in chunk])

    chunks = tqdm(rows(), total=-(-len(pngs) // 256), desc=f"writing {npz_path.name}", disable=not progress)
    return write_sample_npz(npz_path, chunks, labels=labels)


def sample_missing(args: FIDArguments, layout: ProcessLayout, missing: list[int], size: int, record: dict) -> None:
    """Make the missing samples; ``record`` is written once the models have loaded, before the first sample."""
    if missing:
        check_cpu_budget(args, layout, len(missing), estimated_parameters(args))
        sampler = build_sampler(args, layout.device, output_size=size)
    write_run_record(Path(args.sample_dir), record, layout)
    mine = layout.share(missing)
    if not mine:
        return
    sample_dir = Path(args.sample_dir)
    progress = layout.is_main and args.progress
    for chunk in tqdm(list(batches(mine, args.per_proc_batch_size)), desc="sampling", disable=not progress):
        labels = torch.tensor([i % args.num_classes for i in chunk], device=layout.device)
        images = sampler(labels, keys=[(i,) for i in chunk])
        for index, image in zip(chunk, images):
            save_png(image, png_path(sample_dir, index))


def run(args: FIDArguments, layout: ProcessLayout) -> Path:
    sample_dir = Path(args.sample_dir)
    npz_path = Path(args.npz_path) if args.npz_path else sample_dir.with_name(sample_dir.name + ".npz")
    gpt_ckpt = resolve_model_files(args)
    size = args.image_size_eval or args.image_size
    record = sampling_record(args, gpt_ckpt, {"num_classes": args.num_classes, "stored_image_size": size})
    check_run_record(sample_dir, record)

    pngs = [png_path(sample_dir, i) for i in range(args.num_fid_samples)]
    missing = [i for i, p in enumerate(pngs) if not p.is_file()]
    layout.barrier()  # every process listed the folder before anyone writes to it
    if layout.is_main:
        print(f"{len(pngs) - len(missing)} of {len(pngs)} samples exist in {sample_dir}; {len(missing)} to make")
    sample_missing(args, layout, missing, size, record)
    layout.barrier()

    if layout.is_main:
        if npz_is_current(npz_path, pngs, size):
            print(f"{npz_path} is up to date")
        else:
            labels = np.arange(args.num_fid_samples) % args.num_classes
            count = write_npz(npz_path, pngs, labels, size, args.progress)
            print(f"wrote {count} samples ({size}x{size}) to {npz_path}")
    return npz_path


def main(argv: list[str] | None = None) -> Path:
    return run_in_processes(run, parse_args(argv))


if __name__ == "__main__":
    main()
