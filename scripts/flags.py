"""One flag system for every entry point: ``transformers.HfArgumentParser`` over dataclasses, plus
``--config FILE.yaml`` (or ``.json``) whose values the command line overrides.

Booleans follow HfArgumentParser everywhere: ``--bf16``, ``--bf16 true``, ``--bf16 false``, and ``--no_X`` for a
field that defaults to True. ``saved_run_config`` is the parsed flags as a checkpoint records them (secrets redacted).
With ``upstream=True`` (the training scripts) the flags of upstream AR-GRPO and TRL are accepted too, on the command
line and in the file: see scripts/upstream_flags.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from transformers import HfArgumentParser

CONFIG_FLAG = "--config"
SECRET_FLAG = re.compile(r"api_key|secret|password|auth_token", re.IGNORECASE)
SECRET_SET = "<set, not saved>"
MAX_CONFIG_BYTES = 1 << 20


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The docstring as written, every flag's default shown, except a secret's (it may come from the env)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if SECRET_FLAG.search(action.dest):
            return action.help
        return super()._get_help_string(action)


def build_parser(dataclass_types: Sequence[type], description: str | None = None, **defaults: Any) -> HfArgumentParser:
    """A parser of every field of ``dataclass_types``; ``defaults`` replace field defaults for this entry point."""
    parser = HfArgumentParser(dataclass_types, description=description, formatter_class=_HelpFormatter)
    parser.add_argument(
        CONFIG_FLAG,
        default=None,
        metavar="FILE",
        help="YAML or JSON file of flag values (keys are flag names); flags on the command line override it",
    )
    if defaults:
        parser.set_defaults(**defaults)
    return parser


def read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"{CONFIG_FLAG} {path}: file not found")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise SystemExit(f"{CONFIG_FLAG} {path}: larger than {MAX_CONFIG_BYTES} bytes; not a flag file")
    import yaml

    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise SystemExit(f"{CONFIG_FLAG} {path}: expected a .yaml, .yml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise SystemExit(f"{CONFIG_FLAG} {path}: not readable ({err})") from err
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SystemExit(f"{CONFIG_FLAG} {path}: expected a mapping of flag names, got {type(values).__name__}")
    return values


def _as_argv(key: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [f"--{key}={str(value).lower()}"]
    if isinstance(value, list):
        return [f"--{key}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in value)]
    if isinstance(value, dict):  # a JSON-valued flag such as --gpt_config
        return [f"--{key}={json.dumps(value)}"]
    return [f"--{key}={value}"]


def _config_argv(parser: argparse.ArgumentParser, path: Path, tolerated: Collection[str] = ()) -> list[str]:
    """The file's values as flags (put before the command line's, so those win); unknown keys are an error.
    ``tolerated``: other keys passed on as flags (upstream ones, translated after)."""
    values = read_config(path)
    actions = {action.dest: action for action in parser._actions if action.dest not in ("help", "config")}
    argv: list[str] = []
    for key, value in values.items():
        if key not in actions and key.startswith("no_") and isinstance(value, bool):  # `no_progress: true`
            key, value = key[3:], not value
        if key not in actions and key in tolerated:
            argv += [f"--{key}"] if value is None else _as_argv(key, value)
            continue
        if key not in actions:
            raise SystemExit(f"{CONFIG_FLAG} {path}: unknown key {key!r} (not a flag of this script)")
        if value is None:  # "no value": the field's None, which no flag can spell
            actions[key].default, actions[key].required = None, False
        else:
            argv += _as_argv(key, value)
    return argv


def parse_flags(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    upstream: bool = False,
    **defaults: Any,
) -> tuple:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into one instance of each dataclass.

    ``upstream``: also accept upstream AR-GRPO's and TRL's flags (scripts/upstream_flags.py): those with a
    meaning here are translated, the others dropped with a one-line warning each.

    A dataclass whose ``__post_init__`` rejects the values ends the program with its message, not a traceback.
    """
    parser = build_parser(dataclass_types, description, **defaults)
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument(CONFIG_FLAG, default=None)
    config, _ = pre.parse_known_args(argv)
    tolerated: Collection[str] = ()
    if upstream:
        from scripts import upstream_flags

        tolerated = {*upstream_flags.ALIASES, *upstream_flags.IGNORED}
    if config.config:
        argv = _config_argv(parser, Path(config.config), tolerated) + argv
    if upstream:
        own = {action.dest for action in parser._actions}
        argv = upstream_flags.translate(argv, own)
    namespace = parser.parse_args(argv)
    try:
        return tuple(
            dtype(**{f.name: getattr(namespace, f.name) for f in fields(dtype) if f.init}) for dtype in dataclass_types
        )
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err


# ------------------------------------------------------------------------------------- the saved run config
def _without_url_credentials(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="<credentials removed>@" + parts.netloc.rsplit("@", 1)[1]))
    return value


def _values(source: Any) -> Mapping[str, Any]:
    if is_dataclass(source):
        return {f.name: getattr(source, f.name) for f in fields(source)}
    return source if isinstance(source, Mapping) else vars(source)


def saved_run_config(*sources: Any) -> dict:
    """The flags as every checkpoint records them: a secret (API key, password) only as set or not, and URLs
    without ``user:password@``, so no key reaches a checkpoint a colleague is sent. ``sources``: the parsed
    dataclasses (or a namespace / mapping of flag values)."""
    saved = {}
    for source in sources:
        for name, value in _values(source).items():
            if not isinstance(value, (str, int, float, bool, list, type(None))):
                continue
            if SECRET_FLAG.search(name):
                value = SECRET_SET if value else None
            elif isinstance(value, str):
                value = _without_url_credentials(value)
            saved[name] = value
    return saved
