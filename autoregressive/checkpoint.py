"""Reading, strict loading and atomic saving of checkpoints (GPT and VQ alike).

LlamaGen ships weights in several layouts and its own loaders use ``strict=False``, which silently
accepts a checkpoint for the wrong model size. Everything here fails loudly instead, with a message that
names the file and the offending keys, while still accepting every layout LlamaGen writes.
"""

from __future__ import annotations

import argparse
import copy
import json
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
    "UPSTREAM_PARTS",
    "UPSTREAM_INDEX",
    "read_json_capped",
    "weights_file_in",
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
# Upstream AR-GRPO saves its ImgGen_HF model with Hugging Face's save_pretrained: one state dict holding the GPT
# under "gpt_model." and the VQ under "vq_model.", in model.safetensors or in shards named by an index file.
UPSTREAM_PARTS = ("gpt_model", "vq_model")
UPSTREAM_INDEX = "model.safetensors.index.json"
# Weights files looked for, in order, when a folder (a checkpoint-N) is given instead of a file.
_FOLDER_WEIGHTS = ("model.safetensors", UPSTREAM_INDEX, "pytorch_model.bin")
# JSON side files (index, config) are small; a bigger one is not what it claims to be.
MAX_JSON_BYTES = 16 << 20


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


def _load_safetensors_file(path: Path, part: str | None = None) -> dict[str, torch.Tensor]:
    """The file's tensors; with ``part``, only those of an upstream file's ``part.`` (others stay on disk)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            keys = list(handle.keys())
            if part is not None and _is_upstream(keys):
                keys = [key for key in keys if not key.startswith(_other_parts(part))]
            return {key: handle.get_tensor(key) for key in keys}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err


def read_json_capped(path: str | os.PathLike, limit: int = MAX_JSON_BYTES) -> Any:
    """A small JSON side file of a checkpoint (index, config); too big, unreadable or garbled is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    if path.stat().st_size > limit:
        raise CheckpointError(f"{path}: larger than {limit} bytes; not a checkpoint's JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt JSON ({err})") from err


def _load_sharded_safetensors(index_path: Path, part: str | None) -> dict[str, torch.Tensor]:
    """Hugging Face's sharded layout: every shard the index names (plain file names beside it), strictly."""
    index = read_json_capped(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: no 'weight_map' of tensor name -> shard file")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(f"{index_path}: shard {shard!r} is not a file name beside the index")
    state_dict: dict[str, torch.Tensor] = {}
    for shard in shards:
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{index_path}: names shard {shard}, which is missing")
        tensors = _load_safetensors_file(shard_path, part)
        listed = {key for key, name in weight_map.items() if name == shard}
        if part is not None and _is_upstream(listed):
            listed = {key for key in listed if not key.startswith(_other_parts(part))}
        if set(tensors) != listed:
            extra, absent = sorted(set(tensors) - listed), sorted(listed - set(tensors))
            raise CheckpointError(
                f"{shard_path}: does not hold what {index_path.name} lists (not listed: {_first(extra) or '-'}; "
                f"missing: {_first(absent) or '-'})"
            )
        state_dict.update(tensors)
    return state_dict


def _is_upstream(keys: Iterable[str]) -> bool:
    return any(key.startswith(f"{name}.") for key in keys for name in UPSTREAM_PARTS)


def _other_parts(part: str) -> tuple[str, ...]:
    return tuple(f"{name}." for name in UPSTREAM_PARTS if name != part)


def _select_part(state_dict: dict[str, torch.Tensor], path: Path, part: str | None) -> dict[str, torch.Tensor]:
    """An upstream AR-GRPO state dict's ``part`` (``gpt_model``/``vq_model``) with the prefix removed.

    Keys outside the known parts are an error, not dropped: strict loading must see every weight.
    """
    if not _is_upstream(state_dict):
        return state_dict
    if part is None:
        raise CheckpointError(
            f"{path}: an upstream AR-GRPO checkpoint (keys prefixed {', '.join(p + '.' for p in UPSTREAM_PARTS)}); "
            "say which part to read (part='gpt_model' or 'vq_model')"
        )
    prefixes = tuple(f"{name}." for name in UPSTREAM_PARTS)
    stray = [key for key in state_dict if not key.startswith(prefixes)]
    if stray:
        raise CheckpointError(
            f"{path}: upstream AR-GRPO checkpoint with keys outside {', '.join(prefixes)}: {_first(stray)}"
        )
    prefix = f"{part}."
    selected = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    if not selected:
        raise CheckpointError(f"{path}: upstream AR-GRPO checkpoint without {prefix}* weights")
    return selected


def weights_file_in(folder: str | os.PathLike) -> Path:
    """The weights file of a checkpoint folder (ours: accelerate's model.safetensors; upstream's: it or its
    shard index); an error listing the folder otherwise."""
    folder = Path(folder)
    for name in _FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p.name for p in folder.iterdir())
    raise CheckpointError(
        f"{folder}: no model weights ({' or '.join(_FOLDER_WEIGHTS)}, as accelerate's save_state or upstream's "
        f"save_pretrained write them); the folder holds {found[:10]}"
    )


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


def read_state_dict(
    path: str | os.PathLike, *, use_ema: bool = False, part: str | None = None
) -> dict[str, torch.Tensor]:
    """Return the model state dict stored in ``path``, whatever LlamaGen or AR-GRPO layout it uses.

    Accepts ``{"model": sd}`` (DDP training files, which also hold optimizer/steps/args/ema),
    ``{"module": sd}`` (DeepSpeed), ``{"state_dict": sd}``, a raw state dict (FSDP consolidated),
    ``.safetensors`` files, Hugging Face's sharded ``model.safetensors.index.json`` and a checkpoint folder
    holding one of these. ``use_ema`` selects the ``ema`` weights of a training file. Upstream AR-GRPO
    checkpoints hold the GPT and the VQ in one state dict (``gpt_model.*``, ``vq_model.*``): ``part`` names
    the one to return, without its prefix.
    """
    path = Path(path)
    if part is not None and part not in UPSTREAM_PARTS:
        raise ValueError(f"part must be one of {UPSTREAM_PARTS}, got {part!r}")
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.is_dir():
        path = weights_file_in(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint path is not a file")
    if path.suffix == ".safetensors" or path.name.endswith(".safetensors.index.json"):
        if use_ema:
            raise CheckpointError(
                f"{path}: use_ema is not supported for .safetensors (it holds one state dict)"
            )
        if path.suffix == ".json":
            tensors = _load_sharded_safetensors(path, part)
        else:
            tensors = _load_safetensors_file(path, part)
        return _select_part(_as_state_dict(tensors, path, "safetensors content"), path, part)
    return _select_part(_unwrap(_load_torch_file(path), path, use_ema), path, part)


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
