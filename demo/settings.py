"""What one demo run is: its settings (also its command-line flags), the reward presets and its run folder."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from demo.world import TAGS
from grpo.config import GRPOConfig

REWARDS: dict[str, dict[str, float]] = {
    # the objects' precision^2 x recall (a wrong or extra object never pays), plus correct with nothing extra
    "clean": {"shapes_clean": 1.0, "shapes_exact": 0.5},
    # GenEval's rules alone ignore extra objects: the score rises without cleaner images (the lesson)
    "geneval_rules": {"shapes": 1.0, "shapes_strict": 0.5},
    # noise that ignores the images: how far update noise alone moves the scores (the null control)
    "noise_control": {"noise_control": 1.0},
}
"""The demo's reward compositions (names from img_gen_grpo_rewards.py), chosen with ``--reward``."""

ONE_OBJECT_TAGS: tuple[str, ...] = ("single_object", "colors")
"""The t2i demo's default world: prompts that ask for one object. LlamaGen's image tokens see a caption as an
average over its words (condition slots carry no position), so position and colour-attribution prompts are
nearly unlearnable for the demo's random text encoder; with two-object and counting prompts beside these,
GRPO's gains on one object spread to them as fewer objects (docs/demo.md)."""

TASK_DEFAULTS: dict[str, dict[str, int]] = {
    "c2i": {"pretrain_prompts": 400, "gpt_steps": 300},
    # captions need more: at c2i's 300 steps only 3% of t2i samples were correct with nothing extra (docs/demo.md)
    "t2i": {"pretrain_prompts": 1200, "gpt_steps": 900},
}
"""Pretraining settings left unset take their task's value here."""

_TRAINER_CHOICES = {f.name: f.metadata["choices"] for f in fields(GRPOConfig)}
CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("c2i", "t2i"),
    "reward": tuple(REWARDS),
    "logp_guidance": _TRAINER_CHOICES["logp_guidance"],
    "scale_rewards": _TRAINER_CHOICES["scale_rewards"],
}
"""Allowed values of the string settings; the trainer's own ones come from its config."""


def _flag(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class DemoSettings:
    """One demo run; every field is also a ``python -m demo.run`` flag. The defaults are argued in docs/demo.md."""

    task: str = _flag("c2i", "c2i (class-to-image) or t2i (text-to-image)")
    tags: str = _flag(
        ",".join(ONE_OBJECT_TAGS),
        f"t2i: GenEval tags of the prompts, comma-separated (all six: {','.join(TAGS)}; docs/demo.md)",
    )
    seed: int = _flag(0, "seeds the data, both pretrained models, the held-out and the GRPO prompts")
    # pretraining: deliberately short, so the generator is clearly imperfect
    pretrain_prompts: int | None = _flag(
        None, "distinct pretraining prompts (c2i: x images_per_prompt images; unset: c2i 400, t2i 1200)"
    )
    images_per_prompt: int = _flag(4, "pretraining images per prompt")
    vq_steps: int = _flag(400, "VQ tokenizer training steps")
    gpt_steps: int | None = _flag(None, "GPT pretraining steps (unset: c2i 300, t2i 900)")
    # evaluation on held-out prompts (t2i) / all classes (c2i)
    eval_samples: int = _flag(512, "held-out samples scored before and after GRPO (same prompts and seeds)")
    cfg_scale: float = _flag(3.0, "classifier-free guidance scale, in evaluation and GRPO alike")
    temperature: float = _flag(1.0, "sampling temperature, in evaluation and GRPO alike")
    # GRPO
    grpo_steps: int = _flag(100, "GRPO optimizer steps")
    num_generations: int = _flag(8, "G: samples per prompt")
    prompts_per_step: int = _flag(6, "prompts per GRPO step")
    learning_rate: float = _flag(5e-5, "GRPO learning rate (larger let update noise win; docs/demo.md)")
    beta: float = _flag(0.0, "KL coefficient (0: no reference model; the anchor held the policy back here)")
    warmup_steps: int = _flag(20, "linear warm-up steps (Adam's first full-size steps derailed some runs)")
    reward: str = _flag("clean", f"reward preset: {', '.join(REWARDS)}")
    logp_guidance: str = _flag("cfg", "policy distribution: cfg (on-policy) or cond (upstream's)")
    scale_rewards: str = _flag("group", "divide advantages by the group's std (group) or not (none)")

    def __post_init__(self) -> None:
        for name, value in TASK_DEFAULTS.get(self.task, {}).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name, allowed in CHOICES.items():  # before minutes of pretraining, not after
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        given = [t.strip() for t in self.tags.split(",") if t.strip()]
        if not given or any(t not in TAGS for t in given) or len(set(given)) < len(given):
            raise ValueError(f"--tags must be a comma-separated subset of {','.join(TAGS)}; got {self.tags!r}")
        self.tags = ",".join(given)  # one spelling per tag list: the cache key and the summary use it

    @property
    def tag_list(self) -> tuple[str, ...]:
        """``tags`` as a tuple, in the order given (the prompt samplers take tags in turn)."""
        return tuple(self.tags.split(","))


DEFAULT_REWARD = DemoSettings.reward


def run_folder(out: Path, settings: DemoSettings) -> Path:
    """``<task>_seed<seed>`` for the default reward, with the reward's name appended for the others."""
    name = f"{settings.task}_seed{settings.seed}"
    return out / (name if settings.reward == DEFAULT_REWARD else f"{name}_{settings.reward}")
