"""Conditions -> 8-bit images: the trained GPT, the VQ decoder and (t2i) the caption encoder, built from the
same model options as training (autoregressive/build.py), so a model evaluates with exactly those options."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autoregressive.build import DOWNLOADS, ModelArguments, build_policy, build_vq, image_decoder
from autoregressive.models.generate import SamplingConfig, generate
from autoregressive.models.gpt import GPT
from autoregressive.models.seeding import sample_generators
from sampling.common import SamplingArguments, resolve_gpt_checkpoint
from sampling.images import to_uint8


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
    """Fail before any work (the GPT path is checked when it is resolved)."""
    if not Path(args.vq_ckpt).is_file():
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
