"""GRPO fine-tuning of a class-conditional LlamaGen GPT (the paper's settings: scripts/recipes/c2i_*.yaml).

Prompts are ImageNet class ids drawn uniformly from --data_seed (default: --seed), so no ImageNet download is
needed; with --image_root, labels (and reference images, for the `mse` reward) come from an ImageNet train folder.
Flags may also come from --config FILE.yaml (the command line overrides it).
Upstream AR-GRPO's and TRL's flags are accepted too; docs/recipes.md says what each does here.

This file is the wiring, top to bottom: parse -> check inputs -> build models -> build rewards -> prompts ->
trainer -> train. train_t2i.py reuses ``build_trainer`` with its own prompts and caption encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

import demo.rewards  # noqa: F401  (registers the demo's shapes_* rewards)
from autoregressive.build import ModelArguments, build_policy, build_vq, check_model_files, image_decoder
from grpo.config import GRPOConfig
from grpo.launch import end_run, make_accelerator
from grpo.model_setup import DTYPES, freeze
from grpo.prompt_sources import ClassPrompts, PromptSource
from grpo.watch import tracking_options
from grpo_trainer import GRPOTrainer
from img_gen_grpo_rewards import RewardArguments
from scripts.flags import parse_flags, saved_run_config

Encoder = Callable[[list], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class DataArguments:
    image_root: str | None = field(
        default=None,
        metadata={"help": "ImageNet train folder (<wnid>/*.JPEG); optional: without it class ids are uniform"},
    )


# --------------------------------------------------------------------------------------------------- parse
def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, GRPOConfig, RewardArguments]:
    dataclasses = (ModelArguments, DataArguments, GRPOConfig, RewardArguments)
    return parse_flags(dataclasses, argv, description=__doc__, upstream=True)


# ------------------------------------------------------------------------------------- prompts, conditions
def make_prompts(model_args: ModelArguments, data_args: DataArguments, seed: int) -> ClassPrompts:
    if data_args.image_root is None:
        return ClassPrompts(model_args.num_classes, seed)
    from dataset.imagenet import ImageNetFolder

    folder = ImageNetFolder(data_args.image_root)
    labels = [label for _, label in folder.samples]
    metadata = [{"image_path": str(path)} for path, _ in folder.samples]
    return ClassPrompts(model_args.num_classes, seed, labels, metadata)


def make_encoder(model_args: ModelArguments, device: torch.device) -> Encoder:
    def encode(class_ids: list) -> tuple[torch.Tensor, None]:
        return torch.tensor(class_ids, dtype=torch.long, device=device), None

    return encode


# ------------------------------------------------------------------------------------------------ wiring
def build_trainer(
    model_args: ModelArguments,
    data_args: Any,
    config: GRPOConfig,
    reward_args: RewardArguments,
    make_prompts: Callable[[ModelArguments, Any, int], PromptSource] = make_prompts,
    make_encoder: Callable[[ModelArguments, torch.device], Encoder] = make_encoder,
) -> GRPOTrainer:
    """Check every input, then build models, reward, prompts and the trainer (what ``main`` runs; the demo and
    tests call it with config objects). train_t2i.py passes its own ``make_prompts`` and ``make_encoder``.

    Flags, files and the prompt file are checked first: a typo costs a second, not a model load.
    """
    from grpo.checkpointing import resolve_checkpoint
    from grpo.heldout_eval import check_watch_setup
    from grpo.run_folder import check_output_dir
    from grpo.sharding import check_fsdp_request
    from img_gen_grpo_rewards import build_reward, check_reward_setup
    from scripts.upstream_flags import warn_upstream_choices

    # --reward_dtype unset: the reward models follow a lowered --torch_dtype, like the frozen reference and VQ; with
    # the default float32 each backend keeps its own default (the in-process Qwen judge: bf16 on CUDA)
    if reward_args.reward_dtype is None and config.torch_dtype != "float32":
        reward_args = replace(reward_args, reward_dtype=config.torch_dtype)
    warn_upstream_choices(config.logp_guidance)
    try:  # input mistakes (a missing file, a used folder): a message, not a traceback
        check_output_dir(
            config.output_dir, overwrite=config.overwrite_output_dir, resuming=bool(config.resume_from_checkpoint)
        )
        check_reward_setup(reward_args.reward_funcs, reward_args.reward_weights, reward_args)
        check_model_files(model_args)
        if config.resume_from_checkpoint:
            resolve_checkpoint(config.resume_from_checkpoint, config.output_dir)
        prompts = make_prompts(model_args, data_args, config.data_seed)
        check_watch_setup(config, prompts)
    except (ValueError, OSError) as err:
        raise SystemExit(f"error: {err}") from err

    accelerator = make_accelerator(mixed_precision="bf16" if config.bf16 else "no", **tracking_options(config))
    try:  # needs the process group, but not the models: refused before any of them loads
        check_fsdp_request(config, accelerator.num_processes)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    torch.manual_seed(config.seed)
    policy = build_policy(model_args)
    vq = freeze(build_vq(model_args, accelerator.device), DTYPES[config.torch_dtype])  # --torch_dtype
    reward = build_reward(reward_args.reward_funcs, reward_args.reward_weights, reward_args, accelerator.device)
    return GRPOTrainer(
        config,
        policy,
        image_decoder(vq, model_args.image_size, model_args.downsample_size),
        reward,
        prompts,
        make_encoder(model_args, accelerator.device),
        accelerator,
        run_config=saved_run_config(model_args, data_args, config, reward_args),
    )


def train_and_end(trainer: GRPOTrainer) -> dict[str, float]:
    """Train; a multi-process run then exits inside ``end_run`` (grpo/launch.py says why), one process returns."""
    metrics = trainer.train()
    end_run(trainer.accelerator)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, float]:
    return train_and_end(build_trainer(*parse_args(argv)))


if __name__ == "__main__":
    main()
