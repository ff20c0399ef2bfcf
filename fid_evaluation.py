"""ImageNet FID suite in PyTorch, computed the way OpenAI's guided-diffusion evaluator computes it.

    python fid_evaluation.py REF.npz SAMPLE.npz [--inception-weights PATH] [--device cuda]

prints Inception Score, FID, sFID, Precision and Recall and writes them beside the sample file as
``SAMPLE_metrics.txt`` and ``SAMPLE_metrics.json``. Both npz files hold uint8 images N x H x W x 3 in ``arr_0``
(e.g. guided-diffusion's ``VIRTUAL_imagenet256_labeled.npz`` reference batch, and 50k samples written with
``evaluation.npz_io.write_sample_npz``); stored ``mu``/``sigma``/``mu_s``/``sigma_s`` are used when present.
Details and formulas: docs/evaluation_fid.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from evaluation.activations import DEFAULT_BATCH_SIZE, Activations, class_logits, compute_activations
from evaluation.frechet import GaussianStats
from evaluation.inception import WEIGHTS_ENV_VAR, WEIGHTS_FLAG, load_inception
from evaluation.inception_score import DEFAULT_SPLIT_SIZE, inception_score
from evaluation.npz_io import read_npz_statistics
from evaluation.precision_recall import DEFAULT_BATCH_SIZE as PR_BATCH_SIZE
from evaluation.precision_recall import DEFAULT_K, precision_recall

METRIC_LABELS = {
    "inception_score": "Inception Score",
    "fid": "FID",
    "sfid": "sFID",
    "precision": "Precision",
    "recall": "Recall",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "ref_batch", type=Path, help="reference batch npz (arr_0 images, optional mu/sigma/mu_s/sigma_s)"
    )
    parser.add_argument("sample_batch", type=Path, help="sample batch npz (arr_0 uint8 images N x H x W x 3)")
    parser.add_argument(
        WEIGHTS_FLAG,
        dest="inception_weights",
        default=None,
        help=f"torch-fidelity Inception-v3 weights file (default: ${WEIGHTS_ENV_VAR}, else downloaded once)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per Inception batch")
    parser.add_argument(
        "--pr-batch-size", type=int, default=PR_BATCH_SIZE, help="rows/cols per Precision/Recall distance block"
    )
    parser.add_argument(
        "--fp32-distances",
        action="store_true",
        help="exact float32 Precision/Recall distances instead of the evaluator's float16 ones",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def metrics_paths(sample_batch: Path) -> tuple[Path, Path]:
    stem = sample_batch.with_suffix("")
    return stem.with_name(stem.name + "_metrics.txt"), stem.with_name(stem.name + "_metrics.json")


def fid_statistics(npz_path: Path, acts: Activations) -> tuple[GaussianStats, GaussianStats]:
    """Stored statistics when the npz has them (as the evaluator does for both files), else from the features."""
    stored = read_npz_statistics(npz_path)
    pool = GaussianStats(stored["mu"], stored["sigma"]) if "mu" in stored else GaussianStats.from_features(acts.pool)
    spatial = (
        GaussianStats(stored["mu_s"], stored["sigma_s"])
        if "mu_s" in stored
        else GaussianStats.from_features(acts.spatial)
    )
    return pool, spatial


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    for path in (args.ref_batch, args.sample_batch):
        if not path.is_file():
            raise FileNotFoundError(f"npz file not found: {path}")
    device = torch.device(args.device)
    model = load_inception(args.inception_weights, device)
    progress = not args.no_progress

    print("computing reference batch activations...", file=sys.stderr)
    ref_acts = compute_activations(args.ref_batch, model, args.batch_size, device, progress)
    ref_pool_stats, ref_spatial_stats = fid_statistics(args.ref_batch, ref_acts)
    print("computing sample batch activations...", file=sys.stderr)
    sample_acts = compute_activations(args.sample_batch, model, args.batch_size, device, progress)
    sample_pool_stats, sample_spatial_stats = fid_statistics(args.sample_batch, sample_acts)

    print("computing metrics...", file=sys.stderr)
    logits = class_logits(model, sample_acts.pool, device)
    precision, recall = precision_recall(
        ref_acts.pool,
        sample_acts.pool,
        k=DEFAULT_K,
        row_batch_size=args.pr_batch_size,
        col_batch_size=args.pr_batch_size,
        float16_distances=not args.fp32_distances,
        device=device,
    )
    return {
        "inception_score": inception_score(logits, DEFAULT_SPLIT_SIZE),
        "fid": sample_pool_stats.frechet_distance(ref_pool_stats),
        "sfid": sample_spatial_stats.frechet_distance(ref_spatial_stats),
        "precision": precision,
        "recall": recall,
    }


def write_reports(args: argparse.Namespace, metrics: dict[str, float]) -> tuple[Path, Path]:
    txt_path, json_path = metrics_paths(args.sample_batch)
    lines = [f"{label}: {metrics[key]}" for key, label in METRIC_LABELS.items()]
    header = [f"reference batch: {args.ref_batch}", f"sample batch: {args.sample_batch}"]
    txt_path.write_text("\n".join(header + lines) + "\n")
    record = {
        "ref_batch": str(args.ref_batch),
        "sample_batch": str(args.sample_batch),
        "metrics": metrics,
        "settings": {
            "precision_recall_k": DEFAULT_K,
            "inception_score_split_size": DEFAULT_SPLIT_SIZE,
            "float16_distances": not args.fp32_distances,
        },
    }
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    return txt_path, json_path


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    metrics = evaluate(args)
    for key, label in METRIC_LABELS.items():
        print(f"{label}: {metrics[key]}")
    txt_path, json_path = write_reports(args, metrics)
    print(f"wrote {txt_path} and {json_path}", file=sys.stderr)
    return metrics


if __name__ == "__main__":
    main()
