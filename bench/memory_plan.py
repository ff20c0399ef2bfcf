"""Memory plan of a GRPO run: bytes per process for LlamaGen GPT-B..3B, by layout, checked against measurements.

    python -m bench.memory_plan table [--json out.json] [--markdown]     # the computed plan
    python -m bench.memory_plan measure --model GPT-B --task c2i          # one measurement (run it in a fresh process)
    python -m bench.memory_plan compare --models GPT-B,GPT-L [--json out.json]  # measure each in a subprocess

Parameter counts come from building the real architectures on the ``meta`` device (exact, no memory). The
activation formula counts the tensors this code's update pass keeps for backward (derived from
``autoregressive/models/gpt.py`` and the trainer's log-prob pass; tests/test_memory_plan.py checks it against the
saved tensors autograd records). ``measure`` runs ``GRPOTrainer.train()`` on random weights of a real size with a
reduced batch and reports the process's peak RSS above its RSS before the models were built, next to what the
formula predicts for the same step. ``table`` applies the formula at the paper's rollout sizes for four layouts
(DDP without and with --bf16, FSDP over N processes, LoRA); it describes budgets, not code paths that exist here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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

    @classmethod
    def of(cls, model: GPT) -> GPTShape:
        c = model.config
        targets = tuple(
            (m.in_features, m.out_features)
            for layer in model.layers
            for m in (layer.attention.wqkv, layer.attention.wo, *(
                getattr(layer.feed_forward, n) for n in ("w1", "w3", "w2")))
        )
        return cls(
            params=sum(p.numel() for p in model.parameters()),
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
    """Bytes per process: ``persistent`` parts live for the whole run; the peak adds the larger of the rollout's
    and the update's transient parts. Gradients count as persistent (a caching allocator keeps their blocks)."""
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
    if n > 1 and not layout.lora_rank:
        # Not sharded: the cached decode needs every layer at each of its steps, so the rollout gathers the whole
        # policy (its bf16 inference copy, or fp32) and frees it after; the update gathers two fp32 blocks at a
        # time (current + prefetched).
        persistent["sampling_copy"] = 0
        rollout["gathered_policy"] = inference_copy_bytes(s) if layout.bf16 else weight_bytes(s, FP32)
        update["gathered_blocks"] = 2 * s.block_linear_elements * FP32
    rollout_total, update_total = sum(rollout.values()), sum(update.values())
    total_persistent = sum(persistent.values())
    return {
        "persistent": persistent,
        "rollout": rollout,
        "update": update,
        "peak": total_persistent + max(rollout_total, update_total),
        "peak_phase": "update" if update_total >= rollout_total else "rollout",
    }


# -------------------------------------------------------------------------------------------- reward models
PUBLISHED_REWARD_PARAMS = {
    "CLIP ViT-L/14": 427_616_513,
    "HPSv2 (OpenCLIP ViT-H-14)": 986_109_441,
    "MANIQA (ViT-B/8 + Swin heads)": 135_747_530,
    "Qwen2.5-VL-3B": 3_754_622_976,
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _clip_vit_l14() -> int:
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
        vision_config=dict(
            hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, patch_size=14
        ),
        projection_dim=768,
    )
    with torch.device("meta"):
        return _count(CLIPModel(config))


def _hpsv2_vit_h14() -> int:
    import open_clip

    with torch.device("meta"):
        return _count(open_clip.CLIP(**open_clip.get_model_config("ViT-H-14")))


def _maniqa() -> int:
    """pyiqa's MANIQA; its ViT backbone is created without downloading weights. Built on CPU (~0.5 GB): the
    Swin blocks read a tensor value while building, which the meta device cannot give."""
    from unittest.mock import patch

    import pyiqa.archs.maniqa_arch as maniqa_arch

    create = maniqa_arch.timm.create_model

    def offline(name, pretrained=False, **kwargs):
        return create(name, pretrained=False, **kwargs)

    with patch.object(maniqa_arch.timm, "create_model", offline):
        return _count(maniqa_arch.MANIQA(pretrained=False))


def _qwen25_vl_3b() -> int:
    """Qwen2.5-VL-3B-Instruct's published config over transformers' (7B) defaults."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
            num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
        ),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048),
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        return _count(Qwen2_5_VLForConditionalGeneration(config))


REWARD_BUILDERS = {
    "CLIP ViT-L/14": (_clip_vit_l14, "transformers CLIPConfig (ViT-L/14 sizes), meta device"),
    "HPSv2 (OpenCLIP ViT-H-14)": (_hpsv2_vit_h14, "open_clip ViT-H-14 config, meta device"),
    "MANIQA (ViT-B/8 + Swin heads)": (_maniqa, "pyiqa MANIQA, built on CPU without weights"),
    "Qwen2.5-VL-3B": (_qwen25_vl_3b, "transformers Qwen2_5_VLConfig (3B sizes), meta device"),
}


def reward_model_params(build: bool = True) -> dict[str, dict]:
    """Parameters of the paper's reward models (shared by the c2i and t2i reward sets; each loaded once)."""
    out = {}
    for name, (builder, how) in REWARD_BUILDERS.items():
        if build:
            try:
                out[name] = {"params": builder(), "source": how}
                continue
            except Exception as error:  # a package missing or unable to build offline: say so, use the paper's count
                how = f"published count ({type(error).__name__}: {error})"
        else:
            how = "published count"
        out[name] = {"params": PUBLISHED_REWARD_PARAMS[name], "source": how}
    return out


# ------------------------------------------------------------------------------------------------- table
def parts_gb(result: dict) -> dict[str, float]:
    return {k: v / GB for part in ("persistent", "rollout", "update") for k, v in result[part].items()}


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
        gb = {**r["gb"], "copy": r["gb"]["sampling_copy"] + r["gb"].get("gathered_policy", 0.0)}
        cells = [r["task"], r["model"], r["layout"], *(f"{gb[c]:.1f}" for c in cols)]
        cells += [f"{r['activations_checkpointed_gb']:.1f}", f"{r['reward_models_gb']:.1f}"]
        cells += [f"{r['peak_gb']:.1f}", f"{r['peak_checkpointed_gb']:.1f}", fits]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- measuring
def rss_bytes(field: str = "VmRSS") -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _token_images(image_size: int):
    """A weight-free VQ stand-in: each token's value painted over its 16x16 patch, so no decoder weights enter
    the measurement (the plan counts the GPT step; the VQ decoder and reward models are listed apart)."""

    def decode(tokens: torch.Tensor) -> torch.Tensor:
        grid = image_size // DOWNSAMPLE
        values = (tokens.float() / VOCAB).view(-1, 1, grid, grid)
        return values.repeat_interleave(DOWNSAMPLE, 2).repeat_interleave(DOWNSAMPLE, 3).expand(-1, 3, -1, -1)

    return decode


def _brightness(images, prompts, metadata):
    score = images.mean(dim=(1, 2, 3))
    return score, {"brightness": score}


def measure_step(
    model: str,
    task: Task,
    prompts: int = 1,
    group: int = 2,
    steps: int = 2,
    overrides: dict | None = None,
) -> dict:
    """Peak RSS of ``steps`` GRPO steps (rollout + update; from the second step AdamW's states exist) above the
    RSS before the models were built, and the formula's prediction for the same step.

    Run in a fresh process for a clean peak; in a process that already peaked higher, VmHWM is reset first.
    """
    from accelerate import Accelerator
    from transformers import get_scheduler  # noqa: F401  (the trainer imports it lazily: keep it out of the peak)

    from grpo.config import GRPOConfig
    from grpo.prompt_sources import ClassPrompts
    from grpo_trainer import GRPOTrainer

    overrides = overrides or {}
    samples = prompts * group
    baseline = rss_bytes()
    reset_peak_rss()
    torch.manual_seed(0)
    policy = build_gpt(model, task, "cpu", **overrides)
    shape = GPTShape.of(policy)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            max_steps=steps,
            num_generations=group,
            per_device_train_batch_size=samples,
            gen_cfg_cfg_scale=2.0 if task.cfg else 1.0,
            beta=0.1,
            save_steps=0,
            image_log_steps=0,
            report_to="none",
        )
        if task.model_type == "c2i":
            def encode(values):
                return torch.tensor(values, dtype=torch.long), None
        else:
            def encode(values):
                feats = torch.randn(len(values), task.cls_token_num, task.caption_dim)
                return feats, torch.ones(len(values), task.cls_token_num, dtype=torch.long)
        trainer = GRPOTrainer(
            config,
            policy,
            _token_images(task.image_size),
            _brightness,
            ClassPrompts(1000 if task.model_type == "c2i" else 10, 0),
            encode,
            Accelerator(cpu=True),
        )
        del policy
        trainer.train()
        peak = rss_bytes("VmHWM")
    predicted = plan(shape, replace(task, per_device_batch=samples), Layout("measured", bf16=False))
    return {
        "model": model,
        "task": asdict(task),
        "overrides": overrides,
        "samples": samples,
        "steps": steps,
        "params": shape.params,
        "baseline_rss_gb": baseline / GB,
        "measured_gb": (peak - baseline) / GB,
        "predicted_gb": predicted["peak"] / GB,
        "predicted_phase": predicted["peak_phase"],
        "predicted_parts_gb": parts_gb(predicted),
        "relative_error": predicted["peak"] / (peak - baseline) - 1,
        "threads": torch.get_num_threads(),
    }


def measure_in_subprocess(model: str, task_name: str, prompts: int, group: int, steps: int, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "bench.memory_plan", "measure", "--model", model, "--task", task_name,
        "--prompts", str(prompts), "--group", str(group), "--steps", str(steps),
    ]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"measuring {model} {task_name} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
