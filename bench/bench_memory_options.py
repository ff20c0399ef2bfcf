"""Bytes the memory options save, per LlamaGen size: the frozen reference (fp32 vs --torch_dtype bfloat16, vs none
with LoRA), the trainable parameters and AdamW state under LoRA, and the activations one training forward keeps
for its backward with and without --gradient_checkpointing.

Parameter bytes are exact (models built on the meta device, so any size fits). Activations are measured on real
random-weight models for the sizes given with --activations (CPU, one sample): the bytes of the distinct tensors
autograd saves, parameters excluded.

    python bench/bench_memory_options.py --activations GPT-B GPT-L
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoregressive.models.gpt import GPT_models, build_gpt  # noqa: E402
from autoregressive.models.precision import inference_copy  # noqa: E402
from grpo.config import GRPOConfig  # noqa: E402
from grpo.model_setup import add_lora  # noqa: E402

GB = 2**30


def _nbytes(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(lora_r: int, block_size: int) -> None:
    print(f"| size | params | reference fp32 | reference bf16 | LoRA r={lora_r} adapters | LoRA grads + AdamW |")
    print("|---|---|---|---|---|---|")
    for name in GPT_models:
        with torch.device("meta"):
            model = build_gpt(name, block_size=block_size)
            params = sum(p.numel() for p in model.parameters())
            fp32 = _nbytes(model)
            bf16 = _nbytes(inference_copy(model, torch.bfloat16))
            add_lora(model, GRPOConfig(use_peft=True, lora_r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0))
            adapters = _nbytes(model, trainable_only=True)
        mb = adapters / 2**20
        row = [f"{params / 1e6:.0f} M", f"{fp32 / GB:.2f} GB", f"{bf16 / GB:.2f} GB", f"{mb:.0f} MB"]
        row.append(f"{3 * mb:.0f} MB")
        print(f"| {name} | " + " | ".join(row) + " |")


def saved_activation_bytes(model: torch.nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> int:
    """Distinct storages autograd keeps for the backward of one training forward, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(tokens, labels)
    del logits
    return sum(seen.values())


def activation_table(names: list[str], block_size: int) -> None:
    print("| size | tokens | activations kept | with gradient checkpointing |")
    print("|---|---|---|---|")
    for name in names:
        torch.manual_seed(0)
        model = build_gpt(name, block_size=block_size).train()
        tokens, labels = torch.randint(0, 16384, (1, block_size)), torch.tensor([1])
        plain = saved_activation_bytes(model, tokens, labels)
        model.gradient_checkpointing_enable()
        checkpointed = saved_activation_bytes(model, tokens, labels)
        print(f"| {name} | {block_size} | {plain / GB * 1024:.0f} MB | {checkpointed / GB * 1024:.0f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lora_r", type=int, default=16)
    parser.add_argument("--block_size", type=int, default=576, help="image tokens (576: 384 px with VQ-16)")
    parser.add_argument("--activations", nargs="*", default=[], help="sizes to measure activations for")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    parameter_table(args.lora_r, args.block_size)
    if args.activations:
        print()
        activation_table(args.activations, args.block_size)


if __name__ == "__main__":
    main()
