"""The offline demo, end to end: shapes data -> small VQ + GPT -> evaluate -> GRPO (real trainer) -> evaluate.

    python -m demo.run [--task c2i|t2i] [--seed 0] [--reward clean|geneval_rules|noise_control] [--out outputs/demo]

Pretrained models are cached under ``<out>/cache`` (keyed by their settings), so a second run goes straight
to GRPO. GRPO runs through ``train_t2i.py``/``train_c2i.py``, i.e. the same code path as the paper's scripts,
with the exact shapes-world evaluator as reward. Everything a person wants to look at lands in the run folder:
``summary.json``, ``report.md``, ``samples_before.png``/``samples_after.png`` (same prompts, same seeds) and
``reward_curve.png``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autoregressive.run_layout import FINAL_MODEL
from demo import figures, grpo_run, heldout, report
from demo.pretrain import DemoModels, cache_folder, pretrain, text_encoder
from demo.settings import DemoSettings, run_folder
from demo.threads import idle_cores
from scripts.flags import parse_flags
from tokenizer.vq_model import load_vq


@dataclass
class DemoCommand:
    """The flags of ``python -m demo.run`` that are not settings of the run itself."""

    out: str = field(default="outputs/demo", metadata={"help": "run folder root (cache included)"})
    threads: int = field(default=0, metadata={"help": "intra-op threads; 0: the cores idle at start"})

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"--threads must be >= 0 (0: the cores idle now); got {self.threads}")


@contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - started


def run(settings: DemoSettings, out: Path, models: DemoModels | None = None) -> dict:
    """Pretrain (or reuse), evaluate, GRPO, evaluate again; writes the run folder and returns the summary."""
    models = models or DemoModels()
    started, phases = time.perf_counter(), {}
    folder = run_folder(out, settings)
    folder.mkdir(parents=True, exist_ok=True)

    world = f" on prompts tagged {settings.tags}" if settings.task == "t2i" else ""
    print(f"[demo] 1/4 pretraining a small VQ and {settings.task} GPT{world} (cached after the first run)")
    cache = cache_folder(out, settings, models)
    with _timed(phases, "pretrain"):
        vq_path, gpt_path, pretrain_info = pretrain(settings, models, cache)
    base = grpo_run.BaseModels(vq=vq_path, gpt=gpt_path, text_encoder=cache / "text_encoder")
    vq = load_vq(vq_path, "VQ-16", **models.vq)
    encoder = text_encoder(models, base.text_encoder) if settings.task == "t2i" else None
    prompts = heldout.eval_prompts(settings)

    print(f"[demo] 2/4 evaluating the pretrained model on {len(prompts)} held-out samples")
    with _timed(phases, "evaluate_before"):
        before, images_before = heldout.evaluate(gpt_path, vq, models, settings, prompts, encoder)

    print(f"[demo] 3/4 GRPO for {settings.grpo_steps} steps (train_{settings.task}.py, reward = shapes evaluator)")
    prompt_file = grpo_run.grpo_prompt_file(settings, folder) if settings.task == "t2i" else None
    with _timed(phases, "grpo"):
        grpo_run.train(
            grpo_run.model_arguments(settings.task, models, base),
            grpo_run.data_arguments(settings.task, prompt_file),
            grpo_run.grpo_config(settings, folder / "grpo"),
            grpo_run.reward_arguments(settings.reward),
        )

    print("[demo] 4/4 evaluating the GRPO model on the same prompts and seeds")
    with _timed(phases, "evaluate_after"):
        after, images_after = heldout.evaluate(folder / "grpo" / FINAL_MODEL, vq, models, settings, prompts, encoder)

    figures.sample_grid(images_before, folder / "samples_before.png")
    figures.sample_grid(images_after, folder / "samples_after.png")
    figures.reward_curve(folder / "grpo" / "metrics.jsonl", folder / "reward_curve.png")
    timings = {"phase_seconds": phases, "wall_time_seconds": time.perf_counter() - started, "pretrain": pretrain_info}
    summary = report.summarize(settings, models, before, after, timings)
    table = report.format_table(before, after)
    report.write(folder, summary, table)
    print(f"\n{table}\n\n{report.significance(summary)}")
    print(f"wall time {summary['wall_time_seconds']:.0f} s; results in {folder}")
    comparison = figures.hacking_vs_honest(out, settings)
    if comparison is not None:
        report.link_comparison(folder, comparison)
        print(f"[demo] honest vs gamed reward, same prompts and seeds: {comparison}")
    return summary


def parse_args(argv: list[str] | None = None) -> tuple[DemoSettings, DemoCommand]:
    """The run's settings and the command's own flags; a bad value stops here, before any work."""
    return parse_flags((DemoSettings, DemoCommand), argv, description=__doc__)


def main(argv: list[str] | None = None) -> dict:
    settings, command = parse_args(argv)
    threads = command.threads or idle_cores()
    torch.set_num_threads(threads)
    print(f"[demo] {threads} intra-op thread(s): the cores idle now (--threads to choose)")
    return run(settings, Path(command.out))


if __name__ == "__main__":
    main()
