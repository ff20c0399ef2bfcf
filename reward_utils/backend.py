"""What a reward backend file declares, so that adding a reward means adding one file to ``reward_utils/``.

A backend module defines ``REWARDS`` (reward name -> factory) and, if it has flags, ``OPTIONS``: a dataclass
derived from :class:`BackendOptions` whose fields are its flags (``--clip_model``, ...). Importing
``img_gen_grpo_rewards`` imports every module of this package, registers each ``REWARDS`` entry and merges all
``OPTIONS`` into one flat ``RewardOptions``; a factory ``factory(options, cache)`` receives that merged object
(an instance of its own ``OPTIONS`` too) and a :class:`ModelCache`. So modules here must stay cheap to import:
heavy packages (transformers, open_clip, hpsv2, ImageReward, pyiqa, torch_fidelity) only inside factories.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from reward_utils.base import RewardFunction

REWARD_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""``--reward_dtype`` name -> the dtype reward networks are cast to once, at load."""


def option(default: Any = MISSING, help: str = "", choices: Sequence[str] | None = None, **kw: Any) -> Any:
    """A flag field: ``help`` and ``choices`` as the dataclass flag parser reads them; a callable default is
    called for each new options object (so env-var defaults are read then)."""
    metadata = {"help": help, "choices": choices}
    if callable(default):
        return field(default_factory=default, metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


def from_env(name: str, default: str | None) -> Callable[[], str | None]:
    """A default read from environment variable ``name`` when the options are made."""
    return lambda: os.environ.get(name, default)


def _class_table(options: type, attribute: str) -> dict[str, str]:
    """The union of a class-level table over the options' classes (each backend declares its own)."""
    table: dict[str, str] = {}
    for cls in reversed(options.__mro__):
        table.update(vars(cls).get(attribute, {}))
    return table


@dataclass
class BackendOptions:
    """The base of every backend's options: the reward device and dtype, and how flags name env vars and local
    paths.

    ``ENV_VARS`` maps a flag to the environment variable its default comes from; ``PATHS`` maps a flag to
    ``"file"`` (a local file, or a URL), ``"dir"`` (a hub id, or a local folder when it looks like a path) or
    ``"pt_file"`` (a release name, or a local file when it ends in .pt/.pth), checked before models load.
    """

    ENV_VARS: ClassVar[dict[str, str]] = {}
    PATHS: ClassVar[dict[str, str]] = {}

    reward_device: str | None = option(None, "device for reward models (default: the policy's device)")
    reward_dtype: str | None = option(
        None,
        "dtype of the reward models' weights; scores stay float32 (default: a lowered --torch_dtype in training, "
        "else each backend's own: float32, the in-process Qwen judge bf16 on CUDA)",
        choices=tuple(REWARD_DTYPES),
    )

    def device(self) -> torch.device:
        if self.reward_device:
            return torch.device(self.reward_device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def dtype(self) -> torch.dtype:
        """The reward models' weight dtype (float32 when ``--reward_dtype`` is unset; the Qwen judge reads the
        unset flag as its own per-device default)."""
        name = self.reward_dtype or "float32"
        if name not in REWARD_DTYPES:
            raise ValueError(f"--reward_dtype {name}: choose one of {', '.join(REWARD_DTYPES)}")
        return REWARD_DTYPES[name]

    @classmethod
    def env_vars(cls) -> dict[str, str]:
        """Flag -> environment variable, over every backend these options cover."""
        return _class_table(cls, "ENV_VARS")

    def required_url(self, flag: str) -> str:
        """The URL flag ``flag``, or an error naming the flag and its env var when it is empty."""
        url = getattr(self, flag)
        if not url:
            env = self.env_vars().get(flag)
            raise ValueError(f"--{flag}{f' (or env {env})' if env else ''} is required for this reward")
        return url

    def check_paths(self) -> None:
        """Raise naming the flag when a flag that names a local file or folder points at nothing (or when
        ``--reward_dtype`` names no dtype)."""
        self.dtype()
        for flag, kind in _class_table(type(self), "PATHS").items():
            value = getattr(self, flag)
            if not value or "://" in value:
                continue
            path = Path(value).expanduser()
            is_file = kind == "file" or (kind == "pt_file" and value.endswith((".pt", ".pth")))
            if is_file and not path.is_file():
                raise ValueError(f"--{flag} {value}: file not found")
            if kind == "dir" and value.startswith(("/", ".", "~")) and not path.is_dir():
                raise ValueError(f"--{flag} {value}: folder not found (give a local folder or a hub id)")


class ModelCache:
    """Models built so far, by key, so every reward naming the same model shares one instance."""

    def __init__(self) -> None:
        self._models: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        if key not in self._models:
            self._models[key] = build()
        return self._models[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._models

    def __len__(self) -> int:
        return len(self._models)


RewardFactory = Callable[[Any, ModelCache], RewardFunction]
"""``factory(options, cache)``: builds one reward from the merged options, sharing models through ``cache``."""


SIMILARITY_VARIANTS = (("class", False), ("class", True), ("caption", False), ("caption", True))
"""(prompt kind, quantized) of the four upstream variants of a prompt-image similarity reward, in name order."""


def similarity_variants(
    names: Sequence[str], make: Callable[[str, str, bool], RewardFactory]
) -> dict[str, RewardFactory]:
    """Factories of the four variants named ``names`` (class ids, class ids quantized, captions, captions
    quantized), each ``make(name, prompt_kind, quantize)``."""
    if len(names) != len(SIMILARITY_VARIANTS):
        raise ValueError(f"{len(SIMILARITY_VARIANTS)} variant names expected, got {list(names)}")
    return {name: make(name, kind, quantize) for name, (kind, quantize) in zip(names, SIMILARITY_VARIANTS)}
