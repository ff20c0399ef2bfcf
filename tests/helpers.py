"""Small builders shared by tests: tiny real models with attention made sharp enough to expose bugs."""

from __future__ import annotations

import torch

from autoregressive.models.gpt import GPT, ModelArgs


def tiny_gpt(
    model_type: str = "c2i",
    *,
    seed: int = 0,
    block_size: int = 16,
    sharp: bool = True,
    cls_token_num: int | None = None,
    caption_dim: int = 24,
    **overrides,
) -> GPT:
    """A 2-layer GPT with a non-zero head and (optionally) q/k scaled up.

    A randomly initialised transformer attends almost uniformly, so a wrong RoPE row or mask barely moves its
    logits; scaling q/k makes attention sharp and such bugs visible.
    """
    torch.manual_seed(seed)
    args = dict(
        dim=64,
        n_layer=2,
        n_head=4,
        vocab_size=48,
        num_classes=10,
        block_size=block_size,
        model_type=model_type,
        caption_dim=caption_dim,
        cls_token_num=cls_token_num or (1 if model_type == "c2i" else 6),
    )
    args.update(overrides)
    model = GPT(ModelArgs(**args))
    with torch.no_grad():
        torch.nn.init.normal_(model.output.weight, std=0.3)
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, std=1.0)
        if sharp:
            for layer in model.layers:
                w = layer.attention.wqkv.weight
                qk = 2 * args["dim"]
                w[:qk] *= 8.0
    return model.eval()


def t2i_condition(model: GPT, batch: int, *, seed: int = 1, pad: list[int] | None = None):
    """Caption features (B, T, C) and a left-padding mask with ``pad[i]`` leading pads per row."""
    g = torch.Generator().manual_seed(seed)
    t, c = model.cls_token_num, model.config.caption_dim
    feats = torch.randn(batch, t, c, generator=g)
    mask = torch.ones(batch, t, dtype=torch.long)
    for i, p in enumerate(pad or [0] * batch):
        mask[i, :p] = 0
    return feats * mask.unsqueeze(-1), mask
