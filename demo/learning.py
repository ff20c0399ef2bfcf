"""Does GRPO learn a prompt-dependent reward? The trainer's learning check on the demo's pretrained models.

The reward is ``shapes_colour``: the fraction of an image's pixels in the colour its prompt names. Every colour
can learn it quickly, and only a policy that reads its condition can: drawing more of one colour helps one
prompt in five. The trainer is built by the training scripts' own wiring (``build_trainer`` of ``train_t2i.py`` /
``train_c2i.py`` over the same flags as those scripts), with the trainer's defaults except the batch shape,
learning rate, step count and β = 0.

Before and after GRPO the same prompts are sampled with the same seeds, so the per-sample change is paired.
The null control trains on *shuffled* rewards (each sample gets the reward of another sample of the rollout),
which keeps the reward's distribution but cuts its link to the image and the prompt.

    python -m demo.learning --out outputs/learning      # both tasks, cfg vs cond, three seeds, the control
    python -m demo.learning --tasks c2i --guidance cfg --control false
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autoregressive.models.generate import generate
from demo.evaluator import paired_gain
from demo.grpo_run import BaseModels, build_trainer, data_arguments, model_arguments, rollout_config
from demo.pretrain import DemoModels, cache_folder, pretrain
from demo.settings import TASK_DEFAULTS, DemoSettings
from demo.world import COLOUR_NAMES, NUM_CLASSES, TAGS, class_spec, class_to_pair, render_caption
from grpo_trainer import GRPOTrainer
from img_gen_grpo_rewards import RewardArguments
from scripts.flags import parse_flags


@dataclass
class LearningSettings:
    steps: int = 30
    learning_rate: float = 3e-4
    warmup_steps: int = 0  # the trainer default
    num_generations: int = 8
    prompts_per_step: int = 5
    cfg_scale: float = 3.0
    logp_guidance: str | None = None  # None: the trainer's default
    eval_seeds_per_prompt: int = 8


def colour_of(prompt: str | int) -> str:
    class_id = prompt if isinstance(prompt, int) else CAPTIONS.index(prompt)
    return class_to_pair(class_id)[1]


CAPTIONS = [render_caption(class_spec(c)) for c in range(NUM_CLASSES)]
"""One single-object caption per (shape, colour) pair, in class-id order."""


def prompts_for(task: str) -> list[str | int]:
    return list(CAPTIONS) if task == "t2i" else list(range(NUM_CLASSES))


def make_trainer(
    task: str,
    base: dict[str, Path],
    out: Path,
    seed: int,
    settings: LearningSettings,
    models: DemoModels | None = None,
) -> GRPOTrainer:
    """The trainer of a colour-reward run from the pretrained ``base`` (paths: vq, gpt, text), built by
    ``train_<task>.py``'s own wiring; it writes to ``out/grpo``, the t2i prompt file goes beside it."""
    models = models or DemoModels()
    pretrained = BaseModels(vq=base["vq"], gpt=base["gpt"], text_encoder=base["text"])
    prompt_file = None
    if task == "t2i":
        out.mkdir(parents=True, exist_ok=True)
        prompt_file = out / "colour_prompts.txt"
        prompt_file.write_text("\n".join(CAPTIONS) + "\n")
    guidance = {} if settings.logp_guidance is None else {"logp_guidance": settings.logp_guidance}
    quiet = {"save_steps": 0, "image_log_steps": 0, "report_to": "none"}
    config = rollout_config(settings, out / "grpo", seed, settings.steps, beta=0.0, **quiet, **guidance)
    return build_trainer(
        model_arguments(task, models, pretrained),
        data_arguments(task, prompt_file),
        config,
        RewardArguments(reward_funcs=["shapes_colour"], reward_weights=[1.0]),
    )


def shuffled(reward_fn: Callable, seed: int) -> Callable:
    """The null control: each sample gets the reward of another sample of the same rollout."""
    generator = torch.Generator().manual_seed(seed)

    def score(images, prompts, metadata):
        total, parts = reward_fn(images, prompts, metadata)
        order = torch.randperm(len(total), generator=generator).to(total.device)
        return total[order], {name: values[order.to(values.device)] for name, values in parts.items()}

    return score


def recording(reward_fn: Callable, trainer: GRPOTrainer, log: list[tuple[int, str, float]]) -> Callable:
    """Record (step, prompt colour, true reward) of every training sample: the per-colour training curve."""

    def score(images, prompts, metadata):
        total, parts = reward_fn(images, prompts, metadata)
        true = parts["shapes_colour"]
        log.extend((trainer.step, colour_of(p), float(v)) for p, v in zip(prompts, true.tolist(), strict=True))
        return total, parts

    return score


@torch.no_grad()
def evaluate(trainer: GRPOTrainer, reward_fn: Callable, prompts: list, seeds_per_prompt: int) -> list[float]:
    """The colour reward of one sample per (prompt, seed), with fixed seeds: pairable across evaluations."""
    policy = trainer.policy.eval()
    expanded = [p for p in prompts for _ in range(seeds_per_prompt)]
    cond, mask = trainer.encode_condition(expanded)
    gens = [torch.Generator(device=trainer.device).manual_seed(50_000 + i) for i in range(len(expanded))]
    tokens = generate(policy, cond, cfg=trainer.sampling, cond_mask=mask, generator=gens).tokens
    policy.train()
    images = trainer.decode_images(tokens)
    _, parts = reward_fn(images, expanded, [{} for _ in expanded])
    return parts["shapes_colour"].tolist()


def learning_run(
    task: str, base: dict[str, Path], out: Path, seed: int, settings: LearningSettings, control: bool = False
) -> dict:
    """Evaluate, train on the colour reward (or its shuffled control), evaluate again; paired statistics."""
    trainer = make_trainer(task, base, out, seed, settings)
    prompts = prompts_for(task)
    colours = [colour_of(p) for p in prompts for _ in range(settings.eval_seeds_per_prompt)]
    true_reward = trainer.reward_fn
    before = evaluate(trainer, true_reward, prompts, settings.eval_seeds_per_prompt)
    curve: list[tuple[int, str, float]] = []
    trainer.reward_fn = recording(true_reward, trainer, curve)  # the curve shows the true reward, control or not
    if control:
        trainer.reward_fn = shuffled(trainer.reward_fn, seed)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    after = evaluate(trainer, true_reward, prompts, settings.eval_seeds_per_prompt)
    per_colour = {}
    for colour in COLOUR_NAMES:
        rows = [i for i, c in enumerate(colours) if c == colour]
        per_colour[colour] = {
            "before": sum(before[i] for i in rows) / len(rows),
            "after": sum(after[i] for i in rows) / len(rows),
            **paired_gain([before[i] for i in rows], [after[i] for i in rows]),
        }
    return {
        "task": task,
        "seed": seed,
        "control": control,
        "logp_guidance": trainer.config.logp_guidance,
        "overall": paired_gain(before, after),
        "per_colour": per_colour,
        "curve": curve,
        "grpo_seconds": seconds,
    }


def curve_by_colour(curve: list[tuple[int, str, float]], window: int = 5) -> dict[str, tuple[list[int], list[float]]]:
    """Per-colour mean training reward per step, smoothed by a ``window``-step moving mean."""
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for step, colour, value in curve:
        sums[colour][step].append(value)
    out = {}
    for colour, by_step in sums.items():
        steps = sorted(by_step)
        means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
        smooth = [sum(means[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(means))]
        out[colour] = (steps, smooth)
    return out


def plot(results: list[dict], path: Path) -> None:
    """A row per task, a panel per setting: per-colour training reward, one line per seed and colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in results}, reverse=True)
    settings = sorted({_setting(r) for r in results})
    fig, axes = plt.subplots(
        len(tasks), len(settings), figsize=(3.8 * len(settings), 3.0 * len(tasks)), sharey=True, squeeze=False
    )
    palette = {"red": "tab:red", "yellow": "gold", "green": "tab:green", "blue": "tab:blue", "purple": "tab:purple"}
    for row, task in enumerate(tasks):
        for col, setting in enumerate(settings):
            ax = axes[row][col]
            for r in results:
                if (r["task"], _setting(r)) != (task, setting):
                    continue
                for colour, (steps, values) in curve_by_colour([tuple(c) for c in r["curve"]]).items():
                    ax.plot(steps, values, color=palette[colour], alpha=0.7, linewidth=1)
            ax.set_title(f"{task}: {setting}", fontsize=10)
            ax.grid(alpha=0.3)
            if row == len(tasks) - 1:
                ax.set_xlabel("GRPO step")
        axes[row][0].set_ylabel("pixels in the prompt's colour")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _setting(result: dict) -> str:
    return "shuffled rewards" if result["control"] else f"log-probs {result['logp_guidance']}"


def table(results: list[dict]) -> str:
    lines = [
        "| task | setting | seed | overall gain (z) | " + " | ".join(COLOUR_NAMES) + " |",
        "|---|---|---|---|" + "---|" * len(COLOUR_NAMES),
    ]
    for r in results:
        o = r["overall"]
        cells = [f"{c['before']:.2f} → {c['after']:.2f} ({c['z']:+.1f})" for c in r["per_colour"].values()]
        head = f"| {r['task']} | {_setting(r)} | {r['seed']} | {o['gain']:+.3f} ({o['z']:+.1f}) | "
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines)


def _list(default: list, help: str, choices: tuple | None = None):
    metadata = {"help": help} | ({"choices": choices} if choices else {})
    return field(default_factory=lambda: list(default), metadata=metadata)


@dataclass
class LearningCommand:
    """The flags of ``python -m demo.learning``."""

    tasks: list[str] = _list(["t2i", "c2i"], "tasks to check", ("t2i", "c2i"))
    guidance: list[str] = _list(["cfg", "cond"], "log-prob distributions to compare", ("cfg", "cond"))
    seeds: list[int] = _list([0, 1, 2], "GRPO seeds per task and distribution")
    control: bool = field(default=True, metadata={"help": "also run the shuffled-rewards control"})
    control_seeds: list[int] = _list([0], "seeds of the shuffled-rewards control")
    steps: int = field(default=LearningSettings.steps, metadata={"help": "GRPO steps per run"})
    learning_rate: float = field(default=LearningSettings.learning_rate, metadata={"help": "GRPO learning rate"})
    out: Path = field(default=Path("outputs/learning"), metadata={"help": "results, table and curves"})
    demo_out: Path = field(default=Path("outputs/demo"), metadata={"help": "where the demo caches its bases"})


def base_settings(task: str) -> DemoSettings:
    """The pretraining of the learning check's bases: c2i's sizes and every tag for both tasks.

    Any base that reads its prompt will do for this check, and these are the ones its recorded runs used
    (docs/trainer.md); both tasks share one tokenizer, and the t2i base costs a third of the t2i demo's.
    """
    return DemoSettings(task=task, tags=",".join(TAGS), **TASK_DEFAULTS["c2i"])


def main(argv: list[str] | None = None) -> list[dict]:
    (args,) = parse_flags((LearningCommand,), argv, description=__doc__)
    models, results = DemoModels(), []
    for task in args.tasks:
        demo = base_settings(task)
        cache = cache_folder(args.demo_out, demo, models)
        vq, gpt, _ = pretrain(demo, models, cache)
        base = {"vq": vq, "gpt": gpt, "text": cache / "text_encoder"}
        runs = [(g, s, False) for g in args.guidance for s in args.seeds] + [
            ("cfg", s, True) for s in (args.control_seeds if args.control else [])
        ]
        for guidance, seed, control in runs:
            settings = LearningSettings(steps=args.steps, learning_rate=args.learning_rate, logp_guidance=guidance)
            name = f"{task}_{'control' if control else guidance}_seed{seed}"
            print(f"[learning] {name}")
            result = learning_run(task, base, args.out / name, seed, settings, control)
            results.append(result)
            (args.out / "results.json").write_text(json.dumps(results))
    print(table(results))
    (args.out / "table.md").write_text(table(results) + "\n")
    plot(results, args.out / "colour_curves.png")
    return results


if __name__ == "__main__":
    main()
