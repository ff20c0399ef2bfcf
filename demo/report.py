"""What a demo run leaves for a person: ``summary.json`` (the numbers) and ``report.md`` (tables and pictures)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from demo.evaluator import paired_gain
from demo.pretrain import DemoModels
from demo.settings import DemoSettings


def summarize(settings: DemoSettings, models: DemoModels, before: dict, after: dict, timings: dict) -> dict:
    """The run's numbers: GenEval-style before/after, paired per-sample changes, objects per image, wall time.

    ``before``/``after`` are held-out reports on the same prompts and seeds; ``timings`` holds ``phase_seconds``,
    ``wall_time_seconds`` and the pretraining record ``pretrain``.
    """
    def per_tag(report: dict) -> dict:
        return {"overall": report["overall"], "per_tag": {k: v["accuracy"] for k, v in report["per_tag"].items()}}

    def paired(name: str) -> dict:
        return paired_gain(before["per_sample"][name], after["per_sample"][name])

    phases = timings["phase_seconds"]
    return {
        "task": settings.task,
        "seed": settings.seed,
        "num_eval_samples": len(before["per_sample"]["strict"]),
        "before": per_tag(before),
        "after": per_tag(after),
        "improvement_points": 100 * (after["overall"] - before["overall"]),
        # Same prompts and seeds before and after: paired per-sample changes and their standard errors.
        "paired_strict": paired("strict"),
        "paired_dense": paired("dense"),
        # GenEval-correct *and* no extra object: the score clutter cannot buy (docs/demo.md)
        "exact_before": before["overall_exact"],
        "exact_after": after["overall_exact"],
        "paired_exact": paired("exact"),
        "objects_per_image": {
            "asked": before["objects_asked_per_image"],
            "before": before["objects_per_image"],
            "after": after["objects_per_image"],
        },
        "dense_before": before["overall_dense"],
        "dense_after": after["overall_dense"],
        "wall_time_seconds": timings["wall_time_seconds"],
        "grpo_seconds": phases["grpo"],
        "phase_seconds": phases,
        "pretrain": timings["pretrain"],
        "settings": asdict(settings),
        "models": asdict(models),
    }


def format_table(before: dict, after: dict) -> str:
    """GenEval-style accuracy per tag, overall, and overall with no extra objects, before and after (%)."""
    lines = ["| tag | before | after | change |", "|---|---|---|---|"]
    for tag, row in before["per_tag"].items():
        b, a = row["accuracy"], after["per_tag"][tag]["accuracy"]
        lines.append(f"| {tag} | {100 * b:.1f} | {100 * a:.1f} | {100 * (a - b):+.1f} |")
    b, a = before["overall"], after["overall"]
    lines.append(f"| **overall** | **{100 * b:.1f}** | **{100 * a:.1f}** | **{100 * (a - b):+.1f}** |")
    b, a = before["overall_exact"], after["overall_exact"]
    lines.append(f"| overall, no extra objects | {100 * b:.1f} | {100 * a:.1f} | {100 * (a - b):+.1f} |")
    return "\n".join(lines)


def significance(summary: dict) -> str:
    """The paired changes with their standard errors, in one paragraph."""
    strict, dense, exact = summary["paired_strict"], summary["paired_dense"], summary["paired_exact"]
    objects = summary["objects_per_image"]
    return (
        f"Paired over the same {exact['n']} prompts and seeds: **clutter-free score {100 * exact['gain']:+.1f} "
        f"± {100 * exact['se']:.1f} points (z = {exact['z']:.1f})** (GenEval-correct with no extra object, the "
        f"score clutter cannot buy); GenEval-style strict accuracy {100 * strict['gain']:+.1f} "
        f"± {100 * strict['se']:.1f} (z = {strict['z']:.1f}); dense reward {dense['gain']:+.3f} "
        f"± {dense['se']:.3f} (z = {dense['z']:.1f}). Objects per image: {objects['before']:.1f} before, "
        f"{objects['after']:.1f} after; the prompts ask for {objects['asked']:.1f}."
    )


def write(folder: Path, summary: dict, table: str) -> None:
    """``summary.json`` and ``report.md`` (which shows the sample grids and reward curve beside it)."""
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    (folder / "report.md").write_text(
        f"# Shapes-world demo ({summary['task']}, seed {summary['seed']})\n\n"
        f"GenEval-style accuracy (%) on {summary['num_eval_samples']} held-out samples, before and after GRPO:"
        f"\n\n{table}\n\n{significance(summary)}\n\n"
        "![before](samples_before.png)\n\n![after](samples_after.png)\n\n![reward](reward_curve.png)\n"
    )


def link_comparison(folder: Path, picture: Path) -> None:
    """Add the honest-vs-gamed picture (kept in the output root) to the run's report."""
    with (folder / "report.md").open("a") as report:
        report.write(f"\n![honest vs gamed reward, same prompts and seeds](../{picture.name})\n")
