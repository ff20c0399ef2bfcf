"""Pretrain the demo's small VQ tokenizer and GPT on the shapes world, with the project's own model classes.

The point is a *pretrained but imperfect* generator for GRPO to improve, made offline in a few minutes:
the same ``VQModel`` and ``GPT`` classes that load LlamaGen checkpoints, at a small size, trained briefly.
Checkpoints are written in LlamaGen's ``{"model": state_dict}`` layout, so the real training script loads
them exactly as it loads released weights. ``pretrain`` trains the pair once per setting and keeps it under the
demo's cache folder, so a second run goes straight to GRPO.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from autoregressive.checkpoint import save_checkpoint_atomic
from autoregressive.models.gpt import GPT, build_gpt
from autoregressive.text_encoder import T5TextEncoder
from demo.dataset import ShapesData, build_c2i, build_t2i
from demo.settings import DemoSettings
from demo.text_encoder import write_text_encoder
from demo.world import TAGS
from tokenizer.vq_model import VQ_TINY, VQConfig, VQModel, load_vq


@dataclass
class DemoModels:
    """Sizes of the demo's models; ``gpt_overrides`` are LlamaGen ``ModelArgs`` fields."""

    image_size: int = 32
    vq: dict = field(default_factory=lambda: dict(codebook_size=512, codebook_embed_dim=8, **VQ_TINY))
    gpt_model: str = "GPT-Small"
    gpt_overrides: dict = field(default_factory=dict)
    caption_dim: int = 64
    caption_tokens: int = 16  # word-level captions have at most 13 tokens (demo/text_encoder.py)

    @property
    def downsample(self) -> int:
        return VQConfig(**self.vq).downsample_factor

    @property
    def grid(self) -> int:
        return self.image_size // self.downsample


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """``steps`` random mini-batches of indices, reshuffling every epoch."""
    order = torch.randperm(n, generator=generator)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=generator), 0
        yield order[pos : pos + batch_size]
        pos += batch_size


def _cosine_lr(step: int, total: int, base: float, warmup: int = 20) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def train_vq(
    images: torch.Tensor,
    models: DemoModels,
    steps: int,
    seed: int,
    batch_size: int = 32,
    lr: float = 4e-3,
    restart_every: int = 10,
    object_weight: float = 4.0,
) -> tuple[VQModel, dict]:
    """Reconstruction (L1 + MSE) plus LlamaGen's codebook and commitment losses; images in [0, 1].

    Codes unused for ``restart_every`` steps are re-seeded from current encoder outputs (a standard remedy
    for codebook collapse): with a few hundred steps, as here, most of a fresh codebook would otherwise die.
    """
    torch.manual_seed(seed)
    vq = VQModel(VQConfig(**models.vq)).train()
    opt = torch.optim.Adam(vq.parameters(), lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    x_all = images * 2 - 1
    table = vq.quantize.embedding.weight
    counts = torch.zeros(table.shape[0])
    losses, restarted = [], 0
    start = time.perf_counter()
    for step, idx in enumerate(tqdm(_batches(len(x_all), batch_size, steps, g), total=steps, desc="VQ")):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, steps, lr)
        x = x_all[idx]
        quant, q, (_, _, codes) = vq.encode(x)
        recon = vq.decode(quant)
        # Objects cover a small part of each image; weighting their pixels up keeps the decoder from settling
        # on a plain background.
        weight = 1 + object_weight * (x < 0.99).any(dim=1, keepdim=True).float()
        err = recon - x
        loss = (weight * (err.abs() + err.pow(2))).mean() + q.vq_loss + q.commit_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        counts += torch.bincount(codes, minlength=counts.numel()).float()
        if (step + 1) % restart_every == 0 and step + 1 < steps * 0.8:
            dead = (counts == 0).nonzero().flatten()
            if dead.numel():
                with torch.no_grad():
                    z = vq.quant_conv(vq.encoder(x)).permute(0, 2, 3, 1).reshape(-1, table.shape[1])
                    pick = torch.randint(0, z.shape[0], (dead.numel(),), generator=g)
                    table[dead] = F.normalize(z[pick], dim=-1)
                restarted += dead.numel()
            counts.zero_()
    vq.eval().requires_grad_(False)
    return vq, {
        "vq_final_loss": sum(losses[-20:]) / 20,
        "vq_seconds": time.perf_counter() - start,
        "vq_codes_restarted": restarted,
    }


@torch.no_grad()
def tokenize(vq: VQModel, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat(
        [vq.encode_to_codes(images[i : i + batch_size] * 2 - 1) for i in range(0, len(images), batch_size)]
    )


def build_demo_gpt(models: DemoModels, model_type: str, seed: int) -> GPT:
    torch.manual_seed(seed)
    kwargs = dict(
        model_type=model_type, block_size=models.grid**2, vocab_size=models.vq["codebook_size"], **models.gpt_overrides
    )
    if model_type == "c2i":
        from demo.world import NUM_CLASSES

        kwargs.update(num_classes=NUM_CLASSES, cls_token_num=1)
    else:
        kwargs.update(caption_dim=models.caption_dim, cls_token_num=models.caption_tokens)
    return build_gpt(models.gpt_model, **kwargs)


def text_encoder(models: DemoModels, folder: Path, seed: int = 0) -> T5TextEncoder:
    """The frozen T5-style encoder of the demo (written to ``folder`` once), loaded like flan-t5-xl."""
    write_text_encoder(folder, d_model=models.caption_dim, seed=seed)
    return T5TextEncoder.from_pretrained(str(folder), max_length=models.caption_tokens)


def train_gpt(
    gpt: GPT,
    tokens: torch.Tensor,
    cond: torch.Tensor,
    cond_mask: torch.Tensor | None,
    steps: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    class_dropout: float = 0.1,
) -> dict:
    """Next-token cross-entropy with condition dropout (so classifier-free guidance works)."""
    gpt.train()
    opt = torch.optim.AdamW(gpt.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(seed + 1)
    losses = []
    start = time.perf_counter()
    for step, idx in enumerate(tqdm(_batches(len(tokens), batch_size, steps, g), total=steps, desc="GPT")):
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, steps, lr)
        drop = torch.rand(len(idx), generator=g) < class_dropout
        mask = None if cond_mask is None else cond_mask[idx]
        logits = gpt(tokens[idx], cond[idx], mask, cond_drop=drop)
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[idx].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    gpt.eval()
    return {"gpt_final_loss": sum(losses[-20:]) / 20, "gpt_seconds": time.perf_counter() - start}


def save_model(module: torch.nn.Module, path: Path, extra: dict | None = None) -> Path:
    return save_checkpoint_atomic({"model": module.state_dict(), **(extra or {})}, path)


# ------------------------------------------------------------------------------------- the cached pair
_PRETRAINING = ("seed", "pretrain_prompts", "images_per_prompt", "vq_steps", "gpt_steps")


def _scenes(settings: DemoSettings, tags: tuple[str, ...]) -> ShapesData:
    return build_t2i(settings.pretrain_prompts, settings.images_per_prompt, seed=settings.seed, tags=tags)


def tokenizer_scenes(settings: DemoSettings) -> ShapesData:
    """The VQ's images: scenes of every tag, whatever the GPT learns, so one tokenizer serves both tasks."""
    return _scenes(settings, TAGS)


def pretraining_data(settings: DemoSettings) -> ShapesData:
    """The GPT's data: captioned scenes of the chosen tags (t2i) or images of the classes in turn (c2i)."""
    if settings.task == "t2i":
        return _scenes(settings, settings.tag_list)
    return build_c2i(settings.pretrain_prompts * settings.images_per_prompt, seed=settings.seed)


def cache_key(settings: DemoSettings, models: DemoModels, *, with_task: bool = True) -> str:
    """A short hash of everything pretraining depends on: equal keys share pretrained models."""
    names = _PRETRAINING
    if with_task:  # the tags shape the t2i GPT's data, never the tokenizer's
        names += ("task", "tags") if settings.task == "t2i" else ("task",)
    relevant = {k: v for k, v in asdict(settings).items() if k in names}
    text = json.dumps({"settings": relevant, "models": asdict(models), "version": 5}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def cache_folder(out: Path, settings: DemoSettings, models: DemoModels) -> Path:
    """Where the pretrained models of these settings are kept under the demo's output root."""
    return out / "cache" / cache_key(settings, models)


def pretrain(settings: DemoSettings, models: DemoModels, cache: Path) -> tuple[Path, Path, dict]:
    """Train (or reuse) the VQ and the GPT; returns their checkpoint paths and timings.

    The GPT is kept in ``cache``; the VQ beside it, keyed without the task, so both tasks share one tokenizer
    when their pretraining sizes agree.
    """
    cache.mkdir(parents=True, exist_ok=True)
    vq_path = cache.parent / f"vq-{cache_key(settings, models, with_task=False)}" / "vq.pt"
    vq_path.parent.mkdir(exist_ok=True)
    gpt_path = cache / f"gpt_{settings.task}.pt"
    info: dict = {"cached": vq_path.is_file() and gpt_path.is_file()}
    if info["cached"]:
        return vq_path, gpt_path, info

    data = pretraining_data(settings)
    images = data.tensors()
    if vq_path.is_file():
        vq = load_vq(vq_path, "VQ-16", **models.vq)
    else:
        # One tokenizer for both tasks, trained on the multi-object scenes (LlamaGen's VQ serves c2i and t2i):
        # trained on one object per image, the VQ lost colours (docs/demo.md).
        vq_images = tokenizer_scenes(settings).tensors()
        vq, vq_info = train_vq(vq_images, models, settings.vq_steps, settings.seed)
        info.update(vq_info)
        save_model(vq, vq_path)
    tokens = tokenize(vq, images)
    gpt = build_demo_gpt(models, settings.task, settings.seed)
    if settings.task == "t2i":
        unique = sorted(set(data.captions))
        feats, masks = text_encoder(models, cache / "text_encoder").encode(unique)
        index = torch.tensor([unique.index(c) for c in data.captions])
        info.update(train_gpt(gpt, tokens, feats[index], masks[index], settings.gpt_steps, settings.seed))
    else:
        labels = torch.from_numpy(data.class_ids)
        info.update(train_gpt(gpt, tokens, labels, None, settings.gpt_steps, settings.seed))
    save_model(gpt, gpt_path)
    return vq_path, gpt_path, info
