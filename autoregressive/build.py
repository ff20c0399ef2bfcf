"""Models from their options: the GPT policy, the VQ decoder and (t2i) the caption encoder.

``ModelArguments`` is what training and evaluation share, so a model evaluates with exactly the options it was
trained with. File checks name the flag and say where LlamaGen's weights are downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autoregressive.models.gpt import GPT, GPT_models, build_gpt, load_gpt_weights
from autoregressive.run_layout import resolve_gpt_checkpoint
from tokenizer.vq_model import VQ_models, VQModel, load_vq

DOWNLOADS = {
    "c2i": "https://huggingface.co/FoundationVision/LlamaGen (c2i_*.pt, vq_ds16_c2i.pt)",
    "t2i": "https://huggingface.co/peizesun/llamagen_t2i (t2i_XL_stage1_256.pt, vq_ds16_t2i.pt)",
}
DEMO_HINT = "No checkpoints yet? `bash run_demo.sh` trains small ones offline and runs GRPO on them."
# Per task: (image_size, cls_token_num) of LlamaGen's released models.
TASK_DEFAULTS = {"c2i": (384, 1), "t2i": (256, 120)}


def _opt(default: Any, help: str, choices: tuple | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(kw_only=True)
class ModelArguments:
    """The model flags of every entry point (training and evaluation)."""

    gpt_model: str = _opt("GPT-XL", "GPT size", tuple(sorted(GPT_models)))
    gpt_type: str = _opt("c2i", "class- or text-conditional", ("c2i", "t2i"))
    gpt_ckpt: str = field(metadata={
            "help": "GPT weights: a LlamaGen .pt/.safetensors (any layout), a checkpoint-N folder (ours or upstream "
            "AR-GRPO's) or a finished run's folder"
        })
    gpt_use_ema: bool = _opt(False, "load the 'ema' weights of a training checkpoint")
    vq_model: str = _opt("VQ-16", "VQ tokenizer architecture", tuple(sorted(VQ_models)))
    vq_ckpt: str = field(
        metadata={"help": "VQ checkpoint, e.g. vq_ds16_c2i.pt, or an upstream AR-GRPO checkpoint-N folder"}
    )
    vq_config: str | None = _opt(None, "JSON of VQ config overrides for small custom tokenizers (e.g. the demo's)")
    codebook_size: int = _opt(16384, "VQ codebook entries = GPT vocabulary")
    codebook_embed_dim: int = _opt(8, "VQ code dimension")
    image_size: int | None = _opt(
        None,
        "generated image size in pixels (default: 384 for c2i, 256 for t2i; block_size = (image_size / "
        "downsample_size)^2)",
    )
    downsample_size: int = _opt(16, "VQ downsampling factor")
    cls_token_num: int | None = _opt(
        None, "condition positions: 1 class token (c2i default), or caption tokens (t2i default: 120)"
    )
    num_classes: int = _opt(1000, "c2i classes")
    caption_dim: int = _opt(2048, "text-encoder feature size (t2i)")
    gpt_config: str | None = _opt(None, "JSON of extra GPT ModelArgs (e.g. '{\"dim\": 128}') for custom small models")
    text_encoder: str = _opt(
        "google/flan-t5-xl",
        "t2i: T5 folder or hub id (LlamaGen: pretrained_models/t5-ckpt/flan-t5-xl); "
        "'tiny' builds a random-weight encoder for offline tests",
    )
    text_encoder_seed: int = _opt(0, "weights seed of --text_encoder tiny")

    def __post_init__(self) -> None:
        image_size, cls_token_num = TASK_DEFAULTS[self.gpt_type]
        if self.image_size is None:
            self.image_size = image_size
        if self.cls_token_num is None:
            self.cls_token_num = cls_token_num
        if self.image_size % self.downsample_size:
            raise ValueError(
                f"--image_size {self.image_size} is not a multiple of --downsample_size {self.downsample_size}"
            )

    @property
    def grid(self) -> int:
        """Tokens per image side."""
        return self.image_size // self.downsample_size


def require_file(path: str, flag: str, model_type: str) -> Path:
    """``path`` as a file, else an error naming ``flag`` and where LlamaGen's weights are."""
    p = Path(path)
    if not p.is_file():
        raise SystemExit(
            f"{flag} {path}: file not found. Download it from {DOWNLOADS[model_type]} into pretrained_models/, "
            f"or pass the right path. {DEMO_HINT}"
        )
    return p


def weights_path(path: str, flag: str, model_type: str) -> Path:
    """The weights ``flag`` names: a file, or a folder: a ``checkpoint-N`` (ours, or upstream AR-GRPO's with
    ``gpt_model.``/``vq_model.`` keys, single or sharded) or, for the GPT, a finished run's folder."""
    p = Path(path)
    if not p.is_dir():
        return require_file(path, flag, model_type)
    if flag != "--gpt_ckpt":
        return p
    try:
        return resolve_gpt_checkpoint(p)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"{flag} {path}: {err}") from err


def check_model_files(args: ModelArguments) -> None:
    """Every file and folder the models need, checked before anything loads."""
    weights_path(args.gpt_ckpt, "--gpt_ckpt", args.gpt_type)
    weights_path(args.vq_ckpt, "--vq_ckpt", args.gpt_type)
    if args.gpt_type == "t2i":
        text_encoder = args.text_encoder
        if text_encoder.startswith(("/", ".", "~")) and not Path(text_encoder).expanduser().is_dir():
            raise SystemExit(f"--text_encoder {text_encoder}: folder not found (give a T5 folder, a hub id or 'tiny')")


def _json(text: str | None) -> dict:
    return json.loads(text) if text else {}


def build_policy(args: ModelArguments) -> GPT:
    """The GPT with ``args.gpt_ckpt``'s weights, loaded strictly."""
    path = weights_path(args.gpt_ckpt, "--gpt_ckpt", args.gpt_type)
    model = build_gpt(
        args.gpt_model,
        model_type=args.gpt_type,
        block_size=args.grid * args.grid,
        cls_token_num=args.cls_token_num,
        vocab_size=args.codebook_size,
        num_classes=args.num_classes,
        caption_dim=args.caption_dim,
        **_json(args.gpt_config),
    )
    return load_gpt_weights(model, path, use_ema=args.gpt_use_ema)


def build_vq(args: ModelArguments, device: torch.device) -> VQModel:
    """The frozen VQ tokenizer on ``device``; its downsampling must match ``--downsample_size``."""
    path = weights_path(args.vq_ckpt, "--vq_ckpt", args.gpt_type)
    config = {
        "codebook_size": args.codebook_size,
        "codebook_embed_dim": args.codebook_embed_dim,
        **_json(args.vq_config),
    }
    vq = load_vq(path, args.vq_model, device=device, **config).requires_grad_(False)
    if vq.config.downsample_factor != args.downsample_size:
        raise SystemExit(
            f"{args.vq_model} downsamples by {vq.config.downsample_factor}, "
            f"but --downsample_size is {args.downsample_size}"
        )
    return vq


def image_decoder(vq: VQModel, image_size: int, downsample_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens (B, N) -> float images in [0, 1], decoded in fp32 (as LlamaGen does)."""
    grid = image_size // downsample_size

    @torch.no_grad()
    def decode(tokens: torch.Tensor) -> torch.Tensor:
        with torch.autocast(tokens.device.type, enabled=False):
            return vq.decode_to_images(tokens, grid)

    return decode


def build_text_encoder(args: ModelArguments, device: torch.device):
    """The frozen caption encoder of a t2i model; its feature size must match ``--caption_dim``."""
    from autoregressive.text_encoder import T5TextEncoder

    if args.text_encoder == "tiny":
        encoder = T5TextEncoder.tiny(
            d_model=args.caption_dim, seed=args.text_encoder_seed, max_length=args.cls_token_num, device=device
        )
    else:
        encoder = T5TextEncoder.from_pretrained(args.text_encoder, max_length=args.cls_token_num, device=device)
    if encoder.caption_dim != args.caption_dim:
        raise SystemExit(
            f"the text encoder gives {encoder.caption_dim}-d features but --caption_dim is {args.caption_dim}"
        )
    return encoder
