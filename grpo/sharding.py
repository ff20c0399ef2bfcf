"""``--fsdp``: the policy sharded with torch's FSDP2 (``fully_shard``), whole only for the rollout's sampling.

The trainer shards the policy itself instead of using accelerate's FSDP plugin: accelerate applies that plugin on
GPU-class devices only (a CPU launch silently trains unsharded DDP), while ``fully_shard`` is the same code over
gloo on CPU and nccl on GPUs, so the path users run on GPUs is the one the CPU tests run.

- Sharding: each transformer block is one FSDP unit (all-gathered for its forward and backward, resharded after),
  the logit head another, the root unit holds the embeddings and final norm. The optimizer sees the sharded
  parameters, so gradients and AdamW state are sharded too. The frozen KL reference is sharded the same way.
- Sampling: the KV-cached decoder calls the model once per token; gathering every block at every token would
  multiply the communication by the image length, so the rollout samples from whole weights held for the rollout
  only (:func:`rollout_weights`). With ``--bf16`` that is the bf16 sampling copy: its storage is allocated when the
  rollout starts, filled one FSDP unit at a time (all-gather the unit's fp32 shards, cast them into the copy,
  free them), and freed when the rollout ends, so no process ever holds the whole fp32 policy. Without ``--bf16``
  the policy itself samples: :func:`gathered` all-gathers the whole fp32 policy for ``generate`` and reshards it.
- Checkpoints: full (unsharded) state dicts gathered onto the main process, which writes the files a DDP run
  writes (``model.safetensors``; the optimizer state keyed by parameter name, which DDP's loader also accepts).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import Accelerator
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from autoregressive.checkpoint import CheckpointError
from autoregressive.models.precision import refresh_from
from grpo.config import GRPOConfig
from grpo.model_setup import trainable_parameters
from grpo.optimizer import build_optimizer

FULL_ON_MAIN = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Gather whole tensors onto the main process's CPU (the others get an empty dict)."""


def check_fsdp_request(config: GRPOConfig, num_processes: int) -> None:
    """Refuse ``--fsdp`` where it would not shard or where the trainer cannot gather what it needs (early, before
    any sharding): one process has nothing to shard over, and silently training unsharded would hide the memory
    a user planned for."""
    if not config.fsdp:
        return
    if num_processes < 2 or not dist.is_initialized():
        raise ValueError(
            "--fsdp shards the policy over the processes of a distributed launch, but this run has "
            f"{num_processes} process(es); launch with `torchrun --nproc_per_node=N` (N >= 2), or drop --fsdp"
        )
    if config.use_peft:
        raise ValueError("--fsdp with --use_peft is not supported: LoRA trains few weights; use DDP (drop --fsdp)")
    if config.compile:
        raise ValueError("--fsdp with --compile is not supported (FSDP's hooks break the compiled decode step)")


def is_sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def prepare_training(
    accelerator: Accelerator, policy: nn.Module, reference: nn.Module | None, config: GRPOConfig
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The trained model and its optimizer: DDP through accelerate, or (``--fsdp``) the policy and the frozen
    reference sharded here, never wrapped in DDP, with the optimizer over the policy's shards."""
    if not config.fsdp:  # a LoRA policy's optimizer sees the adapters only
        return accelerator.prepare(policy, build_optimizer(trainable_parameters(policy), config))
    model = shard_model(policy, accelerator.device)
    if reference is not None:
        shard_model(reference, accelerator.device, frozen=True)
    return model, build_optimizer(trainable_parameters(model), config)


def shard_model(model: nn.Module, device: torch.device, frozen: bool = False) -> FSDPModule:
    """Shard ``model`` (a GPT) in place: one FSDP unit per transformer block, one for the logit head (kept fp32 in a
    bf16 inference copy, and a unit holds one dtype), the embeddings and final norm in the root unit. A ``frozen``
    model (no backward to reshard it) frees every unit's gathered weights right after its forward."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    model.to(device)
    for block in model.layers:
        fully_shard(block, mesh=mesh)
    fully_shard(model.output, mesh=mesh)
    fully_shard(model, mesh=mesh)
    # FSDP warns that the GPT returns a view (its logits past the condition positions): an in-place op on it would skip
    # the backward's all-gather. Nothing here writes logits in place (the FSDP-vs-DDP test compares the gradients).
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module \(\w+\) returned a view tensor")
    if frozen:
        model.set_reshard_after_forward(True)  # also the root's, which FSDP keeps gathered for a backward
    _forward_through_the_root(model, device)
    return model


@torch.no_grad()
def _forward_through_the_root(model: nn.Module, device: torch.device) -> None:
    """FSDP picks its root at the first forward, and sampling enters the blocks through prefill/decode_step rather
    than the root's forward (else the first block run would claim the root role). One no-grad forward of one token
    through the root makes it known; every unit is resharded after it, so nothing stays gathered."""
    config = model.config
    dtype = next(model.parameters()).dtype
    if config.model_type == "c2i":
        cond = torch.zeros(1, dtype=torch.long, device=device)
    else:
        cond = torch.zeros(1, config.cls_token_num, config.caption_dim, dtype=dtype, device=device)
    was_training = model.training
    model.eval()  # no dropout: the forward draws no random numbers
    model(torch.zeros(1, 1, dtype=torch.long, device=device), cond)
    model.train(was_training)
    for unit in model.modules():
        if isinstance(unit, FSDPModule):
            unit.reshard()


@contextmanager
def gathered(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with whole weights inside the block (one all-gather per unit), resharded on exit; a plain
    module passes through."""
    if not is_sharded(model):
        yield model
        return
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()
            # FSDP's defaults: units free their weights after forward, the root keeps its own for the backward.
            unit.set_reshard_after_forward(unit is not model, recurse=False)


@contextmanager
def rollout_weights(policy: nn.Module, sampling_copy: nn.Module | None) -> Iterator[nn.Module]:
    """The model a rollout samples and scores its old log-probs with: the policy itself (fp32), or the bf16
    sampling copy refreshed from it. Under ``--fsdp`` the copy holds storage inside the block only: allocated and
    filled unit by unit from the shards on entry (:func:`refresh_by_unit`), freed on exit. Sampling from a sharded
    fp32 policy still needs :func:`gathered` around ``generate``."""
    if sampling_copy is None:
        yield policy
    elif not is_sharded(policy):
        yield refresh_from(sampling_copy, policy)
    else:
        allocate_storage(sampling_copy)
        try:
            yield refresh_by_unit(sampling_copy, policy)
        finally:
            free_storage(sampling_copy)


@torch.no_grad()
def refresh_by_unit(target: nn.Module, model: FSDPModule) -> nn.Module:
    """Copy the sharded ``model``'s weights into ``target`` (an unsharded copy with the same parameter names, in
    its own dtypes), all-gathering one FSDP unit at a time: the whole fp32 model never exists on a process."""
    targets = dict(target.named_parameters())
    for unit, names in _units_with_their_parameters(model):
        unit.unshard()  # not recursive: this unit's own parameters only, registered whole on their modules
        try:
            for name in names:
                targets[name].copy_(model.get_parameter(name))
        finally:
            unit.reshard()
    for dst, src in zip(target.buffers(), model.buffers(), strict=True):  # buffers are never sharded
        dst.copy_(src)
    return target


def _units_with_their_parameters(model: FSDPModule) -> list[tuple[FSDPModule, list[str]]]:
    """Each FSDP unit of ``model`` with the names of the parameters it manages: those of its submodules that are
    not units of their own (the innermost unit around a parameter owns it)."""
    units = {name: module for name, module in model.named_modules() if isinstance(module, FSDPModule)}
    owned: dict[str, list[str]] = {name: [] for name in units}
    for name, _ in model.named_parameters():
        owner = max((unit for unit in units if unit == "" or name.startswith(unit + ".")), key=len)
        owned[owner].append(name)
    return [(units[name], owned[name]) for name in units if owned[name]]


def free_storage(model: nn.Module) -> None:
    """Release the memory of every parameter and buffer of ``model``, keeping the tensors (shapes, dtypes, ties);
    :func:`allocate_storage` gives it back. The FSDP trainer's bf16 sampling copy lives like this between
    rollouts, as FSDP keeps its own unsharded parameters."""
    for tensor in (*model.parameters(), *model.buffers()):
        tensor.untyped_storage().resize_(0)


def allocate_storage(model: nn.Module) -> None:
    """Give back the memory :func:`free_storage` released (uninitialised: refresh the weights next)."""
    for tensor in (*model.parameters(), *model.buffers()):
        extent = tensor.storage_offset() + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride())) + 1
        needed = extent * tensor.element_size() if tensor.numel() else 0
        storage = tensor.untyped_storage()
        if storage.nbytes() < needed:  # tensors sharing a storage (tied weights) grow it once to the largest need
            storage.resize_(needed)


def gradient_sync(accelerator: Accelerator, model: nn.Module, syncs: bool) -> AbstractContextManager:
    """Gradient accumulation without communication on the micro-batches that do not step (``no_sync``)."""
    if is_sharded(model):
        model.set_requires_gradient_sync(syncs)
        return nullcontext()
    return nullcontext() if syncs else accelerator.no_sync(model)


def clip_grad_norm(accelerator: Accelerator, model: nn.Module, max_norm: float) -> float:
    """Clip to ``max_norm``; returns the total gradient norm before clipping, over every shard."""
    if not is_sharded(model):
        return float(accelerator.clip_grad_norm_(model.parameters(), max_norm))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    total = float(norm.full_tensor() if isinstance(norm, DTensor) else norm)
    coefficient = max_norm / (total + 1e-6)  # torch's clip_grad_norm_ rule
    if coefficient < 1.0:
        torch._foreach_mul_(grads, coefficient)
    return total


# ------------------------------------------------------------------------------------------ state dicts
def model_state_dict(accelerator: Accelerator, model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on the main process (collective under FSDP: every process must call it)."""
    if not is_sharded(model):
        return accelerator.get_state_dict(model)
    return get_model_state_dict(model, options=FULL_ON_MAIN)


def optimizer_state_dict(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The whole optimizer state on the main process; under FSDP keyed by parameter name (collective)."""
    if not is_sharded(model):
        return optimizer.state_dict()
    return get_optimizer_state_dict(model, optimizer, options=FULL_ON_MAIN)


def load_model_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: Path) -> None:
    """Load a full state dict into a sharded model, refusing missing, unexpected, mis-shaped or non-finite
    tensors with an error naming ``source`` (every process reads the file and keeps its own shard)."""
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}  # DTensor: global shape
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    wrong = [k for k in expected if k in state_dict and tuple(state_dict[k].shape) != expected[k]]
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    for what, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", wrong), ("non-finite", bad)):
        if names:
            raise CheckpointError(f"{source}: does not fit the model: {what} tensors {names[:5]}")
    set_model_state_dict(model, dict(state_dict), options=StateDictOptions(full_state_dict=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a full optimizer state (keyed by parameter name, or by position as a DDP run saves it)."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    saved = [i for group in state["param_groups"] for i in group["params"]]
    by_name = dict(zip(saved, names, strict=True))  # the same order as the optimizer's parameters (checked)
    state = {
        "state": {by_name[i]: entry for i, entry in state["state"].items()},
        "param_groups": [{**g, "params": [by_name[i] for i in g["params"]]} for g in state["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
