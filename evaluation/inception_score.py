"""Inception Score as guided-diffusion's evaluator computes it (improved-GAN formula).

The class probabilities are softmax(pool_3 @ W) over all 1008 outputs of the 2015 graph, where W is the
``softmax/logits/MatMul`` weight: the evaluator feeds pool features straight into that MatMul, so the logits
have *no bias* (torch-fidelity calls them ``logits_unbiased``). Samples are cut, in order, into splits of
``split_size`` (5000; the last split may be shorter) and

    IS = mean over splits of exp( mean_i KL( p(y|x_i) || p(y) ) ),   p(y) = mean_i p(y|x_i) within the split.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, xlogy

DEFAULT_SPLIT_SIZE = 5000


def inception_score(logits: np.ndarray, split_size: int = DEFAULT_SPLIT_SIZE) -> float:
    """``logits``: N x C unnormalised class scores (float64 is used inside, so no p*log(p) underflow NaNs)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be a non-empty N x C array, got shape {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf")
    if split_size <= 0:
        raise ValueError(f"split_size must be positive, got {split_size}")
    scores = []
    for start in range(0, logits.shape[0], split_size):
        log_p = log_softmax(logits[start : start + split_size], axis=1)
        p = np.exp(log_p)
        marginal = p.mean(axis=0, keepdims=True)
        # xlogy keeps 0 * log(0) = 0 for classes whose probability underflowed in every sample of the split
        mean_kl = (np.sum(p * log_p, axis=1) - np.sum(xlogy(p, marginal), axis=1)).mean()
        scores.append(np.exp(mean_kl))
    return float(np.mean(scores))
