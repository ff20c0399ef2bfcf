"""Convolutional encoder/decoder blocks of LlamaGen's VQ tokenizer.

Module and attribute names mirror LlamaGen's so released checkpoints (``vq_ds16_c2i.pt`` and friends)
load with strict key matching: ``conv_blocks.<level>.res.<i>``, ``.attn.<i>``, ``.downsample``/``.upsample``,
``mid.0..2``, ``norm_out``, ``conv_out``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=num_groups, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """Pre-activation residual block; a 1x1 ``nin_shortcut`` only when the channel count changes."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels, num_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = group_norm(out_channels, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        shortcut = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions (1x1-conv projections, residual)."""

    def __init__(self, channels: int, num_groups: int):
        super().__init__()
        self.norm = group_norm(channels, num_groups)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)

        def tokens(conv: nn.Conv2d) -> torch.Tensor:  # (B, 1, HW, C): one head
            return conv(normed).reshape(b, c, h * w).transpose(1, 2).unsqueeze(1)

        # Default SDPA scale is C^-1/2, softmax over keys: the same math as the reference block.
        out = F.scaled_dot_product_attention(tokens(self.q), tokens(self.k), tokens(self.v))
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Halve the resolution: pad right/bottom by one, then a stride-2 3x3 conv without padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: residual blocks, optional attention after each, optional resampling."""

    def __init__(self, res: list[nn.Module], attn: list[nn.Module], resample_name: str | None, resample=None):
        super().__init__()
        self.res = nn.ModuleList(res)
        self.attn = nn.ModuleList(attn)
        if resample_name is not None:
            setattr(self, resample_name, resample)
        self._resample_name = resample_name

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.res):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        if self._resample_name is not None:
            h = getattr(self, self._resample_name)(h)
        return h


def _mid_blocks(channels: int, num_groups: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList(
        [
            ResnetBlock(channels, channels, num_groups, dropout),
            AttnBlock(channels, num_groups),
            ResnetBlock(channels, channels, num_groups, dropout),
        ]
    )


class Encoder(nn.Module):
    """Image (B, 3, H, W) -> features (B, z_channels, H/f, W/f), f = 2 ** (len(ch_mult) - 1)."""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        z_channels: int = 256,
        num_groups: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, padding=1)
        levels = []
        block_in = ch
        last = len(ch_mult) - 1
        for level, mult in enumerate(ch_mult):
            block_out = ch * mult
            res, attn = [], []
            for _ in range(num_res_blocks):
                res.append(ResnetBlock(block_in, block_out, num_groups, dropout))
                block_in = block_out
                if level == last:  # attention only at the lowest resolution
                    attn.append(AttnBlock(block_in, num_groups))
            if level != last:
                levels.append(_Level(res, attn, "downsample", Downsample(block_in)))
            else:
                levels.append(_Level(res, attn, None))
        self.conv_blocks = nn.ModuleList(levels)
        self.mid = _mid_blocks(block_in, num_groups, dropout)
        self.norm_out = group_norm(block_in, num_groups)
        self.conv_out = nn.Conv2d(block_in, z_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = level(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Features (B, z_channels, h, w) -> image (B, 3, h*f, w*f), roughly in [-1, 1] (not clamped)."""

    def __init__(
        self,
        *,
        z_channels: int = 256,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 3,
        out_channels: int = 3,
        num_groups: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, padding=1)
        self.mid = _mid_blocks(block_in, num_groups, dropout)
        levels = []
        last = len(ch_mult) - 1
        # Level 0 is the lowest resolution (largest multiplier); levels walk back up the ch_mult list.
        for level, mult in enumerate(reversed(ch_mult)):
            block_out = ch * mult
            res, attn = [], []
            for _ in range(num_res_blocks):
                res.append(ResnetBlock(block_in, block_out, num_groups, dropout))
                block_in = block_out
                if level == 0:
                    attn.append(AttnBlock(block_in, num_groups))
            if level != last:
                levels.append(_Level(res, attn, "upsample", Upsample(block_in)))
            else:
                levels.append(_Level(res, attn, None))
        self.conv_blocks = nn.ModuleList(levels)
        self.norm_out = group_norm(block_in, num_groups)
        self.conv_out = nn.Conv2d(block_in, out_channels, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in self.conv_blocks:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))
