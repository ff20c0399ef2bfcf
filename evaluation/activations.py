"""Streams an npz image batch through the Inception network into pool/spatial feature arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.inception import POOL_DIM, SPATIAL_DIM, InceptionV3Features
from evaluation.npz_io import IMAGES_KEY, NpzArrayReader, check_image_batch

DEFAULT_BATCH_SIZE = 64  # the evaluator's batch size
LOGITS_BATCH_SIZE = 512  # the evaluator's softmax batch size


@dataclass(frozen=True)
class Activations:
    pool: np.ndarray  # N x 2048, float32
    spatial: np.ndarray  # N x 2023, float32


def compute_activations(
    npz_path: str | os.PathLike,
    model: InceptionV3Features,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Activations:
    """Reads ``arr_0`` batch by batch (never the whole image array) and keeps only the features."""
    with NpzArrayReader(npz_path, IMAGES_KEY) as reader:
        if len(reader.shape) != 4 or reader.shape[-1] != 3 or reader.dtype != np.uint8:
            raise ValueError(
                f"{npz_path}: '{IMAGES_KEY}' must be uint8 images N x H x W x 3, got {reader.dtype} {reader.shape}"
            )
        pool = np.empty((len(reader), POOL_DIM), dtype=np.float32)
        spatial = np.empty((len(reader), SPATIAL_DIM), dtype=np.float32)
        start = 0
        batches = reader.iter_batches(batch_size)
        for batch in tqdm(
            batches, total=reader.num_batches(batch_size), desc=f"Inception {npz_path}", disable=not progress
        ):
            check_image_batch(batch, str(npz_path))
            batch_pool, batch_spatial = model(torch.from_numpy(batch).to(device))
            end = start + batch.shape[0]
            pool[start:end] = batch_pool.cpu().numpy()
            spatial[start:end] = batch_spatial.cpu().numpy()
            start = end
    for name, feats in (("pool_3", pool), ("mixed_6/conv", spatial)):
        if not np.isfinite(feats).all():
            raise ValueError(f"{npz_path}: Inception {name} features contain NaN or inf")
    return Activations(pool=pool, spatial=spatial)


def class_logits(
    model: InceptionV3Features,
    pool: np.ndarray,
    device: str | torch.device = "cpu",
    batch_size: int = LOGITS_BATCH_SIZE,
) -> np.ndarray:
    """The unbiased 1008-way logits for the Inception Score, computed from stored pool features."""
    chunks = []
    for start in range(0, pool.shape[0], batch_size):
        chunk = torch.from_numpy(pool[start : start + batch_size]).to(device)
        chunks.append(model.class_logits(chunk).cpu().numpy())
    return np.concatenate(chunks, axis=0)
