"""Memory plan of a GRPO run: bytes per process for LlamaGen GPT-B..3B, by layout, checked against measurements.

    python -m bench.memory_plan table [--json out.json] [--markdown]     # the computed plan
    python -m bench.memory_plan measure --model GPT-B --task c2i          # one measurement (run it in a fresh process)
    python -m bench.memory_plan compare --models GPT-B,GPT-L [--json out.json]  # measure each in a subprocess

Parameter counts come from building the real architectures on the ``meta`` device (exact, no memory). The
activation formula counts the tensors this code's update pass keeps for backward (derived from
``autoregressive/models/gpt.py`` and the trainer's log-prob pass; tests/test_memory_plan.py checks it against the
saved tensors autograd records). ``measure`` (bench/memory_measure.py) runs GRPO steps on random weights of a
real size with a reduced batch and reports the process's peak RSS above its RSS before the models were built,
next to what the formula predicts for the same step. ``table`` applies the formula at the paper's rollout sizes
for four layouts (DDP without and with --bf16, FSDP over N processes, LoRA): memory budgets.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoregressive.models.gpt import GPT, GPT_models, ModelArgs  # noqa: E402

GB = 1e9
PAPER_MODELS = ["GPT-B", "GPT-L", "GPT-XL", "GPT-XXL", "GPT-3B"]
VOCAB = 16384
DOWNSAMPLE = 16
FP32, BF16 = 4, 2


@dataclass(frozen=True)
class Task:
    """A conditioning type at an image size, with the per-process rollout of the paper's launcher."""

    model_type: str
    image_size: int
    cls_token_num: int
    per_device_batch: int  # images per process per rollout (steps_per_generation = 1)
    num_generations: int = 8
    cfg: bool = True  # classifier-free guidance doubles the rows of sampling and of the guided log-prob pass
    caption_dim: int = 2048

    @property
    def image_tokens(self) -> int:
        return (self.image_size // DOWNSAMPLE) ** 2

    @property
    def positions(self) -> int:
        """Sequence length of the teacher-forced pass: condition positions + image tokens - 1."""
        return self.cls_token_num + self.image_tokens - 1

    @property
    def branches(self) -> int:
        return 2 if self.cfg else 1


# Upstream run_c2i_train.sh: per_device_train_batch_size 8, G 8; run_t2i_train.sh: per_device 16, G 8.
TASKS = {
    "c2i": Task("c2i", 384, 1, per_device_batch=8),
    "t2i": Task("t2i", 256, 120, per_device_batch=16),
}


# ------------------------------------------------------------------------------------------ architecture
def build_gpt(name: str, task: Task, device: str | torch.device = "meta", **overrides) -> GPT:
    """The registered GPT size for ``task``, on ``device`` (``meta``: shapes only, no memory)."""
    args = dict(
        model_type=task.model_type,
        block_size=task.image_tokens,
        cls_token_num=task.cls_token_num,
        vocab_size=VOCAB,
        caption_dim=task.caption_dim,
    )
    args = {**GPT_models[name].size, **args, **overrides}  # overrides may resize (small test configs)
    with torch.device(device):
        return GPT(ModelArgs(**args))


@dataclass(frozen=True)
class GPTShape:
    """What the formulas need from a GPT: exact counts from the built module, sizes from its config."""

    params: int
    buffer_elements: int  # the t2i null caption; part of every weight copy
    lora_targets: tuple[tuple[int, int], ...]  # (in, out) of each adapted linear: wqkv, wo, w1, w3, w2 per layer
    n_layer: int
    dim: int
    ffn_hidden: int
    n_head: int
    n_kv_head: int
    head_dim: int
    vocab: int
    caption_dim: int
    largest_unit_params: int  # the largest FSDP unit under --fsdp: a block, the logit head or the root's rest

    @classmethod
    def of(cls, model: GPT) -> GPTShape:
        c = model.config
        targets = tuple(
            (m.in_features, m.out_features)
            for layer in model.layers
            for m in (layer.attention.wqkv, layer.attention.wo, *(
                getattr(layer.feed_forward, n) for n in ("w1", "w3", "w2")))
        )
        params = sum(p.numel() for p in model.parameters())
        blocks = [sum(p.numel() for p in layer.parameters()) for layer in model.layers]
        head = model.output.weight.numel()
        return cls(
            params=params,
            buffer_elements=sum(b.numel() for b in model.buffers()),
            lora_targets=targets,
            n_layer=c.n_layer,
            dim=c.dim,
            ffn_hidden=c.ffn_hidden_dim,
            n_head=c.n_head,
            n_kv_head=c.n_kv_head,
            head_dim=c.head_dim,
            vocab=c.vocab_size,
            caption_dim=c.caption_dim,
            largest_unit_params=max(*blocks, head, params - sum(blocks) - head),
        )

    @property
    def block_linear_elements(self) -> int:
        """Weights of one transformer block's five projections (what FSDP gathers per block)."""
        return sum(i * o for i, o in self.lora_targets[: len(self.lora_targets) // self.n_layer])

    def lora_params(self, rank: int) -> int:
        return sum(rank * (i + o) for i, o in self.lora_targets)


def gpt_shape(name: str, task: Task, **overrides) -> GPTShape:
    return GPTShape.of(build_gpt(name, task, "meta", **overrides))


# -------------------------------------------------------------------------------------------- formulas
def layer_activation_elements(s: GPTShape) -> int:
    """Elements one transformer block keeps for backward per sequence position (fp32 update pass).

    Residual input, attention norm output, the fused qkv projection (split views keep it whole), rotated q and k,
    the attention output and its contiguous copy (wo's input), the residual sum and the FFN norm output: 12 x dim;
    SwiGLU keeps w1's output, silu's output, w3's output and their product: 4 x ffn_hidden; plus two RMS
    statistics and one log-sum-exp per head of the fused attention kernel (no seq x seq matrix).
    """
    return 12 * s.dim + 4 * s.ffn_hidden + 2 + s.n_head


def activation_bytes(
    s: GPTShape, task: Task, samples: int, checkpointing: bool = False, bytes_per: int = FP32
) -> int:
    """Tensors the update's forward keeps for backward, for ``samples`` images in one micro-batch.

    Rows = samples x branches (the guided log-prob pass runs both CFG branches). Per position: every block
    (``layer_activation_elements``), then the final norm and head input (3 x dim); per image token the
    log-softmax and its exp for the entropy (2 x vocab per sample, after guidance merges the branches); t2i adds
    the caption projection MLP (caption_dim + 2 x dim per caption position) and the boolean attention mask.
    With gradient checkpointing each block keeps only its input, and one block's activations are live again
    while it is recomputed.
    """
    rows, positions = samples * task.branches, task.positions
    per_layer = layer_activation_elements(s)
    trunk = s.n_layer * s.dim + per_layer if checkpointing else s.n_layer * per_layer
    elements = rows * positions * (trunk + 3 * s.dim)
    elements += samples * task.image_tokens * 2 * s.vocab
    mask_bytes = 0
    if task.model_type == "t2i":
        elements += rows * task.cls_token_num * (s.caption_dim + 2 * s.dim)
        mask_bytes = rows * positions * positions
    return elements * bytes_per + mask_bytes


def logits_bytes(s: GPTShape, task: Task, samples: int) -> int:
    """Transient fp32 logits of a log-prob pass over ``samples`` images: the branches, the guided logits and
    the log-softmax alive at once (the trainer's own estimate in ``_frozen_chunks``)."""
    return samples * (task.branches + 2) * task.image_tokens * s.vocab * FP32


def frozen_logits_bytes(s: GPTShape, task: Task, samples: int, logprob_memory_gb: float = 1.0) -> int:
    """A no-grad log-prob pass chunked by ``--logprob_memory_gb`` (at least one sample per chunk)."""
    per_sample = logits_bytes(s, task, 1)
    chunk = max(1, min(samples, int(logprob_memory_gb * 2**30 // per_sample)))
    return chunk * per_sample


def kv_cache_bytes(s: GPTShape, task: Task, samples: int, bytes_per: int = FP32) -> int:
    """Keys and values of every layer for the sampling batch (CFG rows included) over condition + image tokens."""
    rows = samples * task.branches
    return 2 * s.n_layer * rows * s.n_kv_head * (task.cls_token_num + task.image_tokens) * s.head_dim * bytes_per


def weight_bytes(s: GPTShape, bytes_per: int) -> int:
    return (s.params + s.buffer_elements) * bytes_per


def inference_copy_bytes(s: GPTShape) -> int:
    """The trainer's bf16 copy for sampling / frozen passes: bf16 trunk, fp32 output head."""
    head = s.vocab * s.dim
    return (s.params - head + s.buffer_elements) * BF16 + head * FP32


# ------------------------------------------------------------------------------------------------ layouts
@dataclass(frozen=True)
class Layout:
    """How the persistent state is held. ``shards``: processes FSDP splits policy/grads/optimizer/reference over."""

    name: str
    shards: int = 1
    lora_rank: int = 0
    bf16: bool = True  # --bf16: bf16 sampling copy, reference and KV cache; fp32 trained weights (the paper's runs)
    checkpointing: bool = False


def plan(s: GPTShape, task: Task, layout: Layout, samples: int | None = None, logprob_memory_gb: float = 1.0) -> dict:
    """Bytes per process: ``persistent`` parts live for the whole run; the peak adds the largest of the rollout's,
    the update's and (FSDP with bf16) the copy refresh's transient parts. Gradients count as persistent (a caching
    allocator keeps their blocks)."""
    samples = task.per_device_batch if samples is None else samples
    n = layout.shards
    inference_bytes = BF16 if layout.bf16 else FP32
    persistent: dict[str, int] = {}
    if layout.lora_rank:
        adapters = s.lora_params(layout.lora_rank)
        persistent["policy_weights"] = weight_bytes(s, BF16) + adapters * FP32  # frozen bf16 base + fp32 adapters
        persistent["gradients"] = adapters * FP32
        persistent["adamw"] = adapters * 2 * FP32
        persistent["reference"] = 0  # the base with adapters disabled
        persistent["sampling_copy"] = 0  # samples with the bf16 base and its adapters
    else:
        persistent["policy_weights"] = weight_bytes(s, FP32) // n
        persistent["gradients"] = s.params * FP32 // n
        persistent["adamw"] = s.params * 2 * FP32 // n
        persistent["reference"] = weight_bytes(s, inference_bytes) // n
        persistent["sampling_copy"] = inference_copy_bytes(s) if layout.bf16 else 0
    rollout = {
        "kv_cache": kv_cache_bytes(s, task, samples, inference_bytes),
        "frozen_logits": frozen_logits_bytes(s, task, samples, logprob_memory_gb),
    }
    update = {
        "activations": activation_bytes(s, task, samples, layout.checkpointing),
        "update_logits": logits_bytes(s, task, samples),
    }
    if layout.lora_rank:  # each adapter keeps its rank-r intermediate per row
        rows = samples * task.branches * task.positions
        update["activations"] += rows * layout.lora_rank * len(s.lora_targets) * FP32
    refresh: dict[str, int] = {}
    if n > 1 and not layout.lora_rank:
        # What --fsdp holds whole (grpo/sharding.py). The cached decode needs every layer at each of its steps. With
        # bf16 the sampling copy holds memory during the rollout only: allocated when it starts, filled one fp32
        # unit at a time (the refresh, before the KV cache exists), freed after the old-log-prob pass. Without bf16
        # the rollout gathers the whole fp32 policy for sampling. The update gathers two fp32 blocks at a time
        # (current + prefetched).
        persistent["sampling_copy"] = 0
        if layout.bf16:
            rollout["gathered_copy"] = inference_copy_bytes(s)
            refresh = {"gathered_copy": inference_copy_bytes(s), "gathered_unit": s.largest_unit_params * FP32}
        else:
            rollout["gathered_policy"] = weight_bytes(s, FP32)
        update["gathered_blocks"] = 2 * s.block_linear_elements * FP32
    phases = {"update": sum(update.values()), "rollout": sum(rollout.values()), "refresh": sum(refresh.values())}
    peak_phase = max(phases, key=phases.__getitem__)  # a tie goes to the first listed
    return {
        "persistent": persistent,
        "rollout": rollout,
        "update": update,
        "refresh": refresh,
        "peak": sum(persistent.values()) + phases[peak_phase],
        "peak_phase": peak_phase,
    }


# ------------------------------------------------------------------------------------------------- table
def parts_gb(result: dict) -> dict[str, float]:
    return {k: v / GB for part in ("persistent", "rollout", "update", "refresh") for k, v in result[part].items()}


def layouts(shards: int, lora_rank: int) -> list[Layout]:
    """DDP without and with --bf16, FSDP over ``shards`` processes and LoRA (both with --bf16, as the paper ran)."""
    return [
        Layout("DDP-fp32", bf16=False),
        Layout("DDP"),
        Layout(f"FSDP-{shards}", shards=shards),
        Layout(f"LoRA-r{lora_rank}", lora_rank=lora_rank),
    ]


def table(
    shards: int = 8,
    lora_rank: int = 16,
    reward_bytes: int = 0,
    gpu_gb: float = 80.0,
    batches: dict[str, int] | None = None,
) -> list[dict]:
    """One row per task x paper model x layout; ``batches`` overrides the images per process per rollout."""
    rows = []
    for task_name, task in TASKS.items():
        task = replace(task, per_device_batch=(batches or {}).get(task_name, task.per_device_batch))
        for model in PAPER_MODELS:
            s = gpt_shape(model, task)
            for layout in layouts(shards, lora_rank):
                full = plan(s, task, layout)
                ckpt = plan(s, task, replace(layout, checkpointing=True))
                total = full["peak"] + reward_bytes
                total_ckpt = ckpt["peak"] + reward_bytes
                rows.append(
                    {
                        "task": task_name,
                        "samples_per_process": task.per_device_batch,
                        "model": model,
                        "params": s.params,
                        "layout": layout.name,
                        "gb": parts_gb(full),
                        "activations_checkpointed_gb": ckpt["update"]["activations"] / GB,
                        "reward_models_gb": reward_bytes / GB,
                        "peak_gb": total / GB,
                        "peak_checkpointed_gb": total_ckpt / GB,
                        "fits_80gb": total <= gpu_gb * GB,
                        "fits_80gb_checkpointed": total_ckpt <= gpu_gb * GB,
                    }
                )
    return rows


def markdown(rows: list[dict]) -> str:
    cols = ["policy_weights", "gradients", "adamw", "reference", "copy", "kv_cache", "activations"]
    head = ["task", "model", "layout", "weights", "grads", "AdamW", "ref.", "bf16/gathered copy", "KV cache",
            "activations", "act. (ckpt)", "rewards", "peak", "peak (ckpt)", "fits 80 GB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        fits = "yes" if r["fits_80gb"] else ("with ckpt" if r["fits_80gb_checkpointed"] else "no")
        copies = ("sampling_copy", "gathered_copy", "gathered_policy")
        gb = {**r["gb"], "copy": sum(r["gb"].get(c, 0.0) for c in copies)}
        cells = [r["task"], r["model"], r["layout"], *(f"{gb[c]:.1f}" for c in cols)]
        cells += [f"{r['activations_checkpointed_gb']:.1f}", f"{r['reward_models_gb']:.1f}"]
        cells += [f"{r['peak_gb']:.1f}", f"{r['peak_checkpointed_gb']:.1f}", fits]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="the computed plan for GPT-B..3B x (DDP, FSDP, LoRA) x (c2i 384, t2i 256)")
    t.add_argument("--shards", type=int, default=8, help="FSDP processes")
    t.add_argument("--lora_rank", type=int, default=16)
    t.add_argument("--reward_dtype_bytes", type=int, default=BF16, help="bytes per reward-model parameter")
    t.add_argument("--published_reward_counts", action="store_true", help="skip building the reward models")
    t.add_argument("--c2i_batch", type=int, default=TASKS["c2i"].per_device_batch, help="c2i images per process")
    t.add_argument("--t2i_batch", type=int, default=TASKS["t2i"].per_device_batch, help="t2i images per process")
    t.add_argument("--markdown", action="store_true", help="print a markdown table instead of JSON")
    t.add_argument("--json", type=Path, help="also write the JSON here")
    m = sub.add_parser("measure", help="peak RSS of one GRPO run of --steps steps, in this process")
    c = sub.add_parser("compare", help="measure each model in a fresh subprocess, one at a time")
    for p in (m, c):
        p.add_argument("--task", choices=sorted(TASKS), default="c2i")
        p.add_argument("--prompts", type=int, default=1)
        p.add_argument("--group", type=int, default=2)
        p.add_argument("--steps", type=int, default=2)
    m.add_argument("--model", choices=sorted(GPT_models), required=True)
    c.add_argument("--models", default="GPT-B,GPT-L")
    c.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    c.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from bench.memory_measure import measure_in_subprocess, measure_step
    from bench.reward_model_sizes import reward_model_params

    if args.command == "measure":
        torch.set_num_threads(1)
        print(json.dumps(measure_step(args.model, TASKS[args.task], args.prompts, args.group, args.steps)))
        return
    if args.command == "compare":
        results = [
            measure_in_subprocess(name, args.task, args.prompts, args.group, args.steps, args.timeout)
            for name in args.models.split(",")
        ]
        text = json.dumps({"results": results}, indent=1)
    else:
        rewards = reward_model_params(build=not args.published_reward_counts)
        reward_bytes = sum(r["params"] for r in rewards.values()) * args.reward_dtype_bytes
        rows = table(args.shards, args.lora_rank, reward_bytes, batches={"c2i": args.c2i_batch, "t2i": args.t2i_batch})
        text = json.dumps({"reward_models": rewards, "tasks": {k: asdict(v) for k, v in TASKS.items()},
                           "rows": rows}, indent=1)
        if args.markdown:
            print(markdown(rows))
    if not getattr(args, "markdown", False):
        print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
