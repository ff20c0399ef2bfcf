"""CI version of scripts/fault_sigkill.py: SIGKILL a tiny CLI run, resume it, compare with an uninterrupted run."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fault_sigkill.py"


def _driver():
    spec = importlib.util.spec_from_file_location("fault_sigkill", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sigkill_and_resume_match_the_uninterrupted_run(tmp_path):
    driver = _driver()
    # First kill once step 3 is logged (after checkpoint-2, before or while checkpoint-4 is written): the
    # resumed run must drop step 3's line and redo it. Later kills land at random moments.
    report = driver.run_fault_trials(tmp_path, trials=1, max_steps=6, save_steps=2, seed=0, first_kill_at_lines=3)
    assert report["problems"] == []
    trial = report["trials"][0]
    assert trial["kills"] >= 1 and trial["resumed"], trial
    assert driver.metric_rows(tmp_path / "trial_0") == driver.metric_rows(tmp_path / "reference")
