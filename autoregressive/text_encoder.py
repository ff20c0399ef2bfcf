"""Frozen T5 caption encoder producing LlamaGen's t2i condition layout.

LlamaGen feeds the GPT 120 caption slots of flan-t5-xl encoder features. Its sampler *left-pads*: the
valid tokens are moved to the end of the 120 slots (slot 119 predicts the first image token, so it must
be a real token), the mask is flipped to match and padded slots become zero vectors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

__all__ = ["T5TextEncoder", "left_pad"]

TextPreprocessing = Literal["lower", "none"]


def left_pad(emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid (right-padded) tokens to the end and zero the padded slots.

    emb (B, L, D) and mask (B, L) with ones first then zeros -> same shapes, zeros first then ones.
    """
    if mask.dim() != 2 or emb.shape[:2] != mask.shape:
        raise ValueError(f"emb {tuple(emb.shape)} and mask {tuple(mask.shape)} do not match")
    length = mask.shape[1]
    valid = mask.sum(dim=1)
    positions = torch.arange(length, device=mask.device)
    if not torch.equal(mask.bool(), positions[None, :] < valid[:, None]):
        raise ValueError("mask is not right-padded (ones first, then zeros); cannot left-pad it")
    # new[j] = old[(j + valid) mod L]: rotates the pads to the front, keeping token order.
    source = (positions[None, :] + valid[:, None]) % length
    emb = emb.gather(1, source[:, :, None].expand(-1, -1, emb.shape[2]))
    mask = mask.gather(1, source)
    return emb * mask[:, :, None].to(emb.dtype), mask


class T5TextEncoder(nn.Module):
    """Wraps a transformers ``T5EncoderModel`` + tokenizer; always frozen and in eval mode."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        max_length: int = 120,
        left_padding: bool = True,
        text_preprocessing: TextPreprocessing = "lower",
    ):
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if text_preprocessing not in ("lower", "none"):
            raise ValueError(f"text_preprocessing must be 'lower' or 'none', got {text_preprocessing!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"  # left padding is applied afterwards, on the features
        self.max_length = max_length
        self.left_padding = left_padding
        self.text_preprocessing = text_preprocessing
        self._warned_truncation = False
        self.model.requires_grad_(False)
        self.train(False)

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str = "google/flan-t5-xl",
        *,
        max_length: int = 120,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        left_padding: bool = True,
        text_preprocessing: TextPreprocessing = "lower",
    ) -> T5TextEncoder:
        """Load a local folder or a hub id (LlamaGen uses flan-t5-xl: 2048-dim features)."""
        from transformers import AutoTokenizer, T5EncoderModel

        source = str(path_or_hub_id)
        if source.startswith(("/", ".", "~")):  # clearly a local path: never ask the hub about it
            source = str(Path(source).expanduser())
            if not Path(source).is_dir():
                raise FileNotFoundError(f"T5 text encoder folder not found: {source}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = T5EncoderModel.from_pretrained(  # safetensors only: a pickled .bin is never read
                source, torch_dtype=dtype, low_cpu_mem_usage=True, use_safetensors=True
            )
        except (OSError, ValueError) as err:  # transformers: missing files / no network / bad config
            raise OSError(
                f"cannot load the T5 text encoder from {source!r} ({type(err).__name__}): give a local "
                "folder holding the T5 config, safetensors weights (pickled pytorch_model.bin files are not "
                "read: they can run code) and tokenizer files, or a hub id reachable online"
            ) from err
        encoder = cls(
            model,
            tokenizer,
            max_length=max_length,
            left_padding=left_padding,
            text_preprocessing=text_preprocessing,
        )
        return encoder.to(device)

    @classmethod
    def tiny(
        cls,
        d_model: int = 32,
        seed: int = 0,
        *,
        num_layers: int = 2,
        num_heads: int = 4,
        d_ff: int = 64,
        max_length: int = 120,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        left_padding: bool = True,
    ) -> T5TextEncoder:
        """A small random-weight T5 encoder with a byte-level tokenizer: needs no files, same ``seed`` ->
        same weights. For tests and the offline demo."""
        from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        config = T5Config(
            vocab_size=384,  # ByT5 ids are bytes + 3 special ids, all below 259
            d_model=d_model,
            d_kv=d_model // num_heads,
            d_ff=d_ff,
            num_layers=num_layers,
            num_heads=num_heads,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = T5EncoderModel(config)
        encoder = cls(model.to(dtype), ByT5Tokenizer(), max_length=max_length, left_padding=left_padding)
        return encoder.to(device)

    @property
    def caption_dim(self) -> int:
        return int(self.model.config.d_model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> T5TextEncoder:
        """Frozen encoder: stays in eval mode (no dropout) even when a parent module is set to train."""
        return super().train(False)

    def _prepare(self, captions: Sequence[str]) -> list[str]:
        if isinstance(captions, str):
            captions = [captions]
        if len(captions) == 0:
            raise ValueError("no captions to encode")
        for i, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise TypeError(f"caption {i} is {type(caption).__name__}, expected str: {caption!r}")
        if self.text_preprocessing == "lower":
            return [caption.lower().strip() for caption in captions]
        return list(captions)

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> (features (B, max_length, caption_dim) float32, mask (B, max_length) long).

        Tokens beyond ``max_length`` are truncated (the end-of-sequence token is kept). With left padding
        the last slot always holds a real token and padded slots are zero vectors.
        """
        prepared = self._prepare(captions)
        if not self._warned_truncation:
            self._warn_if_truncated(prepared)
        tokens = self.tokenizer(
            prepared,
            max_length=self.max_length,
            padding="max_length",
            truncation=True,
            return_attention_mask=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        input_ids = tokens["input_ids"].to(self.device)
        mask = tokens["attention_mask"].to(self.device, dtype=torch.long)
        emb = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        if self.left_padding:
            return left_pad(emb, mask)
        return emb * mask[:, :, None].to(emb.dtype), mask

    def _warn_if_truncated(self, captions: list[str]) -> None:
        """Say once per encoder that captions lose their end: the model never sees those words."""
        lengths = [len(ids) for ids in self.tokenizer(captions, add_special_tokens=True, verbose=False)["input_ids"]]
        longest = max(range(len(captions)), key=lengths.__getitem__)
        if lengths[longest] > self.max_length:
            self._warned_truncation = True
            caption = captions[longest]
            shown = f"{caption[:80]!r}{'...' if len(caption) > 80 else ''}"
            warnings.warn(
                f"caption {shown} has {lengths[longest]} tokens, more than the model's caption"
                f" budget of {self.max_length} (--cls_token_num); it is truncated to the first {self.max_length}"
                " tokens. Longer captions are truncated the same way; this warning is shown once.",
                stacklevel=4,  # the caller of encode(), past its no_grad wrapper
            )

    def forward(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(captions)
