"""Import arrows point one way: entry points import the library, never the reverse; models import no training,
reward, evaluation or demo code; rewards see images and prompts, not models; evaluation never imports training.

Every project module's imports are read from its syntax tree (imports inside functions included, since the
reward registry imports its backends lazily), and each forbidden arrow is reported as (module, import). The
layers are described in docs/architecture.md.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "tests"}

MODELS = ("autoregressive", "tokenizer")
TRAINING = ("grpo", "grpo_trainer", "train_c2i", "train_t2i")
REWARDS = ("reward_utils", "img_gen_grpo_rewards")
EVALUATION = ("evaluation", "fid_evaluation", "sampling")
DEMO = ("demo",)
LIBRARY = ("grpo", "grpo_trainer", "reward_utils", "img_gen_grpo_rewards", "autoregressive", "tokenizer",
           "evaluation", "dataset")  # fmt: skip
ENTRY_POINTS = ("train_c2i", "train_t2i", "demo", "bench", "scripts", "sampling")


@dataclass(frozen=True)
class Rule:
    """Modules under ``sources`` may not import anything under ``forbidden`` except what is under ``allowed``."""

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()


RULES = (
    Rule("models -> training/rewards/evaluation/demo", MODELS, TRAINING + REWARDS + EVALUATION + DEMO),
    Rule(
        "rewards -> training/demo/models",
        REWARDS,
        TRAINING + DEMO + MODELS,
        allowed=("autoregressive.checkpoint",),  # the model-level safe-loading utility
    ),
    Rule("evaluation -> training", EVALUATION, TRAINING),
    Rule("library -> entry points", LIBRARY, ENTRY_POINTS),
    Rule("bench -> tests", ("bench",), ("tests",)),
)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every Python module under ``root`` (tests and tool directories left out)."""
    files = (p for p in root.rglob("*.py") if not SKIPPED_DIRS & set(p.relative_to(root).parts[:-1]))
    return {module_name(path, root): path for path in sorted(files)}


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """Dotted names ``module`` imports anywhere in its file; ``from a import b`` gives ``a.b`` when that is a
    module of the project (so ``from autoregressive import checkpoint`` is ``autoregressive.checkpoint``)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}" if base else alias.name
                found.add(child if child in known else base)
    return found - {""}


def forbidden_arrows(root: Path, rules: tuple[Rule, ...] = RULES) -> list[tuple[str, str, str]]:
    """Every ``(module, import, rule)`` that breaks a rule, sorted."""
    modules = project_modules(root)
    known = set(modules)
    broken = set()
    for module, path in modules.items():
        for target in imports_of(path, module, known):
            for rule in rules:
                if (
                    _under(module, rule.sources)
                    and _under(target, rule.forbidden)
                    and not _under(target, rule.allowed)
                ):
                    broken.add((module, target, rule.name))
    return sorted(broken)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_walker_finds_a_forbidden_arrow_inside_a_function(tmp_path):
    _write(
        tmp_path,
        {
            "autoregressive/__init__.py": "",
            "autoregressive/model.py": "import torch\n\ndef build():\n    from grpo.config import Config\n",
            "grpo/__init__.py": "",
            "grpo/config.py": "Config = None\n",
            "tests/test_x.py": "from grpo import config\n",  # tests may import anything
        },
    )
    assert forbidden_arrows(tmp_path) == [
        ("autoregressive.model", "grpo.config", "models -> training/rewards/evaluation/demo")
    ]


def test_walker_passes_allowed_and_relative_imports(tmp_path):
    _write(
        tmp_path,
        {
            "autoregressive/__init__.py": "",
            "autoregressive/checkpoint.py": "",
            "autoregressive/gpt.py": "from . import checkpoint\nfrom .checkpoint import read\n",
            "reward_utils/__init__.py": "",
            "reward_utils/fid.py": "from autoregressive import checkpoint\nfrom .base import Reward\n",
            "reward_utils/base.py": "Reward = None\n",
            "grpo/__init__.py": "",
            "grpo/trainer.py": "from reward_utils.fid import x\nfrom autoregressive.gpt import GPT\n",
        },
    )
    assert forbidden_arrows(tmp_path) == []
    known = set(project_modules(tmp_path))
    gpt = tmp_path / "autoregressive" / "gpt.py"
    assert imports_of(gpt, "autoregressive.gpt", known) == {"autoregressive.checkpoint"}
    _write(tmp_path, {"reward_utils/clip.py": "from autoregressive.gpt import GPT\n"})
    rule = "rewards -> training/demo/models"
    assert forbidden_arrows(tmp_path) == [("reward_utils.clip", "autoregressive.gpt", rule)]


def test_no_forbidden_import_arrow():
    broken = forbidden_arrows(REPO)
    listing = "\n".join(f"  {module} imports {target}  ({rule})" for module, target, rule in broken)
    assert not broken, f"{len(broken)} forbidden import arrow(s):\n{listing}"
