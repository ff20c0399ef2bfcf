"""GRPO for autoregressive image generators, distributed with accelerate.

One rollout: sample G images per prompt (KV-cached, CFG), decode them, score them, turn rewards into
group-relative advantages. Then one or more clipped policy-gradient passes over the rollout, with a k3 KL
penalty to a frozen reference. Only the GPT trains; the VQ decoder, text encoder and rewards are frozen
and reach the trainer as plain callables, so any reward can be plugged in without touching this file.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from autoregressive.checkpoint import CheckpointError, save_checkpoint_atomic
from autoregressive.models.generate import SamplingConfig, compiled_sequence_logprobs, generate, sequence_logprobs
from autoregressive.models.gpt import GPT
from autoregressive.models.precision import inference_copy
from autoregressive.models.seeding import folded_seed, row_generators
from autoregressive.run_layout import FINAL_MODEL
from grpo import sharding
from grpo.advantages import group_advantages
from grpo.checkpointing import STATE_FILE, load_checkpoint, resolve_checkpoint, save_checkpoint
from grpo.config import GRPOConfig
from grpo.heldout_eval import HeldOutEvaluation, heldout_prompts
from grpo.interruption import INTERRUPTED_EXIT_CODE, TrainingInterrupted, any_process
from grpo.loss import grpo_loss
from grpo.metrics import MicroBatchStats, Stopwatch, mean_over_processes, rollout_metrics, step_metrics
from grpo.model_setup import add_lora, build_reference, fp32_modules, merged_state_dict
from grpo.optimizer import build_scheduler
from grpo.prompt_sources import PromptSource, TrainingPrompt
from grpo.rollout import Rollout
from grpo.run_folder import check_output_dir, clear_output_dir
from grpo.scoring import RewardFn, Scores, score_all, score_groups_apart
from grpo.skip_guard import SkippedGroupsGuard
from grpo.watch import RunView, announce, tracking_options
from reward_utils.remote import RewardInterrupted, clear_stop, request_stop

SAMPLE_STREAM = 3
"""Key prefix of the per-sample streams, ``(seed, SAMPLE_STREAM, rollout, prompt, sample)``."""
ConditionEncoder = Callable[[list], tuple[torch.Tensor, torch.Tensor | None]]
"""Prompt values -> model condition (class ids or caption features) and an optional caption mask."""
ImageDecoder = Callable[[torch.Tensor], torch.Tensor]
"""Image tokens (B, N) -> images (B, 3, H, W) in [0, 1]."""


class GRPOTrainer:
    """GRPO on ``policy``; models, rewards and prompts arrive as callables, so this file imports no backend."""

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
        mixed = "bf16" if config.bf16 else "no"
        self.accelerator = accelerator or Accelerator(mixed_precision=mixed, **tracking_options(config))
        sharding.check_fsdp_request(config, self.accelerator.num_processes)
        self._claim_output_dir()
        self.decode_images, self.reward_fn = decode_images, reward_fn
        self.prompts, self.encode_condition = prompts, encode_condition
        self.run_config = run_config or {}
        self.device = self.accelerator.device
        self.sampling = SamplingConfig(
            cfg_scale=config.gen_cfg_cfg_scale,
            cfg_interval=config.cfg_interval,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
        )
        # The policy's distribution: temperature and guidance as sampled; top-k/top-p truncation belongs to the
        # behaviour sampler, so log-probs stay finite when the updated policy reorders the tail.
        self.policy_dist = dataclasses.replace(self.sampling, top_k=0, top_p=1.0)
        # --compile: the teacher-forced passes (update and frozen log-probs) compiled too, not only the decode step
        self.logprobs = compiled_sequence_logprobs() if config.compile else sequence_logprobs

        policy.train().gradient_checkpointing_enable(config.gradient_checkpointing)
        # --bf16: sampling, the frozen log-prob passes and VQ decoding run on bf16 weights (fp32 logits); only
        # the update keeps fp32 weights, under autocast. The sampling copy is refreshed from the policy per rollout.
        self.inference_dtype = torch.bfloat16 if config.bf16 else None
        self.adapters = add_lora(policy, config) if config.use_peft else None  # policy stays a GPT, with adapters
        self.reference = build_reference(policy, self.adapters, config, self.device)
        self.ref_model = None if self.reference is None else self.reference.model  # the adapters are on outside
        copy = None
        if self.inference_dtype is not None:
            copy = inference_copy(policy, self.inference_dtype, fp32_modules(config)).to(self.device)
        if copy is not None and config.fsdp:
            sharding.free_storage(copy)  # under --fsdp it holds memory during rollouts only (grpo/sharding.py)
        self._sampling_copy: GPT | None = copy
        # DDP through accelerate, or --fsdp: policy and reference sharded by the trainer (grpo/sharding.py)
        self.model, self.optimizer = sharding.prepare_training(self.accelerator, policy, self.ref_model, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.step, self.rollout_index = 0, 0
        self._stop_signal = False
        self.skip_guard = SkippedGroupsGuard(config.skip_group_max_fraction, config.skip_group_window)

    # ----------------------------------------------------------------------------------------- loop
    def train(self) -> dict[str, float]:
        """Rollout, update, checkpoint, until ``max_steps``; returns the last step's metrics."""
        cfg, acc = self.config, self.accelerator
        if cfg.resume_from_checkpoint:
            self.resume(cfg.resume_from_checkpoint)
        clear_stop()
        resumed = self.step if cfg.resume_from_checkpoint else None
        evaluation = HeldOutEvaluation(heldout_prompts(self.prompts, cfg), cfg.seed) if cfg.eval_steps else None
        view = RunView(self, resumed)  # banner, trackers, metrics.jsonl, progress bar
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        metrics: dict[str, float] = {}
        try:
            if evaluation is not None and resumed is None:
                evaluation.run_and_log(self, view.logger)
            while self.step < cfg.max_steps:
                started = time.perf_counter()
                try:
                    rollout = self.make_rollout()
                except RewardInterrupted:  # nothing of this rollout was applied: the state is the last step's
                    self._interrupted(self.save())
                view.samples(self.step, rollout)
                before, updates = self.step, self.update(rollout)
                images_per_s = rollout.images.shape[0] * acc.num_processes / (time.perf_counter() - started)
                for i, (step, metrics) in enumerate(updates):
                    view.step(step, metrics, images_per_s if i == 0 else None)
                self.rollout_index += 1
                finished = self.step >= cfg.max_steps
                exiting = 0 <= cfg.exit_step <= self.step
                interrupted = any_process(acc, self._stop_signal)  # every rank stops at the same step
                crossed_save = cfg.save_steps > 0 and self.step // cfg.save_steps > before // cfg.save_steps
                if crossed_save or exiting or interrupted or finished:
                    checkpoint = self.save()
                    announce(acc, f"saved {checkpoint.name} to {checkpoint}")
                if interrupted and not finished:  # a SIGTERM during the last rollout still finishes the run
                    self._interrupted(checkpoint)
                if evaluation is not None and self.step // cfg.eval_steps > before // cfg.eval_steps:
                    evaluation.run_and_log(self, view.logger)
                if exiting:
                    acc.print(
                        f"stopping at step {self.step} of {cfg.max_steps} (exit_step): saved {checkpoint}; "
                        f"no {FINAL_MODEL} until the run finishes"
                    )
                    break
            if self.step >= cfg.max_steps:
                announce(acc, f"final model: {self.save_final_model()}")
        finally:
            signal.signal(signal.SIGTERM, previous)
            clear_stop()  # the stop was for this run; later reward calls in this process may wait again
            view.close()
        return metrics

    # -------------------------------------------------------------------------------------- rollout
    @torch.no_grad()
    def make_rollout(self) -> Rollout:
        """Prompts -> sample -> old log-probs -> decode -> score -> advantages -> reference log-probs (this process)."""
        cfg, acc, g = self.config, self.accelerator, self.config.num_generations
        per_process = cfg.prompts_per_rollout
        first = acc.process_index * per_process
        prompts = self.prompts.batch(self.rollout_index, per_process * acc.num_processes)[first : first + per_process]
        seeds = self._sample_seeds(first, per_process)

        clock = Stopwatch(self.device)
        cond, cond_mask = self.encode_condition([p.value for p in prompts])
        cond = cond.repeat_interleave(g, dim=0)
        cond_mask = None if cond_mask is None else cond_mask.repeat_interleave(g, dim=0)
        # The sampling weights (under --fsdp --bf16, the bf16 copy) hold memory until the old log-probs are scored.
        with self.rollout_weights() as sampler:
            with sharding.gathered(sampler):  # fp32 --fsdp: one all-gather per rollout, not one per unit per token
                generators, compile_mode = row_generators(seeds, self.device), "default" if cfg.compile else None
                sampled = generate(sampler.eval(), cond, cfg=self.sampling, cond_mask=cond_mask, generator=generators,
                                   compile_mode=compile_mode)  # fmt: skip
            self.policy.train()
            clock.lap("sampling")
            old_logp = None  # needs only the tokens: scored before decoding, while the sampling weights are held
            if cfg.reuses_rollouts:
                args = (cond, sampled.tokens, cond_mask)
                old_logp = sampled.logprobs if self.sampler_is_policy else self._frozen_logprobs(sampler, *args)
            clock.lap("logprobs")
        with acc.autocast():
            decoded = [self.decode_images(sampled.tokens[sl]) for sl in _slices(len(seeds), cfg.decode_batch_size)]
        images = torch.cat(decoded).float()
        clock.lap("decoding")
        scores = self._score(images, prompts, seeds)
        clock.lap("rewards")
        if cfg.on_bad_reward == "skip_group":
            all_ok, where = acc.gather(scores.group_ok), f"step {self.step} (rollout {self.rollout_index})"
            self.skip_guard.check(int((~all_ok).sum()), all_ok.numel(), where)
        batch_std = acc.gather(scores.total).std() if cfg.scale_rewards == "batch" else None
        advantages, tied = group_advantages(scores.total, g, cfg.scale_rewards, cfg.advantage_epsilon, batch_std)
        in_loss = scores.group_ok & ~tied if cfg.drop_tied_groups else scores.group_ok
        rollout = Rollout(
            prompts=prompts,
            cond=cond,
            cond_mask=cond_mask,
            tokens=sampled.tokens,
            images=images,
            rewards=scores.total,
            reward_parts=scores.parts,
            group_ok=scores.group_ok,
            tied=tied,
            advantages=advantages * scores.group_ok.repeat_interleave(g),
            token_mask=in_loss.repeat_interleave(g).float()[:, None].expand_as(sampled.tokens).contiguous(),
            old_logp=old_logp,
        )
        if self.reference is not None:
            with self.reference.active() as reference:
                rollout.ref_logp = self._frozen_logprobs(reference, cond, sampled.tokens, cond_mask)
        clock.lap("logprobs")
        rollout.seconds = clock.seconds
        return rollout

    def _score(self, images: torch.Tensor, prompts: list[TrainingPrompt], seeds: list[int]) -> Scores:
        """Each sample's metadata gets its ``sample_seed``, so a reward with randomness draws it from the sample's
        identity and a resumed run scores exactly as an uninterrupted one."""
        cfg = self.config
        expanded = [p for p in prompts for _ in range(cfg.num_generations)]
        values = [p.value for p in expanded]
        meta = [{**p.metadata, "sample_seed": seed} for p, seed in zip(expanded, seeds, strict=True)]
        try:
            return score_all(self.reward_fn, images, values, meta, cfg.num_generations)
        except Exception as error:
            if cfg.on_bad_reward == "error":
                where = f"step {self.step} (rollout {self.rollout_index})"
                raise RuntimeError(f"reward failed at {where}: {error}") from error
        scores = score_groups_apart(self.reward_fn, images, values, meta, cfg.num_generations, f"step {self.step}")
        self.skip_guard.note(scores.errors)
        return scores

    # --------------------------------------------------------------------------------------- update
    def update(self, rollout: Rollout) -> list[tuple[int, dict[str, float]]]:
        """Optimise on one rollout (``num_iterations`` passes), stopping at ``max_steps``.

        Returns ``(step, metrics)`` for each optimiser step, averaged over processes; the rollout's own
        statistics come with its first step.
        """
        cfg, acc = self.config, self.accelerator
        pending = rollout_metrics(rollout, acc.gather)
        steps, window, micro = [], [], 0
        for _ in range(cfg.num_iterations):
            for sl in _slices(rollout.tokens.shape[0], cfg.per_device_train_batch_size):
                micro += 1
                syncs = micro % cfg.gradient_accumulation_steps == 0
                with sharding.gradient_sync(acc, self.model, syncs):
                    window.append(self._micro_batch(rollout, sl))
                if not syncs:
                    continue
                grad_norm = self._optimizer_step()
                metrics = {**step_metrics(window, grad_norm, self.scheduler.get_last_lr()[0]), **pending}
                steps.append((self.step, mean_over_processes(self.accelerator, metrics)))
                pending, window = {}, []
                if self.step >= cfg.max_steps:
                    return steps
        return steps

    def _micro_batch(self, rollout: Rollout, sl: slice) -> MicroBatchStats:
        """Loss and backward on one micro-batch (gradients accumulate until the optimiser step)."""
        cfg = self.config
        clock = Stopwatch(self.device)
        mask = None if rollout.cond_mask is None else rollout.cond_mask[sl]
        with self.accelerator.autocast():
            args = (rollout.cond[sl], rollout.tokens[sl], self.policy_dist, mask, cfg.logp_guidance)
            logp, entropy = self.logprobs(self.model, *args, with_entropy=True)
        out = grpo_loss(
            logp,
            logp.detach() if rollout.old_logp is None else rollout.old_logp[sl],
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
        self.accelerator.backward(out.loss / cfg.gradient_accumulation_steps)
        return MicroBatchStats.of(out, entropy.detach().mean(), seconds=clock.lap("update"))

    def _optimizer_step(self) -> float:
        """Clip, step, schedule; returns the gradient norm before clipping."""
        grad_norm = sharding.clip_grad_norm(self.accelerator, self.model, self.config.max_grad_norm or float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return grad_norm

    # -------------------------------------------------------------------------------------- helpers
    def _claim_output_dir(self) -> None:
        """Every process checks before the main one clears, so a refusal is raised everywhere."""
        cfg, resuming = self.config, bool(self.config.resume_from_checkpoint)
        check_output_dir(cfg.output_dir, overwrite=cfg.overwrite_output_dir, resuming=resuming)
        self.accelerator.wait_for_everyone()
        clears = cfg.overwrite_output_dir and not resuming and Path(cfg.output_dir).is_dir()
        if clears and self.accelerator.is_main_process:
            clear_output_dir(cfg.output_dir)
        self.accelerator.wait_for_everyone()

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
        dropouts += (cfg.lora_dropout if cfg.use_peft else 0.0,)
        return cfg.top_k == 0 and cfg.top_p >= 1.0 and guidance_matches and not cfg.bf16 and not any(dropouts)

    def rollout_weights(self) -> AbstractContextManager[GPT]:
        """The current policy weights in the inference precision (the policy itself in fp32), for one rollout."""
        return sharding.rollout_weights(self.policy, self._sampling_copy)

    def _sample_seeds(self, first_prompt: int, num_prompts: int) -> list[int]:
        """One seed per sample, from (seed, rollout, prompt, sample) only: sampling and rewards draw from it."""
        return [
            folded_seed(self.config.seed, SAMPLE_STREAM, self.rollout_index, p, s)
            for p in range(first_prompt, first_prompt + num_prompts)
            for s in range(self.config.num_generations)
        ]

    def _frozen_chunks(self, rows: int, num_tokens: int) -> list[slice]:
        """The whole rollout in one no-grad pass unless its logits (fp32; CFG branches, guided logits and
        log-softmax alive at once) would exceed ``logprob_memory_gb``."""
        branches = 2 if self.config.logp_guidance == "cfg" and self.policy_dist.uses_cfg else 1
        per_row = (branches + 2) * num_tokens * self.policy.config.vocab_size * 4
        return _slices(rows, max(1, min(rows, int(self.config.logprob_memory_gb * 2**30 // per_row))))

    @torch.no_grad()
    def _frozen_logprobs(
        self, model: GPT, cond: torch.Tensor, tokens: torch.Tensor, cond_mask: torch.Tensor | None
    ) -> torch.Tensor:
        out = []
        for sl in self._frozen_chunks(*tokens.shape):
            mask = None if cond_mask is None else cond_mask[sl]
            with self.accelerator.autocast():
                args = (cond[sl], tokens[sl], self.policy_dist, mask, self.config.logp_guidance)
                out.append(self.logprobs(model, *args))
        return torch.cat(out)

    # --------------------------------------------------------------------------- checkpoints, signals
    def save(self) -> Path:
        cfg, parts = self.config, dict(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        state = {"step": self.step, "rollout_index": self.rollout_index, "config": cfg.to_dict()}
        state["run_config"] = self.run_config
        parts["save_only_model"] = cfg.save_only_model
        return save_checkpoint(self.accelerator, cfg.output_dir, self.step, state, cfg.save_total_limit, **parts)

    def resume(self, spec: str) -> None:
        path = resolve_checkpoint(spec, self.config.output_dir)
        parts = dict(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        state = load_checkpoint(self.accelerator, path, **parts)
        if "rollout_index" not in state:
            raise CheckpointError(f"{path}: its {STATE_FILE} has no 'rollout_index' (not a GRPO trainer checkpoint)")
        self.step, self.rollout_index = state["step"], state["rollout_index"]
        self.accelerator.print(f"resumed from {path} at step {self.step}")

    def _interrupted(self, checkpoint: Path) -> None:
        self.accelerator.print(
            f"stopping at step {self.step} of {self.config.max_steps} (SIGTERM): saved {checkpoint}; the run is "
            f"not finished, so no {FINAL_MODEL} is written. Continue it with "
            f"--resume_from_checkpoint latest. Exit status {INTERRUPTED_EXIT_CODE}."
        )
        raise TrainingInterrupted(self.step, checkpoint)

    def _on_sigterm(self, signum, frame) -> None:
        self._stop_signal = True
        request_stop()  # a wait for a remote reward raises RewardInterrupted at once

    def save_final_model(self) -> Path | None:
        """The policy in LlamaGen's ``{"model": state_dict}`` layout, readable by LlamaGen's own tools."""
        state_dict = sharding.model_state_dict(self.accelerator, self.model)  # whole, also under --fsdp
        if self.adapters is not None and self.accelerator.is_main_process:
            state_dict = merged_state_dict(self.adapters)  # base + adapters, back in LlamaGen's layout
        path = Path(self.config.output_dir) / FINAL_MODEL
        if self.accelerator.is_main_process:
            save_checkpoint_atomic({"model": state_dict, "steps": self.step}, path)
        self.accelerator.wait_for_everyone()
        return path


def _slices(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
