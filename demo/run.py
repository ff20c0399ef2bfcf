"""The offline demo, end to end: shapes data -> small VQ + GPT -> evaluate -> GRPO (real trainer) -> evaluate.

    python -m demo.run [--task c2i|t2i] [--seed 0] [--reward clean|geneval_rules|noise_control] [--out outputs/demo]

Pretrained artifacts are cached under ``<out>/cache`` (keyed by their settings), so a second run goes straight
to GRPO. GRPO runs through ``train_t2i.py``/``train_c2i.py``, i.e. the same code path as the paper's scripts,
with the exact shapes-world evaluator as reward. Everything a person wants to look at lands in the run folder:
``summary.json``, ``report.md``, ``samples_before.png``/``samples_after.png`` (same prompts, same seeds) and
``reward_curve.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torchvision.utils import save_image

from autoregressive.models.generate import SamplingConfig, generate
from autoregressive.models.gpt import GPT, load_gpt_weights
from demo.dataset import build_c2i, build_t2i
from demo.evaluator import evaluate_images, geneval_style_report, paired_gain
from demo.pretrain import (
    DemoModels,
    build_demo_gpt,
    save_model,
    text_encoder,
    tokenize,
    train_gpt,
    train_vq,
)
from demo.world import NUM_CLASSES, class_spec, parse_caption, sample_prompts
from grpo.config import GRPOConfig
from tokenizer.vq_model import VQModel, load_vq


@dataclass
class DemoSettings:
    task: str = "c2i"  # where the honest reward gains within the budget (docs/demo.md)
    seed: int = 0
    # pretraining: deliberately short, so the generator is clearly imperfect
    pretrain_prompts: int = 400
    images_per_prompt: int = 4
    vq_steps: int = 400
    gpt_steps: int = 300
    # evaluation on held-out prompts (t2i) / all classes (c2i)
    eval_samples: int = 512
    cfg_scale: float = 3.0
    temperature: float = 1.0  # sampling temperature, in evaluation and GRPO alike
    # GRPO
    grpo_steps: int = 100
    num_generations: int = 8
    prompts_per_step: int = 6
    learning_rate: float = 5e-5  # 2e-4 let update noise win over the clean reward's signal (docs/demo.md)
    beta: float = 0.0  # the KL anchor held the policy back here (docs/demo.md); no reference model needed
    warmup_steps: int = 20  # Adam's first full-size steps on 48 noisy samples derailed some runs (docs/demo.md)
    reward: str = "clean"  # a key of REWARDS
    logp_guidance: str = "cfg"  # on-policy; "cond" (upstream's) loses prompts here (docs/trainer.md)
    scale_rewards: str = "group"


def _cache_key(settings: DemoSettings, models: DemoModels, *, with_task: bool = True) -> str:
    names = ["seed", "pretrain_prompts", "images_per_prompt", "vq_steps", "gpt_steps"] + (["task"] if with_task else [])
    relevant = {k: v for k, v in asdict(settings).items() if k in names}
    text = json.dumps({"settings": relevant, "models": asdict(models), "version": 5}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def cache_folder(out: Path, settings: DemoSettings, models: DemoModels) -> Path:
    """Where the pretrained models of these settings are kept under the demo's output root."""
    return out / "cache" / _cache_key(settings, models)


def pretrain(settings: DemoSettings, models: DemoModels, cache: Path) -> tuple[Path, Path, dict]:
    """Train (or reuse) the VQ and the GPT; returns their checkpoint paths and timings.

    The GPT is kept in ``cache``; the VQ beside it, keyed without the task, so both tasks share one tokenizer.
    """
    cache.mkdir(parents=True, exist_ok=True)
    vq_path = cache.parent / f"vq-{_cache_key(settings, models, with_task=False)}" / "vq.pt"
    vq_path.parent.mkdir(exist_ok=True)
    gpt_path = cache / f"gpt_{settings.task}.pt"
    info: dict = {"cached": vq_path.is_file() and gpt_path.is_file()}
    if info["cached"]:
        return vq_path, gpt_path, info
    def scenes():
        return build_t2i(settings.pretrain_prompts, settings.images_per_prompt, seed=settings.seed)

    if settings.task == "t2i":
        data = scenes()
    else:
        data = build_c2i(settings.pretrain_prompts * settings.images_per_prompt, seed=settings.seed)
    images = data.tensors()
    if vq_path.is_file():
        vq = load_vq(vq_path, "VQ-16", **models.vq)
    else:
        # One tokenizer for both tasks, trained on the multi-object scenes (LlamaGen's VQ serves c2i and t2i):
        # trained on one object per image, the VQ lost two or three of the five colours (docs/demo.md).
        vq_images = images if settings.task == "t2i" else scenes().tensors()
        vq, vq_info = train_vq(vq_images, models, settings.vq_steps, settings.seed)
        info.update(vq_info)
        save_model(vq, vq_path)
    tokens = tokenize(vq, images)
    gpt = build_demo_gpt(models, settings.task, settings.seed)
    if settings.task == "t2i":
        unique = sorted(set(data.captions))
        feats, masks = text_encoder(models, cache / "text_encoder").encode(unique)
        index = torch.tensor([unique.index(c) for c in data.captions])
        info.update(train_gpt(gpt, tokens, feats[index], masks[index], settings.gpt_steps, settings.seed))
    else:
        labels = torch.from_numpy(data.class_ids)
        info.update(train_gpt(gpt, tokens, labels, None, settings.gpt_steps, settings.seed))
    save_model(gpt, gpt_path)
    return vq_path, gpt_path, info


def eval_prompts(settings: DemoSettings) -> list[str | int]:
    """Held-out captions (combinations never seen in pretraining or GRPO) or every class, repeated."""
    if settings.task == "c2i":
        return [i % NUM_CLASSES for i in range(settings.eval_samples)]
    specs = sample_prompts(settings.eval_samples // 4, seed=settings.seed + 1000, split="heldout")
    return [s.caption for s in specs for _ in range(4)]


@torch.no_grad()
def evaluate(
    gpt: GPT, vq: VQModel, models: DemoModels, settings: DemoSettings, prompts: list, encoder=None
) -> tuple[dict, torch.Tensor]:
    """GenEval-style report of one sample per prompt entry, with fixed per-sample seeds."""
    gpt.eval()
    cfg = SamplingConfig(cfg_scale=settings.cfg_scale, temperature=settings.temperature)
    images = []
    for start in range(0, len(prompts), 64):
        chunk = prompts[start : start + 64]
        if settings.task == "t2i":
            cond, mask = encoder.encode(chunk)
        else:
            cond, mask = torch.tensor(chunk), None
        gens = [torch.Generator().manual_seed(10_000 + start + i) for i in range(len(chunk))]
        tokens = generate(gpt, cond, cfg=cfg, cond_mask=mask, generator=gens).tokens
        images.append(vq.decode_to_images(tokens, models.grid))
    images = torch.cat(images)
    specs = [parse_caption(p) if isinstance(p, str) else class_spec(p) for p in prompts]
    verdicts = evaluate_images(images.permute(0, 2, 3, 1).numpy(), specs)
    report = geneval_style_report(verdicts)
    report["per_sample"] = {
        "strict": [float(v.strict) for v in verdicts],
        "dense": [v.dense for v in verdicts],
        "exact": [float(v.exact) for v in verdicts],
    }
    # GenEval's rules ignore extra objects, so a policy can score by clutter: keep the object count in view.
    report["objects_per_image"] = sum(len(v.detections) for v in verdicts) / len(verdicts)
    report["objects_asked_per_image"] = sum(v.asked for v in verdicts) / len(verdicts)
    return report, images


def run_folder(out: Path, settings: DemoSettings) -> Path:
    """``<task>_seed<seed>`` for the default reward, with the reward's name appended for the others."""
    name = f"{settings.task}_seed{settings.seed}"
    return out / (name if settings.reward == DemoSettings.reward else f"{name}_{settings.reward}")


def grpo_prompt_file(settings: DemoSettings, folder: Path) -> Path:
    """Training-split captions for GRPO (t2i), tags in equal shares; c2i draws class ids itself.

    Repeats are kept on purpose: the metric averages over tags, so GRPO must see every tag as often. Without
    repeats the big pools (position: 480 captions, single_object: 3) would set the mix instead.
    """
    specs = sample_prompts(512, seed=settings.seed + 2000, split="train")
    path = folder / "grpo_prompts.txt"
    path.write_text("\n".join(s.caption for s in specs) + "\n")
    return path


REWARDS: dict[str, dict[str, float]] = {
    # the objects' precision^2 x recall (a wrong or extra object never pays), plus correct with nothing extra
    "clean": {"shapes_clean": 1.0, "shapes_exact": 0.5},
    # GenEval's rules alone ignore extra objects: the score rises without cleaner images (the lesson)
    "geneval_rules": {"shapes": 1.0, "shapes_strict": 0.5},
    # noise that ignores the images: how far update noise alone moves the scores (the null control)
    "noise_control": {"noise_control": 1.0},
}
"""The demo's reward compositions (names from img_gen_grpo_rewards.py), chosen with ``--reward``."""


REWARD_LABELS = {
    "shapes": "dense (fraction of constraints met)",
    "shapes_strict": "strict (GenEval correct)",
    "shapes_clean": "clean (objects' precision^2 x recall)",
    "shapes_exact": "exact (correct, nothing extra)",
    "noise_control": "noise (control: ignores the images)",
}


def reward_flags(settings: DemoSettings) -> list[str]:
    rewards = REWARDS[settings.reward]
    return ["--reward_funcs", *rewards, "--reward_weights", *map(str, rewards.values())]


def grpo_flags(
    settings: DemoSettings, models: DemoModels, vq_path: Path, gpt_path: Path, run: Path, text_encoder_dir: Path
) -> list[str]:
    per_device = settings.num_generations * settings.prompts_per_step
    flags = [
        "--gpt_model",
        models.gpt_model,
        "--gpt_type",
        settings.task,
        "--gpt_ckpt",
        str(gpt_path),
        "--vq_ckpt",
        str(vq_path),
        "--vq_config",
        json.dumps({k: v for k, v in models.vq.items() if k not in ("codebook_size", "codebook_embed_dim")}),
        "--codebook_size",
        str(models.vq["codebook_size"]),
        "--codebook_embed_dim",
        str(models.vq["codebook_embed_dim"]),
        "--image_size",
        str(models.image_size),
        "--downsample_size",
        str(models.downsample),
        "--gpt_config",
        json.dumps(models.gpt_overrides),
        "--num_generations",
        str(settings.num_generations),
        "--per_device_train_batch_size",
        str(per_device),
        "--gen_cfg_cfg_scale",
        str(settings.cfg_scale),
        "--temperature",
        str(settings.temperature),
        "--max_steps",
        str(settings.grpo_steps),
        "--learning_rate",
        str(settings.learning_rate),
        "--beta",
        str(settings.beta),
        "--warmup_steps",
        str(settings.warmup_steps),
        "--logp_guidance",
        settings.logp_guidance,
        "--scale_rewards",
        settings.scale_rewards,
        *reward_flags(settings),
        "--seed",
        str(settings.seed),
        "--output_dir",
        str(run / "grpo"),
        "--overwrite_output_dir",  # a demo re-run replaces its previous GRPO run
        "true",
        "--save_steps",
        str(settings.grpo_steps),
        "--save_total_limit",
        "1",
        "--image_log_steps",
        "20",
        "--report_to",
        "tensorboard",
    ]
    if settings.task == "t2i":
        flags += [
            "--cls_token_num",
            str(models.caption_tokens),
            "--caption_dim",
            str(models.caption_dim),
            "--text_encoder",
            str(text_encoder_dir.resolve()),
            "--dataset_name",
            str(grpo_prompt_file(settings, run)),
        ]
    else:
        flags += ["--cls_token_num", "1", "--num_classes", str(NUM_CLASSES)]
    return flags


def reward_curve(metrics_file: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    rows = [r for r in rows if "reward/total_mean" in r]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    window = 5  # each step sees different prompts: a moving mean shows the trend
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
    from dataclasses import replace

    from PIL import Image, ImageDraw

    honest = run_folder(out, replace(settings, reward=DemoSettings.reward))
    hacked = run_folder(out, replace(settings, reward="geneval_rules"))
    if not all((d / "summary.json").is_file() for d in (honest, hacked)):
        return None
    rows = []
    for label, folder, image in [
        ("before GRPO", honest, "samples_before.png"),
        (f"GRPO on '{DemoSettings.reward}'", honest, "samples_after.png"),
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


def format_table(before: dict, after: dict) -> str:
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


def run(settings: DemoSettings, out: Path, models: DemoModels | None = None) -> dict:
    models = models or DemoModels()
    started = time.perf_counter()
    run_dir = run_folder(out, settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"[demo] 1/4 pretraining a small VQ and {settings.task} GPT (cached after the first run)")
    cache = cache_folder(out, settings, models)
    vq_path, gpt_path, pretrain_info = pretrain(settings, models, cache)
    phases = {"pretrain": time.perf_counter() - started}
    vq = load_vq(vq_path, "VQ-16", **models.vq)
    encoder = text_encoder(models, cache / "text_encoder") if settings.task == "t2i" else None
    prompts = eval_prompts(settings)

    print(f"[demo] 2/4 evaluating the pretrained model on {len(prompts)} held-out samples")
    pretrained = load_gpt_weights(build_demo_gpt(models, settings.task, settings.seed), gpt_path)
    before, images_before = evaluate(pretrained, vq, models, settings, prompts, encoder)
    phases["evaluate_before"] = time.perf_counter() - started - sum(phases.values())

    print(f"[demo] 3/4 GRPO for {settings.grpo_steps} steps (train_{settings.task}.py, reward = shapes evaluator)")
    grpo_started = time.perf_counter()
    if settings.task == "t2i":
        import train_t2i as trainer_script
    else:
        import train_c2i as trainer_script
    trainer_script.main(grpo_flags(settings, models, vq_path, gpt_path, run_dir, cache / "text_encoder"))
    grpo_seconds = phases["grpo"] = time.perf_counter() - grpo_started

    print("[demo] 4/4 evaluating the GRPO model on the same prompts and seeds")
    tuned = load_gpt_weights(build_demo_gpt(models, settings.task, settings.seed), run_dir / "grpo" / "gpt_final.pt")
    after, images_after = evaluate(tuned, vq, models, settings, prompts, encoder)
    phases["evaluate_after"] = time.perf_counter() - started - sum(phases.values())

    shown = slice(0, 64)
    save_image(images_before[shown], run_dir / "samples_before.png", nrow=16, padding=1, pad_value=1.0)
    save_image(images_after[shown], run_dir / "samples_after.png", nrow=16, padding=1, pad_value=1.0)
    reward_curve(run_dir / "grpo" / "metrics.jsonl", run_dir / "reward_curve.png")
    summary = {
        "task": settings.task,
        "seed": settings.seed,
        "num_eval_samples": len(prompts),
        "before": {"overall": before["overall"], "per_tag": {k: v["accuracy"] for k, v in before["per_tag"].items()}},
        "after": {"overall": after["overall"], "per_tag": {k: v["accuracy"] for k, v in after["per_tag"].items()}},
        "improvement_points": 100 * (after["overall"] - before["overall"]),
        # Same prompts and seeds before and after: paired per-sample changes and their standard errors.
        "paired_strict": paired_gain(before["per_sample"]["strict"], after["per_sample"]["strict"]),
        "paired_dense": paired_gain(before["per_sample"]["dense"], after["per_sample"]["dense"]),
        # GenEval-correct *and* no extra object: the score clutter cannot buy (docs/demo.md)
        "exact_before": before["overall_exact"],
        "exact_after": after["overall_exact"],
        "paired_exact": paired_gain(before["per_sample"]["exact"], after["per_sample"]["exact"]),
        "objects_per_image": {
            "asked": before["objects_asked_per_image"],
            "before": before["objects_per_image"],
            "after": after["objects_per_image"],
        },
        "dense_before": before["overall_dense"],
        "dense_after": after["overall_dense"],
        "wall_time_seconds": time.perf_counter() - started,
        "grpo_seconds": grpo_seconds,
        "phase_seconds": phases,
        "pretrain": pretrain_info,
        "settings": asdict(settings),
        "models": asdict(models),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    table = format_table(before, after)
    (run_dir / "report.md").write_text(
        f"# Shapes-world demo ({settings.task}, seed {settings.seed})\n\n"
        f"GenEval-style accuracy (%) on {len(prompts)} held-out samples, before and after GRPO:\n\n{table}\n\n"
        f"{significance(summary)}\n\n"
        "![before](samples_before.png)\n\n![after](samples_after.png)\n\n![reward](reward_curve.png)\n"
    )
    print(f"\n{table}\n\n{significance(summary)}\nwall time {summary['wall_time_seconds']:.0f} s; results in {run_dir}")
    comparison = hacking_vs_honest(out, settings)
    if comparison is not None:
        with (run_dir / "report.md").open("a") as report:
            report.write(f"\n![honest vs gamed reward, same prompts and seeds](../{comparison.name})\n")
        print(f"[demo] honest vs gamed reward, same prompts and seeds: {comparison}")
    return summary


def _choices() -> dict[str, tuple[str, ...]]:
    """Allowed values of the string settings; the trainer's own ones come from its config."""
    trainer = {f.name: f.metadata["choices"] for f in fields(GRPOConfig)}
    return {
        "task": ("t2i", "c2i"),
        "reward": tuple(REWARDS),
        "logp_guidance": trainer["logp_guidance"],
        "scale_rewards": trainer["scale_rewards"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = DemoSettings()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name}", type=type(value), default=value)
    parser.add_argument("--out", default="outputs/demo", help="run folder root (cache included)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: the cores idle at start")
    return parser.parse_args(argv)


def idle_cores(window: float = 0.5) -> int:
    """Cores not busy with other work right now (at least 1), measured over ``window`` seconds.

    Two intra-op threads on two cores that another process also uses wait on each other at every barrier,
    and the run slows down many times over; as many threads as idle cores loses only the share that is taken
    (bench/bench_threads_under_load.py). Linux's /proc/stat gives the busy share now; elsewhere the one-minute
    load average stands in (it lags: right after other work ends it still counts it).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        first = _cpu_times()
        time.sleep(window)
        second = _cpu_times()
        total, idle = second[0] - first[0], second[1] - first[1]
        busy = os.cpu_count() * (total - idle) / total if total > 0 else 0.0
    except OSError:
        busy = os.getloadavg()[0]
    return max(1, min(cores, round(cores - busy)))


def _cpu_times() -> tuple[int, int]:
    """(all, idle) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return sum(values), values[3] + values[4]  # idle + iowait


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads < 0:
        raise SystemExit(f"--threads must be >= 0 (0: the cores idle now); got {args.threads}")
    threads = args.threads or idle_cores()
    torch.set_num_threads(threads)
    print(f"[demo] {threads} intra-op thread(s): the cores idle now (--threads to choose)")
    settings = DemoSettings(**{k: getattr(args, k) for k in asdict(DemoSettings())})
    for name, allowed in _choices().items():  # before minutes of pretraining, not after
        if getattr(settings, name) not in allowed:
            raise SystemExit(f"--{name} must be one of {', '.join(allowed)}; got {getattr(settings, name)!r}")
    return run(settings, Path(args.out))


if __name__ == "__main__":
    main()
