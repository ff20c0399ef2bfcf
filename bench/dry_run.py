"""A real-size dry run of the paper's C2I configuration: random weights, one GRPO step, the time split and memory.

    python -m bench.dry_run [--gpt_model GPT-L] [--qwen_layers 4] [--qwen_vision_depth 8] [--json out.json]
    python -m bench.dry_run --small          # tiny widths of the same architectures (seconds; the test runs it)

Builds, with random weights written to a temporary folder in each loader's own format: the GPT (c2i, 384 px,
576 tokens), VQ-16, and the paper's eight C2I rewards through the reward registry (``--reward_funcs`` and local
paths, as ``train_c2i.py`` receives them): CLIP ViT-L/14 (transformers, offline CLIP BPE vocabulary), HPSv2's
OpenCLIP ViT-H-14, pyiqa's MANIQA, and Qwen2.5-VL with the 3B's widths but ``--qwen_layers`` decoder layers and
``--qwen_vision_depth`` vision blocks (the full 3B is about 15 GB in fp32). Then ``train_c2i.build_trainer`` and
one step of ``GRPOTrainer.train()`` with a tiny group (``--prompts`` x ``--group``, CFG 2, beta 0.1, fp32).

What is not the paper's: the Qwen depth; the Qwen tokenizer is word-level (its BPE vocabulary needs a download);
the random-weight judge is made to answer ``{"score": 1}`` by a logits processor (it never writes JSON otherwise;
its generate still runs the whole model). Prints one JSON object (``--json`` also writes it) and a summary on
stderr: times per phase (the trainer's ``time/*`` metrics) and per reward, parameters per model, RSS before the
models, after building and at the step's peak, and the peak next to ``bench/memory_plan.py``'s formula.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dry_run_models import (  # noqa: E402
    SMALL,
    WRITERS,
    ForcedAnswer,
    Sizes,
    count_params,
    offline_timm,
    qwen_answer_ids,
)
from bench.memory_measure import reset_peak_rss, rss_bytes  # noqa: E402
from bench.memory_plan import GB, TASKS, GPTShape, Layout, parts_gb, plan  # noqa: E402
from bench.report import emit_json  # noqa: E402

C2I_REWARDS = ["clip_distance", "clip_quantize", "hpsv2", "hpsv2_quantize", "maniqa", "qwenvl_3b", "qwenvl_fake",
               "qwenvl_weird"]  # scripts/recipes/c2i_paper.yaml
PHASES = ["sampling", "decoding", "rewards", "logprobs", "update"]


class TimedReward:
    """A reward function that adds its call time to ``seconds`` (the composer reads ``device`` from it)."""

    def __init__(self, function: Any, seconds: dict[str, float], name: str):
        self.function, self.seconds, self.name = function, seconds, name

    @property
    def device(self) -> torch.device | None:
        return getattr(self.function, "device", None)

    def __call__(self, images: torch.Tensor, prompts: Any, metadata: Any = None) -> torch.Tensor:
        started = time.perf_counter()
        try:
            return self.function(images, prompts, metadata)
        finally:
            self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - started


def write_models(directory: Path, sizes: Sizes) -> tuple[dict[str, Path], dict[str, int]]:
    """Every model's random-weight file or folder, one model in memory at a time."""
    paths, params = {}, {}
    for name, write in WRITERS.items():
        torch.manual_seed(0)
        paths[name], params[name] = write(directory, sizes)
    return paths, params


def trainer_arguments(paths: dict[str, Path], sizes: Sizes, out: Path, args: argparse.Namespace) -> tuple:
    """The four argument objects ``train_c2i.build_trainer`` takes, as the command line would give them."""
    from grpo.config import GRPOConfig
    from img_gen_grpo_rewards import RewardArguments
    from train_c2i import DataArguments, ModelArguments

    model = ModelArguments(
        gpt_model=sizes.gpt_model, gpt_type="c2i", gpt_ckpt=str(paths["gpt"]), vq_model="VQ-16",
        vq_ckpt=str(paths["vq"]), codebook_size=sizes.codebook_size, image_size=sizes.image_size,
        gpt_config=json.dumps(sizes.gpt_config) if sizes.gpt_config else None,
        vq_config=json.dumps(sizes.vq_config) if sizes.vq_config else None,
    )
    config = GRPOConfig(
        output_dir=str(out), max_steps=1, num_generations=args.group,
        per_device_train_batch_size=args.prompts * args.group, gen_cfg_cfg_scale=2.0, beta=0.1, seed=42,
        gradient_checkpointing=args.gradient_checkpointing, save_steps=0, save_only_model=True,
        image_log_steps=0, report_to="none",
    )
    rewards = RewardArguments(
        reward_funcs=C2I_REWARDS, reward_device="cpu", clip_model=str(paths["clip"]),
        hps_checkpoint=str(paths["hps"]), hps_arch=sizes.hps_arch, maniqa_checkpoint=str(paths["maniqa"]),
        maniqa_crops=sizes.maniqa_crops, qwenvl_mode="transformers", qwenvl_model=str(paths["qwen"]),
        qwenvl_max_new_tokens=args.qwen_max_new_tokens,
    )
    return model, DataArguments(), config, rewards


def instrument(trainer: Any) -> dict[str, float]:
    """Time each reward; make the random Qwen judge answer in the reward's format. Returns the time table."""
    from transformers import LogitsProcessorList

    seconds: dict[str, float] = {}
    composer = trainer.reward_fn
    for name, function in list(composer.functions.items()):
        judge = getattr(function, "judge", None)
        if judge is not None and hasattr(judge, "processor"):
            forced = ForcedAnswer(qwen_answer_ids(judge.processor.tokenizer))
            judge.generate_kwargs["logits_processor"] = LogitsProcessorList([forced])
        composer.functions[name] = TimedReward(function, seconds, name)
    return seconds


BACKENDS = {"HFClipScorer": "clip", "HPSScorer": "hps", "ManiqaReward": "maniqa", "LocalQwenJudge": "qwen"}


def reward_models(trainer: Any) -> dict[str, torch.nn.Module]:
    """The distinct reward networks the registry built (shared ones once), by backend (the writers' names)."""
    found: dict[str, torch.nn.Module] = {}
    for function in trainer.reward_fn.functions.values():
        inner = getattr(function, "function", function)
        scorer = getattr(inner, "scorer", None) or getattr(inner, "judge", None)
        module = getattr(scorer, "model", None) or getattr(inner, "metric", None)
        kind = type(scorer or inner).__name__
        if module is not None:
            found[BACKENDS.get(kind, kind)] = module
    return found


def memory_prediction(policy: torch.nn.Module, samples: int, sizes: Sizes, checkpointing: bool, other: int) -> dict:
    """bench/memory_plan.py's plan for this step (fp32, no bf16 copy) plus the other models' fp32 weights.

    The plan's peak holds AdamW's states (from the second step on); in a first step they are allocated after the
    update's activations are freed, so the first step's peak is the larger of (plan peak - AdamW) and persistent.
    """
    task = replace(TASKS["c2i"], image_size=sizes.image_size, per_device_batch=samples)
    result = plan(GPTShape.of(policy), task, Layout("dry_run", bf16=False, checkpointing=checkpointing))
    persistent = sum(result["persistent"].values())
    first_step = max(result["peak"] - result["persistent"]["adamw"], persistent)
    return {
        "gpt_parts_gb": parts_gb(result),
        "gpt_peak_phase": result["peak_phase"],
        "other_models_gb": other / GB,
        "steady_peak_gb": (result["peak"] + other) / GB,
        "first_step_peak_gb": (first_step + other) / GB,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import train_c2i

    sizes = SMALL if args.small else Sizes(
        gpt_model=args.gpt_model, qwen_layers=args.qwen_layers, qwen_vision_depth=args.qwen_vision_depth
    )
    torch.set_num_threads(args.threads)
    baseline = rss_bytes()
    with tempfile.TemporaryDirectory(prefix="dry_run_") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        paths, params = write_models(directory, sizes)
        written = time.perf_counter() - started
        model_args, data_args, config, reward_args = trainer_arguments(paths, sizes, directory / "run", args)
        rss_before_build = rss_bytes()
        reset_peak_rss()
        started = time.perf_counter()
        with offline_timm():
            trainer = train_c2i.build_trainer(model_args, data_args, config, reward_args)
        built = time.perf_counter() - started
        rss_built, peak_build = rss_bytes(), rss_bytes("VmHWM")
        reward_seconds = instrument(trainer)
        rewards = reward_models(trainer)
        reset_peak_rss()
        started = time.perf_counter()
        metrics = trainer.train()
        step_seconds = time.perf_counter() - started
        peak_step = rss_bytes("VmHWM")
        policy = trainer.accelerator.unwrap_model(trainer.model)
        vq_params = params["vq"]
        other_bytes = 4 * (vq_params + sum(count_params(m) for m in rewards.values()))
        predicted = memory_prediction(
            policy, config.per_device_train_batch_size, sizes, config.gradient_checkpointing, other_bytes
        )
    measured = (peak_step - baseline) / GB
    return {
        "mode": "small" if args.small else "real",
        "config": {
            "gpt_model": sizes.gpt_model, "gpt_config": sizes.gpt_config, "image_size": sizes.image_size,
            "image_tokens": (sizes.image_size // 16) ** 2, "vq_model": "VQ-16", "vq_config": sizes.vq_config,
            "reward_funcs": C2I_REWARDS, "hps_arch": sizes.hps_arch, "maniqa_crops": sizes.maniqa_crops,
            "clip": sizes.clip, "qwen_text": {**sizes.qwen_text, "num_hidden_layers": sizes.qwen_layers},
            "qwen_vision": {**sizes.qwen_vision, "depth": sizes.qwen_vision_depth},
            "qwen_max_new_tokens": args.qwen_max_new_tokens, "prompts": args.prompts, "group": args.group,
            "cfg_scale": config.gen_cfg_cfg_scale, "beta": config.beta, "dtype": "float32",
            "gradient_checkpointing": config.gradient_checkpointing, "threads": torch.get_num_threads(),
        },
        "params": {**params, "gpt_reference": count_params(trainer.ref_model) if trainer.ref_model else 0},
        "params_built": {"gpt": count_params(policy), **{k: count_params(m) for k, m in rewards.items()}},
        "time": {
            "write_models_s": written, "build_s": built, "train_call_s": step_seconds,
            **{f"{p}_s": metrics.get(f"time/{p}", float("nan")) for p in PHASES},
            "per_reward_s": reward_seconds,
        },
        "memory": {
            "rss_before_models_gb": baseline / GB, "rss_before_build_gb": rss_before_build / GB,
            "rss_after_build_gb": rss_built / GB, "peak_build_gb": peak_build / GB, "peak_step_gb": peak_step / GB,
            "measured_peak_above_baseline_gb": measured, "plan": predicted,
            "relative_error_first_step": predicted["first_step_peak_gb"] / measured - 1,
            # the same against the RSS just before building (the loaders' libraries imported): the plan counts
            # model memory only, so this is the fairer comparison
            "measured_peak_above_build_start_gb": (peak_step - rss_before_build) / GB,
            "relative_error_vs_build_start": predicted["first_step_peak_gb"] * GB / (peak_step - rss_before_build) - 1,
        },
        "rewards": {k: v for k, v in metrics.items() if k.startswith("reward/")},
        "loss": metrics.get("loss"),
    }


def summary(result: dict[str, Any]) -> str:
    t, m, c = result["time"], result["memory"], result["config"]
    phases = ", ".join(f"{p} {t[f'{p}_s']:.1f}s" for p in PHASES)
    per_reward = ", ".join(f"{k} {v:.1f}s" for k, v in t["per_reward_s"].items())
    return "\n".join([
        f"dry run ({result['mode']}): {c['gpt_model']} c2i {c['image_size']}px, {c['prompts']}x{c['group']} images, "
        f"CFG {c['cfg_scale']}, fp32, {c['threads']} thread(s)",
        f"step: {phases} (train() {t['train_call_s']:.1f}s; writing models {t['write_models_s']:.1f}s, "
        f"building {t['build_s']:.1f}s)",
        f"rewards: {per_reward}",
        "parameters: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in result["params"].items()),
        f"RSS: {m['rss_before_models_gb']:.2f} GB before models, {m['rss_after_build_gb']:.2f} GB built, "
        f"peak {m['peak_step_gb']:.2f} GB in the step; plan (first step) {m['plan']['first_step_peak_gb']:.2f} GB "
        f"vs measured {m['measured_peak_above_baseline_gb']:.2f} GB above baseline "
        f"({100 * m['relative_error_first_step']:+.1f}%), vs {m['measured_peak_above_build_start_gb']:.2f} GB above "
        f"the RSS before building ({100 * m['relative_error_vs_build_start']:+.1f}%)",
    ])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from autoregressive.models.gpt import GPT_models

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpt_model", default="GPT-L", choices=sorted(GPT_models))
    parser.add_argument("--small", action="store_true", help="tiny widths of the same architectures")
    parser.add_argument("--qwen_layers", type=int, default=4, help="Qwen2.5-VL decoder layers (the 3B has 36)")
    parser.add_argument("--qwen_vision_depth", type=int, default=8, help="Qwen2.5-VL vision blocks (the 3B has 32)")
    parser.add_argument("--qwen_max_new_tokens", type=int, default=8, help="the judge's generation budget")
    parser.add_argument("--prompts", type=int, default=1)
    parser.add_argument("--group", type=int, default=2)
    parser.add_argument("--gradient_checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's messages: stdout is the JSON alone
        result = run(args)
    emit_json(result, args.json)
    print(summary(result), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
