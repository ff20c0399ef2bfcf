"""The 2015 TF Inception-v3 graph used by guided-diffusion's evaluator, via torch-fidelity's PyTorch port.

The evaluator feeds float images in [0, 255] (any H x W) into ``ExpandDims:0`` of ``classify_image_graph_def.pb``;
the graph resizes them bilinearly (TF1 ``ResizeBilinear``, align_corners=False) to 299 x 299 and maps
x -> (x - 128) / 128. torch-fidelity's ``FeatureExtractorInceptionV3`` reproduces exactly that preprocessing
(``interpolate_bilinear_2d_like_tensorflow1x``) and the graph's layers, with weights converted from the same
graph, so we take from it:

- ``pool_3:0`` (2048-d, FID, Precision/Recall) = the port's ``'2048'`` feature;
- ``mixed_6/conv:0`` (sFID) = output of ``Mixed_6d.branch1x1``. Reasoning: the graph names its 11 inception
  blocks ``mixed``, ``mixed_1`` ... ``mixed_10``, which in torchvision naming are Mixed_5b, 5c, 5d, 6a, 6b, 6c,
  6d, 6e, 7a, 7b, 7c; so ``mixed_6`` is Mixed_6d (the third 17x17 block after the 6a reduction), and its ``conv``
  scope is the 1x1 branch (the 7x7 towers are ``tower``/``tower_1``, the pool branch ``tower_2``).
  torch-fidelity's weight converter maps exactly ``mixed_6/conv/{conv2d_params,batchnorm}`` to
  ``Mixed_6d.branch1x1.{conv,bn}``. The tensor ``mixed_6/conv:0`` is the scope's output after batch-norm and
  ReLU, which is what the port's ``BasicConv2d`` returns. It is N x 17 x 17 x 192 in TF's NHWC layout; the
  evaluator keeps channels ``[..., :7]`` and flattens in (H, W, C) order, so we do the same (the order matters
  because the reference npz stores ``mu_s``/``sigma_s`` in that order);
- the IS logits: ``pool_3 @ W`` with W of ``softmax/logits/MatMul`` (2048 x 1008, no bias) = the port's
  ``fc.weight``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

from autoregressive.checkpoint import CheckpointError, read_state_dict

WEIGHTS_URL = URL_INCEPTION_V3
WEIGHTS_ENV_VAR = "AR_GRPO_INCEPTION_WEIGHTS"
WEIGHTS_FLAG = "--inception-weights"
POOL_DIM = 2048
SPATIAL_CHANNELS = 7
SPATIAL_SIZE = 17
SPATIAL_DIM = SPATIAL_SIZE * SPATIAL_SIZE * SPATIAL_CHANNELS  # 2023
NUM_CLASSES = 1008


def default_weights_path() -> Path:
    """Where torch-fidelity itself caches the file (torch hub checkpoints), so an existing download is reused."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[-1]


def download_weights(url: str, destination: Path) -> Path:
    """Downloads the converted weights; offline this fails with a message naming the URL and the override."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading the FID Inception-v3 weights from {url} to {destination}")
    try:
        torch.hub.download_url_to_file(url, str(destination), progress=True)
    except OSError as err:  # urllib's URLError/HTTPError and socket errors are OSErrors
        raise RuntimeError(
            f"could not download the FID Inception-v3 weights from {url} ({err}). On a machine without internet, "
            f"fetch that file elsewhere and pass it with {WEIGHTS_FLAG} PATH or the {WEIGHTS_ENV_VAR} "
            "environment variable."
        ) from err
    return destination


def resolve_weights_path(
    weights_path: str | os.PathLike | None = None, url: str = WEIGHTS_URL, flag: str = WEIGHTS_FLAG
) -> Path:
    """Explicit path (given by ``flag``) > $AR_GRPO_INCEPTION_WEIGHTS > the torch hub cache (downloaded there on
    first use)."""
    if weights_path is not None:
        source = flag
    elif os.environ.get(WEIGHTS_ENV_VAR):
        weights_path, source = os.environ[WEIGHTS_ENV_VAR], WEIGHTS_ENV_VAR
    else:
        cached = default_weights_path()
        return cached if cached.is_file() else download_weights(url, cached)
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights file given by {source} does not exist: {path}")
    return path


def inception_network(weights_path: str | os.PathLike) -> FeatureExtractorInceptionV3:
    """torch-fidelity's port with weights read without running code.

    torch-fidelity unpickles a weights file with full pickle, so a crafted ``.pth`` would run code. The file is
    read here with ``weights_only=True`` (or as safetensors), then handed to the port as an in-memory copy that
    holds nothing but those tensors.
    """
    state_dict = read_state_dict(weights_path)  # refuses pickled objects; errors name the file
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    try:
        return FeatureExtractorInceptionV3("ar-grpo-fid-inception-v3", ["2048"], buffer)
    except RuntimeError as err:  # load_state_dict(strict=True): missing, unexpected or mis-shaped keys
        raise CheckpointError(f"{weights_path}: not torch-fidelity Inception-v3 weights ({err})") from err


class InceptionV3Features(nn.Module):
    """uint8 images N x H x W x 3 -> (pool_3 N x 2048, mixed_6/conv[..., :7] N x 2023), both float32."""

    def __init__(self, weights_path: str | os.PathLike):
        super().__init__()
        self.net = inception_network(weights_path)
        self._spatial: torch.Tensor | None = None
        self.net.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)

    def _keep_spatial(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nhwc = output[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1)
        self._spatial = nhwc.reshape(output.shape[0], -1).to(torch.float32)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images N x H x W x 3, got {images.dtype} {tuple(images.shape)}")
        (pool,) = self.net(images.permute(0, 3, 1, 2))
        spatial, self._spatial = self._spatial, None
        return pool, spatial

    @torch.no_grad()
    def class_logits(self, pool_features: torch.Tensor) -> torch.Tensor:
        """The evaluator's softmax input: pool_3 times the graph's logits weight, without the bias."""
        return pool_features @ self.net.fc.weight.T


def load_inception(
    weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu", flag: str = WEIGHTS_FLAG
) -> InceptionV3Features:
    """The one Inception loader of the project (fid_evaluation.py and the ``fid`` reward); ``flag`` names the
    option that gave ``weights_path`` in errors."""
    return InceptionV3Features(resolve_weights_path(weights_path, flag=flag)).to(device).eval()


def save_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Writes a randomly initialised state dict in the port's layout, for smoke tests without the download.

    torchvision's Inception3 (no aux head, 1008 classes) has the same parameter names and shapes as the port.
    Convolutions get He-normal weights so activations stay O(1) through the ~50 BN-as-identity layers.
    """
    from torchvision.models import inception_v3

    generator = torch.Generator().manual_seed(seed)
    model = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=NUM_CLASSES)
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("conv.weight") or name == "fc.weight":
            fan_in = tensor[0].numel()
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
