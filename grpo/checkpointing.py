"""Training checkpoints: written to a temporary folder, renamed into place, rotated only after success.

Checkpoints travel between people and clusters, so resuming one must never run code. Nothing here is
unpickled: the model is safetensors, the optimizer state a ``torch.save`` file read with ``weights_only``,
and the scheduler, trainer state and RNG states are JSON. accelerate's ``save_state``/``load_state`` are
not used because they unpickle the scheduler and RNG files with full pickle. Under ``--fsdp`` the model and
optimizer state are gathered whole onto the main process (grpo/sharding.py), so the files are the same as DDP's.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from autoregressive.checkpoint import (
    CheckpointError,
    load_state_dict_strict,
    read_state_dict,
    read_torch_file,
    save_checkpoint_atomic,
)
from autoregressive.run_layout import (  # noqa: F401 (re-exported: the checkpoint's file names)
    MODEL_FILE,
    OPTIMIZER_FILE,
    RNG_FILE,
    SCHEDULER_FILE,
    STATE_FILE,
    checkpoint_dir,
    numbered_checkpoints,
)
from grpo.sharding import is_sharded, load_model_state, load_optimizer_state, model_state_dict, optimizer_state_dict

# Set in the trainer state of a checkpoint saved with --save_only_model (no optimizer/scheduler/RNG state).
MODEL_ONLY_KEY = "model_only"
# What accelerate's save_state wrote in older checkpoints; never loaded (its loader uses full pickle).
LEGACY_FILES = ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin", "scheduler.bin")


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (those holding a trainer state), oldest first."""
    found = numbered_checkpoints(output_dir)
    return [found[step] for step in sorted(found) if (found[step] / STATE_FILE).is_file()]


def resolve_checkpoint(spec: str, output_dir: str | Path) -> Path:
    """``latest`` or a path -> an existing, complete checkpoint folder (else a clear error)."""
    if spec == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(
                f"--resume_from_checkpoint latest: no complete checkpoint in {output_dir}"
            )
        return found[-1]
    path = Path(spec)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {spec}: not a complete checkpoint (no {STATE_FILE})"
        )
    return path


# ------------------------------------------------------------------------------------------ RNG states
def _bytes_to_text(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _text_to_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)


def rng_states() -> dict[str, Any]:
    """This process's Python, NumPy, torch CPU and CUDA generator states as JSON-able values."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _bytes_to_text(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        states["cuda"] = [_bytes_to_text(s) for s in torch.cuda.get_rng_state_all()]
    return states


def parse_rng_states(states: Any, source: Path) -> tuple:
    """Check a ``rng_states()`` value against scratch generators; anything malformed is an error naming ``source``."""
    try:
        if not isinstance(states, dict):
            raise TypeError(f"expected a JSON object, got {type(states).__name__}")
        version, internal, gauss_next = states["python"]
        python = (int(version), tuple(int(x) for x in internal), None if gauss_next is None else float(gauss_next))
        kind, keys, pos, has_gauss, cached = states["numpy"]
        numpy = (str(kind), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))
        cpu = _text_to_bytes(states["torch"])
        cuda = [_text_to_bytes(s) for s in states.get("cuda", [])]
        random.Random().setstate(python)
        np.random.RandomState().set_state(numpy)
        torch.Generator().set_state(cpu)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OverflowError) as err:
        raise CheckpointError(f"{source}: not a valid RNG state file ({type(err).__name__}: {err})") from err
    return python, numpy, cpu, cuda


def set_rng_states(parsed: tuple) -> None:
    """Apply what ``parse_rng_states`` checked."""
    python, numpy, cpu, cuda = parsed
    random.setstate(python)
    np.random.set_state(numpy)
    torch.set_rng_state(cpu)
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------------------ JSON files
def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    """A JSON file of a checkpoint; a missing, truncated or garbled one is an error naming it."""
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found (incomplete checkpoint?)")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt JSON ({err})") from err


# ------------------------------------------------------------------------------------------ save / load
def _check_shape_like(expected: Any, given: Any, source: Path, where: str) -> None:
    """``given`` has the keys, list lengths and value kinds of ``expected`` (numbers may differ in value)."""
    numbers = (int, float)
    if isinstance(expected, dict):
        ok = isinstance(given, dict) and set(given) == set(expected)
    elif isinstance(expected, list):
        ok = isinstance(given, list) and len(given) == len(expected)
    elif isinstance(expected, bool) or expected is None:
        ok = type(given) is type(expected)
    elif isinstance(expected, numbers):
        ok = isinstance(given, numbers) and not isinstance(given, bool)
    else:
        ok = type(given) is type(expected)
    if not ok:
        raise CheckpointError(
            f"{source}: unexpected {where} (expected {type(expected).__name__}"
            + (f" with keys {sorted(expected)}" if isinstance(expected, dict) else "")
            + f", got {type(given).__name__})"
        )
    if isinstance(expected, dict):
        for key in expected:
            _check_shape_like(expected[key], given[key], source, f"{where}[{key!r}]")
    elif isinstance(expected, list):
        for i, (e, g) in enumerate(zip(expected, given, strict=True)):
            _check_shape_like(e, g, source, f"{where}[{i}]")


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: Any) -> None:
    """Per-parameter tensors must have their parameter's shape (torch only checks the group sizes on load)."""
    ids = [i for group in state["param_groups"] for i in group["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(ids) != len(params):
        raise ValueError(f"it holds {len(ids)} parameters, the model has {len(params)}")
    shapes = dict(zip(ids, (p.shape for p in params), strict=True))
    for i, entry in state["state"].items():
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name!r} of parameter {i} is a {type(value).__name__}, not a tensor")
            if value.ndim and value.shape != shapes[i]:
                raise ValueError(f"{name!r} of parameter {i} has shape {list(value.shape)}, not {list(shapes[i])}")


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | Path,
    step: int,
    state: dict[str, Any],
    total_limit: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    save_only_model: bool = False,
) -> Path:
    """Save model, optimizer, scheduler and every process's RNG states plus ``state`` (step, data position).

    ``save_only_model`` (upstream/TRL's flag) keeps the model and ``state`` only: the checkpoint evaluates and
    exports, but cannot resume (``load_checkpoint`` says so).

    Everything goes to ``.checkpoint-N.tmp``, which is renamed to ``checkpoint-N`` only once complete; older
    checkpoints beyond ``total_limit`` are renamed away before they are deleted, so a kill at any moment
    leaves only complete ``checkpoint-N`` folders.
    """
    root = Path(output_dir)
    final = checkpoint_dir(root, step)
    tmp = root / f".{final.name}.tmp"
    if accelerator.is_main_process:
        for leftover in root.glob(".checkpoint-*"):  # from a run killed mid-save: never complete, never read
            shutil.rmtree(leftover, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    weights = model_state_dict(accelerator, model)  # whole on the main process (gathered under --fsdp)
    if save_only_model:
        optimizer = scheduler = None
    else:
        _write_json(tmp / RNG_FILE.format(rank=accelerator.process_index), rng_states())
    optimizer_state = None if optimizer is None else optimizer_state_dict(model, optimizer)
    if accelerator.is_main_process:
        save_checkpoint_atomic({k: v.detach().cpu() for k, v in weights.items()}, tmp / MODEL_FILE)
        if optimizer_state is not None:
            save_checkpoint_atomic(optimizer_state, tmp / OPTIMIZER_FILE)
        if scheduler is not None:
            _write_json(tmp / SCHEDULER_FILE, scheduler.state_dict())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        saved = {**state, "num_processes": accelerator.num_processes}
        _write_json(tmp / STATE_FILE, {**saved, MODEL_ONLY_KEY: True} if save_only_model else saved)
        if final.exists():
            old = root / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
        for stale in list_checkpoints(root)[: -max(total_limit, 1)]:
            doomed = stale.with_name(f".{stale.name}.deleting")
            stale.rename(doomed)  # atomic: never a half-deleted checkpoint-N that looks complete
            shutil.rmtree(doomed)
    accelerator.wait_for_everyone()
    return final


def _refuse_legacy(path: Path) -> None:
    legacy = [name for name in LEGACY_FILES if (path / name).exists()]
    if legacy and not (path / OPTIMIZER_FILE).exists():
        raise CheckpointError(
            f"{path}: written by an older version with accelerate's pickle files ({', '.join(legacy)}); "
            "resuming it would unpickle them, which can run code, so it is refused. To continue from its "
            f"weights, start a new run with --gpt_ckpt {path / MODEL_FILE}."
        )


def load_checkpoint(
    accelerator: Accelerator,
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote; every file is read without unpickling, errors name the file."""
    path = Path(path)
    _refuse_legacy(path)
    state = read_json(path / STATE_FILE)
    if isinstance(state, dict) and state.get(MODEL_ONLY_KEY):
        raise CheckpointError(
            f"{path}: saved with --save_only_model, so it holds the model only (no optimizer, scheduler or RNG "
            "state, as upstream/TRL) and cannot resume the run. Start a new run from its weights with "
            f"--gpt_ckpt {path / MODEL_FILE}, or save resumable checkpoints without --save_only_model."
        )
    counters = ("step", "rollout_index") if isinstance(state, dict) and "rollout_index" in state else ("step",)
    if not isinstance(state, dict) or not all(type(state.get(k)) is int and state[k] >= 0 for k in counters):
        raise CheckpointError(f"{path / STATE_FILE}: no non-negative integer {' and '.join(counters)}")
    rng_path = path / RNG_FILE.format(rank=accelerator.process_index)
    saved_by = state.get("num_processes", accelerator.num_processes)
    if not rng_path.is_file() and saved_by != accelerator.num_processes:
        raise CheckpointError(
            f"{path}: saved by {saved_by} process(es) but resumed with {accelerator.num_processes}; there is no "
            f"{rng_path.name}. Resume with the same number of processes (bit-exact resume needs every RNG state)."
        )
    rng = parse_rng_states(read_json(rng_path), rng_path)  # read and check every file before changing anything
    scheduler_state = read_json(path / SCHEDULER_FILE) if scheduler is not None else None
    optimizer_state = read_torch_file(path / OPTIMIZER_FILE) if optimizer is not None else None
    if scheduler is not None:  # LR schedulers copy their state into __dict__: only accept what ours holds
        _check_shape_like(scheduler.state_dict(), scheduler_state, path / SCHEDULER_FILE, "state")
    model_path = path / MODEL_FILE
    if optimizer is not None:
        try:
            _check_optimizer_state(optimizer, optimizer_state)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise CheckpointError(
                f"{path / OPTIMIZER_FILE}: does not fit the optimizer ({type(err).__name__}: {err})"
            ) from err
    if is_sharded(model):  # every process reads the whole file and keeps its shard
        load_model_state(model, read_state_dict(model_path), model_path)
    else:
        load_state_dict_strict(accelerator.unwrap_model(model), read_state_dict(model_path), source=model_path)
    if optimizer is not None:
        try:
            load_optimizer_state(model, optimizer, optimizer_state)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as err:
            raise CheckpointError(
                f"{path / OPTIMIZER_FILE}: does not fit the optimizer ({type(err).__name__}: {err})"
            ) from err
    if scheduler is not None:
        scheduler.load_state_dict(scheduler_state)
    set_rng_states(rng)
    return state
