"""Tiny models and flags the evaluation-script tests share (the ``models`` fixture in conftest.py writes them)."""

from __future__ import annotations

from pathlib import Path

import torch

from autoregressive.models.gpt import build_gpt
from tokenizer.vq_model import VQ_Tiny

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NUM_CLASSES, CAPTION_DIM, CAPTION_TOKENS = 10, 32, 24
N_FID, EVAL_SIZE = 7, 12


def model_flags(root: Path, kind: str) -> list[str]:
    flags = ["--gpt_model", "GPT-Tiny", "--vq_ckpt", str(root / "vq.pt"), "--vq_model", "VQ-Tiny"]
    flags += ["--codebook_size", "48", "--downsample_size", "4", "--image_size", "16", "--no_progress"]
    if kind == "c2i":
        return flags + ["--num_classes", str(NUM_CLASSES)]
    return flags + ["--caption_dim", str(CAPTION_DIM), "--cls_token_num", str(CAPTION_TOKENS), "--text_encoder", "tiny"]


def tiny_gpt(kind: str):
    if kind == "c2i":
        extra = {"num_classes": NUM_CLASSES}
    else:
        extra = {"caption_dim": CAPTION_DIM, "cls_token_num": CAPTION_TOKENS}
    model = build_gpt("GPT-Tiny", model_type=kind, block_size=16, vocab_size=48, **extra)
    torch.nn.init.normal_(model.output.weight, std=0.5)  # LlamaGen zero-inits the head: samples would be uniform
    if kind == "c2i":
        torch.nn.init.normal_(model.cls_embedding.embedding_table.weight)  # make the class matter
    return model.eval()


def write_models(root: Path) -> Path:
    """Tiny c2i and t2i GPT checkpoints and a VQ-Tiny under ``root`` (the ``models`` fixture)."""
    torch.manual_seed(0)
    torch.save({"model": tiny_gpt("c2i").state_dict()}, root / "c2i.pt")
    torch.save({"model": tiny_gpt("t2i").state_dict()}, root / "t2i.pt")
    vq = VQ_Tiny(codebook_size=48)
    torch.save({"model": vq.state_dict()}, root / "vq.pt")
    return root


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def c2i_argv(models: Path, sample_dir: Path, *extra: str) -> list[str]:
    argv = ["--gpt_ckpt", str(models / "c2i.pt"), *model_flags(models, "c2i"), "--sample_dir", str(sample_dir)]
    return argv + ["--num_fid_samples", str(N_FID), "--image_size_eval", str(EVAL_SIZE), *extra]
