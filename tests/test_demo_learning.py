"""The RL loop's end-to-end regression test: the demo, run cold, must improve its held-out samples clearly.

Everything is real: the shapes data, VQ and GPT pretraining, ``train_t2i.py`` with the exact evaluator as
reward, and the evaluation of the same 256 held-out prompts and seeds before and after GRPO. It is the demo
at its default settings (about 4.5 minutes on 2 cores, most of it pretraining): a shortened run (less
pretraining, 40 GRPO steps) left a model too weak to improve measurably.

Why a pass is not luck: before and after use the same prompts and the same per-sample seeds, so the paired
per-sample change carries no prompt-to-prompt spread, and the mean change of the dense reward (what GRPO
optimises) must exceed MIN_Z standard errors (one-sided p < 0.0014 for z = 3, normal approximation). A GRPO
that learned nothing would leave a change of zero mean; a wrong sign or broken advantages push it below zero.
Measured (GenEval's colour-blind candidate order, GRPO prompts in equal tag shares): z = 8.9 (seed 0, 2 threads).

The test follows one trajectory: seed 0 on 2 threads, as `bash run_demo.sh` runs on a 2-core machine,
whatever thread count the rest of the suite uses. Round-off changes GRPO's trajectory here: on 1 thread,
seeds 1-4 gave dense z = 6.6 to 7.2 and seed 0 only z = 1.8 (docs/demo.md). A failure on other
hardware is therefore a reason to look, not proof of a regression; a failure here is a regression.
"""

from __future__ import annotations

import pytest
import torch

from demo.run import DemoSettings, run

MIN_Z = 3.0
DEMO_THREADS = 2


@pytest.fixture
def demo_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(DEMO_THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_demo_improves_held_out_samples_clearly(tmp_path, demo_threads):
    summary = run(DemoSettings(), tmp_path)
    dense, strict = summary["paired_dense"], summary["paired_strict"]
    print(f"dense {dense}, strict {strict}, wall {summary['wall_time_seconds']:.0f} s")
    assert dense["z"] > MIN_Z, f"dense reward changed by {dense['gain']:+.3f} ± {dense['se']:.3f} only"
    assert strict["gain"] > 0, f"strict accuracy did not rise: {strict}"
