"""Export a checkpoint's GPT to the files LlamaGen's tools load: ``{"model": state_dict}`` (.pt) and .safetensors.

    python -m scripts.export RUN_OR_CHECKPOINT --out FILE.pt [--step N]

RUN_OR_CHECKPOINT is one of our ``checkpoint-N`` folders (accelerate's model.safetensors), a run's output folder
(``--step`` picks checkpoint-N, 'latest', or by default ``gpt_final.pt``), upstream AR-GRPO's ``checkpoint-N``
folder (its ``gpt_model.*`` part, single or sharded) or any weights file LlamaGen reads. FILE.pt and
FILE.safetensors are written (atomically) with the same tensors, LlamaGen's key names, no optimizer state.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autoregressive.checkpoint import STALE_KEY_SUFFIXES, CheckpointError, read_state_dict, save_checkpoint_atomic
from autoregressive.run_layout import resolve_gpt_checkpoint
from scripts.flags import parse_flags


@dataclass(kw_only=True)
class ExportArguments:
    source: str = field(metadata={"help": "a checkpoint-N folder, a run's output folder or a weights file"})
    out: str = field(metadata={"help": "the .pt file to write; the .safetensors copy goes beside it"})
    step: str | None = field(
        default=None, metadata={"help": "in a run's output folder: checkpoint-STEP, 'latest' or 'final' (default)"}
    )


def export_gpt(source: str | Path, out: str | Path, step: str | None = None) -> tuple[Path, Path]:
    """Write ``out`` (``{"model": sd}``) and ``out`` with suffix .safetensors; return both paths."""
    out = Path(out)
    if out.suffix == ".safetensors":
        raise ValueError(f"--out {out}: give the .pt name; the .safetensors file is written beside it")
    weights = resolve_gpt_checkpoint(source, step)
    state_dict = read_state_dict(weights, part="gpt_model")
    state_dict = {
        key: value.contiguous()
        for key, value in state_dict.items()
        if not (key == "freqs_cis" or key.endswith(STALE_KEY_SUFFIXES))
    }
    pt_path = save_checkpoint_atomic({"model": state_dict}, out)
    safetensors_path = save_checkpoint_atomic(state_dict, out.with_suffix(".safetensors"))
    return pt_path, safetensors_path


def main(argv: list[str] | None = None) -> tuple[Path, Path]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # the positional form: export SOURCE --out FILE
        argv = ["--source", argv[0], *argv[1:]]
    (args,) = parse_flags([ExportArguments], argv, description=__doc__)
    try:
        written = export_gpt(args.source, args.out, args.step)
    except (FileNotFoundError, ValueError, CheckpointError) as err:
        raise SystemExit(f"error: {err}") from err
    count = len(torch.load(written[0], map_location="cpu", weights_only=True)["model"])
    print(f"wrote {count} tensors to {written[0]} and {written[1]}")
    return written


if __name__ == "__main__":
    main()
