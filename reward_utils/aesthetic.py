"""``aesthetic``: the LAION aesthetic predictor: an MLP on normalised CLIP ViT-L/14 image embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from autoregressive.checkpoint import read_state_dict
from reward_utils.backend import BackendOptions, ModelCache, RewardFactory, option
from reward_utils.base import Prompt, RewardFunction, ScorerReward
from reward_utils.hf_clip import HFClipScorer, shared_hf_clip

AESTHETIC_MLP_URL = "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac+logos+ava1-l14-linearMSE.pth"
"""Where the published head lives; used only when no local ``--aesthetic_mlp`` file is given."""


class AestheticMLP(nn.Module):
    """The predictor head; layer indices match the published ``sac+logos+ava1-l14-linearMSE.pth`` keys."""

    def __init__(self, embed_dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)


def load_aesthetic_mlp(path_or_url: str | None, device: torch.device | str) -> AestheticMLP:
    """Load the head from a local file, or download the published one when ``path_or_url`` is a URL / None."""
    source = path_or_url or AESTHETIC_MLP_URL
    if source.startswith(("http://", "https://")):
        # torch.hub's default here is full pickle; a downloaded file is as untrusted as a local one.
        path = Path(torch.hub.get_dir()) / "checkpoints" / source.rsplit("/", 1)[-1]
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(source, str(path), progress=False)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"aesthetic MLP weights not found: {source}")
    state = read_state_dict(path)  # weights-only; errors name the file
    first = state.get("layers.0.weight")
    if first is None:
        raise ValueError(f"{source} is not an aesthetic-predictor state dict (no 'layers.0.weight')")
    mlp = AestheticMLP(embed_dim=first.shape[1])
    mlp.load_state_dict(state)
    return mlp.to(device).eval().requires_grad_(False)


class AestheticReward(ScorerReward):
    """Predicted aesthetic score (about 1-10) of each image; prompts are ignored."""

    name = "aesthetic"

    def __init__(self, scorer: HFClipScorer, mlp: AestheticMLP):
        self.scorer = scorer
        self.mlp = mlp.to(scorer.device).eval().requires_grad_(False)
        expected = self.mlp.layers[0].in_features
        actual = scorer.model.config.projection_dim
        if expected != actual:
            raise ValueError(
                f"aesthetic MLP expects {expected}-d CLIP embeddings but the CLIP model gives {actual}"
            )

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        embeddings = self.scorer.image_embeddings(images)
        mlp_dtype = self.mlp.layers[0].weight.dtype
        return self.mlp(embeddings.to(mlp_dtype)).squeeze(-1).float()


@dataclass
class AestheticOptions(BackendOptions):
    PATHS: ClassVar[dict[str, str]] = {"aesthetic_clip_model": "dir", "aesthetic_mlp": "file"}

    aesthetic_clip_model: str = option(
        "openai/clip-vit-large-patch14", "CLIP whose image embeddings feed the aesthetic MLP"
    )
    aesthetic_mlp: str | None = option(None, "aesthetic MLP weights (local .pth or URL; default: the LAION release)")


def _aesthetic(options: AestheticOptions, cache: ModelCache) -> RewardFunction:
    """The CLIP follows ``--reward_dtype``; the head (under 1 M parameters) stays float32 (docs/rewards.md)."""
    device = options.device()
    mlp = cache.get(
        ("aesthetic_mlp", options.aesthetic_mlp, str(device)), lambda: load_aesthetic_mlp(options.aesthetic_mlp, device)
    )
    return AestheticReward(shared_hf_clip(options, cache, options.aesthetic_clip_model), mlp)


OPTIONS = AestheticOptions
REWARDS: dict[str, RewardFactory] = {"aesthetic": _aesthetic}
