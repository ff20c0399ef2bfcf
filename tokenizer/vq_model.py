"""LlamaGen-compatible VQ image tokenizer (VQ-16 / VQ-8): encode images to codes, decode codes to images.

State-dict keys and shapes equal LlamaGen's, so released ``vq_ds16_*.pt`` files load strictly. The base
width ``ch`` and the GroupNorm group count are config fields (LlamaGen hard-codes 128 and 32) so small
tokenizers of the same class can be built and trained for offline experiments.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from autoregressive.checkpoint import load_state_dict_strict, read_state_dict
from tokenizer.quantizer import QuantizerLosses, VectorQuantizer
from tokenizer.vq_layers import Decoder, Encoder

__all__ = ["VQConfig", "ModelArgs", "VQModel", "VQ_8", "VQ_16", "VQ_Tiny", "VQ_TINY", "VQ_models", "load_vq"]


@dataclass
class VQConfig:
    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    codebook_show_usage: bool = True
    commit_loss_beta: float = 0.25
    entropy_loss_ratio: float = 0.0
    encoder_ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    decoder_ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    z_channels: int = 256
    dropout_p: float = 0.0
    ch: int = 128  # base channel count (fixed to 128 in LlamaGen)
    norm_groups: int = 32  # GroupNorm groups (fixed to 32 in LlamaGen)

    def __post_init__(self) -> None:
        if len(self.encoder_ch_mult) != len(self.decoder_ch_mult):
            raise ValueError(
                f"encoder_ch_mult {self.encoder_ch_mult} and decoder_ch_mult {self.decoder_ch_mult} "
                "must have the same length (the decoder has to undo every downsampling)"
            )
        widths = {self.ch * m for m in [*self.encoder_ch_mult, *self.decoder_ch_mult]}
        bad = sorted(w for w in widths if w % self.norm_groups)
        if bad:
            raise ValueError(f"channel widths {bad} are not divisible by norm_groups={self.norm_groups}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.encoder_ch_mult) - 1)


ModelArgs = VQConfig  # LlamaGen's name for the same dataclass


class VQModel(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        widths = dict(ch=config.ch, z_channels=config.z_channels, num_groups=config.norm_groups)
        self.encoder = Encoder(ch_mult=config.encoder_ch_mult, dropout=config.dropout_p, **widths)
        self.decoder = Decoder(ch_mult=config.decoder_ch_mult, dropout=config.dropout_p, **widths)
        self.quantize = VectorQuantizer(
            config.codebook_size,
            config.codebook_embed_dim,
            beta=config.commit_loss_beta,
            entropy_loss_ratio=config.entropy_loss_ratio,
            l2_norm=config.codebook_l2_norm,
            show_usage=config.codebook_show_usage,
        )
        self.quant_conv = nn.Conv2d(config.z_channels, config.codebook_embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim, config.z_channels, kernel_size=1)

    # --- LlamaGen API -------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerLosses, tuple]:
        """Images in [-1, 1] -> (quantized latents (B, C, h, w), losses, (None, None, codes (B*h*w,)))."""
        return self.quantize(self.quant_conv(self.encoder(x)))

    def decode(self, quant: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(
        self, code_b: torch.Tensor, shape: Sequence[int] | None = None, channel_first: bool = True
    ) -> torch.Tensor:
        """Codes (B, h*w) in raster order -> images (B, 3, H, W), roughly in [-1, 1] and not clamped.

        ``shape`` is (B, codebook_embed_dim, h, w) as in LlamaGen; when omitted, a square grid is inferred.
        """
        if shape is None:
            shape = self._square_shape(code_b)
        return self.decode(self.quantize.get_codebook_entry(code_b, tuple(shape), channel_first))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerLosses]:
        """Reconstruction and quantizer losses, for training the tokenizer (straight-through estimator)."""
        quant, losses, _ = self.encode(x)
        return self.decode(quant), losses

    # --- conveniences ------------------------------------------------------------------------------
    def encode_to_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> codes (B, h*w) in raster order."""
        quant, _, (_, _, indices) = self.encode(x)
        return indices.view(quant.shape[0], -1)

    @torch.no_grad()
    def decode_to_images(self, codes: torch.Tensor, grid: int, *, batch_size: int = 32) -> torch.Tensor:
        """Codes (B, grid*grid) or (B, grid, grid) -> float32 images in [0, 1].

        Decodes ``batch_size`` images at a time to bound activation memory; no gradients are kept.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if codes.shape[0] == 0:
            raise ValueError("no codes to decode (batch of size 0)")
        codes = codes.reshape(codes.shape[0], -1) if codes.dim() == 3 else codes
        if codes.dim() != 2 or codes.shape[1] != grid * grid:
            expected = f"(B, {grid * grid})"
            raise ValueError(
                f"expected codes of shape {expected} for a {grid}x{grid} grid, got {tuple(codes.shape)}"
            )
        if codes.is_floating_point():
            raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.config.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.config.codebook_size}); got min {low}, max {high}")
        device = self.quantize.embedding.weight.device
        images = []
        for chunk in codes.split(batch_size):
            shape = (chunk.shape[0], self.config.codebook_embed_dim, grid, grid)
            decoded = self.decode_code(chunk.to(device=device, dtype=torch.long), shape)
            images.append((decoded.float() * 0.5 + 0.5).clamp_(0.0, 1.0))
        return torch.cat(images)

    def _square_shape(self, codes: torch.Tensor) -> tuple[int, int, int, int]:
        if codes.dim() != 2:
            raise ValueError(
                f"cannot infer a grid from codes of shape {tuple(codes.shape)}; pass shape=(B, C, h, w)"
            )
        grid = math.isqrt(codes.shape[1])
        if grid * grid != codes.shape[1]:
            raise ValueError(
                f"{codes.shape[1]} codes per image is not a square grid; pass shape=(B, C, h, w)"
            )
        return (codes.shape[0], self.config.codebook_embed_dim, grid, grid)


def VQ_8(**kwargs) -> VQModel:  # noqa: N802 (LlamaGen's public name)
    return VQModel(VQConfig(**{"encoder_ch_mult": [1, 2, 2, 4], "decoder_ch_mult": [1, 2, 2, 4], **kwargs}))


def VQ_16(**kwargs) -> VQModel:  # noqa: N802 (LlamaGen's public name)
    return VQModel(
        VQConfig(**{"encoder_ch_mult": [1, 1, 2, 2, 4], "decoder_ch_mult": [1, 1, 2, 2, 4], **kwargs})
    )


VQ_TINY = {"encoder_ch_mult": [1, 2, 2], "decoder_ch_mult": [1, 2, 2], "z_channels": 16, "ch": 16, "norm_groups": 4}
"""``VQ-Tiny``'s architecture (downsample 4, base width 16); the codebook size stays a separate choice."""


def VQ_Tiny(**kwargs) -> VQModel:  # noqa: N802 (named like LlamaGen's sizes)
    return VQModel(VQConfig(**{**VQ_TINY, **kwargs}))


VQ_models = {"VQ-8": VQ_8, "VQ-16": VQ_16, "VQ-Tiny": VQ_Tiny}
"""LlamaGen's names; ``VQ-Tiny`` is ours, for tests, benchmarks and the offline demo."""


def _describe_file(state_dict: dict[str, torch.Tensor]) -> str:
    """What the file looks like, to point at the right --vq_model / codebook flags on a mismatch."""
    parts = []
    table = state_dict.get("quantize.embedding.weight")
    if table is not None and table.dim() == 2:
        parts.append(f"codebook {table.shape[0]} x {table.shape[1]} (--codebook_size/--codebook_embed_dim)")
    levels = {key.split(".")[2] for key in state_dict if key.startswith("decoder.conv_blocks.")}
    if levels:
        factor = 2 ** (len(levels) - 1)
        parts.append(f"{len(levels)} decoder levels, i.e. downsample factor {factor} (VQ-{factor})")
    return "The file has " + ", ".join(parts) + "." if parts else ""


def load_vq(
    path: str | os.PathLike,
    model_name: str = "VQ-16",
    *,
    device: str | torch.device = "cpu",
    use_ema: bool = False,
    **config,
) -> VQModel:
    """Build ``VQ_models[model_name](**config)``, load ``path`` strictly and return it in eval mode."""
    if model_name not in VQ_models:
        raise ValueError(f"unknown VQ model {model_name!r}; choose one of {sorted(VQ_models)}")
    model = VQ_models[model_name](**config)
    state_dict = read_state_dict(path, use_ema=use_ema, part="vq_model")
    hint = f"{_describe_file(state_dict)} Built {model_name} with {asdict(model.config)}."
    load_state_dict_strict(model, state_dict, source=str(path), hint=hint.strip())
    return model.to(device).eval()
