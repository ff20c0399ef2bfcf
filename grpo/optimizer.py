"""The optimiser and learning-rate schedule of a GRPO run, from its flags."""

from __future__ import annotations

import torch

from grpo.config import GRPOConfig


def build_optimizer(parameters, config: GRPOConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        parameters,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: GRPOConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Warm-up then ``lr_scheduler_type``; transformers' "constant" silently ignores warm-up steps, ours does not."""
    from transformers import get_scheduler  # heavy import; only training needs it

    schedule = config.lr_scheduler_type
    if schedule == "constant" and config.warmup_steps > 0:
        schedule = "constant_with_warmup"
    return get_scheduler(schedule, optimizer, config.warmup_steps, config.max_steps)
