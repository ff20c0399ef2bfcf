"""Precision/Recall against a brute-force computation of the evaluator's rules."""

import numpy as np
import pytest
import torch

from evaluation.precision_recall import knn_radii, pairwise_sq_distances, precision_recall


def _brute_force(ref, samples, k=3):
    """Squared distances in float64; radius = k-th smallest in own set counting self; covered if dist <= radius."""
    ref, samples = ref.astype(np.float64), samples.astype(np.float64)

    def sq_dist(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    ref_radii = np.sort(sq_dist(ref, ref), axis=1)[:, k]
    sample_radii = np.sort(sq_dist(samples, samples), axis=1)[:, k]
    cross = sq_dist(samples, ref)
    precision = np.mean([(cross[i] <= ref_radii).any() for i in range(len(samples))])
    recall = np.mean([(cross[:, j] <= sample_radii).any() for j in range(len(ref))])
    return precision, recall


@pytest.mark.parametrize("float16_distances", [True, False])
def test_integer_features_match_brute_force_including_ties(float16_distances):
    # Small integers are exact in float16, so both modes must agree with float64 exactly, ties included.
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, size=(23, 6)).astype(np.float32)
    clustered, spread = rng.integers(0, 2, size=(10, 6)), rng.integers(2, 7, size=(9, 6))
    samples = np.concatenate([clustered, spread]).astype(np.float32)
    expected = _brute_force(ref, samples)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # a non-trivial case
    got = precision_recall(ref, samples, row_batch_size=5, col_batch_size=7, float16_distances=float16_distances)
    assert got == pytest.approx(expected, abs=1e-12)


def test_continuous_features_match_brute_force_in_float32_mode():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(40, 8)).astype(np.float32)
    samples = (rng.normal(size=(33, 8)) * 1.3 + 0.4).astype(np.float32)
    expected = _brute_force(ref, samples)
    got = precision_recall(ref, samples, row_batch_size=6, col_batch_size=9, float16_distances=False)
    assert got == pytest.approx(expected, abs=1e-12)


def test_hand_case_uses_third_neighbour_and_inclusive_comparison():
    # Reference points on a line at 0..4: point 0's radius is its distance to 3, i.e. 3^2 = 9.
    ref = np.zeros((5, 2), dtype=np.float32)
    ref[:, 0] = np.arange(5)
    radii = knn_radii(torch.from_numpy(ref), k=3)
    assert radii.tolist() == [9.0, 4.0, 4.0, 4.0, 9.0]
    samples = np.zeros((4, 2), dtype=np.float32)
    samples[:, 0] = [-3.0, -3.5, 7.0, 7.01]  # at exactly radius from 0 or 4: inside; farther: outside
    precision, _ = precision_recall(ref, samples)
    assert precision == pytest.approx(0.5)


def test_radii_do_not_depend_on_block_sizes():
    rng = np.random.default_rng(2)
    feats = torch.from_numpy(rng.normal(size=(50, 16)).astype(np.float32))
    full = knn_radii(feats, row_batch_size=50, col_batch_size=50)
    blocked = knn_radii(feats, row_batch_size=7, col_batch_size=3)
    assert torch.equal(full, blocked)


def test_float16_distances_are_rounded_like_the_evaluator():
    rng = np.random.default_rng(3)
    u = torch.from_numpy(rng.uniform(0, 2, size=(20, 64)).astype(np.float32))
    v = torch.from_numpy(rng.uniform(0, 2, size=(15, 64)).astype(np.float32))
    d16 = pairwise_sq_distances(u, v, float16_distances=True)
    d32 = pairwise_sq_distances(u, v, float16_distances=False)
    assert torch.equal(d16, d16.half().float())  # every value is a float16 value
    assert not torch.equal(d16, d32)
    exact = ((u[:, None, :].double() - v[None].double()) ** 2).sum(-1)
    assert torch.allclose(d32.double(), exact, rtol=1e-4, atol=1e-3)
    # float16 keeps ~11 bits; errors are relative to the norms (~85) that cancel.
    assert (d16.double() - exact).abs().max() < 0.5


def _tf_float16_distances_2d(u, v):
    """The evaluator's float16 graph for D = 2, where every sum has at most two terms so accumulation
    order cannot matter: float16 operands, products exact in float32, each op's result rounded to float16."""
    f16, f32 = np.float16, np.float32
    u, v = u.astype(f16).astype(f32), v.astype(f16).astype(f32)
    sq_u, sq_v = (u * u).astype(f16).astype(f32), (v * v).astype(f16).astype(f32)
    norm_u = (sq_u[:, 0] + sq_u[:, 1]).astype(f16).astype(f32)
    norm_v = (sq_v[:, 0] + sq_v[:, 1]).astype(f16).astype(f32)
    dot = (u[:, None, 0] * v[None, :, 0] + u[:, None, 1] * v[None, :, 1]).astype(f16).astype(f32)
    twice = (2 * dot).astype(f16).astype(f32)
    dist = (norm_u[:, None] - twice).astype(f16).astype(f32)
    return np.maximum((dist + norm_v[None, :]).astype(f16).astype(f32), 0)


def test_float16_distances_match_the_evaluator_graph_op_by_op():
    rng = np.random.default_rng(4)
    u = rng.uniform(0, 40, size=(30, 2)).astype(np.float32)
    v = rng.uniform(0, 40, size=(25, 2)).astype(np.float32)
    expected = _tf_float16_distances_2d(u, v)
    got = pairwise_sq_distances(torch.from_numpy(u), torch.from_numpy(v), float16_distances=True)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_float16_overflow_falls_back_to_float32():
    u = torch.full((3, 4), 300.0)  # squares 90000 overflow float16
    v = torch.tensor([[300.0, 300.0, 300.0, 299.0], [0.0, 0.0, 0.0, 0.0]])
    d16 = pairwise_sq_distances(u, v, float16_distances=True)
    assert torch.equal(d16, pairwise_sq_distances(u, v, float16_distances=False))
    assert d16[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert d16[:, 1].tolist() == [360000.0] * 3


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="more than k=3"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="same D"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))
    bad = np.zeros((10, 2))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="sample features contain NaN"):
        precision_recall(np.zeros((10, 2)), bad)
