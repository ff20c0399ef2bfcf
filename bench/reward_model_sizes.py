"""Parameter counts of the paper's reward models for bench/memory_plan.py, from their real architectures built on
the ``meta`` device (MANIQA on the CPU: it reads a tensor value while building)."""

from __future__ import annotations

import torch

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
    """Qwen2.5-VL-3B-Instruct's published config (the dry run's constants) over transformers' (7B) defaults."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from bench.dry_run_models import QWEN_3B_LAYERS, QWEN_3B_TEXT, QWEN_3B_VISION, QWEN_3B_VISION_DEPTH

    config = Qwen2_5_VLConfig(
        text_config=dict(**QWEN_3B_TEXT, num_hidden_layers=QWEN_3B_LAYERS, tie_word_embeddings=True),
        vision_config=dict(**QWEN_3B_VISION, depth=QWEN_3B_VISION_DEPTH),
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


