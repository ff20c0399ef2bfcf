"""Frozen copies of a model in a lower precision, refreshed in place from the weights being trained.

Sampling and the frozen log-prob passes need no gradients, so their weights (and the KV cache, which takes the
weights' dtype) can be bf16 while the trained weights and the optimizer stay fp32. A copy costs one cast per
rollout instead of autocast's cast of every weight at every decode step; the GPT still returns fp32 logits.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def inference_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A frozen, eval-mode deep copy of ``model`` with floating parameters and buffers in ``dtype``."""
    return copy.deepcopy(model).to(dtype).eval().requires_grad_(False)


@torch.no_grad()
def refresh_from(target: nn.Module, source: nn.Module) -> nn.Module:
    """Copy ``source``'s current parameters and buffers into ``target`` (casting), without reallocating."""
    for dst, src in zip(target.parameters(), source.parameters(), strict=True):
        dst.copy_(src)
    for dst, src in zip(target.buffers(), source.buffers(), strict=True):
        dst.copy_(src)
    return target
