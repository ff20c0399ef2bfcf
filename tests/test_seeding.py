"""The seeding helpers reproduce the derivations recorded runs were made with, recomputed here independently
(numpy's SeedSequence/PCG64 and the training fold spelled out), and every user draws from them."""

import numpy as np
import pytest
import torch

from autoregressive.models.seeding import (
    folded_generator,
    folded_seed,
    numpy_generator,
    row_generators,
    sample_generators,
    sample_seed,
)
from dataset.imagenet import class_ids_for_step
from grpo.prompt_sources import ORDER_STREAM, ListPrompts, TrainingPrompt
from grpo_trainer import SAMPLE_STREAM

SEEDS = (0, 1, 42, 2**40 + 7)
KEYS = ((0,), (5,), (3, 9), (1, 2, 3), (999, 0, 7, 2))


def _fold(seed: int, *key: int) -> int:
    value = seed
    for k in key:
        value = (value * 1_000_003 + k) % (2**63 - 1)
    return value


@pytest.mark.parametrize("seed", SEEDS)
def test_sample_seed_is_two_seed_sequence_words(seed):
    for key in KEYS:
        words = np.random.SeedSequence([seed, *key]).generate_state(2, dtype=np.uint32)
        assert sample_seed(seed, *key) == (int(words[0]) << 31) ^ int(words[1])
    assert len({sample_seed(seed, *key) for key in KEYS}) == len(KEYS)


@pytest.mark.parametrize("seed", SEEDS)
def test_numpy_generator_is_pcg64_on_the_seed_sequence(seed):
    for key in KEYS:
        expected = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key]))).integers(0, 1000, 32)
        np.testing.assert_array_equal(numpy_generator(seed, *key).integers(0, 1000, 32), expected)


def test_class_ids_come_from_the_seed_sequence_of_seed_and_step():
    for seed in SEEDS:
        for step in (0, 1, 500):
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, step])))
            assert class_ids_for_step(seed, step, 16, 1000) == rng.integers(0, 1000, size=16).tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_folded_streams_are_the_polynomial_fold(seed):
    for key in KEYS:
        expected = torch.Generator().manual_seed(_fold(seed, *key))
        assert torch.equal(torch.rand(8, generator=folded_generator(seed, *key)), torch.rand(8, generator=expected))
        drawn = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(_fold(seed, *key))))
        assert folded_seed(seed, *key) == drawn


def test_prompt_order_is_a_folded_permutation_per_epoch():
    prompts = [TrainingPrompt(i) for i in range(37)]
    source = ListPrompts(prompts, seed=11)
    walked = [p.value for i in range(10) for p in source.batch(i, 8)]  # 80 prompts: epochs 0, 1 and part of 2
    expected = []
    for epoch in range(3):
        gen = torch.Generator().manual_seed(_fold(11, ORDER_STREAM, epoch))
        expected += torch.randperm(37, generator=gen).tolist()
    assert walked == expected[:80]


def test_training_sample_seeds_use_their_own_stream():
    assert SAMPLE_STREAM != ORDER_STREAM
    seed = folded_seed(5, SAMPLE_STREAM, 2, 1, 0)
    gen = torch.Generator().manual_seed(_fold(5, SAMPLE_STREAM, 2, 1, 0))
    assert seed == int(torch.randint(0, 2**62, (1,), generator=gen))


def test_row_generators_give_each_row_its_own_seeded_stream():
    seeds = [sample_seed(7, i) for i in range(4)]
    by_row = [torch.rand(5, generator=g) for g in row_generators(seeds)]
    for seed, row in zip(seeds, by_row, strict=True):
        assert torch.equal(row, torch.rand(5, generator=torch.Generator().manual_seed(seed)))
    by_key = [torch.rand(5, generator=g) for g in sample_generators(7, [(i,) for i in range(4)])]
    assert all(torch.equal(a, b) for a, b in zip(by_row, by_key, strict=True))
    assert not torch.equal(by_row[0], by_row[1])
