"""GRPO on the demo's pretrained models through the training scripts' own wiring (``train_c2i``/``train_t2i``).

The run is described by the training scripts' config objects: ``GRPOConfig``, ``RewardArguments``, and the model
and data settings under the names of the scripts' flags. ``trainer_argv`` is the one place that turns them into
command-line flags, for the scripts' ``main``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from demo.pretrain import DemoModels
from demo.settings import REWARDS, DemoSettings
from demo.world import NUM_CLASSES, sample_prompts
from grpo.config import GRPOConfig
from img_gen_grpo_rewards import RewardArguments

IMAGE_LOG_STEPS = 20
_VQ_FLAGS = ("codebook_size", "codebook_embed_dim")  # VQ settings with flags of their own


@dataclass
class BaseModels:
    """The pretrained checkpoints GRPO starts from (the text encoder folder is used by t2i only)."""

    vq: Path
    gpt: Path
    text_encoder: Path


def model_arguments(task: str, models: DemoModels, base: BaseModels) -> dict[str, Any]:
    """The model settings of ``train_<task>.py``, by flag name: the demo's small VQ and GPT, loaded strictly."""
    arguments: dict[str, Any] = {
        "gpt_model": models.gpt_model,
        "gpt_type": task,
        "gpt_ckpt": str(base.gpt),
        "vq_ckpt": str(base.vq),
        "vq_config": json.dumps({k: v for k, v in models.vq.items() if k not in _VQ_FLAGS}),
        "codebook_size": models.vq["codebook_size"],
        "codebook_embed_dim": models.vq["codebook_embed_dim"],
        "image_size": models.image_size,
        "downsample_size": models.downsample,
        "gpt_config": json.dumps(models.gpt_overrides),
    }
    if task == "t2i":
        return arguments | {"cls_token_num": models.caption_tokens, "caption_dim": models.caption_dim}
    return arguments | {"cls_token_num": 1, "num_classes": NUM_CLASSES}


def data_arguments(task: str, base: BaseModels, prompt_file: Path | None) -> dict[str, Any]:
    """The prompt settings of ``train_<task>.py``, by flag name (c2i draws class ids itself)."""
    if task == "c2i":
        return {}
    return {"text_encoder": str(base.text_encoder.resolve()), "dataset_name": str(prompt_file)}


def grpo_prompt_file(settings: DemoSettings, folder: Path) -> Path:
    """Training-split captions for GRPO (t2i), tags in equal shares.

    Repeats are kept on purpose: the metric averages over tags, so GRPO must see every tag as often. Without
    repeats the big pools would set the mix instead.
    """
    specs = sample_prompts(512, seed=settings.seed + 2000, split="train")
    path = folder / "grpo_prompts.txt"
    path.write_text("\n".join(s.caption for s in specs) + "\n")
    return path


def grpo_config(settings: DemoSettings, output_dir: Path) -> GRPOConfig:
    """The trainer's settings for the demo: one resumable checkpoint at the end, TensorBoard, a grid every so often."""
    return GRPOConfig(
        output_dir=str(output_dir),
        seed=settings.seed,
        max_steps=settings.grpo_steps,
        num_generations=settings.num_generations,
        per_device_train_batch_size=settings.num_generations * settings.prompts_per_step,
        gen_cfg_cfg_scale=settings.cfg_scale,
        temperature=settings.temperature,
        learning_rate=settings.learning_rate,
        beta=settings.beta,
        warmup_steps=settings.warmup_steps,
        logp_guidance=settings.logp_guidance,
        scale_rewards=settings.scale_rewards,
        overwrite_output_dir=True,  # a demo re-run replaces its previous GRPO run
        save_steps=settings.grpo_steps,
        save_total_limit=1,
        image_log_steps=IMAGE_LOG_STEPS,
        report_to="tensorboard",
    )


def reward_arguments(preset: str) -> RewardArguments:
    """One of the demo's reward presets (``REWARDS``) as the training scripts' reward settings."""
    rewards = REWARDS[preset]
    return RewardArguments(reward_funcs=list(rewards), reward_weights=list(rewards.values()))


def _changed(config: Any) -> dict[str, Any]:
    """The fields of a dataclass that differ from its defaults: the flags that need to be given."""
    defaults = type(config)()
    values = {f.name: getattr(config, f.name) for f in fields(config)}
    return {name: value for name, value in values.items() if value != getattr(defaults, name)}


def trainer_argv(model: dict[str, Any], data: dict[str, Any], grpo: GRPOConfig, rewards: RewardArguments) -> list[str]:
    """The command line of ``train_<task>.py`` for these settings (its GRPO flags take ``true``/``false``)."""
    argv: list[str] = []
    for name, value in {**model, **data, **_changed(grpo)}.items():
        if value is None:
            continue
        argv += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    for name, value in _changed(rewards).items():
        if isinstance(value, bool):  # the reward flags are --name / --no-name
            argv.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, list):
            argv += [f"--{name}", *map(str, value)]
        elif value is not None:
            argv += [f"--{name}", str(value)]
    return argv


def train(task: str, model: dict[str, Any], data: dict[str, Any], grpo: GRPOConfig, rewards: RewardArguments) -> None:
    """GRPO exactly as ``train_<task>.py`` runs it; a SIGTERM saves a checkpoint and exits with status 143."""
    if task == "t2i":
        import train_t2i as script
    else:
        import train_c2i as script
    script.main(trainer_argv(model, data, grpo, rewards))
