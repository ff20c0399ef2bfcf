"""GRPO fine-tuning of a text-conditional LlamaGen GPT (see run_t2i_train.sh for the paper's settings).

Prompts come from --dataset_name: upstream AR-GRPO's conversation JSON, GenEval metadata lines, or a plain
list (JSON list / .txt). Captions are encoded by a frozen flan-t5-xl (or --text_encoder tiny, offline).
"""

from __future__ import annotations

import argparse

import torch

import demo.rewards  # noqa: F401  (registers the demo's shapes_* rewards)
from dataset.prompt_files import MAX_FILE_BYTES, MAX_PROMPT_CHARS
from grpo.cli import add_model_args, build_text_encoder, run_training
from grpo.config import add_grpo_args
from grpo.prompts import ListPrompts, TrainingPrompt
from img_gen_grpo_rewards import add_reward_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, "t2i")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", required=True, help="prompt file (.json, .jsonl or .txt)")
    data.add_argument(
        "--max_prompt_chars",
        type=int,
        default=MAX_PROMPT_CHARS,
        help="longest prompt accepted, in characters (default: %(default)s)",
    )
    data.add_argument(
        "--max_prompt_file_bytes",
        type=int,
        default=MAX_FILE_BYTES,
        help="largest prompt file accepted, in bytes (default: %(default)s)",
    )
    text = parser.add_argument_group("text encoder")
    text.add_argument(
        "--text_encoder",
        default="google/flan-t5-xl",
        help="T5 folder or hub id (LlamaGen: pretrained_models/t5-ckpt/flan-t5-xl); "
        "'tiny' builds the offline random-weight encoder of the demo",
    )
    text.add_argument("--text_encoder_seed", type=int, default=0, help="weights seed of --text_encoder tiny")
    add_grpo_args(parser)
    add_reward_args(parser)
    return parser.parse_args(argv)


def make_prompts(args: argparse.Namespace) -> ListPrompts:
    from dataset.prompts import load_prompts

    records = load_prompts(args.dataset_name, args.max_prompt_chars, args.max_prompt_file_bytes)
    return ListPrompts([TrainingPrompt(r.text, dict(r.metadata)) for r in records], args.seed)


def make_encoder(args: argparse.Namespace, device: torch.device):
    return build_text_encoder(args, device).encode


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run_training(parse_args(argv), make_prompts, make_encoder)


if __name__ == "__main__":
    main()
