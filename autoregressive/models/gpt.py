"""LlamaGen's GPT for class- and text-conditional image-token generation.

A faithful reimplementation: state-dict keys and shapes equal LlamaGen's for every size, so released
checkpoints load strictly, and the computation matches (2-D RoPE on interleaved pairs with zeroed condition
rows, RMSNorm in fp32, SwiGLU, fp32 logits). The code is ours and organised for RL: one teacher-forced
forward for log-probabilities, and a KV cache that lives only inside a ``kv_cache`` context for sampling.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from autoregressive.checkpoint import load_state_dict_strict, read_state_dict
from autoregressive.models.gpt_layers import (
    MLP,
    Attention,
    CaptionEmbedder,
    ClassEmbedder,
    FeedForward,
    KVCache,
    ModelArgs,
    RMSNorm,
    StaticKVCache,
    TransformerBlock,
    apply_rotary_emb,
    precompute_freqs_cis_2d,
    sequence_attention,
    single_query_attention,
)

__all__ = [
    "GPT",
    "GPT_models",
    "MLP",
    "Attention",
    "CaptionEmbedder",
    "ClassEmbedder",
    "FeedForward",
    "KVCache",
    "ModelArgs",
    "RMSNorm",
    "StaticKVCache",
    "TransformerBlock",
    "apply_rotary_emb",
    "build_gpt",
    "describe_state_dict",
    "load_gpt_weights",
    "precompute_freqs_cis_2d",
    "sequence_attention",
    "single_query_attention",
]


class GPT(nn.Module):
    """Condition positions (1 class token, or 120 caption tokens) followed by raster-order image tokens."""

    def __init__(self, config: ModelArgs):
        super().__init__()
        self.config = config
        if config.model_type == "c2i":
            self.cls_embedding: nn.Module = ClassEmbedder(config.num_classes, config.dim)
        else:
            self.cls_embedding = CaptionEmbedder(config.caption_dim, config.dim, config.cls_token_num)
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.tok_dropout = nn.Dropout(config.token_dropout_p)
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        self._freqs_cis = precompute_freqs_cis_2d(
            config.grid_size, config.head_dim, config.rope_base, config.cls_token_num
        )
        self._cond_key_mask: torch.Tensor | None = None
        self.gradient_checkpointing = False
        self.initialize_weights()

    # ----------------------------------------------------------------------------------------- setup
    def initialize_weights(self) -> None:
        """LlamaGen's init: normal(0, initializer_range) everywhere, zero output head."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
        nn.init.zeros_(self.output.weight)

    def gradient_checkpointing_enable(self, enable: bool = True) -> None:
        """Keep only each block's input in a training forward and recompute the block in the backward: activation
        memory of one block instead of all, for one more forward. Inactive under no_grad, in eval mode and with a
        KV cache (sampling and the frozen log-prob passes keep nothing for a backward anyway)."""
        self.gradient_checkpointing = enable

    @property
    def cls_token_num(self) -> int:
        return self.config.cls_token_num

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def freqs_for(self, start: int, length: int, device: torch.device) -> torch.Tensor:
        """Rotary rows for positions start..start+length-1 (kept in fp32 whatever the model dtype)."""
        if self._freqs_cis.device != device:
            self._freqs_cis = self._freqs_cis.to(device)
        return self._freqs_cis[start : start + length]

    # ----------------------------------------------------------------------------------- conditions
    def embed_condition(self, cond: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Class ids (B,) or caption features (B, T, C) -> (B, T, dim); ``drop`` swaps in the null condition."""
        emb = self.cls_embedding(cond, drop)
        return emb[:, : self.cls_token_num]

    def null_condition_like(self, cond: torch.Tensor) -> torch.Tensor:
        """The unconditional input for classifier-free guidance, one row per row of ``cond``."""
        if self.config.model_type == "c2i":
            return torch.full_like(cond.reshape(-1), self.config.num_classes)
        return self.cls_embedding.uncond_embedding.to(cond.dtype).expand_as(cond)

    # ------------------------------------------------------------------------------------- forward
    def _attention_mask(
        self, input_pos: torch.Tensor, num_keys: int, cond_mask: torch.Tensor | None, always: bool = False
    ) -> tuple[torch.Tensor | None, bool]:
        """Causal mask for queries at ``input_pos`` over keys 0..num_keys-1; padded caption keys hidden.

        Returns (mask, is_causal). Padded caption positions attend only to themselves, as LlamaGen does.
        ``always`` builds the mask even where ``is_causal`` or no mask would do (the static cache's slots).
        """
        seqlen = input_pos.shape[0]
        if cond_mask is None and not always:
            if seqlen == 1:
                return None, False
            if num_keys == seqlen:
                return None, True
        keys = torch.arange(num_keys, device=input_pos.device)
        mask = keys[None, :] <= input_pos[:, None]  # (L, S)
        if cond_mask is None:
            return mask, False
        key_ok = torch.ones(cond_mask.shape[0], num_keys, dtype=torch.bool, device=input_pos.device)
        t = min(self.cls_token_num, num_keys)
        key_ok[:, :t] = cond_mask[:, :t].bool()
        full = mask[None] & key_ok[:, None, :]
        full = full | (keys[None, None, :] == input_pos[None, :, None])  # the diagonal always attends
        return full.unsqueeze(1), False

    def _transform(self, x: torch.Tensor, start: int, cond_mask: torch.Tensor | None) -> torch.Tensor:
        """Run positions start..start+L-1 (attending to the cache, if one is set up) and return fp32 logits."""
        input_pos = torch.arange(start, start + x.shape[1], device=x.device)
        mask, is_causal = self._attention_mask(input_pos, start + x.shape[1], cond_mask)
        freqs = self.freqs_for(start, x.shape[1], x.device)
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            if recompute and layer.attention.kv_cache is None:
                x = checkpoint(layer, x, freqs, start, mask, is_causal, use_reentrant=False)
            else:
                x = layer(x, freqs, start, mask, is_causal)
        return self._logits(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """fp32 logits; the head runs in its own dtype (fp32 in a bf16 inference copy, so logits are not
        rounded to bf16's 8 significant bits)."""
        return self.output(self.norm(x).to(self.output.weight.dtype)).float()

    def _transform_at(self, x: torch.Tensor, input_pos: torch.Tensor, cond_mask: torch.Tensor | None) -> torch.Tensor:
        """Like ``_transform`` with a static cache: positions are a tensor, so shapes never change per token."""
        num_keys = self.layers[0].attention.kv_cache.k.shape[2]
        mask, _ = self._attention_mask(input_pos, num_keys, cond_mask, always=True)
        freqs = self._freqs_cis[input_pos]
        for layer in self.layers:
            x = layer(x, freqs, input_pos, mask, False)
        return self._logits(x)

    def forward(
        self,
        tokens: torch.Tensor,
        cond: torch.Tensor,
        cond_mask: torch.Tensor | None = None,
        cond_drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits (B, N, vocab): entry n predicts ``tokens[:, n]`` from the condition and
        ``tokens[:, :n]``. One pass over the whole sequence (training and log-probabilities)."""
        if self.layers[0].attention.kv_cache is not None:
            raise RuntimeError("forward() runs without a KV cache; leave the kv_cache() context first")
        if tokens.shape[1] > self.block_size:
            raise ValueError(f"{tokens.shape[1]} image tokens exceed block_size {self.block_size}")
        cond_emb = self.embed_condition(cond, cond_drop)
        tok_emb = self.tok_embeddings(tokens[:, :-1])
        x = self.tok_dropout(torch.cat([cond_emb, tok_emb.to(cond_emb.dtype)], dim=1))
        logits = self._transform(x, 0, cond_mask)
        return logits[:, self.cls_token_num - 1 :]

    # ------------------------------------------------------------------------------ cached decoding
    @contextmanager
    def kv_cache(
        self,
        batch_size: int,
        max_new_tokens: int,
        dtype: torch.dtype | None = None,
        cond_mask: torch.Tensor | None = None,
        static: bool = False,
    ) -> Iterator[None]:
        """Allocate per-layer caches for one generation; they are freed on exit, even on error.

        ``static`` allocates :class:`StaticKVCache` for :meth:`prefill_static`/:meth:`decode_step_static`.
        """
        if max_new_tokens > self.block_size:
            raise ValueError(f"max_new_tokens {max_new_tokens} exceeds block_size {self.block_size}")
        ref = self.layers[0].attention.wqkv.weight  # the trunk's dtype (an inference copy keeps its head fp32)
        dtype = dtype or ref.dtype
        max_len = self.cls_token_num + max_new_tokens
        cfg = self.config
        cache_class = StaticKVCache if static else KVCache
        for layer in self.layers:
            layer.attention.kv_cache = cache_class(
                batch_size, cfg.n_kv_head, max_len, cfg.head_dim, dtype, ref.device
            )
        self.freqs_for(0, 0, ref.device)  # the rotary table on the model's device before any step
        self._cond_key_mask = cond_mask
        try:
            yield
        finally:
            for layer in self.layers:
                del layer.attention.kv_cache  # a static cache is a child module: unregister it
                layer.attention.kv_cache = None
            self._cond_key_mask = None

    def prefill(self, cond: torch.Tensor) -> torch.Tensor:
        """Run the condition positions into the cache; return the logits for image token 0, (B, vocab)."""
        return self._transform(self.embed_condition(cond), 0, self._cond_key_mask)[:, -1]

    def decode_step(self, token: torch.Tensor, index: int) -> torch.Tensor:
        """Feed image token ``index`` (B,) and return the logits for token ``index + 1``, (B, vocab)."""
        x = self.tok_embeddings(token.reshape(-1, 1))
        return self._transform(x, self.cls_token_num + index, self._cond_key_mask)[:, -1]

    def prefill_static(self, cond: torch.Tensor) -> torch.Tensor:
        """:meth:`prefill` into a static cache (``kv_cache(..., static=True)``)."""
        emb = self.embed_condition(cond)
        input_pos = torch.arange(emb.shape[1], device=emb.device)
        return self._transform_at(emb, input_pos, self._cond_key_mask)[:, -1]

    def decode_step_static(self, token: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """:meth:`decode_step` with the image-token index as a (1,) long tensor: one graph for every token,
        which ``torch.compile`` traces once (and CUDA graphs can capture)."""
        x = self.tok_embeddings(token.reshape(-1, 1))
        return self._transform_at(x, index + self.cls_token_num, self._cond_key_mask)[:, -1]


# --------------------------------------------------------------------------------------- registry
def _sized(n_layer: int, n_head: int, dim: int):
    def build(**kwargs) -> GPT:  # kwargs may override the size itself (--gpt_config '{"dim": 64}')
        return GPT(ModelArgs(**{"n_layer": n_layer, "n_head": n_head, "dim": dim, **kwargs}))

    build.size = dict(n_layer=n_layer, n_head=n_head, dim=dim)
    return build


GPT_B = _sized(12, 12, 768)
GPT_L = _sized(24, 16, 1024)
GPT_XL = _sized(36, 20, 1280)
GPT_XXL = _sized(48, 24, 1536)
GPT_3B = _sized(24, 32, 3200)
GPT_Tiny = _sized(2, 4, 64)
GPT_Small = _sized(4, 4, 128)

GPT_models = {
    "GPT-B": GPT_B,
    "GPT-L": GPT_L,
    "GPT-XL": GPT_XL,
    "GPT-XXL": GPT_XXL,
    "GPT-3B": GPT_3B,
    "GPT-Tiny": GPT_Tiny,
    "GPT-Small": GPT_Small,
}
"""LlamaGen's names; ``GPT-Tiny``/``GPT-Small`` are ours, for tests and the offline demo."""

_ARG_NAMES = {f.name for f in fields(ModelArgs)}


def build_gpt(name: str, **kwargs) -> GPT:
    """Build a registered size; kwargs are LlamaGen's ``ModelArgs`` names (unknown ones are an error)."""
    if name not in GPT_models:
        raise ValueError(f"unknown GPT model {name!r}; choose one of {sorted(GPT_models)}")
    unknown = set(kwargs) - _ARG_NAMES
    if unknown:
        raise TypeError(f"unknown GPT config keys {sorted(unknown)}")
    return GPT_models[name](**kwargs)


def describe_state_dict(state_dict: dict[str, torch.Tensor]) -> str:
    """Name the size and type a GPT checkpoint was trained with, to turn a key mismatch into advice."""
    emb = state_dict.get("tok_embeddings.weight")
    if emb is None:
        return "it has no 'tok_embeddings.weight', so it is not a LlamaGen GPT checkpoint"
    dim = emb.shape[1]
    n_layer = len(
        {k.split(".")[1] for k in state_dict if k.startswith("layers.") and k.endswith("wqkv.weight")}
    )
    kind = "t2i" if any(k.startswith("cls_embedding.cap_proj") for k in state_dict) else "c2i"
    names = [n for n, b in GPT_models.items() if b.size["dim"] == dim and b.size["n_layer"] == n_layer]
    size = f"--gpt_model {names[0]}" if names else f"a custom size (dim {dim}, {n_layer} layers)"
    return f"the checkpoint looks like {size} --gpt_type {kind} (dim {dim}, {n_layer} layers, vocab {emb.shape[0]})"


def load_gpt_weights(model: GPT, path: str | Path, use_ema: bool = False) -> GPT:
    """Strictly load a LlamaGen/AR-GRPO checkpoint (any layout) into ``model``; mismatches name the keys."""
    state_dict = read_state_dict(path, use_ema=use_ema, part="gpt_model")
    cfg = model.config
    hint = (
        f"You built dim {cfg.dim}, {cfg.n_layer} layers, {cfg.model_type}; {describe_state_dict(state_dict)}."
    )
    load_state_dict_strict(model, state_dict, source=str(path), hint=hint)
    return model
