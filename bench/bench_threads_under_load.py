"""How the demo's GRPO work slows down when another process keeps one core busy, by intra-op thread count.

    python bench/bench_threads_under_load.py [--repeats 5]

Workload: one forward + backward of the demo's GPT-Small on 48 caption-conditioned sequences (what a demo GRPO
step does most). Each setting (1 or 2 threads; the machine idle, or one busy competitor process per spare core)
is timed ``--repeats`` times, interleaved, and the median reported with its ratio to 2 threads on an idle
machine. Printed as JSON. The demo picks its thread count from the idle cores at start (``demo.threads.idle_cores``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.pretrain import DemoModels, build_demo_gpt  # noqa: E402


def _spin(stop: multiprocessing.Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


def _one_step(model, tokens, cond, mask) -> None:
    logits = model(tokens, cond, mask)
    F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=48)
    args = parser.parse_args()
    models = DemoModels()
    model = build_demo_gpt(models, "t2i", seed=0).train()
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, models.vq["codebook_size"], (args.batch, models.grid**2), generator=generator)
    cond = torch.randn(args.batch, models.caption_tokens, models.caption_dim, generator=generator)
    mask = torch.ones(args.batch, models.caption_tokens, dtype=torch.bool)
    cores = len(os.sched_getaffinity(0))
    settings = [(threads, busy) for busy in (False, True) for threads in (1, cores)]
    times: dict[str, list[float]] = {f"{t} threads, {'busy' if b else 'idle'}": [] for t, b in settings}
    _one_step(model, tokens, cond, mask)  # warm-up
    for _ in range(args.repeats):
        for threads, busy in settings:
            stop = multiprocessing.Event()
            competitors = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(cores - 1 if busy else 0)]
            for p in competitors:
                p.start()
            time.sleep(0.2 if busy else 0.0)
            torch.set_num_threads(threads)
            start = time.perf_counter()
            _one_step(model, tokens, cond, mask)
            times[f"{threads} threads, {'busy' if busy else 'idle'}"].append(time.perf_counter() - start)
            stop.set()
            for p in competitors:
                p.join()
    baseline = statistics.median(times[f"{cores} threads, idle"])
    result = {
        "cores": cores,
        "workload": f"GPT-Small forward+backward, {args.batch} sequences of {models.grid**2} tokens",
        "median_seconds": {k: statistics.median(v) for k, v in times.items()},
        "ratio_to_all_threads_idle": {k: statistics.median(v) / baseline for k, v in times.items()},
        "load_average_before": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
