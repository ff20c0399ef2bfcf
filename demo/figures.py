"""The demo's pictures: the reward during GRPO, and honest against gamed GRPO on the same prompts and seeds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from torchvision.utils import save_image

from demo.settings import DEFAULT_REWARD, DemoSettings, run_folder
from sampling.images import images_to_tensor

REWARD_LABELS = {
    "shapes": "dense (fraction of constraints met)",
    "shapes_strict": "strict (GenEval correct)",
    "shapes_clean": "clean (objects' precision^2 x recall)",
    "shapes_exact": "exact (correct, nothing extra)",
    "noise_control": "noise (control: ignores the images)",
}
GRID_IMAGES, GRID_COLUMNS = 64, 16
SMOOTHING_STEPS = 5  # each step sees different prompts: a moving mean shows the trend


def sample_grid(images: np.ndarray, path: Path) -> None:
    """The first samples (uint8, N x H x W x 3) as one PNG grid."""
    tensor = images_to_tensor(list(images[:GRID_IMAGES]))
    save_image(tensor, path, nrow=GRID_COLUMNS, padding=1, pad_value=1.0)


def reward_curve(metrics_file: Path, out: Path) -> None:
    """Each reward term's rollout mean per GRPO step (faint) and its moving mean, from the trainer's metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    rows = [r for r in rows if "reward/total_mean" in r]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    window = SMOOTHING_STEPS
    names = [k[len("reward/") : -len("_mean")] for k in rows[0] if k.startswith("reward/") and k.endswith("_mean")]
    for name in [n for n in names if n != "total"]:
        key, label = f"reward/{name}_mean", REWARD_LABELS.get(name, name)
        values = [r[key] for r in rows]
        smooth = [sum(values[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(values))]
        (line,) = ax.plot(steps, smooth, label=f"{label}, {window}-step mean")
        ax.plot(steps, values, color=line.get_color(), alpha=0.3, linewidth=1)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward of the rollout")
    ax.set_title("Shapes world: reward during GRPO")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def hacking_vs_honest(out: Path, settings: DemoSettings) -> Path | None:
    """Once both the honest (default) and the GenEval-rules run of a task and seed exist: one picture of the
    same prompts and seeds before GRPO, after honest GRPO and after GRPO that games GenEval's rules."""
    from PIL import Image, ImageDraw

    honest = run_folder(out, replace(settings, reward=DEFAULT_REWARD))
    hacked = run_folder(out, replace(settings, reward="geneval_rules"))
    if not all((d / "summary.json").is_file() for d in (honest, hacked)):
        return None
    rows = []
    for label, folder, image in [
        ("before GRPO", honest, "samples_before.png"),
        (f"GRPO on '{DEFAULT_REWARD}'", honest, "samples_after.png"),
        ("GRPO on 'geneval_rules'", hacked, "samples_after.png"),
    ]:
        summary = json.loads((folder / "summary.json").read_text())
        when = "before" if "before" in image else "after"
        text = (
            f"{label}: GenEval-style {100 * summary[when]['overall']:.1f}%, "
            f"clutter-free {100 * summary[f'exact_{when}']:.1f}%, "
            f"{summary['objects_per_image'][when]:.1f} objects/image"
        )
        grid = Image.open(folder / image).convert("RGB")
        row = Image.new("RGB", (grid.width, grid.height + 16), "white")
        row.paste(grid, (0, 16))
        ImageDraw.Draw(row).text((2, 2), text, fill="black")
        rows.append(row)
    picture = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    top = 0
    for row in rows:
        picture.paste(row, (0, top))
        top += row.height
    path = out / f"{settings.task}_seed{settings.seed}_hacking_vs_honest.png"
    picture.save(path)
    return path
