"""What a person watching a run sees besides metrics.jsonl: a start-up banner, accelerate's trackers
(TensorBoard, wandb) with the run's flags as hparams, peak memory, and one-line notices that do not tear
the progress bar."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from tqdm.auto import tqdm

from grpo.logging import MetricsLogger
from grpo.rollout import Rollout

if TYPE_CHECKING:
    from grpo.config import GRPOConfig
    from grpo_trainer import GRPOTrainer

REPORT_TO = ("tensorboard", "wandb", "all", "none")
DEFAULT_PROJECT = "ar-grpo"
"""The tracker project (wandb's project; TensorBoard's sub-folder) unless ``WANDB_PROJECT`` names one."""


# ------------------------------------------------------------------------------------------------ trackers
def wandb_installed() -> bool:
    return importlib.util.find_spec("wandb") is not None


def tracker_names(report_to: str) -> list[str]:
    """accelerate's tracker names for ``--report_to``; ``all`` is TensorBoard plus wandb when it is installed."""
    if report_to not in REPORT_TO:
        raise ValueError(f"--report_to {report_to}: expected one of {', '.join(REPORT_TO)}")
    if report_to == "all":
        return ["tensorboard", *(["wandb"] if wandb_installed() else [])]
    return [] if report_to == "none" else [report_to]


def check_report_to(report_to: str) -> None:
    """Raises before any model loads when a requested tracker cannot run."""
    if "wandb" in tracker_names(report_to) and not wandb_installed():
        raise ValueError(
            f"--report_to {report_to}: the wandb package is not installed (pip install wandb, then wandb login); "
            "or use --report_to tensorboard"
        )


def tracking_options(config: GRPOConfig) -> dict[str, Any]:
    """``Accelerator`` keyword arguments for ``config.report_to``: trackers, and TensorBoard's folder."""
    check_report_to(config.report_to)
    names = tracker_names(config.report_to)
    if not names:
        return {}
    root = Path(config.output_dir)
    return {"log_with": names, "project_config": ProjectConfiguration(str(root), logging_dir=str(root / "tensorboard"))}


def run_name(config: GRPOConfig) -> str:
    return config.run_name or Path(config.output_dir).resolve().name


def hparams(run_config: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """The run's flags as tracker hparams: nested mappings flattened to ``a/b``, lists and ``None`` as text.

    ``run_config`` is the redacted record a checkpoint keeps (``scripts.flags.saved_run_config``): secrets
    appear only as set or not.
    """
    flat: dict[str, str | int | float | bool] = {}
    for key, value in run_config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(hparams(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif isinstance(value, (list, tuple)):
            flat[name] = " ".join(str(v) for v in value)
        else:
            flat[name] = str(value)
    return flat


def start_trackers(accelerator: Accelerator, config: GRPOConfig, run_config: dict, resumed_step: int | None) -> None:
    """``init_trackers`` with the run config as hparams; a resumed run's TensorBoard drops events after its step."""
    wanted = tracker_names(config.report_to)
    made = {str(getattr(t, "value", t)) for t in accelerator.log_with}
    if set(wanted) - made:
        raise ValueError(
            f"--report_to {config.report_to}: the Accelerator was made without these trackers "
            f"({', '.join(sorted(set(wanted) - made))}); make it with "
            "grpo.launch.make_accelerator(**tracking_options(config))"
        )
    if not wanted:
        return
    init_kwargs: dict[str, dict] = {"wandb": {"name": run_name(config)}}
    if resumed_step is not None:
        init_kwargs["tensorboard"] = {"purge_step": resumed_step + 1}
    project = os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT)
    accelerator.init_trackers(project, config=hparams(run_config or config.to_dict()), init_kwargs=init_kwargs)


# ------------------------------------------------------------------------------------------------- notices
def announce(accelerator: Accelerator, text: str) -> None:
    """A line on the main process's stdout, above the progress bar rather than through it."""
    if accelerator.is_main_process:
        tqdm.write(text, file=sys.stdout)


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 10_000 else str(n)


def banner(trainer: GRPOTrainer) -> str:
    """What this run is, in a dozen lines: what a reader of the log needs before the first step."""
    cfg, acc, run = trainer.config, trainer.accelerator, trainer.run_config
    policy = trainer.policy
    model = policy.config
    params = list(policy.parameters())
    total, trainable = sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
    size = run.get("gpt_model") or "custom size"
    size += " with --gpt_config changes" if run.get("gpt_config") else ""
    task = "class-to-image" if model.model_type == "c2i" else "text-to-image"
    source = run.get("dataset_name") or run.get("image_root") or type(trainer.prompts).__name__
    if model.model_type == "c2i":
        task += f", {model.num_classes} classes"
    processes, g = acc.num_processes, cfg.num_generations
    step_images = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * processes
    funcs, weights = run.get("reward_funcs"), run.get("reward_weights")
    if funcs:
        weights = weights or [1.0] * len(funcs)
        rewards = " + ".join(f"{w} x {f}" for f, w in zip(funcs, weights, strict=False))
    else:
        rewards = getattr(trainer.reward_fn, "__name__", type(trainer.reward_fn).__name__)
    precision = "bf16 sampling/decoding, fp32 weights with bf16 autocast update" if cfg.bf16 else "fp32"
    trackers = ", ".join(tracker_names(cfg.report_to)) or "none"
    lines = [
        f"model      {size} ({model.n_layer} layers, dim {model.dim}, {model.n_head} heads): "
        f"{_millions(total)} parameters, {_millions(trainable)} trainable",
        f"task       {task}; prompts from {source}",
        f"devices    {processes} process(es) on {acc.device.type}"
        + (f" ({acc.distributed_type.value})" if processes > 1 else ""),
        f"batch      {step_images // g} prompts x {g} images = {step_images} images per optimizer step "
        f"({processes} process(es) x {cfg.per_device_train_batch_size} per micro-batch x "
        f"{cfg.gradient_accumulation_steps} accumulation); {cfg.optimizer_steps_per_rollout} step(s) per rollout",
        f"steps      {cfg.max_steps} (from step {trainer.step}); checkpoint every {cfg.save_steps or 'never'}, "
        f"held-out evaluation every {cfg.eval_steps or 'never'}",
        f"rewards    {rewards}",
        f"output     {Path(cfg.output_dir).resolve()} (run {run_name(cfg)}; trackers: {trackers})",
        f"log-probs  {cfg.logp_guidance} (guidance scale {cfg.gen_cfg_cfg_scale}), beta {cfg.beta}",
        f"precision  {precision}",
    ]
    return "\n".join(["AR-GRPO training run", *("  " + line for line in lines)])


# -------------------------------------------------------------------------------------------------- memory
def _peak_rss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def memory_metrics(accelerator: Accelerator) -> dict[str, float]:
    """Peak memory so far, the largest over processes: CUDA's max allocated / reserved on a GPU, else the
    process's peak resident set (``memory/peak_rss_gb``: every allocation of the process, not only tensors)."""
    device = accelerator.device
    if device.type == "cuda":
        values = {
            "memory/max_allocated_gb": torch.cuda.max_memory_allocated(device) / 2**30,
            "memory/max_reserved_gb": torch.cuda.max_memory_reserved(device) / 2**30,
        }
    else:
        rss = _peak_rss_bytes()
        values = {} if rss is None else {"memory/peak_rss_gb": rss / 2**30}
    if accelerator.num_processes > 1 and values:
        keys = sorted(values)
        peak = accelerator.reduce(torch.tensor([values[k] for k in keys], device=device), reduction="max")
        values = dict(zip(keys, peak.tolist(), strict=True))
    return values


def progress_postfix(metrics: dict[str, float]) -> dict[str, str]:
    """The progress bar's figures: reward, KL, images/s and the peak memory (when the step has them)."""
    shown = {"reward": "reward/total_mean", "kl": "kl", "img/s": "throughput/images_per_s"}
    out = {label: f"{metrics[key]:.4g}" for label, key in shown.items() if key in metrics}
    memory = [metrics[k] for k in ("memory/max_allocated_gb", "memory/peak_rss_gb") if k in metrics]
    if memory:
        out["mem"] = f"{memory[0]:.2f}G"
    return out


# ---------------------------------------------------------------------------------------------- the view
class RunView:
    """What a run shows while it trains: the banner and trackers at the start, then per step metrics.jsonl,
    the trackers and the progress bar (main process), and the sample grids."""

    def __init__(self, trainer: GRPOTrainer, resumed_step: int | None):
        cfg, acc = trainer.config, trainer.accelerator
        self.config, self.accelerator = cfg, acc
        announce(acc, banner(trainer))
        start_trackers(acc, cfg, trainer.run_config, resumed_step)
        main = acc.is_main_process
        self.logger = MetricsLogger(cfg.output_dir, acc, resumed_step=resumed_step) if main else None
        self.bar = tqdm(total=cfg.max_steps, initial=trainer.step, desc="GRPO", disable=not main, dynamic_ncols=True)

    def step(self, step: int, metrics: dict[str, float], images_per_s: float | None = None) -> None:
        """Adds the peak memory (every process takes part) and ``images_per_s`` (wall time of the rollout and its
        update, all processes' images) to ``metrics``, then logs them."""
        metrics.update(memory_metrics(self.accelerator))
        if images_per_s is not None:
            metrics["throughput/images_per_s"] = images_per_s
        if self.logger is not None and step % self.config.logging_steps == 0:
            self.logger.log(step, metrics)
        self.bar.update(1)
        self.bar.set_postfix(progress_postfix(metrics))

    def samples(self, step: int, rollout: Rollout) -> None:
        """Every ``image_log_steps``: the rollout's first group, captioned, to samples/ and the trackers."""
        every = self.config.image_log_steps
        if self.logger is not None and every and step % every == 0:
            self.logger.log_group(step, rollout)

    def close(self) -> None:
        """Ends the trackers, but not the process group (``end_training`` would): the processes may go on."""
        self.bar.close()
        if self.logger is not None:
            self.logger.close()
        for tracker in self.accelerator.trackers:
            tracker.finish()
        self.accelerator.trackers = []  # a later train() with this accelerator starts its own
