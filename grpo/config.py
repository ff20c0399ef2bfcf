"""GRPO hyper-parameters as one dataclass; the entry points parse its fields as flags (upstream names)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


def _opt(default: Any, help: str, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class GRPOConfig:
    # run
    output_dir: str = _opt(
        "outputs/grpo", "where checkpoints, metrics.jsonl, TensorBoard logs and sample grids go"
    )
    seed: int = _opt(
        42, "seeds every sample (a sample's seed depends only on seed, step and prompt), and prompts unless data_seed"
    )
    data_seed: int | None = _opt(None, "seeds the prompt order only (TRL's data_seed; default: seed)")
    max_steps: int = _opt(400, "optimizer steps to train for (without it, a given --exit_step sets the length)")
    exit_step: int = _opt(-1, "stop (after saving a checkpoint) once this step is reached; -1: never")
    # rollout
    num_generations: int = _opt(8, "G: images sampled per prompt (one group)")
    per_device_train_batch_size: int = _opt(8, "images per process in one micro-batch (a multiple of G)")
    gradient_accumulation_steps: int = _opt(1, "micro-batches per optimizer step")
    steps_per_generation: int | None = _opt(
        None, "micro-batches covered by one rollout (default: grad. accumulation)"
    )
    num_iterations: int = _opt(1, "passes over each rollout (>1 reuses samples; clipping then acts)")
    gen_cfg_cfg_scale: float = _opt(2.0, "classifier-free guidance scale while sampling (1 disables CFG)")
    cfg_interval: int = _opt(
        -1, "switch guidance off after this decode step (LlamaGen's cfg_interval; -1: never)"
    )
    temperature: float = _opt(1.0, "sampling temperature (also applied to the policy's log-probabilities)")
    top_k: int = _opt(0, "sample from the k most likely tokens (0: all)")
    top_p: float = _opt(1.0, "nucleus sampling threshold (1: off)")
    logp_guidance: str = _opt(
        "cfg",
        "policy distribution: 'cfg' = the guided one that sampled (on-policy), "
        "'cond' = conditional branch only (upstream AR-GRPO)",
        ("cfg", "cond"),
    )
    decode_batch_size: int = _opt(32, "images decoded by the VQ at once")
    logprob_memory_gb: float = _opt(
        1.0, "logits memory one frozen log-prob pass (old policy, reference) may use; beyond it the rollout is chunked"
    )
    # objective
    beta: float = _opt(0.04, "KL coefficient against the frozen reference model (0: no reference model)")
    epsilon: float = _opt(0.2, "lower clipping range ε_low")
    epsilon_high: float | None = _opt(None, "upper clipping range ε_high (default: epsilon)")
    loss_type: str = _opt(
        "grpo",
        "grpo: per-sequence token mean then batch mean; bnpo: global token mean; "
        "dr_grpo: token sum / (batch * tokens)",
        ("grpo", "bnpo", "dr_grpo"),
    )
    importance_sampling_level: str = _opt(
        "token",
        "token ratios (GRPO) or one length-normalised ratio per sequence (GSPO)",
        ("token", "sequence"),
    )
    scale_rewards: str = _opt(
        "group",
        "divide advantages by the group std, the batch std, or not at all (Dr. GRPO)",
        ("group", "batch", "none"),
    )
    advantage_epsilon: float = _opt(1e-4, "added to the std before dividing")
    drop_tied_groups: bool = _opt(False, "leave groups whose rewards all tie out of the loss normaliser")
    entropy_coef: float = _opt(0.0, "entropy bonus coefficient")
    on_bad_reward: str = _opt(
        "error",
        "a reward that raises or returns NaN/inf: stop with an error naming it, "
        "or skip that group and count it",
        ("error", "skip_group"),
    )
    skip_group_max_fraction: float = _opt(
        0.5,
        "skip_group: stop with an error when more than this fraction of the groups of the last "
        "skip_group_window rollouts were skipped (a rollout with every group skipped always stops)",
    )
    skip_group_window: int = _opt(10, "rollouts over which skip_group_max_fraction is judged")
    # optimisation
    learning_rate: float = _opt(1e-5, "AdamW learning rate")
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    adam_beta1: float = _opt(0.9, "AdamW beta1")
    adam_beta2: float = _opt(0.999, "AdamW beta2")
    adam_epsilon: float = _opt(1e-8, "AdamW epsilon")
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0: off)")
    lr_scheduler_type: str = _opt("constant", "learning-rate schedule", ("constant", "cosine", "linear"))
    warmup_steps: int = _opt(0, "linear warm-up steps")
    warmup_ratio: float = _opt(0.0, "warm-up as a fraction of max_steps, rounded up (used when warmup_steps is 0)")
    bf16: bool = _opt(
        False,
        "bf16 weight copies (and KV cache) for sampling, the frozen log-prob passes and VQ decoding, fp32 logits; "
        "bf16 autocast for the update (trained weights and optimizer stay fp32)",
    )
    bf16_logit_head: bool = _opt(
        False,
        "run the logit head of the bf16 copies (sampling, frozen log-prob passes) in bf16 too, as LlamaGen's bf16 "
        "inference does: logits are rounded to bf16 before the fp32 softmax; faster decoding, more rounding "
        "(docs/performance.md). Needs a bf16 copy: --bf16, or --torch_dtype bfloat16 with a KL reference",
    )
    compile: bool = _opt(
        False,
        "torch.compile the static-shape decode step and the teacher-forced log-prob passes (update, reference, old "
        "policy); each is traced once per shape, the first step pays the compile",
    )
    # memory
    gradient_checkpointing: bool = _opt(
        False, "recompute each transformer block in the backward instead of keeping its activations (update only)"
    )
    torch_dtype: str = _opt(
        "float32",
        "dtype of the frozen weights: the reference model and the VQ decoder (the trained policy keeps fp32 "
        "weights for AdamW)",
        ("float32", "bfloat16"),
    )
    fsdp: bool = _opt(
        False,
        "shard the policy over the launched processes with torch's FSDP2 (fully_shard per transformer block); "
        "needs a distributed launch (torchrun); docs/trainer.md 'Distributed'",
    )
    use_peft: bool = _opt(
        False, "train LoRA adapters (peft) instead of the whole GPT; the reference is the base with adapters off"
    )
    lora_r: int = _opt(16, "LoRA rank")
    lora_alpha: int = _opt(32, "LoRA alpha (the update is scaled by lora_alpha / lora_r)")
    lora_dropout: float = _opt(0.05, "dropout on the LoRA branch's input during the update")
    lora_target_modules: list[str] | None = _opt(
        None, "module names that get adapters (default: the attention and MLP projections wqkv wo w1 w2 w3)"
    )
    # checkpoints and logs
    save_steps: int = _opt(100, "save a checkpoint every this many steps (at the end of a rollout)")
    save_total_limit: int = _opt(
        2, "keep this many checkpoints (older ones are deleted after a save succeeds)"
    )
    save_only_model: bool = _opt(
        False,
        "checkpoints hold the model (and the run's settings) only, no optimizer, scheduler or RNG state (as "
        "upstream/TRL): smaller, but they cannot be resumed",
    )
    resume_from_checkpoint: str | None = _opt(None, "a checkpoint folder, or 'latest' in output_dir")
    overwrite_output_dir: bool = _opt(
        False, "delete the contents of a non-empty output_dir and start over (without it, such a folder is refused)"
    )
    logging_steps: int = _opt(1, "log metrics every this many steps")
    image_log_steps: int = _opt(25, "save/log an image grid of one group every this many steps (0: never)")
    report_to: str = _opt(
        "tensorboard",
        "trackers besides metrics.jsonl (accelerate's): tensorboard, wandb (needs the wandb package), "
        "all (tensorboard, and wandb when installed) or none",
        ("tensorboard", "wandb", "all", "none"),
    )
    run_name: str | None = _opt(None, "the run's name in the trackers (default: the output folder's name)")
    eval_steps: int = _opt(
        0,
        "every this many steps (and at step 0), sample the held-out prompts with fixed seeds and log the "
        "training reward's eval/<part>_mean (0: never)",
    )
    eval_prompts: str | None = _opt(
        None,
        "text-to-image held-out prompt file (e.g. GenEval's or DrawBench's from dataset/download_prompts.py); "
        "default: a fixed seeded subset of the training prompts (class-conditional: fixed class ids)",
    )
    eval_num_prompts: int = _opt(16, "held-out prompts sampled per evaluation, one image each (-1: all of the file)")

    def __post_init__(self) -> None:
        if self.data_seed is None:
            self.data_seed = self.seed
        if self.warmup_ratio and not self.warmup_steps:  # transformers' get_warmup_steps
            self.warmup_steps = math.ceil(self.max_steps * self.warmup_ratio)
        if self.steps_per_generation is None:
            self.steps_per_generation = self.gradient_accumulation_steps
        rollout = self.per_device_train_batch_size * self.steps_per_generation
        if rollout % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x steps_per_generation = {rollout} images per process per rollout "
                f"must be a multiple of num_generations = {self.num_generations} (groups stay on one process)"
            )
        if (self.steps_per_generation * self.num_iterations) % self.gradient_accumulation_steps:
            raise ValueError(
                "steps_per_generation x num_iterations must be a multiple of gradient_accumulation_steps"
            )
        if self.use_peft and (self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1):
            raise ValueError("use_peft needs lora_r >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1")
        bf16_reference = self.torch_dtype == "bfloat16" and self.beta > 0 and not self.use_peft
        if self.bf16_logit_head and not (self.bf16 or bf16_reference):
            raise ValueError(
                "--bf16_logit_head needs a bf16 copy of the policy: --bf16, or --torch_dtype bfloat16 with a KL "
                "reference (--beta > 0, without --use_peft, whose reference is the policy itself)"
            )
        if self.num_generations < 2:
            raise ValueError("num_generations must be at least 2: advantages compare samples within a group")

    @property
    def prompts_per_rollout(self) -> int:
        """Prompts each process samples per rollout."""
        return self.per_device_train_batch_size * self.steps_per_generation // self.num_generations

    @property
    def optimizer_steps_per_rollout(self) -> int:
        return self.steps_per_generation * self.num_iterations // self.gradient_accumulation_steps

    @property
    def reuses_rollouts(self) -> bool:
        """True when samples are optimised more than once, so old log-probs must be stored."""
        return self.optimizer_steps_per_rollout > 1 or self.num_iterations > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

