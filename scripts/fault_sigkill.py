"""Fault test: SIGKILL a short GRPO run at random moments, resume it, and compare with an uninterrupted run.

    python scripts/fault_sigkill.py [--trials 5] [--max_steps 12] [--save_steps 2] [--seed 0] [--workdir DIR]

Everything is tiny and offline (GPT-Tiny, a small VQ, the ``shapes`` reward) and goes through ``train_c2i.py``
exactly as a user runs it. Each trial starts the run and kills it with SIGKILL at a random moment between just before
its first step and the end of the uninterrupted run's duration (sampling, updates, checkpoint writes),
checks that every ``checkpoint-N`` folder on disk is complete, then resumes with ``--resume_from_checkpoint
latest`` (or starts over with ``--overwrite_output_dir`` when no checkpoint exists yet) and kills again, until
a run finishes. It then requires: metrics.jsonl equal to the uninterrupted run's (every step once, same values
apart from timings) and gpt_final.pt bit-identical. Exit status 0 when every trial passes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grpo.checkpointing import (  # noqa: E402
    MODEL_FILE,
    OPTIMIZER_FILE,
    RNG_FILE,
    SCHEDULER_FILE,
    STATE_FILE,
    list_checkpoints,
    read_json,
)

VOLATILE = ("time/", "throughput/", "memory/")
RUN_DEADLINE_S = 300.0
MAX_ATTEMPTS = 30


def make_models(folder: Path) -> tuple[Path, Path]:
    """Tiny random GPT and VQ checkpoints on disk, as a user would pass them."""
    from autoregressive.models.gpt import build_gpt
    from tokenizer.vq_model import VQ_Tiny

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    vq = VQ_Tiny(codebook_size=48)
    gpt = build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15)
    torch.save({"model": vq.state_dict()}, folder / "vq.pt")
    torch.save({"model": gpt.state_dict()}, folder / "gpt.pt")
    return folder / "gpt.pt", folder / "vq.pt"


def train_command(models: tuple[Path, Path], out: Path, max_steps: int, save_steps: int) -> list[str]:
    gpt, vq = models
    return [
        sys.executable,
        str(REPO / "train_c2i.py"),
        *("--gpt_model", "GPT-Tiny", "--gpt_ckpt", str(gpt), "--vq_ckpt", str(vq)),
        *("--codebook_size", "48", "--image_size", "16", "--downsample_size", "4"),
        *("--vq_model", "VQ-Tiny", "--num_classes", "15"),
        *("--max_steps", str(max_steps), "--save_steps", str(save_steps), "--save_total_limit", "2"),
        *("--num_generations", "4", "--per_device_train_batch_size", "8", "--beta", "0.05"),
        *("--learning_rate", "3e-3", "--report_to", "none", "--image_log_steps", "0"),
        *("--reward_funcs", "shapes", "--output_dir", str(out)),
    ]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def _logged_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    return path.read_text().count("\n") if path.is_file() else 0


def metric_rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(VOLATILE)} for row in rows]


def check_checkpoints_complete(out: Path) -> list[str]:
    """Every ``checkpoint-N`` folder holds every file, each readable; returns the problems found."""
    from safetensors import safe_open

    problems = []
    for folder in sorted(out.glob("checkpoint-*")):
        for name in (STATE_FILE, MODEL_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, RNG_FILE.format(rank=0)):
            if not (folder / name).is_file():
                problems.append(f"{folder.name} lacks {name}")
        try:
            read_json(folder / STATE_FILE)
            read_json(folder / RNG_FILE.format(rank=0))
            with safe_open(str(folder / MODEL_FILE), "pt"):
                pass
            torch.load(folder / OPTIMIZER_FILE, weights_only=True)
        except Exception as err:  # reported, and the trial fails
            problems.append(f"{folder.name} unreadable: {err}")
    return problems


def _run(
    command: list[str], kill_at_s: float | None, out: Path, kill_at_lines: int | None = None
) -> tuple[int, str, float | None, float]:
    """Run ``command``; SIGKILL it ``kill_at_s`` seconds after the start, or once ``out/metrics.jsonl`` has
    ``kill_at_lines`` lines (for a fresh run only: a resumed run starts with the old lines).

    Returns (status, output, seconds until the first metric line, total seconds)."""
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started, first_line_s = time.monotonic(), None
    try:
        while process.poll() is None:
            elapsed = time.monotonic() - started
            if elapsed > RUN_DEADLINE_S:
                raise TimeoutError(f"a run took more than {RUN_DEADLINE_S} s: {' '.join(command)}")
            if first_line_s is None and _logged_steps(out) > 0:
                first_line_s = elapsed
            late = kill_at_s is not None and elapsed >= kill_at_s
            if late or (kill_at_lines is not None and _logged_steps(out) >= kill_at_lines):
                process.send_signal(signal.SIGKILL)
            time.sleep(0.002)
        output = process.stdout.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()
    return process.returncode, output, first_line_s, time.monotonic() - started


def run_to_completion(
    models: tuple[Path, Path],
    out: Path,
    max_steps: int,
    save_steps: int,
    kill_window_s: tuple[float, float],
    rng: random.Random,
    log=print,
    first_kill_at_lines: int | None = None,
) -> dict:
    """Start, SIGKILL at a random moment of ``kill_window_s`` after the start, resume, ... until a run exits 0.

    ``first_kill_at_lines`` makes the first kill deterministic: once that many steps are logged."""
    problems, resumed_from, kill_times = [], [], []
    for attempt in range(MAX_ATTEMPTS):
        command = train_command(models, out, max_steps, save_steps)
        checkpoints = list_checkpoints(out)
        if checkpoints:
            command += ["--resume_from_checkpoint", "latest"]
            resumed_from.append(checkpoints[-1].name)
        elif out.exists():
            command += ["--overwrite_output_dir", "true"]
        kill_at = rng.uniform(*kill_window_s) if attempt < MAX_ATTEMPTS - 1 else None
        at_lines = first_kill_at_lines if attempt == 0 else None
        if at_lines is not None:
            kill_at = None
        status, output, _, _ = _run(command, kill_at, out, at_lines)
        if status == 0:
            log(f"  attempt {attempt}: finished")
            return {"kills": len(kill_times), "kill_times": kill_times, "problems": problems, "resumed": resumed_from}
        if status != -signal.SIGKILL:
            raise RuntimeError(f"run failed with status {status}:\n{output[-3000:]}")
        moment = f"{kill_at:.2f} s" if kill_at is not None else f"{at_lines} logged steps"
        kill_times.append(moment)
        log(f"  attempt {attempt}: SIGKILL at {moment}, {_logged_steps(out)} metric lines on disk")
        problems += check_checkpoints_complete(out)
    raise RuntimeError(f"no run finished in {MAX_ATTEMPTS} attempts")


def compare_final(reference: Path, out: Path) -> list[str]:
    problems = []
    rows, expected = metric_rows(out), metric_rows(reference)
    steps = [row["step"] for row in rows]
    if len(steps) != len(set(steps)):
        problems.append(f"duplicate metric lines: steps {steps}")
    if rows != expected:
        problems.append(f"metrics differ from the uninterrupted run (steps {steps})")
    final = torch.load(out / "gpt_final.pt", weights_only=True)["model"]
    wanted = torch.load(reference / "gpt_final.pt", weights_only=True)["model"]
    differing = [k for k in wanted if not torch.equal(final[k], wanted[k])]
    if differing or set(final) != set(wanted):
        problems.append(f"gpt_final.pt differs from the uninterrupted run in {differing[:5]}")
    return problems


def run_fault_trials(
    workdir: Path,
    trials: int,
    max_steps: int,
    save_steps: int,
    seed: int,
    log=print,
    first_kill_at_lines: int | None = None,
) -> dict:
    """The whole fault test; returns {"trials": [...], "kills": n, "problems": [...]} (no problems = passed)."""
    rng = random.Random(seed)
    models = make_models(workdir / "models")
    reference = workdir / "reference"
    command = train_command(models, reference, max_steps, save_steps)
    status, output, first_line_s, total_s = _run(command, None, reference)
    if status != 0 or first_line_s is None:
        raise RuntimeError(f"the uninterrupted run failed with status {status}:\n{output[-3000:]}")
    # Kills land anywhere from just before the first step to the end: sampling, updates, checkpoint writes.
    kill_window_s = (0.8 * first_line_s, total_s)
    log(f"uninterrupted run: first step after {first_line_s:.2f} s, done after {total_s:.2f} s")
    report = {"trials": [], "kills": 0, "problems": []}
    for trial in range(trials):
        log(f"trial {trial}")
        out = workdir / f"trial_{trial}"
        outcome = run_to_completion(models, out, max_steps, save_steps, kill_window_s, rng, log, first_kill_at_lines)
        outcome["problems"] += compare_final(reference, out)
        report["trials"].append(outcome)
        report["kills"] += outcome["kills"]
        report["problems"] += [f"trial {trial}: {p}" for p in outcome["problems"]]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--max_steps", type=int, default=12)
    parser.add_argument("--save_steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        report = run_fault_trials(workdir, args.trials, args.max_steps, args.save_steps, args.seed)
    print(f"{len(report['trials'])} trials, {report['kills']} SIGKILLs, {len(report['problems'])} problems")
    for problem in report["problems"]:
        print(f"  {problem}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
