"""The clipped GRPO objective with a k3 KL penalty, as TRL/verl define it, for fixed-length image sequences."""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo")


@dataclass
class LossOutput:
    loss: torch.Tensor
    kl: torch.Tensor
    clip_low: torch.Tensor
    clip_high: torch.Tensor
    ratio_mean: torch.Tensor


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "grpo",
    importance_sampling_level: str = "token",
    mask: torch.Tensor | None = None,
    max_tokens: int | None = None,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
) -> LossOutput:
    """Per token: -min(ρA, clip(ρ, 1-ε_low, 1+ε_high)A) + β·KL_k3 - c·H, then aggregated by ``loss_type``.

    ``logp``/``old_logp``/``ref_logp``: (B, N) log-probabilities of the sampled tokens; ``advantages``: (B,).
    ``importance_sampling_level="sequence"`` (GSPO) uses one length-normalised ratio per sequence.
    Aggregation: ``grpo`` averages tokens within each sequence, then sequences; ``bnpo`` averages all tokens
    of the batch; ``dr_grpo`` divides the token sum by the constant B·N_max. ``mask`` (B, N) drops tokens
    (e.g. whole groups whose rewards tie).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if importance_sampling_level not in ("token", "sequence"):
        raise ValueError(
            f"importance_sampling_level must be 'token' or 'sequence', got {importance_sampling_level!r}"
        )
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs reference log-probabilities")
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    mask = torch.ones_like(logp) if mask is None else mask.to(logp.dtype)

    log_ratio = logp - old_logp
    if importance_sampling_level == "sequence":
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    ratio = torch.exp(log_ratio)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high) * adv
    per_token = -torch.minimum(unclipped, clipped).expand_as(logp)

    kl = torch.zeros_like(logp)
    if beta > 0:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + beta * kl
    if entropy_coef and entropy is not None:
        per_token = per_token - entropy_coef * entropy

    if loss_type == "grpo":
        seq_mask = (mask.sum(-1) > 0).to(logp.dtype)
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        loss = (per_seq * seq_mask).sum() / seq_mask.sum().clamp(min=1.0)
    elif loss_type == "bnpo":
        loss = _masked_mean(per_token, mask)
    else:
        loss = (per_token * mask).sum() / (logp.shape[0] * (max_tokens or logp.shape[1]))

    ratio_tokens = ratio.expand_as(logp)
    low = ((ratio_tokens < 1 - epsilon_low) & (adv < 0)).to(logp.dtype)
    high = ((ratio_tokens > 1 + epsilon_high) & (adv > 0)).to(logp.dtype)
    return LossOutput(
        loss=loss,
        kl=_masked_mean(kl.detach(), mask),
        clip_low=_masked_mean(low, mask),
        clip_high=_masked_mean(high, mask),
        ratio_mean=_masked_mean(ratio_tokens.detach(), mask),
    )
