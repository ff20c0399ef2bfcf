"""Conditions -> 8-bit images: the trained GPT, the VQ decoder and (t2i) the caption encoder, built from the
same model options as training (autoregressive/build.py), so a model evaluates with exactly those options."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoregressive.build import DOWNLOADS, ModelArguments, build_policy, build_vq, image_decoder
from autoregressive.checkpoint import CheckpointError, weights_file_in
from autoregressive.models.generate import SamplingConfig, generate
from autoregressive.models.gpt import GPT, GPT_models
from autoregressive.models.seeding import sample_generators
from autoregressive.run_layout import resolve_gpt_checkpoint, saved_model_flags
from sampling.common import SamplingArguments
from sampling.images import to_uint8
from scripts.flags import CONFIG_FLAG, parse_flags, read_config


@dataclass(kw_only=True)
class SamplerArguments(SamplingArguments, ModelArguments):
    """The model and sampling flags: what ``build_sampler`` reads (each script adds its own)."""


@dataclass
class ImageSampler:
    model: GPT
    decode: Callable[[torch.Tensor], torch.Tensor]
    cfg: SamplingConfig
    device: torch.device
    seed: int
    bf16: bool = False
    output_size: int | None = None

    @torch.no_grad()
    def __call__(
        self, cond: torch.Tensor, keys: Sequence[Sequence[int]], cond_mask: torch.Tensor | None = None
    ) -> np.ndarray:
        """Sample one image per row of ``cond``; row i draws from a stream seeded by ``(seed, *keys[i])``."""
        generators = sample_generators(self.seed, keys, self.device)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            rollout = generate(self.model, cond, cfg=self.cfg, cond_mask=cond_mask, generator=generators)
        return to_uint8(self.decode(rollout.tokens), self.output_size)


def sampling_config(args: SamplingArguments) -> SamplingConfig:
    return SamplingConfig(
        cfg_scale=args.cfg_scale,
        cfg_interval=args.cfg_interval,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
    )


def check_vq_file(args: ModelArguments) -> None:
    """Fail before any work (the GPT path is checked when it is resolved); a checkpoint folder (upstream's holds
    the VQ beside the GPT) becomes its weights file."""
    path = Path(args.vq_ckpt)
    if path.is_dir():
        try:
            args.vq_ckpt = str(weights_file_in(path))
        except CheckpointError as err:
            raise SystemExit(f"--vq_ckpt {args.vq_ckpt}: {err}") from err
    elif not path.is_file():
        raise SystemExit(
            f"--vq_ckpt {args.vq_ckpt}: file not found. Download it from {DOWNLOADS[args.gpt_type]} into "
            "pretrained_models/, or pass the right path."
        )


def resolve_model_files(args: SamplerArguments) -> Path:
    """Point ``args.gpt_ckpt`` at the weights file it names (an output folder + ``--ckpt_step``: one checkpoint) and
    check the VQ file, before any work."""
    args.gpt_ckpt = str(resolve_gpt_checkpoint(args.gpt_ckpt, args.ckpt_step))
    check_vq_file(args)
    return Path(args.gpt_ckpt)


def _as_flag(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{key}={str(value).lower()}"
    return f"--{key}={json.dumps(value) if isinstance(value, (dict, list)) else value}"


def parse_sampling_flags(dataclass_type: type, argv: list[str] | None, description: str | None, **defaults: Any):
    """Parse a sampling script's flags, taking the model flags the checkpoint's run saved as defaults.

    A checkpoint of ours carries its run config (trainer_state.json), upstream's a config.json: the model flags
    (``--gpt_model``, ``--image_size``, ``--vq_ckpt``, ...) come from there unless given on the command line or in
    a ``--config`` file, so a run is evaluated with the settings it was trained with without repeating them.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--gpt_ckpt")
    pre.add_argument("--ckpt_step")
    pre.add_argument(CONFIG_FLAG)
    known, _ = pre.parse_known_args(argv)
    saved: dict[str, Any] = {}
    if known.gpt_ckpt:
        try:
            weights = resolve_gpt_checkpoint(known.gpt_ckpt, known.ckpt_step)
        except (FileNotFoundError, ValueError):
            weights = None  # reported when the run resolves its files, like any other missing input
        if weights is not None:
            try:
                saved, source = saved_model_flags(weights)
            except CheckpointError as err:
                raise SystemExit(f"--gpt_ckpt {known.gpt_ckpt}: {err}") from err
        given = {arg.split("=", 1)[0][2:].replace("-", "_") for arg in argv if arg.startswith("--")}
        if known.config:  # a --config file's values are the user's too: they win over the saved ones
            given |= set(read_config(Path(known.config)))
        saved = {key: value for key, value in saved.items() if key not in given}
        if saved and os.environ.get("RANK", "0") == "0":
            shown = ", ".join(f"{key}={value}" for key, value in sorted(saved.items()))
            print(f"model flags from {source}: {shown} (flags on the command line override them)", flush=True)
    saved_argv = [_as_flag(key, value) for key, value in saved.items()]
    (args,) = parse_flags([dataclass_type], saved_argv + argv, description=description, **defaults)
    return args


def estimated_parameters(args: ModelArguments) -> int:
    """The GPT's parameter count from its size (transformer blocks and embeddings), without building it."""
    size = {**GPT_models[args.gpt_model].size, **json.loads(args.gpt_config or "{}")}
    dim, layers = size["dim"], size["n_layer"]
    return 12 * layers * dim * dim + 2 * args.codebook_size * dim


def build_sampler(args: SamplerArguments, device: torch.device, output_size: int | None = None) -> ImageSampler:
    """Load the GPT (``args.gpt_ckpt`` must already be a weights file) and the VQ strictly."""
    model = build_policy(args).to(device).eval().requires_grad_(False)
    vq = build_vq(args, device)
    return ImageSampler(
        model=model,
        decode=image_decoder(vq, args.image_size, args.downsample_size),
        cfg=sampling_config(args),
        device=device,
        seed=args.seed,
        bf16=args.bf16,
        output_size=output_size,
    )


# -------------------------------------------------------------------------------------- text encoder
def text_encoder_record(args: ModelArguments) -> dict:
    return {
        "text_encoder": args.text_encoder,
        "text_encoder_seed": args.text_encoder_seed if args.text_encoder == "tiny" else None,
        "cls_token_num": args.cls_token_num,
    }
