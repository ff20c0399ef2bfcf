"""GRPO fine-tuning of a text-conditional LlamaGen GPT (the paper's settings: scripts/recipes/t2i_*.yaml).

Prompts come from --dataset_name: upstream AR-GRPO's conversation JSON, GenEval metadata lines, or a plain
list (JSON list / .txt). Captions are encoded by a frozen flan-t5-xl. Flags may also come from --config
FILE.yaml (the command line overrides it). Upstream AR-GRPO's and TRL's flags are accepted too
(docs/recipes.md). The wiring is train_c2i.py's, with these prompts and this encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch

import demo.rewards  # noqa: F401  (registers the demo's shapes_* rewards)
import train_c2i
from autoregressive.build import ModelArguments, build_text_encoder
from dataset.prompt_files import MAX_FILE_BYTES, MAX_PROMPT_CHARS
from grpo.config import GRPOConfig
from grpo.prompt_sources import ListPrompts, TrainingPrompt
from img_gen_grpo_rewards import RewardArguments
from scripts.flags import parse_flags


@dataclass
class DataArguments:
    dataset_name: str = field(metadata={"help": "prompt file (.json, .jsonl or .txt)"})
    max_prompt_chars: int = field(default=MAX_PROMPT_CHARS, metadata={"help": "longest prompt accepted, in characters"})
    max_prompt_file_bytes: int = field(
        default=MAX_FILE_BYTES, metadata={"help": "largest prompt file accepted, in bytes"}
    )


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, GRPOConfig, RewardArguments]:
    dataclasses = (ModelArguments, DataArguments, GRPOConfig, RewardArguments)
    return parse_flags(dataclasses, argv, description=__doc__, upstream=True, gpt_type="t2i")


def make_prompts(model_args: ModelArguments, data_args: DataArguments, seed: int) -> ListPrompts:
    from dataset.prompts import load_prompts

    records = load_prompts(data_args.dataset_name, data_args.max_prompt_chars, data_args.max_prompt_file_bytes)
    return ListPrompts([TrainingPrompt(r.text, dict(r.metadata)) for r in records], seed)


def make_encoder(model_args: ModelArguments, device: torch.device) -> train_c2i.Encoder:
    return build_text_encoder(model_args, device).encode


# The text-conditional trainer from config objects: train_c2i's wiring with these prompts and this encoder.
build_trainer = partial(train_c2i.build_trainer, make_prompts=make_prompts, make_encoder=make_encoder)


def main(argv: list[str] | None = None) -> dict[str, float]:
    return train_c2i.train_and_end(build_trainer(*parse_args(argv)))


if __name__ == "__main__":
    main()
