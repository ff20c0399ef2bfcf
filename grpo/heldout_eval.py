"""Held-out evaluation during training: the curve a researcher watches for reward hacking.

Every ``--eval_steps`` steps the policy samples a fixed prompt set, one image per prompt, each from a seed
that depends only on (seed, prompt position): the same images for the same weights, so the curve moves with
the model, not with sampling noise. The images are scored by the training reward, every part logged as
``eval/<part>_mean``.

The prompt set: ``--eval_prompts FILE`` (text-to-image: e.g. GenEval's or DrawBench's prompts from
dataset/download_prompts.py, truly held out), else a fixed seeded subset of the training prompts
(class-conditional: fixed class ids). That subset is also trained on; it shows the reward on fixed
prompts and seeds, not generalisation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from accelerate.utils import gather_object

from autoregressive.models.generate import generate
from autoregressive.models.seeding import folded_generator, folded_seed, row_generators
from grpo import sharding
from grpo.config import GRPOConfig
from grpo.logging import MetricsLogger
from grpo.prompt_sources import ClassPrompts, ListPrompts, PromptSource, TrainingPrompt
from grpo.scoring import checked_rewards
from grpo.watch import announce, check_report_to

if TYPE_CHECKING:
    from grpo_trainer import GRPOTrainer

EVAL_STREAM = 5
"""Key prefix of the held-out streams, ``(seed, EVAL_STREAM, ...)``; training uses other prefixes."""


def _subset(count: int, total: int, seed: int) -> list[int]:
    """``count`` distinct positions of ``total`` (all when ``count`` < 0 or >= total), fixed by ``seed``."""
    order = torch.randperm(total, generator=folded_generator(seed, EVAL_STREAM)).tolist()
    return order if count < 0 else order[:count]


def heldout_prompts(source: PromptSource, config: GRPOConfig) -> list[TrainingPrompt]:
    """The prompts every evaluation samples (see the module docstring); a bad file raises naming it."""
    count, seed = config.eval_num_prompts, config.seed
    if config.eval_prompts:
        if isinstance(source, ClassPrompts):
            raise ValueError("--eval_prompts: a prompt file is for text-to-image runs; class-conditional runs "
                             "evaluate fixed class ids (--eval_num_prompts of them)")  # fmt: skip
        from dataset.prompts import load_prompts

        records = load_prompts(config.eval_prompts)
        return [TrainingPrompt(records[i].text, dict(records[i].metadata)) for i in _subset(count, len(records), seed)]
    if isinstance(source, ListPrompts):
        return [source.prompts[i] for i in _subset(count, len(source.prompts), seed)]
    if isinstance(source, ClassPrompts):
        if source.labels is None:
            return [TrainingPrompt(c) for c in _subset(count, source.num_classes, seed)]
        rows = _subset(count, len(source.labels), seed)
        metadata = source.metadata or [{}] * len(source.labels)
        return [TrainingPrompt(int(source.labels[r]), dict(metadata[r])) for r in rows]
    raise ValueError(f"--eval_steps: no held-out prompts for a {type(source).__name__}; pass --eval_prompts FILE")


def check_watch_setup(config: GRPOConfig, source: PromptSource) -> None:
    """Before any model loads: the trackers asked for can run, and the held-out prompts can be read."""
    check_report_to(config.report_to)
    if config.eval_steps:
        HeldOutEvaluation(heldout_prompts(source, config), config.seed)


class HeldOutEvaluation:
    """Samples and scores the held-out prompts; the processes share them and the scores are gathered."""

    def __init__(self, prompts: list[TrainingPrompt], seed: int):
        if not prompts:
            raise ValueError("--eval_num_prompts: the held-out prompt set is empty")
        self.prompts = prompts
        self.seeds = [folded_seed(seed, EVAL_STREAM, i) for i in range(len(prompts))]

    def run_and_log(self, trainer: GRPOTrainer, logger: MetricsLogger | None) -> None:
        """Evaluate and log at the trainer's step; a reward failure under ``--on_bad_reward skip_group`` costs
        this evaluation only (announced), not the run."""
        try:
            metrics = self.run(trainer)
        except Exception as error:
            if trainer.config.on_bad_reward == "error":
                raise RuntimeError(f"held-out evaluation at step {trainer.step}: {error}") from error
            return announce(trainer.accelerator, f"held-out evaluation at step {trainer.step} skipped: {error}")
        if logger is not None:
            logger.log(trainer.step, metrics)

    @torch.no_grad()
    def run(self, trainer: GRPOTrainer) -> dict[str, float]:
        """``eval/total_mean`` and ``eval/<part>_mean`` of the current policy (the same on every process)."""
        acc, cfg = trainer.accelerator, trainer.config
        share = math.ceil(len(self.prompts) / acc.num_processes)
        mine = slice(acc.process_index * share, (acc.process_index + 1) * share)
        prompts, seeds = self.prompts[mine], self.seeds[mine]
        scores: dict[str, list[float]] = {}
        # Whole weights under --fsdp (the rollout's path): every process joins, with prompts or not.
        with trainer.rollout_weights() as sampler, sharding.gathered(sampler):
            if prompts:
                values = [p.value for p in prompts]
                cond, cond_mask = trainer.encode_condition(values)
                sampler.eval()
                compile_mode = "default" if cfg.compile else None
                generators = row_generators(seeds, trainer.device)
                sampled = generate(sampler, cond, cfg=trainer.sampling, cond_mask=cond_mask, generator=generators,
                                   compile_mode=compile_mode)  # fmt: skip
                trainer.policy.train()
                with acc.autocast():
                    tokens = sampled.tokens.split(cfg.decode_batch_size)
                    images = torch.cat([trainer.decode_images(t) for t in tokens]).float()
                metadata = [{**p.metadata, "sample_seed": s} for p, s in zip(prompts, seeds, strict=True)]
                total, parts = checked_rewards(trainer.reward_fn, images, values, metadata)
                scores = {"total": total.float().tolist(), **{k: v.float().tolist() for k, v in parts.items()}}
        gathered = [s for s in gather_object([scores]) if s]
        names = gathered[0].keys()
        return {f"eval/{name}_mean": _mean([x for s in gathered for x in s[name]]) for name in names}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
