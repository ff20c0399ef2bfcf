"""Flags of upstream AR-GRPO's launchers and of TRL's parser (``ScriptArguments``, ``GRPOConfig``,
``ModelConfig``, ``transformers.TrainingArguments``), so a command line or recipe carried over parses here.

A flag with a meaning here is a field of the training scripts' dataclasses (same name, same semantics) or an
abbreviation in ``ALIASES``. A flag without one is in ``IGNORED`` with the reason: it is accepted, dropped,
and named in one warning line, never silently. The table with every decision is in docs/recipes.md.

This module imports nothing heavy: ``scripts/flags.py`` reads it while parsing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Sequence

# upstream spelling -> our flag (argparse's own prefix matching would break once another flag shares the prefix)
ALIASES: dict[str, str] = {"logging_step": "logging_steps"}

# TRL 0.19's scale_rewards is a boolean; ours names the scaling
VALUE_ALIASES: dict[str, dict[str, str]] = {
    "scale_rewards": {"true": "group", "false": "none", "True": "group", "False": "none"},
}

_HF_TRAINER = "a Hugging Face Trainer setting; this trainer is not the HF Trainer and has no counterpart"
_EVAL_LOOP = "the HF Trainer's evaluation loop does not exist here"
_DISTRIBUTED = "processes and devices come from accelerate / torchrun (NPROC, ACCELERATE_CONFIG in scripts/launch.sh)"
_HUB = "nothing is pushed to the Hugging Face Hub; checkpoints stay in --output_dir"
_VLLM = "images are sampled by the policy's own KV-cached decoder, not vLLM"
_LOGGING = "logs go to --output_dir (metrics.jsonl, TensorBoard) every --logging_steps steps"
_QUANT = "the policy is loaded from --gpt_ckpt in full precision; quantised loading is not supported"
_LORA_EXTRA = "LoRA options beyond --lora_r, --lora_alpha, --lora_dropout, --lora_target_modules are not supported"
_NO_DROPOUT = (
    "the policy trains without dropout (GRPO's ratios need sampling and update passes to agree); "
    "a custom model may set it in --gpt_config"
)

IGNORED: dict[str, str] = {
    # upstream img_gen_grpo_train.py's own fields and its ImgGen_HF_CONFIG attributes
    "model_name_or_path": "the model is --gpt_model with --gpt_ckpt and --vq_ckpt (upstream passed a placeholder)",
    "dataset_name": "train_c2i.py draws ImageNet class ids (from the --image_root folder when given)",
    "image_root": "text-to-image prompts need no images",
    "force_model_bf16": (
        "trained weights stay fp32; --bf16 runs sampling, the frozen passes and the update's matmuls in bf16"
    ),
    "use_geneval_train": "the prompt file's format (GenEval metadata lines included) is detected from its content",
    "dropout_p": _NO_DROPOUT,
    "token_dropout_p": _NO_DROPOUT,
    "drop_path_rate": _NO_DROPOUT,
    "text_encoder_ckpt": "give the T5 folder or hub id as --text_encoder (upstream's was a download cache folder)",
    "text_feature_max_len": "captions are encoded to --cls_token_num positions (120 for LlamaGen T2I)",
    "delay_load_text_encoder": "the text encoder is loaded once at start-up",
    # TRL ScriptArguments
    "dataset_config": "prompts come from one file (--dataset_name) or class ids, not a Hub dataset",
    "dataset_train_split": "prompts come from one file (--dataset_name) or class ids, not a Hub dataset",
    "dataset_test_split": "prompts come from one file (--dataset_name) or class ids, not a Hub dataset",
    "dataset_streaming": "prompts come from one file (--dataset_name) or class ids, not a Hub dataset",
    "gradient_checkpointing_use_reentrant": "activation checkpointing here has no re-entrant variant to choose",
    "ignore_bias_buffers": "the policy has no boolean buffers for DDP to ignore",
    # TRL ModelConfig
    "model_revision": "the model is a local --gpt_ckpt file, not a Hub revision",
    "trust_remote_code": "no Hub code is ever run; models are built from this repository",
    "attn_implementation": "attention is PyTorch's scaled_dot_product_attention, which picks flash kernels itself",
    "lora_modules_to_save": _LORA_EXTRA,
    "lora_task_type": _LORA_EXTRA,
    "use_rslora": _LORA_EXTRA,
    "use_dora": _LORA_EXTRA,
    "load_in_8bit": _QUANT,
    "load_in_4bit": _QUANT,
    "bnb_4bit_quant_type": _QUANT,
    "use_bnb_nested_quant": _QUANT,
    # TRL 0.19 GRPOConfig (and later additions a recipe may carry)
    "model_init_kwargs": "the model is built from --gpt_model / --gpt_config, not from_pretrained keywords",
    "disable_dropout": "the policy has no dropout here; it is always disabled",
    "max_prompt_length": "the condition length is --cls_token_num (1 class token, or 120 caption positions)",
    "max_completion_length": "an image is always (image_size / downsample_size)^2 tokens",
    "ds3_gather_for_generation": _DISTRIBUTED,
    "shuffle_dataset": "prompts are always drawn at random from --data_seed",
    "generation_batch_size": "a rollout covers --steps_per_generation micro-batches; set that instead",
    "min_p": "sampling offers --top_k and --top_p",
    "generation_kwargs": "upstream overwrote it from the gen_cfg_* flags; use --gen_cfg_cfg_scale, --top_k, --top_p",
    "repetition_penalty": "not applicable to image tokens",
    "use_transformers_paged": _VLLM,
    "cache_implementation": _VLLM,
    "use_vllm": _VLLM,
    "vllm_mode": _VLLM,
    "vllm_model_impl": _VLLM,
    "vllm_guided_decoding_regex": _VLLM,
    "vllm_server_base_url": _VLLM,
    "vllm_server_host": _VLLM,
    "vllm_server_port": _VLLM,
    "vllm_server_timeout": _VLLM,
    "vllm_gpu_memory_utilization": _VLLM,
    "vllm_tensor_parallel_size": _VLLM,
    "delta": "two-sided clipping (INTELLECT-2) is not implemented; clipping is --epsilon / --epsilon_high",
    "mask_truncated_completions": "an image is never truncated",
    "sync_ref_model": "the reference model stays the initial policy",
    "ref_model_mixup_alpha": "the reference model stays the initial policy",
    "ref_model_sync_steps": "the reference model stays the initial policy",
    "top_entropy_quantile": "every image token is trained on",
    "use_liger_loss": "the loss is grpo/loss.py's; no Liger kernel",
    "log_completions": "sample grids are saved every --image_log_steps steps",
    "num_completions_to_print": "sample grids are saved every --image_log_steps steps",
    "wandb_log_unique_prompts": "sample grids are saved every --image_log_steps steps",
    # transformers.TrainingArguments
    "num_train_epochs": (
        "the run lasts --max_steps steps, or until --exit_step (upstream's 20 epochs never ended a run: "
        "exit_step did)"
    ),
    "do_train": "the training scripts always train",
    "do_eval": _EVAL_LOOP,
    "do_predict": _EVAL_LOOP,
    "eval_strategy": _EVAL_LOOP,
    "evaluation_strategy": _EVAL_LOOP,
    "prediction_loss_only": _EVAL_LOOP,
    "per_device_eval_batch_size": _EVAL_LOOP,
    "per_gpu_eval_batch_size": _EVAL_LOOP,
    "eval_accumulation_steps": _EVAL_LOOP,
    "eval_delay": _EVAL_LOOP,
    "bf16_full_eval": _EVAL_LOOP,
    "fp16_full_eval": _EVAL_LOOP,
    "jit_mode_eval": _EVAL_LOOP,
    "load_best_model_at_end": _EVAL_LOOP,
    "metric_for_best_model": _EVAL_LOOP,
    "greater_is_better": _EVAL_LOOP,
    "include_inputs_for_metrics": _EVAL_LOOP,
    "include_for_metrics": _EVAL_LOOP,
    "eval_do_concat_batches": _EVAL_LOOP,
    "batch_eval_metrics": _EVAL_LOOP,
    "eval_on_start": _EVAL_LOOP,
    "eval_use_gather_object": _EVAL_LOOP,
    "use_legacy_prediction_loop": _EVAL_LOOP,
    "past_index": _EVAL_LOOP,
    "label_names": _EVAL_LOOP,
    "per_gpu_train_batch_size": "deprecated in transformers; use --per_device_train_batch_size",
    "torch_empty_cache_steps": _HF_TRAINER,
    "lr_scheduler_kwargs": "the schedules here (--lr_scheduler_type) take no extra arguments",
    "log_level": _LOGGING,
    "log_level_replica": _LOGGING,
    "log_on_each_node": _LOGGING,
    "logging_dir": _LOGGING,
    "logging_strategy": _LOGGING,
    "logging_first_step": _LOGGING,
    "logging_nan_inf_filter": "non-finite rewards are handled by --on_bad_reward; losses are never filtered",
    "save_strategy": "a checkpoint is saved every --save_steps steps",
    "save_safetensors": "checkpoints are written in this project's layout (docs/trainer.md)",
    "save_on_each_node": "the main process saves; every node reads the shared --output_dir",
    "restore_callback_states_from_checkpoint": "there are no Trainer callbacks; resuming restores the full state",
    "no_cuda": _DISTRIBUTED,
    "use_cpu": _DISTRIBUTED,
    "use_mps_device": _DISTRIBUTED,
    "use_ipex": _HF_TRAINER,
    "fp16": "fp16 training is not supported; use --bf16",
    "fp16_opt_level": "fp16 training is not supported; use --bf16",
    "fp16_backend": "fp16 training is not supported; use --bf16",
    "half_precision_backend": "mixed precision is accelerate's bf16 (--bf16)",
    "tf32": "TF32 matmuls are PyTorch's default setting here; not changed by a flag",
    "local_rank": _DISTRIBUTED,
    "ddp_backend": _DISTRIBUTED,
    "tpu_num_cores": _DISTRIBUTED,
    "tpu_metrics_debug": _DISTRIBUTED,
    "debug": _HF_TRAINER,
    "dataloader_drop_last": "prompts are drawn by the trainer, not a DataLoader",
    "dataloader_num_workers": "prompts are drawn by the trainer, not a DataLoader",
    "dataloader_prefetch_factor": "prompts are drawn by the trainer, not a DataLoader",
    "dataloader_pin_memory": "prompts are drawn by the trainer, not a DataLoader",
    "dataloader_persistent_workers": "prompts are drawn by the trainer, not a DataLoader",
    "disable_tqdm": "the progress bar shows on the main process only",
    "remove_unused_columns": "prompts are not dataset rows; every prompt field reaches the rewards",
    "ignore_data_skip": "resuming restores the prompt sampler's state exactly; nothing is skipped",
    "fsdp_min_num_params": _DISTRIBUTED,
    "fsdp_config": _DISTRIBUTED,
    "fsdp_transformer_layer_cls_to_wrap": _DISTRIBUTED,
    "accelerator_config": _DISTRIBUTED,
    "deepspeed": _DISTRIBUTED,
    "label_smoothing_factor": "no labels: the loss is GRPO's",
    "optim": "the optimizer is AdamW (--adam_beta1, --adam_beta2, --adam_epsilon, --weight_decay)",
    "optim_args": "the optimizer is AdamW (--adam_beta1, --adam_beta2, --adam_epsilon, --weight_decay)",
    "optim_target_modules": "the optimizer is AdamW over every trained weight",
    "adafactor": "the optimizer is AdamW (--adam_beta1, --adam_beta2, --adam_epsilon, --weight_decay)",
    "group_by_length": "every image has the same number of tokens",
    "length_column_name": "every image has the same number of tokens",
    "ddp_find_unused_parameters": _DISTRIBUTED,
    "ddp_bucket_cap_mb": _DISTRIBUTED,
    "ddp_broadcast_buffers": _DISTRIBUTED,
    "ddp_timeout": _DISTRIBUTED,
    "skip_memory_metrics": _HF_TRAINER,
    "push_to_hub": _HUB,
    "hub_model_id": _HUB,
    "hub_strategy": _HUB,
    "hub_token": _HUB,
    "hub_private_repo": _HUB,
    "hub_always_push": _HUB,
    "hub_revision": _HUB,
    "push_to_hub_model_id": _HUB,
    "push_to_hub_organization": _HUB,
    "push_to_hub_token": _HUB,
    "gradient_checkpointing_kwargs": "activation checkpointing here takes no options",
    "mp_parameters": _HF_TRAINER,
    "auto_find_batch_size": "the batch is exactly --per_device_train_batch_size (groups must stay whole)",
    "full_determinism": "every sample's seed is fixed by --seed, step and prompt already",
    "torchdynamo": "see --compile (compiled decode step and log-prob passes)",
    "torch_compile": "see --compile (compiled decode step and log-prob passes)",
    "torch_compile_backend": "see --compile (compiled decode step and log-prob passes)",
    "torch_compile_mode": "see --compile (compiled decode step and log-prob passes)",
    "ray_scope": _HF_TRAINER,
    "include_tokens_per_second": _HF_TRAINER,
    "include_num_input_tokens_seen": _HF_TRAINER,
    "neftune_noise_alpha": "not applicable to image tokens",
    "use_liger_kernel": "the model is LlamaGen's GPT; no Liger kernel",
    "liger_kernel_config": "the model is LlamaGen's GPT; no Liger kernel",
    "average_tokens_across_devices": "the loss normaliser is fixed by --loss_type",
}


def _split(token: str) -> tuple[str | None, str | None]:
    """``--name=value`` -> (name, value); ``--name`` -> (name, None); anything else -> (None, None)."""
    if not token.startswith("--") or token == "--":
        return None, None
    name, eq, value = token[2:].partition("=")
    return name, (value if eq else None)


def _given(argv: Sequence[str], name: str) -> str | None:
    """The last value given to ``--name`` in ``argv`` (None if absent)."""
    value = None
    for i, token in enumerate(argv):
        flag, inline = _split(token)
        if flag == name:
            value = inline if inline is not None else (argv[i + 1] if i + 1 < len(argv) else "")
    return value


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def translate(argv: Sequence[str], flags: Collection[str]) -> list[str]:
    """``argv`` with upstream/TRL flags turned into ours: aliases renamed, boolean ``scale_rewards`` named,
    ignored flags (and their values) dropped with one warning line each. ``flags``: the parser's own flag
    names, which always win over this table. A run given ``--exit_step`` but no ``--max_steps`` lasts
    ``exit_step`` steps, as upstream's did (its epoch count never ended a run)."""
    out: list[str] = []
    ignored: list[str] = []
    dropping = False
    for token in argv:
        name, inline = _split(token)
        if name is None:
            if not dropping:
                out.append(token)
            continue
        dropping = False
        if name not in flags:  # HfArgumentParser also accepts --dashed-names
            name = name.replace("-", "_")
            name = ALIASES.get(name, name)
        if name not in flags and name in IGNORED:
            dropping = True
            if name not in ignored:
                ignored.append(name)
            continue
        out.append(f"--{name}" if inline is None else f"--{name}={inline}")
    for name, spellings in VALUE_ALIASES.items():
        out = [_renamed_value(out, i, name, spellings) for i in range(len(out))]
    exit_step = _given(out, "exit_step")
    if "max_steps" in flags and exit_step is not None and exit_step.isdigit() and _given(out, "max_steps") is None:
        out += ["--max_steps", exit_step]
    if ignored and _is_main_process():
        for name in ignored:
            print(f"warning: --{name} ignored: {IGNORED[name]}", file=sys.stderr)
    return out


def _renamed_value(argv: list[str], i: int, name: str, spellings: dict[str, str]) -> str:
    token = argv[i]
    flag, inline = _split(token)
    if flag == name and inline is not None:
        return f"--{name}={spellings.get(inline, inline)}"
    if flag is None and i > 0 and _split(argv[i - 1]) == (name, None):
        return spellings.get(token, token)
    return token


COND_LOGP_WARNING = (
    "warning: --logp_guidance cond (upstream's setting) trains the conditional branch, not the guided distribution "
    "that sampled the images; on a prompt-dependent reward it lost colours here: docs/trainer.md "
    '"Which distribution is the policy"'
)


def warn_upstream_choices(logp_guidance: str) -> None:
    """One line at start for an upstream setting this project measured to be worse (the paper recipes use it)."""
    if logp_guidance == "cond" and _is_main_process():
        print(COND_LOGP_WARNING, file=sys.stderr)
