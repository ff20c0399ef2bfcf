"""A complete, tiny GRPO setup (real GPT, real VQ decoder, a simple reward) for trainer tests."""

from __future__ import annotations

import torch

from autoregressive.models.gpt import build_gpt
from grpo.config import GRPOConfig
from grpo.prompt_sources import ClassPrompts
from grpo_trainer import GRPOTrainer
from tests.helpers import tiny_gpt
from tokenizer.vq_model import VQ_Tiny, VQModel

VOCAB = 48
IMAGE_SIZE, DOWNSAMPLE = 16, 4


# Flags of a tiny train_c2i.py / train_t2i.py run (GPT-Tiny, VQ-Tiny, 2 steps, saving and logging every step).
TINY_RUN_FLAGS = [
    "--gpt_model",
    "GPT-Tiny",
    "--codebook_size",
    "48",
    "--image_size",
    "16",
    "--downsample_size",
    "4",
    "--vq_model",
    "VQ-Tiny",
    "--max_steps",
    "2",
    "--num_generations",
    "4",
    "--per_device_train_batch_size",
    "8",
    "--report_to",
    "none",
    "--image_log_steps",
    "1",
    "--save_steps",
    "1",
    "--beta",
    "0.1",
]


def tiny_vq(seed: int = 0) -> VQModel:
    torch.manual_seed(seed)
    return VQ_Tiny(codebook_size=VOCAB).eval().requires_grad_(False)


def brightness_reward(images: torch.Tensor, prompts: list, metadata: list):
    """Mean pixel value: a weight-free reward whose optimum the policy can find quickly."""
    score = images.mean(dim=(1, 2, 3))
    return score, {"brightness": score}


def encode_class_ids(values: list):
    return torch.tensor(values, dtype=torch.long), None


def make_trainer(output_dir, reward=brightness_reward, accelerator=None, **overrides) -> GRPOTrainer:
    options = dict(
        output_dir=str(output_dir),
        seed=3,
        max_steps=4,
        num_generations=4,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        beta=0.05,
        gen_cfg_cfg_scale=2.0,
        save_steps=0,
        image_log_steps=0,
        report_to="none",
        top_k=0,
    )
    options.update(overrides)
    config = GRPOConfig(**options)
    policy = tiny_gpt(
        "c2i", seed=1, block_size=(IMAGE_SIZE // DOWNSAMPLE) ** 2, vocab_size=VOCAB, sharp=False
    )
    vq = tiny_vq()
    grid = IMAGE_SIZE // DOWNSAMPLE

    def decode(tokens: torch.Tensor) -> torch.Tensor:
        return vq.decode_to_images(tokens, grid)

    return GRPOTrainer(
        config, policy, decode, reward, ClassPrompts(10, config.seed), encode_class_ids, accelerator
    )


def flat_params(trainer: GRPOTrainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainer.policy.parameters()])


def tiny_gpt_ckpt(tmp_path, **kwargs):
    """A GPT-Tiny checkpoint file matching TINY_RUN_FLAGS (``kwargs`` go to ``build_gpt``)."""
    torch.manual_seed(0)
    model = build_gpt("GPT-Tiny", block_size=16, vocab_size=48, **kwargs)
    path = tmp_path / "gpt.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


def tiny_run_flags(gpt_ckpt, vq_ckpt, output_dir, *extra: str) -> list[str]:
    """TINY_RUN_FLAGS with the two checkpoints and the output folder, then ``extra``."""
    paths = ["--gpt_ckpt", str(gpt_ckpt), "--vq_ckpt", str(vq_ckpt), "--output_dir", str(output_dir)]
    return [*TINY_RUN_FLAGS, *paths, *extra]
