"""Reward registry and composition for AR-GRPO.

``build_reward(names, weights, options, device)`` turns upstream-style ``--reward_funcs`` and
``--reward_weights`` into one callable ``(images, prompts, metadata=None) -> (weighted total,
{name: values})`` for the trainer and the evaluation scripts.

Each backend file in ``reward_utils/`` declares its rewards (``REWARDS``: name -> factory) and its flags
(``OPTIONS``, a small dataclass); see ``reward_utils/backend.py``. Importing this module imports every module
of that package, registers the rewards and merges the option classes into :class:`RewardOptions` (and, with
``reward_funcs`` / ``reward_weights``, the flat :class:`RewardArguments` of the entry points). Backends import
heavy packages only inside their factories, so importing this module stays cheap. Code outside the package
(the demo's ``shapes_*``) adds rewards with :func:`register_reward` when it is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import fields, make_dataclass, replace
from typing import Any

import torch

import reward_utils
from reward_utils.backend import BackendOptions, ModelCache, RewardFactory, option
from reward_utils.base import Prompt, RewardError, RewardFunction, check_scores

REWARD_FUNCS: dict[str, RewardFactory] = {}


def register_reward(name: str, factory: RewardFactory, overwrite: bool = False) -> None:
    """Make ``name`` usable in ``--reward_funcs``; ``factory(options, cache)`` builds the reward."""
    if name in REWARD_FUNCS and not overwrite:
        raise ValueError(f"reward {name!r} is already registered (pass overwrite=True to replace it)")
    REWARD_FUNCS[name] = factory


def _load_backends() -> list[type[BackendOptions]]:
    """Register every ``reward_utils`` module's ``REWARDS``; return the option classes to merge."""
    classes: list[type[BackendOptions]] = []
    for module_info in sorted(pkgutil.iter_modules(reward_utils.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"reward_utils.{module_info.name}")
        for name, factory in getattr(module, "REWARDS", {}).items():
            register_reward(name, factory)
        if getattr(module, "REWARDS", None) and getattr(module, "OPTIONS", None):
            classes.append(module.OPTIONS)
    return classes


def merge_options(classes: Sequence[type[BackendOptions]], name: str = "RewardOptions") -> type[BackendOptions]:
    """One flat dataclass with every field of ``classes``; two backends may not declare the same flag."""
    owners: dict[str, Any] = {}
    for cls in classes:
        for f in fields(cls):
            if owners.setdefault(f.name, f) is not f:
                raise TypeError(f"reward option --{f.name} is declared twice (in {cls.__module__} and elsewhere)")
    leaves = [c for c in classes if not any(o is not c and issubclass(o, c) for o in classes)]
    merged = make_dataclass(name, [], bases=tuple(leaves) or (BackendOptions,))
    merged.__module__ = __name__
    merged.__doc__ = "Every reward backend's options (its flags), merged from the ``OPTIONS`` of reward_utils/."
    return merged


RewardOptions = merge_options(_load_backends())
RewardArguments = make_dataclass(
    "RewardArguments",
    [
        ("reward_funcs", list[str] | None, option(None, "reward functions to combine (names: docs/rewards.md)")),
        ("reward_weights", list[float] | None, option(None, "one weight per reward function (default: 1 each)")),
    ],
    bases=(RewardOptions,),
)
RewardArguments.__module__ = __name__
RewardArguments.__doc__ = "The reward flags of an entry point: which rewards, their weights, every backend option."
URL_ENVS = {flag: env for flag, env in RewardOptions.env_vars().items() if flag.endswith("_url")}
"""URL flag -> the environment variable its default is read from."""


class RewardComposer:
    """Weighted sum of reward functions, each run on its own device under ``no_grad``.

    Returns ``(total, values)``: ``total`` is ``sum_i w_i * r_i`` and ``values[name]`` the unweighted
    per-image values of each function (for logging), all on the images' device.
    """

    def __init__(self, functions: dict[str, RewardFunction], weights: dict[str, float]):
        if set(functions) != set(weights):
            raise ValueError(f"functions {sorted(functions)} and weights {sorted(weights)} name different rewards")
        self.functions, self.weights = functions, weights

    @property
    def names(self) -> list[str]:
        return list(self.functions)

    def __call__(
        self, images: torch.Tensor, prompts: Sequence[Prompt], metadata: Sequence[dict[str, Any]] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not torch.is_floating_point(images):
            raise RewardError(f"rewards expect float images in [0, 1], got dtype {images.dtype}")
        values: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, function in self.functions.items():
                device = getattr(function, "device", None)
                batch = images.detach() if device is None else images.detach().to(device)
                # checked here too: a registered plain callable has no RewardFunction.__call__ checks
                values[name] = check_scores(name, function(batch, prompts, metadata), prompts).to(images.device)
        total = torch.zeros(images.shape[0], dtype=torch.float32, device=images.device)
        for name, value in values.items():
            total = total + self.weights[name] * value
        return total, values

    def __repr__(self) -> str:
        terms = " + ".join(f"{w:g}*{n}" for n, w in self.weights.items())
        return f"RewardComposer({terms})"


def check_reward_setup(
    names: Sequence[str] | None, weights: Sequence[float] | None, options: BackendOptions | None = None
) -> list[str]:
    """Reject what :func:`build_reward` would, and every missing local file a reward flag names, without
    loading anything: the checks a run does before its models load. Returns the reward names as a list."""
    if names is None or not list(names):
        raise ValueError(
            "no reward functions given: pass --reward_funcs NAME [NAME ...] "
            f"(registered: {', '.join(sorted(REWARD_FUNCS))})"
        )
    names = list(names)
    unknown = [n for n in names if n not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"unknown reward function(s) {unknown}; registered: {sorted(REWARD_FUNCS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"reward functions listed twice: {names}")
    if weights is not None and len(weights) != len(names):
        raise ValueError(f"{len(names)} reward functions {names} but {len(weights)} weights {list(weights)}")
    if options is not None:
        options.check_paths()
    return names


def build_reward(
    names: Sequence[str] | None,
    weights: Sequence[float] | None = None,
    options: BackendOptions | None = None,
    device: torch.device | str | None = None,
    cache: ModelCache | None = None,
) -> RewardComposer:
    """Build the named rewards (upstream ``--reward_funcs`` names) with ``weights`` (default all 1).

    Reward models go to ``options.reward_device`` if set, else to ``device`` (the policy's device).
    """
    names = check_reward_setup(names, weights)
    weights = [1.0] * len(names) if weights is None else [float(w) for w in weights]
    options = options or RewardOptions()
    if options.reward_device is None and device is not None:
        options = replace(options, reward_device=str(device))
    cache = cache if cache is not None else ModelCache()
    functions = {name: REWARD_FUNCS[name](options, cache) for name in names}
    return RewardComposer(functions, dict(zip(names, weights)))
