"""End to end: `fid_evaluation.py REF.npz SAMPLE.npz` on tiny npz files with a random-weight Inception.

Both files carry stored statistics with diagonal covariances (guided-diffusion's evaluator reads stored
statistics from either file): scipy's sqrtm of a dense 2048 x 2048 product is slow on a CPU, of a diagonal one
fast, and the FID then has a closed form to check against (timings in docs/evaluation_fid.md). Computing the
statistics from features instead is checked separately (no sqrtm needed for that).
"""

import json

import numpy as np
import pytest

import fid_evaluation
from evaluation.activations import Activations
from evaluation.frechet import GaussianStats
from evaluation.inception import save_random_inception_weights
from evaluation.npz_io import write_sample_npz

POOL, SPATIAL = 2048, 2023


def _diag_stats(rng, pool_var, spatial_var):
    return {
        "mu": rng.normal(size=POOL),
        "sigma": pool_var * np.eye(POOL),
        "mu_s": rng.normal(size=SPATIAL),
        "sigma_s": spatial_var * np.eye(SPATIAL),
    }


@pytest.mark.slow
def test_cli_writes_parseable_txt_and_json(tmp_path, capsys):
    rng = np.random.default_rng(0)
    weights = save_random_inception_weights(tmp_path / "random_inception.pth", seed=1)
    ref_stats, sample_stats = _diag_stats(rng, 4.0, 1.0), _diag_stats(rng, 1.0, 0.25)
    ref_images = rng.integers(0, 256, size=(6, 20, 20, 3), dtype=np.uint8)
    sample_images = rng.integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "ref.npz", ref_images, **ref_stats)
    np.savez(tmp_path / "samples.npz", sample_images, **sample_stats)

    argv = [str(tmp_path / "ref.npz"), str(tmp_path / "samples.npz"), "--inception-weights", str(weights)]
    metrics = fid_evaluation.main([*argv, "--batch-size", "4", "--pr-batch-size", "3", "--no-progress"])

    fid = np.sum((ref_stats["mu"] - sample_stats["mu"]) ** 2) + POOL * (2.0 - 1.0) ** 2
    sfid = np.sum((ref_stats["mu_s"] - sample_stats["mu_s"]) ** 2) + SPATIAL * (1.0 - 0.5) ** 2
    assert metrics["fid"] == pytest.approx(fid, rel=1e-9)
    assert metrics["sfid"] == pytest.approx(sfid, rel=1e-9)
    assert 1.0 <= metrics["inception_score"] <= 5.0  # exp(mutual information) <= number of samples
    assert 0.0 <= metrics["precision"] <= 1.0 and 0.0 <= metrics["recall"] <= 1.0

    txt_path, json_path = tmp_path / "samples_metrics.txt", tmp_path / "samples_metrics.json"
    record = json.loads(json_path.read_text())
    assert record["metrics"] == metrics
    assert record["sample_batch"] == str(tmp_path / "samples.npz")
    parsed = dict(line.split(": ", 1) for line in txt_path.read_text().splitlines())
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    for key, label in fid_evaluation.METRIC_LABELS.items():
        assert float(parsed[label]) == metrics[key]
        assert float(printed[label]) == metrics[key]


def test_statistics_come_from_features_when_not_stored(tmp_path):
    rng = np.random.default_rng(1)
    acts = Activations(pool=rng.normal(size=(4, 3)), spatial=rng.normal(size=(4, 2)))
    write_sample_npz(tmp_path / "s.npz", rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8))
    pool, spatial = fid_evaluation.fid_statistics(tmp_path / "s.npz", acts)
    expected_pool, expected_spatial = GaussianStats.from_features(acts.pool), GaussianStats.from_features(acts.spatial)
    np.testing.assert_allclose(pool.mu, expected_pool.mu)
    np.testing.assert_allclose(pool.sigma, expected_pool.sigma)
    np.testing.assert_allclose(spatial.sigma, expected_spatial.sigma)

    np.savez(tmp_path / "with_pool_stats.npz", np.zeros((4, 8, 8, 3), np.uint8), mu=np.ones(3), sigma=np.eye(3))
    pool, spatial = fid_evaluation.fid_statistics(tmp_path / "with_pool_stats.npz", acts)
    np.testing.assert_array_equal(pool.mu, np.ones(3))
    np.testing.assert_allclose(spatial.sigma, expected_spatial.sigma)  # mu_s/sigma_s absent: computed


def test_output_paths_sit_beside_the_sample_file(tmp_path):
    txt, js = fid_evaluation.metrics_paths(tmp_path / "run.v2" / "samples_50k.npz")
    assert txt == tmp_path / "run.v2" / "samples_50k_metrics.txt"
    assert js == tmp_path / "run.v2" / "samples_50k_metrics.json"


def test_missing_input_is_named_before_loading_anything(tmp_path):
    np.savez(tmp_path / "ref.npz", np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        fid_evaluation.main([str(tmp_path / "ref.npz"), str(tmp_path / "absent.npz")])
