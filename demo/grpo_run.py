"""GRPO on the demo's pretrained models through the training scripts' own wiring (``train_c2i``/``train_t2i``).

The run is described by the training scripts' config objects (``ModelArguments``, the script's
``DataArguments``, ``GRPOConfig``, ``RewardArguments``) and handed to the script's ``build_trainer``: the same
function ``python train_c2i.py`` runs after parsing its flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from autoregressive.build import ModelArguments
from demo.pretrain import DemoModels
from demo.settings import REWARDS, DemoSettings
from demo.world import NUM_CLASSES, sample_prompts
from grpo.config import GRPOConfig
from grpo_trainer import GRPOTrainer
from img_gen_grpo_rewards import RewardArguments

IMAGE_LOG_STEPS = 20
_VQ_FLAGS = ("codebook_size", "codebook_embed_dim")  # VQ settings with flags of their own


@dataclass
class BaseModels:
    """The pretrained checkpoints GRPO starts from (the text encoder folder is used by t2i only)."""

    vq: Path
    gpt: Path
    text_encoder: Path


def _script(task: str) -> Any:
    if task == "t2i":
        import train_t2i as script
    else:
        import train_c2i as script
    return script


def model_arguments(task: str, models: DemoModels, base: BaseModels) -> ModelArguments:
    """The model settings of ``train_<task>.py``: the demo's small VQ and GPT, loaded strictly."""
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
        arguments |= {
            "cls_token_num": models.caption_tokens,
            "caption_dim": models.caption_dim,
            "text_encoder": str(base.text_encoder.resolve()),
        }
    else:
        arguments |= {"cls_token_num": 1, "num_classes": NUM_CLASSES}
    return ModelArguments(**arguments)


def data_arguments(task: str, prompt_file: Path | None) -> Any:
    """The prompt settings of ``train_<task>.py`` (c2i draws class ids itself)."""
    script = _script(task)
    return script.DataArguments() if task == "c2i" else script.DataArguments(dataset_name=str(prompt_file))


def grpo_prompt_file(settings: DemoSettings, folder: Path) -> Path:
    """Training-split captions for GRPO (t2i), tags in equal shares.

    Repeats are kept on purpose: the metric averages over tags, so GRPO must see every tag as often. Without
    repeats the big pools would set the mix instead.
    """
    specs = sample_prompts(512, seed=settings.seed + 2000, split="train", tags=settings.tag_list)
    path = folder / "grpo_prompts.txt"
    path.write_text("\n".join(s.caption for s in specs) + "\n")
    return path


class RolloutSettings(Protocol):
    """What the demo's settings objects (the demo's and the learning check's) say about a GRPO step."""

    num_generations: int
    prompts_per_step: int
    cfg_scale: float
    learning_rate: float
    warmup_steps: int


def rollout_config(settings: RolloutSettings, output_dir: Path, seed: int, max_steps: int, **options) -> GRPOConfig:
    """A GRPOConfig of ``settings``' group size, prompts per step, guidance and schedule; ``options`` set the rest."""
    return GRPOConfig(
        output_dir=str(output_dir),
        seed=seed,
        max_steps=max_steps,
        num_generations=settings.num_generations,
        per_device_train_batch_size=settings.num_generations * settings.prompts_per_step,
        gen_cfg_cfg_scale=settings.cfg_scale,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        **options,
    )


def grpo_config(settings: DemoSettings, output_dir: Path) -> GRPOConfig:
    """The trainer's settings for the demo: one resumable checkpoint at the end, TensorBoard, a grid every so often."""
    return rollout_config(
        settings,
        output_dir,
        settings.seed,
        settings.grpo_steps,
        temperature=settings.temperature,
        beta=settings.beta,
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


def build_trainer(
    model: ModelArguments, data: Any, grpo: GRPOConfig, rewards: RewardArguments
) -> GRPOTrainer:
    """The trainer exactly as ``train_<task>.py`` builds it after parsing its flags."""
    return _script(model.gpt_type).build_trainer(model, data, grpo, rewards)


def train(model: ModelArguments, data: Any, grpo: GRPOConfig, rewards: RewardArguments) -> None:
    """GRPO exactly as ``train_<task>.py`` runs it; a SIGTERM saves a checkpoint and exits with status 143."""
    build_trainer(model, data, grpo, rewards).train()
