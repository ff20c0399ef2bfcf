"""GRPO for autoregressive image generators, distributed with accelerate.

One rollout: sample G images per prompt (KV-cached, CFG), decode them, score them, turn rewards into
group-relative advantages. Then one or more clipped policy-gradient passes over the rollout, with a k3 KL
penalty to a frozen reference. Only the GPT trains; the VQ decoder, text encoder and rewards are frozen
and reach the trainer as plain callables, so any reward can be plugged in without touching this file.
"""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from autoregressive.checkpoint import CheckpointError, save_checkpoint_atomic
from autoregressive.models.generate import SamplingConfig, generate, sequence_logprobs
from autoregressive.models.gpt import GPT
from autoregressive.models.precision import inference_copy, refresh_from
from autoregressive.models.seeding import folded_seed, row_generators
from grpo.advantages import group_advantages, in_group_diversity
from grpo.checkpointing import STATE_FILE, load_checkpoint, resolve_checkpoint, save_checkpoint
from grpo.config import GRPOConfig
from grpo.logging import MetricsLogger
from grpo.loss import grpo_loss
from grpo.prompt_sources import PromptSource, TrainingPrompt
from grpo.run_folder import check_output_dir, clear_output_dir
from grpo.skip_guard import SkippedGroupsGuard
from reward_utils.base import check_scores
from reward_utils.remote import RewardInterrupted, clear_stop, request_stop

SAMPLE_STREAM = 3
"""Key prefix of the per-sample streams, ``(seed, SAMPLE_STREAM, rollout, prompt, sample)``."""
INTERRUPTED_EXIT_CODE = 143
"""Exit status of a run stopped by SIGTERM (128 + 15, as shells and launchers report it): checkpoint saved,
no final model written; continue it with ``--resume_from_checkpoint latest``."""


class TrainingInterrupted(SystemExit):
    """Raised by ``train()`` after SIGTERM, once a resumable checkpoint is saved. A ``SystemExit``, so an
    uncaught one ends the process with ``INTERRUPTED_EXIT_CODE`` and no traceback."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(INTERRUPTED_EXIT_CODE)
        self.step, self.checkpoint = step, checkpoint

    def __str__(self) -> str:
        return f"training interrupted by SIGTERM at step {self.step}; resumable checkpoint: {self.checkpoint}"


RewardFn = Callable[[torch.Tensor, list, list], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""(images (B,3,H,W) in [0,1], prompt values, metadata dicts) -> (weighted total (B,), per-function (B,))."""
ConditionEncoder = Callable[[list], tuple[torch.Tensor, torch.Tensor | None]]
"""Prompt values -> model condition (class ids or caption features) and an optional caption mask."""
ImageDecoder = Callable[[torch.Tensor], torch.Tensor]
"""Image tokens (B, N) -> images (B, 3, H, W) in [0, 1]."""


@dataclass
class Rollout:
    prompts: list[TrainingPrompt]  # one per group
    cond: torch.Tensor  # one row per sample
    cond_mask: torch.Tensor | None
    tokens: torch.Tensor
    advantages: torch.Tensor
    token_mask: torch.Tensor  # 0 for samples left out of the loss (skipped or tied groups)
    old_logp: torch.Tensor | None
    ref_logp: torch.Tensor | None
    images: torch.Tensor
    metrics: dict[str, float]


def _timer(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class GRPOTrainer:
    def __init__(
        self,
        config: GRPOConfig,
        policy: GPT,
        decode_images: ImageDecoder,
        reward_fn: RewardFn,
        prompts: PromptSource,
        encode_condition: ConditionEncoder,
        accelerator: Accelerator | None = None,
        run_config: dict[str, Any] | None = None,
    ):
        self.config = config
        self.accelerator = accelerator or Accelerator(mixed_precision="bf16" if config.bf16 else "no")
        self._claim_output_dir()
        self.decode_images, self.reward_fn = decode_images, reward_fn
        self.prompts, self.encode_condition = prompts, encode_condition
        self.run_config = run_config or {}
        self.device = self.accelerator.device
        self.sampling = SamplingConfig(
            config.gen_cfg_cfg_scale, config.cfg_interval, config.temperature, config.top_k, config.top_p
        )
        # The policy's distribution: temperature and guidance as sampled; top-k/top-p truncation belongs to the
        # behaviour sampler, so log-probs stay finite when the updated policy reorders the tail.
        self.policy_dist = SamplingConfig(config.gen_cfg_cfg_scale, config.cfg_interval, config.temperature)

        policy.train()
        # --bf16: sampling, the frozen log-prob passes and VQ decoding run on bf16 weights (fp32 logits); only
        # the update keeps fp32 weights, under autocast. The sampling copy is refreshed from the policy per rollout.
        self.inference_dtype = torch.bfloat16 if config.bf16 else None
        self.ref_model: GPT | None = None
        if config.beta > 0:
            self.ref_model = copy.deepcopy(policy).eval().requires_grad_(False).to(self.device)
            if self.inference_dtype is not None:
                self.ref_model = inference_copy(self.ref_model, self.inference_dtype)
        self._sampling_copy: GPT | None = None
        if self.inference_dtype is not None:
            self._sampling_copy = inference_copy(policy, self.inference_dtype).to(self.device)
        optimizer = torch.optim.AdamW(
            policy.parameters(),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_epsilon,
        )
        self.model, self.optimizer = self.accelerator.prepare(policy, optimizer)
        from transformers import get_scheduler  # heavy import; only the trainer needs it

        # transformers' "constant" schedule silently ignores warm-up steps; ours honours them.
        schedule = config.lr_scheduler_type
        if schedule == "constant" and config.warmup_steps > 0:
            schedule = "constant_with_warmup"
        self.scheduler = get_scheduler(schedule, self.optimizer, config.warmup_steps, config.max_steps)
        self.step, self.rollout_index = 0, 0
        self.logger: MetricsLogger | None = None  # opened by train(), once the resumed step is known
        self._stop_signal = False
        self.skip_guard = SkippedGroupsGuard(config.skip_group_max_fraction, config.skip_group_window)
        self._last_reward_error = ""

    def _claim_output_dir(self) -> None:
        """Every process checks before the main one clears, so a refusal is raised everywhere."""
        cfg = self.config
        resuming = bool(cfg.resume_from_checkpoint)
        check_output_dir(cfg.output_dir, overwrite=cfg.overwrite_output_dir, resuming=resuming)
        self.accelerator.wait_for_everyone()
        clears = cfg.overwrite_output_dir and not resuming and Path(cfg.output_dir).is_dir()
        if clears and self.accelerator.is_main_process:
            clear_output_dir(cfg.output_dir)
        self.accelerator.wait_for_everyone()

    # -------------------------------------------------------------------------------------- helpers
    @property
    def policy(self) -> GPT:
        return self.accelerator.unwrap_model(self.model)

    @property
    def sampler_is_policy(self) -> bool:
        """True when the sampler draws from exactly the policy distribution, on the same precision path.

        Then the log-probs the sampler returns are the old policy's (tested against a teacher-forced pass) and
        a second forward over the rollout is wasted. Truncation (top-k/top-p), conditional-branch log-probs
        under CFG, bf16 (cached and teacher-forced passes round differently) or dropout in the training-mode
        forward each make them differ.
        """
        cfg, args = self.config, self.policy.config
        guidance_matches = cfg.logp_guidance == "cfg" or not self.sampling.uses_cfg
        dropouts = (args.token_dropout_p, args.attn_dropout_p, args.resid_dropout_p, args.ffn_dropout_p)
        return cfg.top_k == 0 and cfg.top_p >= 1.0 and guidance_matches and not cfg.bf16 and not any(dropouts)

    def _sampling_model(self) -> GPT:
        """The current policy weights in the inference precision (the policy itself in fp32)."""
        if self._sampling_copy is None:
            return self.policy
        return refresh_from(self._sampling_copy, self.policy)

    def _sample_seeds(self, first_prompt: int, num_prompts: int) -> list[int]:
        """One seed per sample, from (seed, rollout, prompt, sample) only: sampling and rewards draw from it."""
        return [
            folded_seed(self.config.seed, SAMPLE_STREAM, self.rollout_index, p, s)
            for p in range(first_prompt, first_prompt + num_prompts)
            for s in range(self.config.num_generations)
        ]

    def _generators(self, first_prompt: int, num_prompts: int) -> list[torch.Generator]:
        return row_generators(self._sample_seeds(first_prompt, num_prompts), self.device)

    def _chunks(self, n: int) -> list[slice]:
        size = self.config.per_device_train_batch_size
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]

    def _logprobs(self, model, cond, cond_mask, tokens, *, with_entropy: bool = False):
        guidance = self.config.logp_guidance
        return sequence_logprobs(model, cond, tokens, self.policy_dist, cond_mask, guidance, with_entropy=with_entropy)

    def _frozen_chunks(self, rows: int, num_tokens: int) -> list[slice]:
        """The whole rollout in one no-grad pass unless its logits (fp32; CFG branches, guided logits and
        log-softmax alive at once) would exceed ``logprob_memory_gb``."""
        branches = 2 if self.config.logp_guidance == "cfg" and self.policy_dist.uses_cfg else 1
        per_row = (branches + 2) * num_tokens * self.policy.config.vocab_size * 4
        size = max(1, min(rows, int(self.config.logprob_memory_gb * 2**30 // per_row)))
        return [slice(i, min(i + size, rows)) for i in range(0, rows, size)]

    @torch.no_grad()
    def _frozen_logprobs(self, model, rollout: Rollout) -> torch.Tensor:
        out = []
        for sl in self._frozen_chunks(*rollout.tokens.shape):
            mask = None if rollout.cond_mask is None else rollout.cond_mask[sl]
            with self.accelerator.autocast():
                out.append(self._logprobs(model, rollout.cond[sl], mask, rollout.tokens[sl]))
        return torch.cat(out)

    @staticmethod
    def _checked(total: torch.Tensor, parts: dict[str, torch.Tensor], values: list) -> torch.Tensor:
        """A non-finite reward is reported under the name of the function that produced it."""
        for name, part in parts.items():
            check_scores(name, part, values)
        return check_scores(f"weighted sum of {' + '.join(parts) or 'rewards'}", total, values)

    def _score(self, images: torch.Tensor, prompts: list[TrainingPrompt], seeds: list[int]):
        """Rewards for the rollout; in skip mode a failing group is scored alone and left out.

        Each sample's metadata gets its ``sample_seed``, so a reward with randomness draws it from the sample's
        identity and a resumed run scores exactly as an uninterrupted one.
        """
        cfg = self.config
        expanded = [p for p in prompts for _ in range(cfg.num_generations)]
        values = [p.value for p in expanded]
        meta = [{**p.metadata, "sample_seed": seed} for p, seed in zip(expanded, seeds, strict=True)]
        try:
            total, parts = self.reward_fn(images, values, meta)
            self._checked(total, parts, values)
            return (
                total.to(self.device).float(),
                parts,
                torch.ones(len(prompts), dtype=torch.bool, device=self.device),
            )
        except Exception as error:
            if cfg.on_bad_reward == "error":
                raise RuntimeError(
                    f"reward failed at step {self.step} (rollout {self.rollout_index}): {error}"
                ) from error
        g = cfg.num_generations
        totals, parts_per_group, ok = [], [], []
        for i, prompt in enumerate(prompts):
            sl = slice(i * g, (i + 1) * g)
            try:
                total, parts = self.reward_fn(images[sl], values[sl], meta[sl])
                totals.append(self._checked(total, parts, values[sl]).to(self.device))
                parts_per_group.append(parts)
                ok.append(True)
            except Exception as error:  # counted and reported, never a silent zero: the group gets no loss
                print(f"[grpo] step {self.step}: skipping the group of prompt {prompt.value!r}: {error}")
                self._last_reward_error = f"{type(error).__name__}: {error}"
                totals.append(torch.zeros(g, device=self.device))
                parts_per_group.append(None)
                ok.append(False)
        names = next((list(p) for p in parts_per_group if p is not None), [])
        nan = torch.full((g,), float("nan"), device=self.device)
        parts = {
            k: torch.cat([nan if p is None else p[k].to(self.device).float() for p in parts_per_group])
            for k in names
        }
        return torch.cat(totals), parts, torch.tensor(ok, device=self.device)

    # -------------------------------------------------------------------------------------- rollout
    @torch.no_grad()
    def make_rollout(self) -> Rollout:
        cfg, acc = self.config, self.accelerator
        per_process = cfg.prompts_per_rollout
        global_prompts = self.prompts.batch(self.rollout_index, per_process * acc.num_processes)
        first = acc.process_index * per_process
        prompts = global_prompts[first : first + per_process]
        metrics: dict[str, float] = {}

        t0 = _timer(self.device)
        cond, cond_mask = self.encode_condition([p.value for p in prompts])
        cond = cond.repeat_interleave(cfg.num_generations, dim=0)
        cond_mask = None if cond_mask is None else cond_mask.repeat_interleave(cfg.num_generations, dim=0)
        policy = self._sampling_model()
        policy.eval()
        sampled = generate(
            policy,
            cond,
            cfg=self.sampling,
            cond_mask=cond_mask,
            generator=self._generators(first, per_process),
            compile_mode="default" if cfg.compile else None,
        )
        tokens = sampled.tokens
        self.policy.train()
        t1 = _timer(self.device)
        with acc.autocast():
            images = torch.cat([self.decode_images(tokens[sl]) for sl in self._chunks_of(tokens.shape[0])])
        images = images.float()
        t2 = _timer(self.device)
        rewards, parts, group_ok = self._score(images, prompts, self._sample_seeds(first, per_process))
        t3 = _timer(self.device)
        if cfg.on_bad_reward == "skip_group":
            self._check_skipped(acc.gather(group_ok))

        batch_std = acc.gather(rewards).std() if cfg.scale_rewards == "batch" else None
        advantages, tied = group_advantages(
            rewards, cfg.num_generations, cfg.scale_rewards, cfg.advantage_epsilon, batch_std
        )
        keep = group_ok & ~tied if cfg.drop_tied_groups else group_ok
        advantages = advantages * group_ok.repeat_interleave(cfg.num_generations)
        token_mask = (
            keep.repeat_interleave(cfg.num_generations).float()[:, None].expand_as(tokens).contiguous()
        )

        rollout = Rollout(
            prompts, cond, cond_mask, tokens, advantages, token_mask, None, None, images, metrics
        )
        if cfg.reuses_rollouts:
            rollout.old_logp = sampled.logprobs if self.sampler_is_policy else self._frozen_logprobs(policy, rollout)
        if self.ref_model is not None:
            rollout.ref_logp = self._frozen_logprobs(self.ref_model, rollout)
        t4 = _timer(self.device)

        # Statistics over all processes (gathered), so logged means and stds are those of the global batch.
        ok_rows = acc.gather(group_ok.repeat_interleave(cfg.num_generations))
        all_rewards, all_adv = acc.gather(rewards)[ok_rows], acc.gather(advantages)
        metrics.update(
            {
                "reward/total_mean": all_rewards.mean().item() if all_rewards.numel() else float("nan"),
                "reward/total_std": all_rewards.std().item() if all_rewards.numel() > 1 else 0.0,
                "advantage/std": all_adv.std().item(),
                "advantage/abs_max": all_adv.abs().max().item(),
                "groups/tied_fraction": acc.gather(tied.float()).mean().item(),
                "groups/skipped": float((~acc.gather(group_ok)).sum().item()),
                "diversity/in_group": in_group_diversity(tokens, cfg.num_generations).item(),
                "time/sampling": t1 - t0,
                "time/decoding": t2 - t1,
                "time/rewards": t3 - t2,
                "time/logprobs": t4 - t3,
                "throughput/tokens_per_s": tokens.numel() / max(t1 - t0, 1e-9),
            }
        )
        for name, values in parts.items():
            v = acc.gather(values.to(self.device).float())[ok_rows]
            metrics[f"reward/{name}_mean"] = v.mean().item()
            metrics[f"reward/{name}_std"] = v.std().item() if v.numel() > 1 else 0.0
        return rollout

    def _check_skipped(self, all_groups_ok: torch.Tensor) -> None:
        reason = self.skip_guard.update(int((~all_groups_ok).sum().item()), all_groups_ok.numel())
        if reason:
            last = self._last_reward_error or "(raised on another process; see its log)"
            raise RuntimeError(
                f"--on_bad_reward skip_group: stopping at step {self.step} (rollout {self.rollout_index}): {reason};"
                f" last reward error: {last}"
            )

    def _chunks_of(self, n: int) -> list[slice]:
        size = self.config.decode_batch_size
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]

    # --------------------------------------------------------------------------------------- update
    def _micro_batch_loss(self, rollout: Rollout, sl: slice):
        cfg = self.config
        mask = None if rollout.cond_mask is None else rollout.cond_mask[sl]
        with self.accelerator.autocast():
            logp, entropy = self._logprobs(self.model, rollout.cond[sl], mask, rollout.tokens[sl], with_entropy=True)
        old = logp.detach() if rollout.old_logp is None else rollout.old_logp[sl]
        out = grpo_loss(
            logp,
            old,
            rollout.advantages[sl],
            ref_logp=None if rollout.ref_logp is None else rollout.ref_logp[sl],
            beta=cfg.beta,
            epsilon_low=cfg.epsilon,
            epsilon_high=cfg.epsilon_high,
            loss_type=cfg.loss_type,
            importance_sampling_level=cfg.importance_sampling_level,
            mask=rollout.token_mask[sl],
            entropy=entropy if cfg.entropy_coef else None,
            entropy_coef=cfg.entropy_coef,
        )
        return out, entropy.detach().mean()

    def _reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        keys = sorted(metrics)
        values = torch.tensor([metrics[k] for k in keys], device=self.device, dtype=torch.float64)
        values = (
            self.accelerator.reduce(values, reduction="mean")
            if self.accelerator.num_processes > 1
            else values
        )
        return dict(zip(keys, values.tolist(), strict=True))

    def _optimizer_step(self, window: list[dict[str, float]], rollout_metrics: dict[str, float]) -> None:
        cfg, acc = self.config, self.accelerator
        grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm or float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        metrics = {k: sum(m[k] for m in window) / len(window) for k in window[0]}
        metrics["time/update"] = sum(m["time/update"] for m in window)
        metrics.update(rollout_metrics)
        metrics["grad_norm"] = float(grad_norm)
        metrics["learning_rate"] = self.scheduler.get_last_lr()[0]
        metrics = self._reduce(metrics)
        if self.logger is not None and self.step % cfg.logging_steps == 0:
            self.logger.log(self.step, metrics)
        self.last_metrics = metrics

    def _update(self, rollout: Rollout, bar) -> bool:
        """Optimise on one rollout; returns True when training should stop."""
        cfg, acc = self.config, self.accelerator
        window, micro = [], 0
        rollout_metrics = dict(rollout.metrics)
        for _ in range(cfg.num_iterations):
            for sl in self._chunks(rollout.tokens.shape[0]):
                micro += 1
                syncs = micro % cfg.gradient_accumulation_steps == 0
                t0 = _timer(self.device)
                with nullcontext() if syncs else acc.no_sync(self.model):
                    out, entropy = self._micro_batch_loss(rollout, sl)
                    acc.backward(out.loss / cfg.gradient_accumulation_steps)
                window.append(
                    {
                        "loss": out.loss.item(),
                        "kl": out.kl.item(),
                        "clip/low": out.clip_low.item(),
                        "clip/high": out.clip_high.item(),
                        "ratio/mean": out.ratio_mean.item(),
                        "entropy": entropy.item(),
                        "time/update": _timer(self.device) - t0,
                    }
                )
                if syncs:
                    self._optimizer_step(window, rollout_metrics)
                    rollout_metrics = {}  # rollout statistics are logged once, with its first step
                    window = []
                    bar.update(1)
                    bar.set_postfix(
                        reward=f"{self.last_metrics['reward/total_mean']:.3f}"
                        if "reward/total_mean" in self.last_metrics
                        else None,
                        kl=f"{self.last_metrics['kl']:.4f}",
                    )
                    if self.step >= cfg.max_steps:
                        return True
        return False

    # ----------------------------------------------------------------------------------------- loop
    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rollout_index": self.rollout_index,
            "config": self.config.to_dict(),
            "run_config": self.run_config,
        }

    def save(self) -> Path:
        return save_checkpoint(
            self.accelerator,
            self.config.output_dir,
            self.step,
            self._state(),
            self.config.save_total_limit,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
        )

    def resume(self, spec: str) -> None:
        path = resolve_checkpoint(spec, self.config.output_dir)
        state = load_checkpoint(
            self.accelerator, path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
        )
        if "rollout_index" not in state:
            raise CheckpointError(f"{path}: its {STATE_FILE} has no 'rollout_index' (not a GRPO trainer checkpoint)")
        self.step, self.rollout_index = state["step"], state["rollout_index"]
        self.accelerator.print(f"resumed from {path} at step {self.step}")

    def _should_stop_by_signal(self) -> bool:
        flag = torch.tensor([float(self._stop_signal)], device=self.device)
        if self.accelerator.num_processes > 1:
            flag = self.accelerator.reduce(flag, reduction="max")
        return bool(flag.item())

    def train(self) -> dict[str, float]:
        cfg = self.config
        if cfg.resume_from_checkpoint:
            self.resume(cfg.resume_from_checkpoint)
        clear_stop()
        if self.accelerator.is_main_process:
            resumed = self.step if cfg.resume_from_checkpoint else None
            self.logger = MetricsLogger(cfg.output_dir, cfg.report_to, resumed_step=resumed)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            desc="GRPO",
            disable=not self.accelerator.is_main_process,
            dynamic_ncols=True,
        )
        self.last_metrics: dict[str, float] = {}
        try:
            while self.step < cfg.max_steps:
                try:
                    rollout = self.make_rollout()
                except RewardInterrupted:  # nothing of this rollout was applied: the state is the last step's
                    self._interrupted(self.save())
                if self.logger is not None and cfg.image_log_steps and self.step % cfg.image_log_steps == 0:
                    self.logger.log_images(
                        self.step, rollout.images[: cfg.num_generations], rollout.prompts[0].value
                    )
                before = self.step
                finished = self._update(rollout, bar)
                self.rollout_index += 1
                exiting = 0 <= cfg.exit_step <= self.step
                interrupted = self._should_stop_by_signal()
                crossed_save = cfg.save_steps > 0 and self.step // cfg.save_steps > before // cfg.save_steps
                if crossed_save or exiting or interrupted or finished:
                    checkpoint = self.save()
                if interrupted and not finished:  # a SIGTERM during the last rollout still finishes the run
                    self._interrupted(checkpoint)
                if exiting:
                    self.accelerator.print(
                        f"stopping at step {self.step} of {cfg.max_steps} (exit_step): saved {checkpoint}; "
                        "no gpt_final.pt until the run finishes"
                    )
                    break
            if self.step >= cfg.max_steps:
                self.save_final_model()
        finally:
            signal.signal(signal.SIGTERM, previous)
            clear_stop()  # the stop was for this run; later reward calls in this process may wait again
            bar.close()
            if self.logger is not None:
                self.logger.close()
        return self.last_metrics

    def _interrupted(self, checkpoint: Path) -> None:
        self.accelerator.print(
            f"stopping at step {self.step} of {self.config.max_steps} (SIGTERM): saved {checkpoint}; the run is "
            f"not finished, so no gpt_final.pt is written. Continue it with "
            f"--resume_from_checkpoint latest. Exit status {INTERRUPTED_EXIT_CODE}."
        )
        raise TrainingInterrupted(self.step, checkpoint)

    def _on_sigterm(self, signum, frame) -> None:
        self._stop_signal = True
        request_stop()  # a wait for a remote reward raises RewardInterrupted at once

    def save_final_model(self) -> Path | None:
        """The policy in LlamaGen's ``{"model": state_dict}`` layout, readable by LlamaGen's own tools."""
        state_dict = self.accelerator.get_state_dict(self.model)
        path = Path(self.config.output_dir) / "gpt_final.pt"
        if self.accelerator.is_main_process:
            save_checkpoint_atomic({"model": state_dict, "steps": self.step}, path)
        self.accelerator.wait_for_everyone()
        return path
