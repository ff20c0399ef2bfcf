"""The recipe files (scripts/recipes/*.yaml): each parses through its training script and holds the values
docs/recipes.md documents; the paper and recommended recipes differ exactly where the docs say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import train_c2i
import train_t2i
from scripts.upstream_flags import COND_LOGP_WARNING

RECIPES = Path(__file__).resolve().parents[1] / "scripts" / "recipes"
PATHS = ["--gpt_ckpt", "g.pt", "--vq_ckpt", "v.pt", "--output_dir", "out"]
T2I_PATHS = [*PATHS, "--dataset_name", "prompts.json", "--text_encoder", "tiny"]

# docs/recipes.md, "paper against recommended"
DIFFERENCES = {
    "c2i": {"logp_guidance": ("cond", "cfg"), "loss_type": ("bnpo", "grpo"), "exit_step": (400, -1)},
    "t2i": {
        "logp_guidance": ("cond", "cfg"),
        "loss_type": ("bnpo", "grpo"),
        "exit_step": (600, -1),
        "gen_cfg_cfg_scale": (4.0, 2.0),
    },
}


def parse(task: str, recipe: str) -> tuple:
    if task == "c2i":
        return train_c2i.parse_args(["--config", str(RECIPES / f"c2i_{recipe}.yaml"), *PATHS])
    return train_t2i.parse_args(["--config", str(RECIPES / f"t2i_{recipe}.yaml"), *T2I_PATHS])


@pytest.mark.parametrize("recipe", ["paper", "recommended"])
def test_c2i_recipes_hold_the_papers_settings(recipe):
    model, _, config, rewards = parse("c2i", recipe)
    assert (model.gpt_model, model.gpt_type, model.image_size, model.cls_token_num) == ("GPT-XL", "c2i", 384, 1)
    assert (config.num_generations, config.per_device_train_batch_size, config.gen_cfg_cfg_scale) == (8, 8, 2.0)
    assert (config.beta, config.learning_rate, config.max_steps, config.bf16) == (0.1, 1e-5, 400, True)
    assert (config.save_steps, config.save_total_limit, config.seed, config.data_seed) == (100, 6, 42, 42)
    assert rewards.reward_funcs == [
        "clip_distance", "clip_quantize", "hpsv2", "hpsv2_quantize", "maniqa", "qwenvl_3b", "qwenvl_fake",
        "qwenvl_weird",
    ]  # fmt: skip
    assert rewards.reward_weights == [1.0] * 8
    assert config.logp_guidance == {"paper": "cond", "recommended": "cfg"}[recipe]


@pytest.mark.parametrize("recipe", ["paper", "recommended"])
def test_t2i_recipes_hold_the_papers_settings(recipe):
    model, _, config, rewards = parse("t2i", recipe)
    assert (model.gpt_type, model.image_size, model.cls_token_num, model.caption_dim) == ("t2i", 256, 120, 2048)
    assert (config.num_generations, config.per_device_train_batch_size, config.beta) == (8, 16, 1.0)
    assert (config.learning_rate, config.max_steps, config.save_total_limit) == (1e-5, 600, 6)
    assert rewards.reward_funcs[0] == "clip_text" and len(rewards.reward_weights) == 8
    expected = {"paper": ("cond", 4.0), "recommended": ("cfg", 2.0)}[recipe]
    assert (config.logp_guidance, config.gen_cfg_cfg_scale) == expected


@pytest.mark.parametrize("task", ["c2i", "t2i"])
def test_paper_and_recommended_differ_only_where_documented(task):
    paper, recommended = (dataclasses.asdict(parse(task, r)[2]) for r in ("paper", "recommended"))
    differing = {k: (paper[k], recommended[k]) for k in paper if paper[k] != recommended[k]}
    assert differing == DIFFERENCES[task]


def test_cond_log_probs_warn_once_at_start(tmp_path, capsys):
    argv = ["--config", str(RECIPES / "c2i_paper.yaml"), "--gpt_ckpt", str(tmp_path / "missing.pt")]
    args = train_c2i.parse_args([*argv, "--vq_ckpt", "v.pt", "--output_dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="missing.pt"):  # stops at the missing checkpoint, after the warning
        train_c2i.build_trainer(*args)
    lines = capsys.readouterr().err.splitlines()
    assert lines.count(COND_LOGP_WARNING) == 1 and "docs/trainer.md" in COND_LOGP_WARNING


def test_recommended_recipe_does_not_warn(tmp_path, capsys):
    argv = ["--config", str(RECIPES / "c2i_recommended.yaml"), "--gpt_ckpt", str(tmp_path / "missing.pt")]
    args = train_c2i.parse_args([*argv, "--vq_ckpt", "v.pt", "--output_dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        train_c2i.build_trainer(*args)
    assert "warning" not in capsys.readouterr().err
