"""What train_c2i.py and train_t2i.py share: model flags, strict model loading, the VQ decoder callable."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import torch

from autoregressive.models.gpt import GPT, GPT_models, build_gpt, load_gpt_weights
from tokenizer.vq_model import VQ_models, VQModel, load_vq

DOWNLOADS = {
    "c2i": "https://huggingface.co/FoundationVision/LlamaGen (c2i_*.pt, vq_ds16_c2i.pt)",
    "t2i": "https://huggingface.co/peizesun/llamagen_t2i (t2i_XL_stage1_256.pt, vq_ds16_t2i.pt)",
}
DEMO_HINT = "No checkpoints yet? `bash run_demo.sh` trains small ones offline and runs GRPO on them."
SECRET_FLAG = re.compile(r"api_key|secret|password|auth_token", re.IGNORECASE)
SECRET_SET = "<set, not saved>"


def add_model_args(parser: argparse.ArgumentParser, model_type: str) -> None:
    group = parser.add_argument_group("models")
    group.add_argument("--gpt_model", default="GPT-XL", choices=sorted(GPT_models), help="GPT size")
    group.add_argument("--gpt_type", default=model_type, choices=["c2i", "t2i"], help="class- or text-conditional")
    group.add_argument("--gpt_ckpt", required=True, help="LlamaGen GPT checkpoint (.pt or .safetensors, any layout)")
    group.add_argument("--gpt_use_ema", action="store_true", help="load the 'ema' weights of a training checkpoint")
    group.add_argument("--vq_model", default="VQ-16", choices=sorted(VQ_models), help="VQ tokenizer architecture")
    group.add_argument("--vq_ckpt", required=True, help="VQ checkpoint, e.g. vq_ds16_c2i.pt")
    group.add_argument(
        "--vq_config",
        default=None,
        help="JSON of VQ config overrides for small custom tokenizers (e.g. the offline demo's)",
    )
    group.add_argument("--codebook_size", type=int, default=16384, help="VQ codebook entries = GPT vocabulary")
    group.add_argument("--codebook_embed_dim", type=int, default=8, help="VQ code dimension")
    group.add_argument(
        "--image_size",
        type=int,
        default=384 if model_type == "c2i" else 256,
        help="generated image size in pixels (block_size = (image_size / downsample_size)^2)",
    )
    group.add_argument("--downsample_size", type=int, default=16, help="VQ downsampling factor")
    group.add_argument(
        "--cls_token_num",
        type=int,
        default=1 if model_type == "c2i" else 120,
        help="condition positions: 1 class token, or 120 caption tokens",
    )
    group.add_argument("--num_classes", type=int, default=1000, help="c2i classes")
    group.add_argument("--caption_dim", type=int, default=2048, help="text-encoder feature size (t2i)")
    group.add_argument(
        "--gpt_config",
        default=None,
        help="JSON of extra GPT ModelArgs (e.g. '{\"dim\": 128}') for custom small models",
    )


def _require_file(path: str, flag: str, model_type: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise SystemExit(
            f"{flag} {path}: file not found. Download it from {DOWNLOADS[model_type]} into pretrained_models/, "
            f"or pass the right path. {DEMO_HINT}"
        )
    return p


def _json(text: str | None) -> dict:
    import json

    return json.loads(text) if text else {}


def build_policy(args: argparse.Namespace) -> GPT:
    path = _require_file(args.gpt_ckpt, "--gpt_ckpt", args.gpt_type)
    if args.image_size % args.downsample_size:
        raise SystemExit(
            f"--image_size {args.image_size} is not a multiple of --downsample_size {args.downsample_size}"
        )
    grid = args.image_size // args.downsample_size
    model = build_gpt(
        args.gpt_model,
        model_type=args.gpt_type,
        block_size=grid * grid,
        cls_token_num=args.cls_token_num,
        vocab_size=args.codebook_size,
        num_classes=args.num_classes,
        caption_dim=args.caption_dim,
        **_json(args.gpt_config),
    )
    return load_gpt_weights(model, path, use_ema=args.gpt_use_ema)


def build_vq(args: argparse.Namespace, device: torch.device) -> VQModel:
    path = _require_file(args.vq_ckpt, "--vq_ckpt", args.gpt_type)
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


def image_decoder(vq: VQModel, image_size: int, downsample_size: int):
    """Tokens (B, N) -> float images in [0, 1], decoded in fp32 (as LlamaGen does)."""
    grid = image_size // downsample_size

    @torch.no_grad()
    def decode(tokens: torch.Tensor) -> torch.Tensor:
        with torch.autocast(tokens.device.type, enabled=False):
            return vq.decode_to_images(tokens, grid)

    return decode


def add_text_encoder_args(parser: argparse.ArgumentParser) -> None:
    """The same flags as train_t2i.py."""
    group = parser.add_argument_group("text encoder")
    group.add_argument(
        "--text_encoder",
        default="google/flan-t5-xl",
        help="T5 folder or hub id (LlamaGen: pretrained_models/t5-ckpt/flan-t5-xl); "
        "'tiny' builds the offline random-weight encoder of the demo",
    )
    group.add_argument("--text_encoder_seed", type=int, default=0, help="weights seed of --text_encoder tiny")


def build_text_encoder(args: argparse.Namespace, device: torch.device):
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


def check_inputs(args: argparse.Namespace) -> None:
    """Every file and setting the run will need, checked before any model loads; errors name the flag."""
    from grpo.checkpointing import resolve_checkpoint
    from img_gen_grpo_rewards import check_reward_setup, reward_options_from_args

    check_reward_setup(args.reward_funcs, args.reward_weights, reward_options_from_args(args))
    _require_file(args.gpt_ckpt, "--gpt_ckpt", args.gpt_type)
    _require_file(args.vq_ckpt, "--vq_ckpt", args.gpt_type)
    text_encoder = getattr(args, "text_encoder", "tiny")
    if text_encoder.startswith(("/", ".", "~")) and not Path(text_encoder).expanduser().is_dir():
        raise ValueError(f"--text_encoder {text_encoder}: folder not found (give a T5 folder, a hub id or 'tiny')")
    if args.resume_from_checkpoint:
        resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)


def _without_url_credentials(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="<credentials removed>@" + parts.netloc.rsplit("@", 1)[1]))
    return value


def saved_run_config(args: argparse.Namespace) -> dict:
    """The flags as every checkpoint records them: a secret (API key, password) only as set or not, and URLs
    without ``user:password@``, so no key reaches a checkpoint a colleague is sent."""
    saved = {}
    for name, value in vars(args).items():
        if not isinstance(value, (str, int, float, bool, list, type(None))):
            continue
        if SECRET_FLAG.search(name):
            value = SECRET_SET if value else None
        elif isinstance(value, str):
            value = _without_url_credentials(value)
        saved[name] = value
    return saved


def build_trainer(args: argparse.Namespace, make_prompts, make_encoder):
    """Build everything from flags: the trainer a training script runs. ``make_prompts(args)`` -> PromptSource;
    ``make_encoder(args, device)`` -> ConditionEncoder.

    Flags, files and the prompt file are checked first: a typo costs a second, not a model load.
    """
    from accelerate import Accelerator

    from grpo.config import grpo_config_from_args
    from grpo.run_folder import check_output_dir
    from grpo_trainer import GRPOTrainer
    from img_gen_grpo_rewards import build_reward, reward_options_from_args

    try:
        config = grpo_config_from_args(args)
        check_output_dir(  # before any model loads: a refused folder costs seconds, not minutes
            config.output_dir, overwrite=config.overwrite_output_dir, resuming=bool(config.resume_from_checkpoint)
        )
        check_inputs(args)
        prompts = make_prompts(args)
    except (ValueError, OSError) as err:  # input mistakes (a missing file, a used folder): a message, not a traceback
        raise SystemExit(f"error: {err}") from err
    accelerator = Accelerator(mixed_precision="bf16" if config.bf16 else "no")
    torch.manual_seed(config.seed)
    policy = build_policy(args)
    vq = build_vq(args, accelerator.device)
    reward = build_reward(args.reward_funcs, args.reward_weights, reward_options_from_args(args), accelerator.device)
    return GRPOTrainer(
        config,
        policy,
        image_decoder(vq, args.image_size, args.downsample_size),
        reward,
        prompts,
        make_encoder(args, accelerator.device),
        accelerator,
        run_config=saved_run_config(args),
    )


def run_training(args: argparse.Namespace, make_prompts, make_encoder) -> dict[str, float]:
    """Build everything from flags and train."""
    return build_trainer(args, make_prompts, make_encoder).train()
