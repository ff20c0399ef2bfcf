"""After a kill and a resume, metrics.jsonl holds every step once, with the values of an uninterrupted run."""

import json
import shutil

from tests.grpo_fixtures import make_trainer

VOLATILE = ("time/", "throughput/", "memory/")


def _rows(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(VOLATILE)} for row in rows]


def test_resume_drops_the_lines_logged_after_the_checkpoint(tmp_path):
    straight = tmp_path / "straight"
    make_trainer(straight, max_steps=4, save_steps=2).train()
    killed = tmp_path / "killed"
    shutil.copytree(straight, killed)
    # As if killed after logging step 4 but before checkpoint-4 was renamed into place, mid-way through a line.
    shutil.rmtree(killed / "checkpoint-4")
    (killed / "gpt_final.pt").unlink()
    with (killed / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 5, "loss": 0.1')
    make_trainer(killed, max_steps=4, save_steps=2, resume_from_checkpoint="latest").train()
    rows = _rows(killed)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows == _rows(straight)
