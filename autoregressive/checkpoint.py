"""Reading, strict loading and atomic saving of checkpoints (GPT and VQ alike).

LlamaGen ships weights in several layouts and its own loaders use ``strict=False``, which silently
accepts a checkpoint for the wrong model size. Everything here fails loudly instead, with a message that
names the file and the offending keys, while still accepting every layout LlamaGen writes.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import re
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "read_state_dict",
    "read_torch_file",
    "load_state_dict_strict",
    "save_checkpoint_atomic",
    "STALE_KEY_SUFFIXES",
]

# Wrapper keys in the order LlamaGen's sample scripts try them: DDP training, DeepSpeed, generic.
_WRAPPER_KEYS = ("model", "module", "state_dict")
# Prefixes added by wrappers (DDP/accelerate, torch.compile) when a wrapped model's state dict is saved.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Entries that older code saved by accident; they are recomputed at run time, never learned.
STALE_KEY_SUFFIXES = ("freqs_cis", ".kv_cache.k_cache", ".kv_cache.v_cache")
# Non-tensor types that LlamaGen training files pickle next to the weights (``args``).
_SAFE_GLOBALS = [argparse.Namespace]
_MAX_LISTED = 5


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the model it is loaded into."""


def _is_stale(key: str) -> bool:
    return key == "freqs_cis" or any(key.endswith(suffix) for suffix in STALE_KEY_SUFFIXES)


def _load_torch_file(path: Path) -> Any:
    """torch.load restricted to tensors/containers plus argparse.Namespace (no arbitrary unpickling)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    # torch.save writes a zip archive; files from torch < 1.6 are a raw pickle (protocol byte 0x80).
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{path}: not a torch checkpoint (unknown file header {head!r}; empty or corrupt?)"
        )
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            found = re.search(r"GLOBAL (\S+)", str(err))
            culprit = f" (it needs {found.group(1)})" if found else ""
            raise CheckpointError(
                f"{path}: refused to unpickle it: it holds objects other than tensors, containers and "
                f"argparse.Namespace{culprit}. If you trust the file, re-save only its state dict."
            ) from err
        raise CheckpointError(f"{path}: file is truncated or corrupt (UnpicklingError: {err})") from err
    except MemoryError:
        raise
    except Exception as err:  # any parse failure deep inside torch means a broken file
        # Broken zip archives surface as RuntimeError ("PytorchStreamReader failed ..."), broken legacy
        # pickles as EOFError/KeyError/ValueError...: all are reported as one clear, chained error.
        raise CheckpointError(f"{path}: file is truncated or corrupt ({type(err).__name__}: {err})") from err


def read_torch_file(path: str | os.PathLike) -> Any:
    """Any ``torch.save`` file (e.g. an optimizer state) read without running code; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    return _load_torch_file(path)


def _load_safetensors_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err


def _strip_wrapper_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.``/``_orig_mod.`` prefix that *every* key carries (saved from a wrapped model)."""
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(key.startswith(prefix) for key in state_dict):
                state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
                changed = True
    return state_dict


def _as_state_dict(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: {what} is not a non-empty dict of tensors (got {type(obj).__name__})")
    bad = [
        key for key, value in obj.items() if not isinstance(key, str) or not isinstance(value, torch.Tensor)
    ]
    if bad:
        raise CheckpointError(
            f"{path}: {what} has {len(bad)} entries that are not name -> tensor, e.g. "
            f"{', '.join(repr(k) for k in bad[:_MAX_LISTED])}"
        )
    return _strip_wrapper_prefix(dict(obj))


def _unwrap(obj: Any, path: Path, use_ema: bool) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    if use_ema:
        if "ema" not in obj:
            raise CheckpointError(
                f"{path}: use_ema was requested but the file has no 'ema' entry "
                f"(top-level keys: {sorted(map(str, obj))[:10]})"
            )
        return _as_state_dict(obj["ema"], path, "'ema'")
    for key in _WRAPPER_KEYS:
        if key in obj:
            return _as_state_dict(obj[key], path, repr(key))
    if obj and all(isinstance(value, torch.Tensor) for value in obj.values()):
        return _as_state_dict(obj, path, "raw state dict")
    raise CheckpointError(
        f"{path}: none of the known checkpoint layouts ({', '.join(repr(k) for k in _WRAPPER_KEYS)} "
        f"or a raw name -> tensor dict); top-level keys: {sorted(map(str, obj))[:10]}"
    )


def read_state_dict(path: str | os.PathLike, *, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Return the model state dict stored in ``path``, whatever LlamaGen layout it uses.

    Accepts ``{"model": sd}`` (DDP training files, which also hold optimizer/steps/args/ema),
    ``{"module": sd}`` (DeepSpeed), ``{"state_dict": sd}``, a raw state dict (FSDP consolidated) and
    ``.safetensors`` files. ``use_ema`` selects the ``ema`` weights of a training file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint path is not a file")
    if path.suffix == ".safetensors":
        if use_ema:
            raise CheckpointError(
                f"{path}: use_ema is not supported for .safetensors (it holds one state dict)"
            )
        return _as_state_dict(_load_safetensors_file(path), path, "safetensors content")
    return _unwrap(_load_torch_file(path), path, use_ema)


def _first(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _meta_twin(module: nn.Module) -> nn.Module:
    """``module``'s structure with every parameter and buffer on the meta device: a dry run of a load
    allocates nothing and leaves ``module`` untouched when the load fails."""
    memo: dict[int, Any] = {}
    for param in module.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), param.requires_grad)
    for buffer in module.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(module, memo)


def load_state_dict_strict(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str | os.PathLike,
    hint: str = "",
    check_finite: bool = True,
) -> None:
    """Load ``state_dict`` into ``module``, refusing any missing, unexpected or mis-shaped key.

    The keys are checked by torch's own strict ``load_state_dict`` on a meta-device twin first, so a file
    that does not fit raises before a single weight is copied; the error names ``source`` and ends with
    ``hint`` (e.g. which ``--gpt_model`` matches the file). Stale entries (``freqs_cis``, KV caches) are
    dropped unless the module itself expects them. Tensors are cast to the dtype of the module's own
    tensors, so bf16 files load into fp32 models.
    """
    expected = module.state_dict().keys()
    given = {key: value for key, value in state_dict.items() if key in expected or not _is_stale(key)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*meta parameter.*no-op")  # the dry run copies nothing
        try:
            _meta_twin(module).load_state_dict(given, strict=True)
        except RuntimeError as err:
            message = f"{source}: checkpoint does not fit the model. {err}"
            raise CheckpointError(message + (f"\n{hint}" if hint else "")) from err
    if check_finite:
        bad = [k for k, v in given.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise CheckpointError(
                f"{source}: non-finite values (NaN/inf) in {len(bad)} tensor(s): {_first(bad)}"
            )
    # copy_ inside load_state_dict casts each tensor to the dtype of the module's own tensor.
    module.load_state_dict(given, strict=True)


def save_checkpoint_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` so that ``path`` is either the old file or the complete new one, never half-written.

    ``.safetensors`` paths take a flat name -> tensor dict; anything else is written with ``torch.save``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so os.replace is an atomic rename; "x" mode keeps the usual umask permissions.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as handle:
            if path.suffix == ".safetensors":
                from safetensors.torch import save

                handle.write(save({k: v.contiguous() for k, v in obj.items()}))
            else:
                torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
