"""Frozen copies of a model in a lower precision, refreshed in place from the weights being trained.

Sampling and the frozen log-prob passes need no gradients, so their weights (and the KV cache, which takes the
weights' dtype) can be bf16 while the trained weights and the optimizer stay fp32. A copy costs one cast per
rollout instead of autocast's cast of every weight at every decode step; the GPT still returns fp32 logits.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def inference_copy(model: nn.Module, dtype: torch.dtype, keep_fp32: Sequence[str] = ("output",)) -> nn.Module:
    """A frozen, eval-mode deep copy of ``model`` with floating parameters and buffers in ``dtype``.

    Submodules named in ``keep_fp32`` (present ones only) stay fp32: by default the GPT's logit head, so logits are
    never rounded to bf16's 8 significant bits (that rounding alone changes near-tied greedy tokens).
    """
    low = copy.deepcopy(model).to(dtype).eval().requires_grad_(False)
    for name in keep_fp32:
        if hasattr(low, name):
            getattr(low, name).float()
    return low


@torch.no_grad()
def refresh_from(target: nn.Module, source: nn.Module) -> nn.Module:
    """Copy ``source``'s current parameters and buffers into ``target`` (casting), without reallocating."""
    for dst, src in zip(target.parameters(), source.parameters(), strict=True):
        dst.copy_(src)
    for dst, src in zip(target.buffers(), source.buffers(), strict=True):
        dst.copy_(src)
    return target
