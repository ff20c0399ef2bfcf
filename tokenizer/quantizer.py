"""Vector quantizer of LlamaGen's VQ tokenizer (nearest codebook entry, straight-through gradients)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# Length of the rolling window of recent code indices used to report codebook usage (LlamaGen's size;
# the buffer is part of released checkpoints, so the size must stay).
USAGE_WINDOW = 65536


class QuantizerLosses(NamedTuple):
    """Same order as LlamaGen's 4-tuple: (vq_loss, commit_loss, entropy_loss, codebook_usage)."""

    vq_loss: torch.Tensor
    commit_loss: torch.Tensor
    entropy_loss: torch.Tensor
    codebook_usage: float


def entropy_loss(affinity: torch.Tensor, temperature: float = 0.01) -> torch.Tensor:
    """Per-sample entropy minus entropy of the batch-average code distribution.

    Low when each vector picks one code confidently while the batch as a whole spreads over many codes.
    """
    logits = affinity.reshape(-1, affinity.shape[-1]) / temperature
    probs = F.softmax(logits, dim=-1)
    log_probs = F.log_softmax(logits + 1e-5, dim=-1)
    avg_probs = probs.mean(dim=0)
    batch_entropy = -(avg_probs * torch.log(avg_probs + 1e-5)).sum()
    sample_entropy = -(probs * log_probs).sum(dim=-1).mean()
    return sample_entropy - batch_entropy


class VectorQuantizer(nn.Module):
    """Maps each feature vector to its nearest codebook row.

    With ``l2_norm`` both features and codebook rows are unit-normalised before the lookup, and the
    stored rows are normalised again at every lookup (released tables are not guaranteed unit-norm).
    """

    def __init__(
        self,
        codebook_size: int,
        embed_dim: int,
        *,
        beta: float = 0.25,
        entropy_loss_ratio: float = 0.0,
        l2_norm: bool = True,
        show_usage: bool = True,
    ):
        super().__init__()
        self.codebook_size = codebook_size
        self.embed_dim = embed_dim
        self.beta = beta
        self.entropy_loss_ratio = entropy_loss_ratio
        self.l2_norm = l2_norm
        self.show_usage = show_usage
        self.embedding = nn.Embedding(codebook_size, embed_dim)
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
            if l2_norm:
                self.embedding.weight.copy_(F.normalize(self.embedding.weight, p=2, dim=-1))
        if show_usage:
            self.register_buffer("codebook_used", torch.zeros(USAGE_WINDOW))

    def codebook(self) -> torch.Tensor:
        """The table as used for lookups: row-normalised when ``l2_norm``."""
        weight = self.embedding.weight
        return F.normalize(weight, p=2, dim=-1) if self.l2_norm else weight

    def forward(
        self, z: torch.Tensor
    ) -> tuple[torch.Tensor, QuantizerLosses, tuple[None, None, torch.Tensor]]:
        """z (B, C, h, w) -> (z_q (B, C, h, w), losses, (None, None, indices (B*h*w,)))."""
        z = z.permute(0, 2, 3, 1).contiguous()
        flat = z.reshape(-1, self.embed_dim)
        if self.l2_norm:
            z = F.normalize(z, p=2, dim=-1)
            flat = F.normalize(flat, p=2, dim=-1)
        table = self.codebook()
        # Squared distances |z|^2 + |e|^2 - 2 z.e for every (vector, code) pair.
        dist = flat.pow(2).sum(1, keepdim=True) + table.pow(2).sum(1) - 2.0 * flat @ table.t()
        indices = dist.argmin(dim=1)
        z_q = table[indices].view(z.shape)

        usage = 0.0
        if self.show_usage and self.training:
            with torch.no_grad():
                n = min(indices.numel(), USAGE_WINDOW)
                self.codebook_used.copy_(
                    torch.cat([self.codebook_used[n:], indices[-n:].to(self.codebook_used)])
                )
                usage = torch.unique(self.codebook_used).numel() / self.codebook_size
        vq_loss = (z_q - z.detach()).pow(2).mean()  # pulls codes towards encoder outputs
        commit_loss = self.beta * (z_q.detach() - z).pow(2).mean()  # keeps the encoder near its codes
        if self.entropy_loss_ratio > 0:
            ent = self.entropy_loss_ratio * entropy_loss(-dist)
        else:
            ent = torch.zeros((), device=z.device, dtype=vq_loss.dtype)

        z_q = z + (z_q - z).detach()  # straight-through: forward uses codes, gradient flows to z
        z_q = z_q.permute(0, 3, 1, 2).contiguous()
        return z_q, QuantizerLosses(vq_loss, commit_loss, ent, usage), (None, None, indices)

    def get_codebook_entry(
        self, indices: torch.Tensor, shape: tuple[int, ...] | None = None, channel_first: bool = True
    ) -> torch.Tensor:
        """Look up codes. With ``shape`` = (B, C, h, w) and ``channel_first`` the result is (B, C, h, w);
        with ``channel_first=False`` the rows are viewed as ``shape`` directly (channels last)."""
        z_q = self.codebook()[indices]
        if shape is None:
            return z_q
        if channel_first:
            b, c, h, w = shape
            return z_q.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return z_q.reshape(shape)
