"""DrawBench reward metrics of a text-to-image GPT: CLIP score, HPSv2.1, ImageReward, PickScore, aesthetic.

    torchrun --nproc_per_node N -m sampling.drawbench_rewards --gpt_ckpt CKPT --vq_ckpt VQ \\
        --prompts benchmark/drawbench/drawbench.csv --outdir OUTDIR

Images go to OUTDIR in GenEval's folder layout (``{k:05d}/samples/{j:04d}.png``); each prompt's reward values go
to ``{k:05d}/scores.json``; the summary is printed as a table and written to OUTDIR/drawbench_rewards.json (and
.txt). Rewards come from the training registry (img_gen_grpo_rewards.py) and score the stored 8-bit PNGs, so a
resumed run scores exactly what it would have scored in one go. The server-backed rewards (``deqa``,
``unifiedreward``) join the default list when their server address is given (flag or environment variable);
``--reward_funcs`` replaces the list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from dataset.prompts import PromptRecord, load_drawbench
from img_gen_grpo_rewards import URL_ENVS, RewardArguments, RewardOptions, build_reward
from reward_utils.scaling import PICKSCORE_DIVISOR, SIMILARITY_SCALE, UNIFIED_REWARD_DIVISOR
from sampling.common import (
    ProcessLayout,
    check_run_record,
    run_in_processes,
    sampling_record,
)
from sampling.images import images_to_tensor, read_png
from sampling.prompt_folders import (
    T2I_DEFAULTS,
    PromptImagesArguments,
    lines_digest,
    make_prompt_images,
    prepare_prompt_folders,
    prompt_folder,
    sample_path,
)
from sampling.sampler import parse_sampling_flags, resolve_model_files, text_encoder_record

DEFAULT_REWARDS = ("clip_text", "hpsv2_text", "imagereward", "pickscore", "aesthetic")
SERVER_REWARDS = {"deqa": "deqa_url", "unifiedreward": "unifiedreward_url"}
SCORES_FILE = "scores.json"
# Options that change how a reward is reached, not its value: left out of the stored scores' fingerprint.
TRANSPORT_OPTIONS = {
    "reward_device",
    "reward_api_key",
    "reward_timeout",
    "reward_retries",
    "reward_backoff",
    "reward_max_concurrency",
    "reward_server_batch_size",
    "reward_max_response_bytes",
    "reward_max_depth",
    "reward_max_items",
}
RESULTS_NAME = "drawbench_rewards"

# Registry reward -> (metric name, factor turning the reward into the metric's usual scale).
METRICS: dict[str, tuple[str, float]] = {
    "clip_text": ("CLIP score", 1.0 / SIMILARITY_SCALE),  # the cosine similarity
    "hpsv2_text": ("HPS{version}", 1.0 / SIMILARITY_SCALE),  # the HPS cosine score
    "imagereward": ("ImageReward", 1.0),
    "pickscore": ("PickScore", PICKSCORE_DIVISOR),  # logit_scale * cosine
    "aesthetic": ("Aesthetic", 1.0),
    "deqa": ("DeQA-Score", 5.0),  # the reward server divides the 1-5 score by 5
    "unifiedreward": ("UnifiedReward", UNIFIED_REWARD_DIVISOR),  # the judge's 1-5 score
}


@dataclass(kw_only=True)
class DrawBenchArguments(PromptImagesArguments, RewardArguments):
    prompts: str = field(metadata={"help": "DrawBench prompts: the sheet CSV or upstream's JSON"})
    outdir: str = field(metadata={"help": "folder for images, per-prompt scores and the summary"})
    keep_repeats: bool = field(
        default=False,
        metadata={
            "help": "iterate every record of upstream's drawbench_test_1000.json (each prompt 5 times) as upstream did"
        },
    )

    # Unset unless given (flag or env): an address given adds its reward to the default list.
    deqa_url: str | None = field(
        default=None, metadata={"help": f"DeQA reward-server URL (env {URL_ENVS['deqa_url']}); adds deqa"}
    )
    unifiedreward_url: str | None = field(
        default=None,
        metadata={"help": f"UnifiedReward server base URL (env {URL_ENVS['unifiedreward_url']}); adds unifiedreward"},
    )

    def reward_options(self) -> RewardOptions:
        """The backend options alone (what the rewards load with, and what the stored scores depend on); an
        unset server address falls back to RewardOptions' default (its env variable)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(RewardOptions)}
        return RewardOptions(**{k: v for k, v in values.items() if not (k in SERVER_REWARDS.values() and v is None)})


def parse_args(argv: list[str] | None = None) -> DrawBenchArguments:
    return parse_sampling_flags(DrawBenchArguments, argv, __doc__, **T2I_DEFAULTS)


def reward_names(args: DrawBenchArguments) -> list[str]:
    """``--reward_funcs`` if given, else the DrawBench metrics plus each server reward whose address is set."""
    if args.reward_funcs:
        return list(args.reward_funcs)
    names = list(DEFAULT_REWARDS)
    for name, flag in SERVER_REWARDS.items():
        if getattr(args, flag, None) or os.environ.get(URL_ENVS[flag]):
            names.append(name)
    return names


def metric_of(name: str, options: RewardOptions) -> tuple[str, float]:
    label, factor = METRICS.get(name, (name, 1.0))
    return label.format(version=options.hps_version), factor


def prompt_line(record: PromptRecord) -> str:
    return json.dumps({"prompt": record.text, "category": record.metadata.get("category")}, ensure_ascii=False)


def options_digest(options: RewardOptions) -> str:
    """Identifies the reward models/settings, so stored scores are reused only for the same ones."""
    values = {k: v for k, v in dataclasses.asdict(options).items() if k not in TRANSPORT_OPTIONS}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def read_scores(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: unreadable scores file ({err}); delete it to score that prompt again") from err


def reusable_scores(stored: dict[str, Any], prompt: str, digest: str) -> dict[str, list[float]]:
    """Stored values made for this prompt with these reward settings (else none)."""
    if stored.get("prompt") != prompt or stored.get("options_sha256") != digest:
        return {}
    return dict(stored.get("scores", {}))


def has_scores(scores: dict[str, list[float]], names: Sequence[str], n_samples: int) -> bool:
    return all(len(scores.get(name, [])) == n_samples for name in names)


def score_prompts(
    args: DrawBenchArguments,
    layout: ProcessLayout,
    records: Sequence[PromptRecord],
    names: Sequence[str],
    options: RewardOptions,
) -> None:
    """Score each prompt's stored images with every reward it has no values for yet."""
    outdir = Path(args.outdir)
    digest = options_digest(options)

    def stored_scores(i: int) -> dict[str, list[float]]:
        return reusable_scores(read_scores(prompt_folder(outdir, i) / SCORES_FILE), records[i].text, digest)

    todo = [i for i in range(len(records)) if not has_scores(stored_scores(i), names, args.n_samples)]
    layout.barrier()
    if layout.is_main:
        print(f"{len(todo)} of {len(records)} prompts to score with {', '.join(names)}")
    mine = layout.share(todo)
    if mine:
        composer = build_reward(names, None, options, layout.device)
        progress = layout.is_main and args.progress
        for i in tqdm(mine, desc="scoring", disable=not progress):
            text = records[i].text
            arrays = [read_png(sample_path(outdir, i, j)) for j in range(args.n_samples)]
            _, values = composer(images_to_tensor(arrays).to(layout.device), [text] * args.n_samples)
            scores = stored_scores(i)
            scores.update({name: values[name].cpu().tolist() for name in names})
            record = {"prompt": text, "options_sha256": digest, "scores": scores}
            path = prompt_folder(outdir, i) / SCORES_FILE
            tmp = path.with_name(f".{SCORES_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
    layout.barrier()


def summarize(
    args: DrawBenchArguments, records: Sequence[PromptRecord], names: Sequence[str], options: RewardOptions
) -> dict[str, Any]:
    outdir = Path(args.outdir)
    per_prompt, values = [], {name: [] for name in names}
    for i, record in enumerate(records):
        scores = read_scores(prompt_folder(outdir, i) / SCORES_FILE)["scores"]
        row = {"index": i, "prompt": record.text, "category": record.metadata.get("category")}
        for name in names:
            values[name].extend(scores[name])
            row[name] = float(np.mean(scores[name]))
        per_prompt.append(row)
    metrics = {}
    for name in names:
        label, factor = metric_of(name, options)
        rewards = np.asarray(values[name], dtype=np.float64)
        metrics[name] = {
            "metric": label,
            "score_mean": float(rewards.mean() * factor),
            "score_std": float(rewards.std() * abs(factor)),
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()),
            "images": int(rewards.size),
        }
    return {
        "prompts_file": str(args.prompts),
        "num_prompts": len(records),
        "n_samples": args.n_samples,
        "metrics": metrics,
        "per_prompt": per_prompt,
    }


def format_table(metrics: dict[str, dict[str, Any]]) -> str:
    """One row per reward: metric on its usual scale, then the registry's reward value (what training sees)."""
    header = ("metric", "reward", "score", "score_std", "reward_mean", "images")
    rows = [
        (m["metric"], name, *(f"{m[key]:.4f}" for key in ("score_mean", "score_std", "reward_mean")), str(m["images"]))
        for name, m in metrics.items()
    ]
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def run(args: DrawBenchArguments, layout: ProcessLayout) -> dict[str, Any] | None:
    records = load_drawbench(args.prompts, dedupe=not args.keep_repeats)
    gpt_ckpt = resolve_model_files(args)
    names = reward_names(args)
    options = args.reward_options()
    outdir = Path(args.outdir)
    lines = [prompt_line(record) for record in records]
    extra = {**text_encoder_record(args), "prompts_sha256": lines_digest(lines)}
    record = sampling_record(args, gpt_ckpt, extra)
    check_run_record(outdir, record)
    prepare_prompt_folders(outdir, lines, args.n_samples, layout)
    progress = layout.is_main and args.progress
    make_prompt_images(args, layout, [record.text for record in records], outdir, args.n_samples, progress, record)
    score_prompts(args, layout, records, names, options)
    if not layout.is_main:
        return None
    results = summarize(args, records, names, options)
    table = format_table(results["metrics"])
    (outdir / f"{RESULTS_NAME}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (outdir / f"{RESULTS_NAME}.txt").write_text(table + "\n")
    print(table)
    print(f"wrote {outdir / (RESULTS_NAME + '.json')}")
    return results


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    return run_in_processes(run, parse_args(argv))


if __name__ == "__main__":
    main()
