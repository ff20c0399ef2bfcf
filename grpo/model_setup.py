"""The trained policy, its frozen KL reference and the parameters the optimiser sees, from the memory flags.

- ``torch_dtype``: frozen weights (the reference, the VQ decoder) in bf16 take half the bytes. The trained policy
  keeps fp32 master weights: AdamW's step ``lr * m / sqrt(v)`` is usually far below bf16's resolution of a weight
  (8 significant bits), so on bf16 weights small updates would round away.
- ``use_peft``: LoRA adapters (peft) on the GPT's attention and MLP projections. Only they train, so the reference is
  the policy itself with its adapters disabled: no second copy of the weights.
- ``gradient_checkpointing``: :meth:`GPT.gradient_checkpointing_enable` (the update recomputes each block).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from autoregressive.models.gpt import GPT
from autoregressive.models.precision import inference_copy
from grpo.config import GRPOConfig

if TYPE_CHECKING:
    from peft import PeftModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
LORA_TARGETS = ("wqkv", "wo", "w1", "w2", "w3")
"""LlamaGen's projections: attention (fused q/k/v in, output) and SwiGLU (gate, down, up)."""


def frozen_dtype(config: GRPOConfig) -> torch.dtype:
    """The dtype of frozen weights: ``torch_dtype``, or bf16 under ``--bf16`` (its inference copies are bf16)."""
    return torch.bfloat16 if config.bf16 else DTYPES[config.torch_dtype]


def freeze(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``model`` in eval mode without gradients, its floating weights in ``dtype`` (in place)."""
    return model.eval().requires_grad_(False).to(dtype)


def add_lora(policy: GPT, config: GRPOConfig) -> PeftModel:
    """Insert LoRA adapters into ``policy`` in place (it stays a :class:`GPT`) and freeze its base weights.

    The returned peft wrapper switches the adapters off (the reference) and merges them (the final model).
    """
    from peft import LoraConfig, get_peft_model  # only LoRA runs need peft

    targets = list(config.lora_target_modules or LORA_TARGETS)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets)
    try:
        return get_peft_model(policy, lora)
    except ValueError as err:
        raise ValueError(f"--lora_target_modules {' '.join(targets)}: {err}") from err


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What the optimiser updates: every parameter, or only the adapters of a LoRA policy."""
    return [p for p in model.parameters() if p.requires_grad]


class Reference:
    """The frozen model the KL penalty compares to: a separate frozen copy, or the LoRA policy with adapters off."""

    def __init__(self, model: GPT, adapters: PeftModel | None = None):
        self.model, self.adapters = model, adapters

    @contextmanager
    def active(self) -> Iterator[GPT]:
        """The reference model, usable inside the block (the LoRA policy's adapters are off until it ends)."""
        if self.adapters is None:
            yield self.model
            return
        was_training = self.model.training
        self.model.eval()
        try:
            with self.adapters.disable_adapter():
                yield self.model
        finally:
            self.model.train(was_training)


def build_reference(
    policy: GPT, adapters: PeftModel | None, config: GRPOConfig, device: torch.device
) -> Reference | None:
    """None without a KL penalty; the LoRA policy itself; else a frozen copy in :func:`frozen_dtype` (its logit
    head stays fp32, as in every inference copy, so log-probs are not rounded to bf16, unless
    ``--bf16_logit_head``)."""
    if config.beta <= 0:
        return None
    if adapters is not None:
        return Reference(policy, adapters)
    dtype = frozen_dtype(config)
    if dtype == torch.float32:
        return Reference(copy.deepcopy(policy).eval().requires_grad_(False).to(device))
    return Reference(inference_copy(policy, dtype, fp32_modules(config)).to(device))


def fp32_modules(config: GRPOConfig) -> tuple[str, ...]:
    """Submodules a bf16 inference copy keeps in fp32: the logit head, unless ``--bf16_logit_head``."""
    return () if config.bf16_logit_head else ("output",)


def merged_state_dict(adapters: PeftModel) -> dict[str, torch.Tensor]:
    """The LoRA policy with adapters merged into its weights, in LlamaGen's layout (the live policy is untouched)."""
    merged = copy.deepcopy(adapters).merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}
