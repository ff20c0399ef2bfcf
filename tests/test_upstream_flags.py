"""Upstream AR-GRPO's launcher argument lists, verbatim, and TRL's flags parse in the training scripts: mapped
flags land in our fields, the others are accepted with one warning line each (scripts/upstream_flags.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import transformers
import yaml

import train_c2i
import train_t2i
from scripts import upstream_flags

# Upstream/TRL flags that have a meaning here and are fields of our dataclasses (never warned away).
MEANINGFUL = frozenset(
    {
        "save_only_model", "run_name", "eval_steps", "report_to", "gradient_checkpointing", "torch_dtype",
        "use_peft", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
    }
)  # fmt: skip


def upstream_c2i_argv(data_rt: str, run_name: str, steps: int, cfg: float) -> list[str]:
    """run_c2i_train.sh's arguments to img_gen_grpo_train.py (Kwai-Klear/AR-GRPO), as the shell passes them."""
    return [
        "--model_name_or_path=custom/noneexists",
        "--dataset_name", f"{data_rt}/imagenet",
        "--image_root", f"{data_rt}/imagenet",
        "--run_name", run_name,
        "--output_dir", f"checkpoints/{run_name}",
        "--vq_ckpt", "./pretrained_models/vq_ds16_c2i.pt",
        "--gpt_ckpt", "./pretrained_models/c2i_XL_384.pt",
        "--gpt_model", "GPT-XL",
        "--gpt_type", "c2i",
        "--image_size", "384",
        "--dropout_p", "0.0",
        "--token_dropout_p", "0.0",
        "--gen_cfg_cfg_scale", str(cfg),
        "--num_generations", "8",
        "--top_p", "1.0",
        "--top_k", "0",
        "--data_seed", "42",
        "--reward_funcs", "clip_distance", "clip_quantize", "hpsv2", "hpsv2_quantize", "maniqa", "qwenvl_3b",
        "qwenvl_fake", "qwenvl_weird",
        "--reward_weights", "1", "1", "1", "1", "1", "1", "1", "1",
        "--beta", "0.1",
        "--num_iterations", "1",
        "--max_prompt_length", "4096",
        "--learning_rate", "1e-5",
        "--per_device_train_batch_size", "8",
        "--gradient_accumulation_steps", "1",
        "--logging_step", "1",
        "--bf16", "true",
        "--torch_dtype", "bfloat16",
        "--gradient_checkpointing", "false",
        "--attn_implementation", "flash_attention_2",
        "--num_train_epochs", "20",
        "--save_steps", "100",
        "--save_only_model", "true",
        "--save_total_limit", "6",
        "--exit_step", str(steps),
        "--report_to", "tensorboard",
    ]  # fmt: skip


def upstream_t2i_argv(data_rt: str, run_name: str, steps: int, cfg: float) -> list[str]:
    """run_t2i_train.sh's arguments to img_gen_grpo_train.py (Kwai-Klear/AR-GRPO), as the shell passes them."""
    return [
        "--model_name_or_path=custom/noneexists",
        "--dataset_name", "./dataset/coco_captions_30000.json",
        "--image_root", f"{data_rt}/coco",
        "--run_name", run_name,
        "--output_dir", f"checkpoints/{run_name}",
        "--vq_ckpt", "./pretrained_models/vq_ds16_t2i.pt",
        "--gpt_ckpt", "./pretrained_models/t2i_XL_stage1_256.pt",
        "--gpt_type", "t2i",
        "--gpt_model", "GPT-XL",
        "--cls_token_num", "120",
        "--image_size", "256",
        "--dropout_p", "0.0",
        "--token_dropout_p", "0.0",
        "--gen_cfg_cfg_scale", str(cfg),
        "--num_generations", "8",
        "--top_p", "1.0",
        "--top_k", "0",
        "--data_seed", "42",
        "--reward_funcs", "clip_text", "clip_text_quantize", "hpsv2_text", "hpsv2_text_quantize", "maniqa",
        "qwenvl_3b_text", "qwenvl_fake", "qwenvl_weird",
        "--reward_weights", "1", "1", "1", "1", "1", "1", "1", "1",
        "--beta", "1.0",
        "--num_iterations", "1",
        "--max_prompt_length", "4096",
        "--learning_rate", "1e-5",
        "--per_device_train_batch_size", "16",
        "--gradient_accumulation_steps", "1",
        "--logging_step", "1",
        "--bf16", "true",
        "--torch_dtype", "bfloat16",
        "--force_model_bf16", "True",
        "--gradient_checkpointing", "false",
        "--attn_implementation", "flash_attention_2",
        "--num_train_epochs", "20",
        "--save_steps", "100",
        "--save_only_model", "true",
        "--save_total_limit", "6",
        "--exit_step", str(steps),
        "--report_to", "tensorboard",
    ]  # fmt: skip


def warned(stderr: str) -> list[str]:
    return [line.split()[1][2:] for line in stderr.splitlines() if line.startswith("warning: --")]


C2I_IGNORED = [
    "model_name_or_path", "dataset_name", "dropout_p", "token_dropout_p", "max_prompt_length",
    "attn_implementation", "num_train_epochs",
]  # fmt: skip
T2I_IGNORED = [
    "model_name_or_path", "image_root", "dropout_p", "token_dropout_p", "max_prompt_length", "force_model_bf16",
    "attn_implementation", "num_train_epochs",
]  # fmt: skip


def test_upstream_c2i_arguments_parse_into_our_fields(tmp_path, capsys):
    argv = upstream_c2i_argv(str(tmp_path), "llama_gen_xl_c2i", steps=400, cfg=2.0)
    model, data, config, rewards = train_c2i.parse_args(argv)
    assert (model.gpt_model, model.gpt_type, model.image_size) == ("GPT-XL", "c2i", 384)
    assert model.gpt_ckpt == "./pretrained_models/c2i_XL_384.pt" and model.vq_ckpt.endswith("vq_ds16_c2i.pt")
    assert data.image_root == f"{tmp_path}/imagenet"
    assert config.output_dir == "checkpoints/llama_gen_xl_c2i"
    assert (config.gen_cfg_cfg_scale, config.num_generations, config.top_p, config.top_k) == (2.0, 8, 1.0, 0)
    assert (config.beta, config.num_iterations, config.learning_rate) == (0.1, 1, 1e-5)
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (8, 1)
    assert (config.logging_steps, config.bf16, config.data_seed) == (1, True, 42)
    assert (config.save_steps, config.save_total_limit, config.exit_step, config.max_steps) == (100, 6, 400, 400)
    assert config.report_to == "tensorboard" and config.run_name == "llama_gen_xl_c2i"
    assert (config.save_only_model, config.torch_dtype, config.gradient_checkpointing) == (True, "bfloat16", False)
    assert rewards.reward_funcs[0] == "clip_distance" and len(rewards.reward_funcs) == 8
    assert rewards.reward_weights == [1.0] * 8
    assert warned(capsys.readouterr().err) == C2I_IGNORED


def test_upstream_t2i_arguments_parse_into_our_fields(tmp_path, capsys):
    argv = upstream_t2i_argv(str(tmp_path), "llama_gen_t2i", steps=600, cfg=4.0)
    model, data, config, rewards = train_t2i.parse_args(argv)
    assert (model.gpt_type, model.image_size, model.cls_token_num) == ("t2i", 256, 120)
    assert data.dataset_name == "./dataset/coco_captions_30000.json"
    assert (config.gen_cfg_cfg_scale, config.beta, config.per_device_train_batch_size) == (4.0, 1.0, 16)
    assert rewards.reward_funcs[-3:] == ["qwenvl_3b_text", "qwenvl_fake", "qwenvl_weird"]
    # upstream's run ended at exit_step (its 20 epochs never did): without --max_steps, exit_step is the length
    assert (config.exit_step, config.max_steps, config.save_total_limit) == (600, 600, 6)
    assert warned(capsys.readouterr().err) == T2I_IGNORED


def test_meaningful_upstream_flags_are_our_fields_and_never_warned_away():
    from dataclasses import fields

    from grpo.config import GRPOConfig

    assert {f.name for f in fields(GRPOConfig)} >= MEANINGFUL
    assert not MEANINGFUL & set(upstream_flags.IGNORED)
    assert not MEANINGFUL & set(upstream_flags.ALIASES)


def test_an_explicit_max_steps_wins_over_exit_step():
    argv = ["--gpt_ckpt", "g.pt", "--vq_ckpt", "v.pt", "--exit_step", "50", "--max_steps", "200"]
    _, _, config, _ = train_c2i.parse_args(argv)
    assert (config.exit_step, config.max_steps) == (50, 200)


def test_an_ignored_flag_given_twice_and_in_the_file_warns_once(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("num_train_epochs: 20\nlogging_step: 5\nattn_implementation: flash_attention_2\n")
    argv = ["--config", str(recipe), "--gpt_ckpt", "g.pt", "--vq_ckpt", "v.pt", "--num_train_epochs", "3"]
    _, _, config, _ = train_c2i.parse_args([*argv, "--use_vllm", "--num-train-epochs=4"])
    assert config.logging_steps == 5
    assert warned(capsys.readouterr().err) == ["num_train_epochs", "attn_implementation", "use_vllm"]


@pytest.mark.parametrize(("given", "expected"), [("true", "group"), ("false", "none"), ("batch", "batch")])
def test_trl_boolean_scale_rewards_names_the_scaling(given, expected):
    for argv in (["--scale_rewards", given], [f"--scale_rewards={given}"]):
        _, _, config, _ = train_c2i.parse_args(["--gpt_ckpt", "g.pt", "--vq_ckpt", "v.pt", *argv])
        assert config.scale_rewards == expected


def test_warmup_ratio_and_data_seed_follow_transformers():
    argv = ["--gpt_ckpt", "g.pt", "--vq_ckpt", "v.pt", "--max_steps", "400", "--warmup_ratio", "0.01", "--seed", "3"]
    _, _, config, _ = train_c2i.parse_args(argv)
    assert (config.warmup_steps, config.data_seed) == (4, 3)  # ceil(400 * 0.01); data_seed defaults to seed


def test_an_unknown_flag_is_still_an_error(capsys):
    with pytest.raises(SystemExit):
        train_c2i.parse_args(["--gpt_ckpt", "g.pt", "--vq_ckpt", "v.pt", "--num_train_epoch", "3"])
    assert "num_train_epoch" in capsys.readouterr().err


@pytest.mark.parametrize("module", [train_c2i, train_t2i])
def test_every_training_arguments_field_is_a_flag_or_accounted_for(module):
    """Each of transformers.TrainingArguments' fields (GRPOConfig's base) parses here: ours, an alias, ignored
    with a reason, or coming from another branch."""
    from scripts.flags import build_parser

    ours = {action.dest for action in build_parser(_types(module))._actions}
    names = {f.name for f in dataclasses.fields(transformers.TrainingArguments) if not f.name.startswith("_")}
    missing = names - ours - set(upstream_flags.IGNORED) - set(upstream_flags.ALIASES)
    assert not missing


def _types(module) -> tuple:
    from autoregressive.build import ModelArguments
    from grpo.config import GRPOConfig
    from img_gen_grpo_rewards import RewardArguments

    return (ModelArguments, module.DataArguments, GRPOConfig, RewardArguments)


def test_docs_name_every_accepted_upstream_flag():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text(encoding="utf-8")
    missing = [name for name in (*upstream_flags.IGNORED, *upstream_flags.ALIASES) if f"`{name}`" not in docs]
    missing += [name for name in upstream_flags.IGNORED.values() if name.replace("|", "\\|") not in docs]
    assert not missing


def _as_recipe(argv: list[str]) -> dict:
    """A flag list as the mapping a --config file holds (a flag with several values: a list)."""
    recipe: dict = {}
    key = None
    for token in argv:
        if token.startswith("--"):
            key, _, inline = token[2:].partition("=")
            recipe[key] = inline or []
        elif isinstance(recipe[key], list):
            recipe[key].append(yaml.safe_load(token))
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in recipe.items()}


def test_upstream_arguments_as_a_recipe_file_parse_the_same(tmp_path, capsys):
    argv = upstream_t2i_argv(str(tmp_path), "llama_gen_t2i", steps=600, cfg=4.0)
    recipe = tmp_path / "upstream_t2i.yaml"
    recipe.write_text(yaml.safe_dump(_as_recipe(argv)))
    from_file = train_t2i.parse_args(["--config", str(recipe)])
    assert sorted(warned(capsys.readouterr().err)) == sorted(T2I_IGNORED)
    assert from_file == train_t2i.parse_args(argv)
    assert from_file[2].gen_cfg_cfg_scale == 4.0 and from_file[2].max_steps == 600
