"""How many intra-op threads the demo takes: as many as there are idle cores when it starts.

Two threads on two cores that another process also uses wait on each other at every barrier, and the run slows
down many times over; as many threads as idle cores loses only the share that is taken (docs/demo.md,
bench/bench_threads_under_load.py).
"""

from __future__ import annotations

import os
import time


def idle_cores(window: float = 0.5) -> int:
    """Cores not busy with other work right now (at least 1), measured over ``window`` seconds.

    Linux's /proc/stat gives the busy share now; elsewhere the one-minute load average stands in (it lags: right
    after other work ends it still counts it).
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
