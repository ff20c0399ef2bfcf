"""Seeds and random generators derived from a run seed and an identity key, never from a running counter.

A sample's (or a step's) random stream depends only on ``(seed, *key)``, e.g. ``(seed, sample_index)`` in
evaluation or ``(seed, rollout, prompt, sample)`` in training. So results do not depend on how many processes
share the work, on the batch size, or on whether a run was resumed. Sampling draws from one generator per
batch row (:func:`row_generators`), so a row's tokens depend on its own key alone.

Two derivations live here, each kept bit-for-bit because recorded runs rely on it: the ``SeedSequence`` mix
(evaluation samples, c2i class ids) and the polynomial fold of the training streams (sample seeds and prompt
orders of GRPO runs; changing it would change what a resumed run samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

_FOLD_MULTIPLIER = 1_000_003
_FOLD_MODULUS = 2**63 - 1
_TRAINING_SEED_BOUND = 2**62


def seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    """numpy's well-mixed seed state for ``(seed, *key)``: distinct keys give independent streams."""
    return np.random.SeedSequence([int(seed), *(int(k) for k in key)])


def sample_seed(seed: int, *key: int) -> int:
    """A well-mixed 63-bit seed for the item identified by ``key`` (e.g. a sample's global index)."""
    state = seed_sequence(seed, *key).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def numpy_generator(seed: int, *key: int) -> np.random.Generator:
    """A numpy generator (PCG64) on the stream of ``(seed, *key)``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *key)))


def row_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One torch generator per batch row, seeded from that row's seed."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def sample_generators(
    seed: int, keys: Sequence[Sequence[int]], device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One generator per batch row, row ``i`` on the stream of ``(seed, *keys[i])``."""
    return row_generators([sample_seed(seed, *key) for key in keys], device)


def folded_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU torch generator seeded with a polynomial fold of ``(seed, *key)``: the training streams' derivation."""
    value = seed
    for k in key:
        value = (value * _FOLD_MULTIPLIER + k) % _FOLD_MODULUS
    return torch.Generator().manual_seed(value)


def folded_seed(seed: int, *key: int) -> int:
    """A seed in ``[0, 2**62)`` drawn from :func:`folded_generator`: one training sample's seed."""
    return int(torch.randint(0, _TRAINING_SEED_BOUND, (1,), generator=folded_generator(seed, *key)))
