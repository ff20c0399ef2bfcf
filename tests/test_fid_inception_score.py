"""Inception Score against a hand computation, and the evaluator's split rule."""

import math

import numpy as np
import pytest

from evaluation.inception_score import inception_score


def _hand_inception_score(probs):
    """exp(mean_i sum_j p_ij log(p_ij / pbar_j)) with plain Python loops."""
    n, classes = len(probs), len(probs[0])
    marginal = [sum(row[j] for row in probs) / n for j in range(classes)]
    mean_kl = sum(sum(p * math.log(p / marginal[j]) for j, p in enumerate(row)) for row in probs) / n
    return math.exp(mean_kl)


def test_matches_hand_computation():
    probs = [[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]]
    logits = np.log(np.array(probs)) + 3.0  # softmax is shift-invariant
    assert inception_score(logits) == pytest.approx(_hand_inception_score(probs), rel=1e-12)


def test_confident_distinct_predictions_give_number_of_classes():
    assert inception_score(60.0 * np.eye(4)) == pytest.approx(4.0, rel=1e-9)


def test_identical_predictions_give_one():
    logits = np.tile(np.array([[0.3, -1.0, 2.0]]), (10, 1))
    assert inception_score(logits) == pytest.approx(1.0, abs=1e-12)


def test_splits_are_consecutive_and_the_last_one_may_be_short():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)) * 3
    splits = [logits[0:3], logits[3:6], logits[6:7]]
    probs = [np.exp(s) / np.exp(s).sum(axis=1, keepdims=True) for s in splits]
    expected = np.mean([_hand_inception_score(p.tolist()) for p in probs])
    assert inception_score(logits, split_size=3) == pytest.approx(expected, rel=1e-12)
    assert inception_score(logits, split_size=3) != pytest.approx(inception_score(logits, split_size=7), rel=1e-6)


def test_probabilities_that_underflow_do_not_produce_nan():
    # Probabilities [[0.5, 0, 0.5], [1, 0, 0]], marginal [0.75, 0, 0.25]; zero terms contribute 0.
    logits = np.array([[0.0, -2000.0, 0.0], [0.0, -2000.0, -2000.0]])
    mean_kl = (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25) + math.log(1 / 0.75)) / 2
    assert inception_score(logits) == pytest.approx(math.exp(mean_kl), rel=1e-12)


@pytest.mark.parametrize(
    ("logits", "message"),
    [(np.zeros((0, 3)), "non-empty"), (np.array([[0.0, np.nan]]), "NaN"), (np.zeros(3), "N x C")],
)
def test_bad_logits_are_rejected(logits, message):
    with pytest.raises(ValueError, match=message):
        inception_score(logits)
