"""``maniqa``: no-reference image quality (MANIQA) through pyiqa, which already works on batched tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from autoregressive.checkpoint import CheckpointError, load_state_dict_strict, read_torch_file
from reward_utils.backend import BackendOptions, ModelCache, RewardFactory, option
from reward_utils.base import Prompt, RewardFunction
from reward_utils.scaling import MANIQA_SCALE


def maniqa_weights_path(metric_name: str, checkpoint: str | None) -> Path:
    """``checkpoint`` if given, else pyiqa's published file for ``metric_name`` (downloaded once, not read)."""
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"MANIQA checkpoint not found: {checkpoint}")
        return Path(checkpoint)
    from pyiqa.archs.maniqa_arch import default_model_urls
    from pyiqa.default_model_configs import DEFAULT_CONFIGS
    from pyiqa.utils.download_util import load_file_from_url

    return Path(load_file_from_url(default_model_urls[DEFAULT_CONFIGS[metric_name]["metric_opts"]["train_dataset"]]))


def load_maniqa(
    metric_name: str = "maniqa",
    device: torch.device | str = "cpu",
    checkpoint: str | None = None,
    crops: int = 20,
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """``pyiqa.create_metric`` for a MANIQA variant (``maniqa``, ``maniqa-kadid``, ``maniqa-pipal``).

    ``checkpoint`` is a local MANIQA weight file (``{"params": state_dict}`` or a raw state dict); without it
    pyiqa's default is downloaded. pyiqa would read either with full pickle, so the file is read here
    weights-only, before anything is built, and loaded strictly into a metric built without weights.
    ``crops`` is MANIQA's ``test_sample``: how many 224x224 crops are averaged per image. The weights are cast
    to ``dtype`` after the strict load; the network casts its float32 input to ``dtype`` (pyiqa checks the
    [0, 1] range first, and in bfloat16 a pixel of exactly 1.0 fails its ``< 1 + eps`` test).
    """
    import pyiqa

    path = maniqa_weights_path(metric_name, checkpoint)
    stored = read_torch_file(path)  # refuses pickled objects; errors name the file
    state = stored.get("params", stored) if isinstance(stored, Mapping) else stored
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a MANIQA state dict (name -> tensor, optionally under 'params')")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    metric = pyiqa.create_metric(
        metric_name, device=torch.device(device), as_loss=False, test_sample=crops, pretrained=False
    )
    load_state_dict_strict(metric.net, state, source=path)
    metric.net.register_forward_pre_hook(lambda net, inputs: tuple(x.to(dtype) for x in inputs))
    return metric.to(dtype=dtype)


class ManiqaReward(RewardFunction):
    """2 x the MANIQA score of each image (as upstream); prompts are ignored.

    ``metric`` is a pyiqa ``InferenceModel`` (or anything mapping a ``(B, 3, H, W)`` [0, 1] batch to ``B``
    scores).
    """

    name = "maniqa"

    def __init__(self, metric: torch.nn.Module, scale: float = MANIQA_SCALE):
        self.metric = metric.eval().requires_grad_(False)
        self.scale = scale

    @property
    def device(self) -> torch.device:
        return next(self.metric.parameters()).device

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        # pyiqa asserts the input range; decoded images can overshoot [0, 1] by float error.
        quality = self.metric(images.to(self.device).float().clamp(0, 1))
        return self.scale * quality.reshape(-1).float()


@dataclass
class ManiqaOptions(BackendOptions):
    PATHS: ClassVar[dict[str, str]] = {"maniqa_checkpoint": "file"}

    maniqa_metric: str = option("maniqa", "pyiqa metric name", choices=("maniqa", "maniqa-kadid", "maniqa-pipal"))
    maniqa_checkpoint: str | None = option(None, "local MANIQA weights (default: pyiqa downloads them)")
    maniqa_crops: int = option(20, "224x224 crops averaged per image by MANIQA (pyiqa test_sample)")


def _maniqa(o: ManiqaOptions, cache: ModelCache) -> RewardFunction:
    key = ("maniqa", o.maniqa_metric, o.maniqa_checkpoint, o.maniqa_crops, str(o.device()), o.dtype())
    return ManiqaReward(
        cache.get(key, lambda: load_maniqa(o.maniqa_metric, o.device(), o.maniqa_checkpoint, o.maniqa_crops, o.dtype()))
    )


OPTIONS = ManiqaOptions
REWARDS: dict[str, RewardFactory] = {"maniqa": _maniqa}
