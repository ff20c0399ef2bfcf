"""``fid``: a group-level FID reward (as upstream).

The batch is split into ``groups`` equal chunks; each chunk's Inception statistics are compared with
reference statistics, and every image in a chunk gets the chunk's step-mapped FID (see
``scaling.FID_EDGES``). Features and reference statistics come from fid_evaluation.py's loaders
(``evaluation.inception.load_inception``, ``evaluation.npz_io.read_fid_reference``), which run no pickled code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from reward_utils.backend import BackendOptions, ModelCache, RewardFactory, option
from reward_utils.base import Prompt, RewardError, RewardFunction
from reward_utils.scaling import FID_EDGES, FID_LEVELS, step_map
from reward_utils.tensor_transforms import to_uint8

if TYPE_CHECKING:  # the extractor's module imports torch_fidelity: only inside the factory
    from evaluation.inception import InceptionV3Features

NEGATIVE_FID_TOLERANCE = 1e-3


def group_fid(features: torch.Tensor, reference: dict[str, np.ndarray]) -> float:
    """FID between the Gaussian fitted to ``features`` ``(N, D)`` and the reference statistics.

    Same value as torch-fidelity's ``fid_statistics_to_metric``, but with N << D the trace term
    ``tr sqrt(S1 S2)`` is computed from the N x N matrix ``Xc S2 Xc^T / (N - 1)`` (S1 = Xc^T Xc / (N - 1) has
    rank < N, and AB and BA share their non-zero eigenvalues): milliseconds instead of a D x D
    eigendecomposition on every training step.
    """
    x = features.double().cpu().numpy()
    n = x.shape[0]
    if n < 2:
        raise ValueError("group FID needs at least 2 images")
    mu1, mu2, sigma2 = x.mean(0), reference["mu"], reference["sigma"]
    centred = x - mu1
    small = centred @ sigma2 @ centred.T / (n - 1)
    eigenvalues = np.linalg.eigvalsh((small + small.T) / 2)
    tr_covmean = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    trace_sigma1 = (centred**2).sum() / (n - 1)
    diff = mu1 - mu2
    return float(diff @ diff + trace_sigma1 + np.trace(sigma2) - 2.0 * tr_covmean)


class GroupFIDReward(RewardFunction):
    """Each of ``groups`` equal chunks of the batch gets the step-mapped FID of that chunk."""

    name = "fid"

    def __init__(self, extractor: InceptionV3Features, reference: dict[str, np.ndarray], groups: int = 2):
        if groups < 1:
            raise ValueError("groups must be >= 1")
        self.extractor, self.reference, self.groups = (
            extractor.eval().requires_grad_(False),
            reference,
            groups,
        )

    @property
    def device(self) -> torch.device:
        return next(self.extractor.parameters()).device

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        batch = images.shape[0]
        if batch % self.groups or batch // self.groups < 2:
            raise RewardError(
                f"reward {self.name!r}: a batch of {batch} cannot be split into {self.groups} groups"
                " of >= 2 images"
            )
        features, _ = self.extractor(to_uint8(images.to(self.device)).permute(0, 2, 3, 1))
        if features.shape[1] != self.reference["mu"].shape[0]:
            raise RewardError(
                f"reward {self.name!r}: features are {features.shape[1]}-d but the reference statistics are"
                f" {self.reference['mu'].shape[0]}-d"
            )
        size = batch // self.groups
        fids = torch.tensor(
            [group_fid(chunk, self.reference) for chunk in features.split(size)], dtype=torch.float64
        )
        if (fids < -NEGATIVE_FID_TOLERANCE).any():
            raise RewardError(f"reward {self.name!r}: negative FID {fids.min().item()} (broken statistics?)")
        fids = fids.clamp(min=0.0)  # rounding can push an exact match slightly below zero
        return step_map(fids, FID_EDGES, FID_LEVELS).repeat_interleave(size)


@dataclass
class FIDOptions(BackendOptions):
    PATHS: ClassVar[dict[str, str]] = {"fid_reference_stats": "file", "fid_inception_weights": "file"}

    fid_reference_stats: str | None = option(None, ".npz with reference 'mu'/'sigma' for the fid reward")
    fid_inception_weights: str | None = option(None, "local torch-fidelity InceptionV3 weights (default: download)")
    fid_groups: int = option(2, "the fid reward splits each batch into this many groups")


def _fid(o: FIDOptions, cache: ModelCache) -> RewardFunction:
    from evaluation.inception import load_inception
    from evaluation.npz_io import read_fid_reference

    if not o.fid_reference_stats:
        raise ValueError("the fid reward needs --fid_reference_stats (an .npz with 'mu' and 'sigma')")
    # float32 whatever --reward_dtype: the features feed a 2048-d covariance, and the extractor is the evaluator's
    key = ("inception", o.fid_inception_weights, str(o.device()))
    extractor = cache.get(
        key, lambda: load_inception(o.fid_inception_weights, o.device(), "--fid_inception_weights")
    )
    return GroupFIDReward(extractor, read_fid_reference(o.fid_reference_stats), o.fid_groups)


OPTIONS = FIDOptions
REWARDS: dict[str, RewardFactory] = {"fid": _fid}
