"""What the trainer logs, as pure functions of a rollout and of the update's micro-batch results.

Rollout statistics are over the global batch: ``gather`` concatenates a tensor over processes (the identity on
one process), so logged means and stds do not depend on the process count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from grpo.advantages import in_group_diversity
from grpo.loss import LossOutput
from grpo.rollout import Rollout

Gather = Callable[[torch.Tensor], torch.Tensor]


class Stopwatch:
    """Wall time of consecutive phases; waits for the device so asynchronous GPU work is counted."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}
        self._last = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self, name: str) -> float:
        """Ends phase ``name`` (started where the previous one ended) and returns its duration; a phase timed in
        two parts (the old and the reference log-probs) adds them up."""
        now = self._now()
        duration, self._last = now - self._last, now
        self.seconds[name] = self.seconds.get(name, 0.0) + duration
        return duration


@dataclass(frozen=True, kw_only=True)
class MicroBatchStats:
    loss: float
    kl: float
    clip_low: float
    clip_high: float
    ratio_mean: float
    entropy: float
    seconds: float

    @classmethod
    def of(cls, out: LossOutput, entropy: torch.Tensor, seconds: float) -> MicroBatchStats:
        return cls(
            loss=out.loss.item(),
            kl=out.kl.item(),
            clip_low=out.clip_low.item(),
            clip_high=out.clip_high.item(),
            ratio_mean=out.ratio_mean.item(),
            entropy=entropy.item(),
            seconds=seconds,
        )


def _mean_std(values: torch.Tensor) -> tuple[float, float]:
    mean = values.mean().item() if values.numel() else float("nan")
    return mean, values.std().item() if values.numel() > 1 else 0.0


def rollout_metrics(rollout: Rollout, gather: Gather = lambda t: t) -> dict[str, float]:
    """Rewards (of the groups that were scored), advantages, group counts, diversity and phase times."""
    g = rollout.group_size
    scored = gather(rollout.group_ok.repeat_interleave(g))
    advantages = gather(rollout.advantages)
    metrics = {
        "advantage/std": advantages.std().item(),
        "advantage/abs_max": advantages.abs().max().item(),
        "groups/tied_fraction": gather(rollout.tied.float()).mean().item(),
        "groups/skipped": float((~gather(rollout.group_ok)).sum().item()),
        "diversity/in_group": in_group_diversity(rollout.tokens, g).item(),
        **{f"time/{phase}": seconds for phase, seconds in rollout.seconds.items()},
    }
    # Each process's sampling rate, summed: the tokens per second the whole job samples.
    rate = rollout.tokens.numel() / max(rollout.seconds.get("sampling", 0.0), 1e-9)
    metrics["throughput/tokens_per_s"] = gather(torch.tensor([rate], device=rollout.tokens.device)).sum().item()
    metrics["reward/total_mean"], metrics["reward/total_std"] = _mean_std(gather(rollout.rewards)[scored])
    for name, values in rollout.reward_parts.items():
        part = gather(values.to(rollout.rewards.device).float())[scored]
        metrics[f"reward/{name}_mean"], metrics[f"reward/{name}_std"] = _mean_std(part)
    return metrics


def step_metrics(micro_batches: list[MicroBatchStats], grad_norm: float, learning_rate: float) -> dict[str, float]:
    """One optimiser step: micro-batch means, the summed update time, the gradient norm and learning rate."""
    n = len(micro_batches)
    return {
        "loss": sum(m.loss for m in micro_batches) / n,
        "kl": sum(m.kl for m in micro_batches) / n,
        "clip/low": sum(m.clip_low for m in micro_batches) / n,
        "clip/high": sum(m.clip_high for m in micro_batches) / n,
        "ratio/mean": sum(m.ratio_mean for m in micro_batches) / n,
        "entropy": sum(m.entropy for m in micro_batches) / n,
        "time/update": sum(m.seconds for m in micro_batches),
        "grad_norm": grad_norm,
        "learning_rate": learning_rate,
    }


def mean_over_processes(accelerator: Accelerator, metrics: dict[str, float]) -> dict[str, float]:
    """Each metric averaged over processes (float64, so the mean of equal values is exact)."""
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], device=accelerator.device, dtype=torch.float64)
    if accelerator.num_processes > 1:
        values = accelerator.reduce(values, reduction="mean")
    return dict(zip(keys, values.tolist(), strict=True))
