"""Random-weight files for the dry run (bench/dry_run.py): every model of the paper's C2I run, written to a folder
in the layout its real loader reads, so the run builds each one through the project's own code paths.

Two sizes: ``real`` (the published architectures; Qwen2.5-VL with fewer decoder layers and vision blocks, same
widths) and ``small`` (tiny widths of the same architectures, for the test). MANIQA has one size: pyiqa fixes its
ViT-B/8 backbone, so ``small`` only averages fewer crops.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch

# Qwen2.5-VL-3B-Instruct's published config (widths, heads, rope); depth is chosen per run.
QWEN_3B_TEXT = dict(
    hidden_size=2048,
    intermediate_size=11008,
    num_attention_heads=16,
    num_key_value_heads=2,
    vocab_size=151936,
    rope_theta=1_000_000.0,
    rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
)
QWEN_3B_LAYERS, QWEN_3B_VISION_DEPTH = 36, 32
QWEN_3B_VISION = dict(
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    out_hidden_size=2048,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
)
QWEN_FULL_ATTENTION_EVERY = 8  # the 3B's vision tower: full attention in blocks 7, 15, 23, 31; windowed elsewhere
QWEN_SMALL_TEXT = dict(
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=1024,
    rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
)
QWEN_SMALL_VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_heads=2,
    out_hidden_size=64,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=56,
)

CLIP_VIT_L14 = dict(  # openai/clip-vit-large-patch14
    text_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
    vision_config=dict(
        hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, patch_size=14
    ),
    projection_dim=768,
)
CLIP_SMALL = dict(
    text_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, patch_size=32),
    projection_dim=16,
)
HPS_SMALL_ARCH = "dry-run-small"
HPS_SMALL_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "patch_size": 32, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@dataclass(frozen=True)
class Sizes:
    """What one dry run builds. ``gpt_config``/``vq_config`` are the entry points' JSON overrides (empty: the
    registered architecture)."""

    gpt_model: str = "GPT-L"
    gpt_config: dict = field(default_factory=dict)
    image_size: int = 384
    codebook_size: int = 16384
    vq_config: dict = field(default_factory=dict)
    clip: dict = field(default_factory=lambda: CLIP_VIT_L14)
    hps_arch: str = "ViT-H-14"
    maniqa_crops: int = 20
    qwen_layers: int = 4
    qwen_vision_depth: int = 8
    qwen_text: dict = field(default_factory=lambda: QWEN_3B_TEXT)
    qwen_vision: dict = field(default_factory=lambda: QWEN_3B_VISION)


SMALL = Sizes(
    gpt_model="GPT-Tiny",
    image_size=64,
    codebook_size=64,
    vq_config={"ch": 32, "z_channels": 32},
    clip=CLIP_SMALL,
    hps_arch=HPS_SMALL_ARCH,
    maniqa_crops=1,
    qwen_layers=2,
    qwen_vision_depth=2,
    qwen_text=QWEN_SMALL_TEXT,
    qwen_vision=QWEN_SMALL_VISION,
)


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@contextmanager
def offline_timm():
    """MANIQA's backbone asks timm for ImageNet weights; build it without them (the checkpoint replaces them)."""
    import timm

    original = timm.create_model
    with mock.patch("timm.create_model", lambda *a, **k: original(*a, **{**k, "pretrained": False})):
        yield


def write_gpt(directory: Path, sizes: Sizes) -> tuple[Path, int]:
    """A c2i GPT of ``sizes`` with a spread output head (LlamaGen zero-initialises it) as safetensors."""
    from safetensors.torch import save_file

    from autoregressive.models.gpt import build_gpt

    grid = sizes.image_size // 16
    model = build_gpt(
        sizes.gpt_model, model_type="c2i", block_size=grid * grid, cls_token_num=1,
        vocab_size=sizes.codebook_size, num_classes=1000, **sizes.gpt_config,
    )
    with torch.no_grad():
        torch.nn.init.normal_(model.output.weight, std=2.0 / model.config.dim**0.5)
    path = directory / "gpt.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, count_params(model)


def write_vq(directory: Path, sizes: Sizes) -> tuple[Path, int]:
    from safetensors.torch import save_file

    from tokenizer.vq_model import VQ_models

    model = VQ_models["VQ-16"](codebook_size=sizes.codebook_size, codebook_embed_dim=8, **sizes.vq_config)
    path = directory / "vq.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, count_params(model)


def write_clip(directory: Path, sizes: Sizes) -> tuple[Path, int]:
    """A CLIPModel folder (safetensors) with the offline CLIP BPE tokenizer and CLIP's image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from reward_utils.clip_vocab import clip_tokenizer

    folder = directory / "clip"
    text = {**sizes.clip["text_config"], "vocab_size": 49408, "max_position_embeddings": 77}
    vision = {**sizes.clip["vision_config"], "image_size": 224}
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=sizes.clip["projection_dim"]))
    model.save_pretrained(folder, safe_serialization=True)
    clip_tokenizer(directory / "clip_vocab").save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder, count_params(model)


def write_hps(directory: Path, sizes: Sizes) -> tuple[Path, int]:
    """hpsv2's OpenCLIP ``sizes.hps_arch`` (built as ``load_hps`` builds it) saved as an HPS checkpoint."""
    from hpsv2.src.open_clip import add_model_config, create_model_and_transforms

    if sizes.hps_arch == HPS_SMALL_ARCH:
        config = directory / f"{HPS_SMALL_ARCH}.json"
        config.write_text(json.dumps(HPS_SMALL_CONFIG))
        add_model_config(config)
    model, _, _ = create_model_and_transforms(sizes.hps_arch, None, precision="amp", device="cpu", output_dict=True)
    path = directory / "hps.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path, count_params(model)


def write_maniqa(directory: Path, sizes: Sizes) -> tuple[Path, int]:
    """pyiqa's MANIQA (KonIQ variant, the ``maniqa`` metric) as ``{"params": state_dict}``."""
    from pyiqa.archs.maniqa_arch import MANIQA

    with offline_timm():
        model = MANIQA(pretrained=False, train_dataset="koniq", scale=0.8, test_sample=sizes.maniqa_crops)
    path = directory / "maniqa.pth"
    torch.save({"params": model.state_dict()}, path)
    return path, count_params(model)


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
QWEN_ANSWER = ['{"score":', "1}"]  # in range for the 0-5 quality question and the 0-1 fake/weird questions
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_processor(words: Sequence[str] = QWEN_ANSWER) -> Any:
    """Qwen2.5-VL's processor with a word-level tokenizer over ``words`` and the chat roles (the real BPE
    vocabulary needs a download); the image processor is Qwen2-VL's own (14-px patches, 2x2 merge)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2TokenizerFast,
        Qwen2VLImageProcessorFast,
        Qwen2VLVideoProcessor,
    )

    vocabulary = ["[UNK]", *words, "user", "assistant", "<|video_pad|>", *QWEN_SPECIAL]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocabulary)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=QWEN_SPECIAL[1:],
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessorFast(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )


def qwen_config(sizes: Sizes, tokenizer: Any) -> Any:
    """Qwen2.5-VL with ``sizes``' widths, ``qwen_layers`` decoder layers and ``qwen_vision_depth`` vision blocks
    (full attention every 8th block, as in the 3B; the last block when the tower is shorter)."""
    from transformers import Qwen2_5_VLConfig

    depth = sizes.qwen_vision_depth
    full = [i for i in range(depth) if i % QWEN_FULL_ATTENTION_EVERY == QWEN_FULL_ATTENTION_EVERY - 1] or [depth - 1]
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        **sizes.qwen_text,
        num_hidden_layers=sizes.qwen_layers,
        tie_word_embeddings=True,
        vision_config={**sizes.qwen_vision, "depth": depth, "fullatt_block_indexes": full},
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def write_qwen(directory: Path, sizes: Sizes) -> tuple[Path, int]:
    """A Qwen2.5-VL folder (safetensors + processor) that ``load_local_qwen`` reads."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = directory / "qwen"
    processor = qwen_processor()
    model = Qwen2_5_VLForConditionalGeneration(qwen_config(sizes, processor.tokenizer))
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder, count_params(model)


def qwen_answer_ids(tokenizer: Any) -> list[int]:
    return [*tokenizer.convert_tokens_to_ids(QWEN_ANSWER), tokenizer.eos_token_id]


class ForcedAnswer:
    """Logits processor that makes a random-weight judge answer ``{"score": 1}``: random weights never write
    JSON, and the reward would (rightly) refuse them. It reads only the last token, so it holds across calls."""

    def __init__(self, answer_ids: list[int]):
        self.next_of = dict(zip(answer_ids, answer_ids[1:]))
        self.first = answer_ids[0]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(scores, float("-inf"))
        for row, last in enumerate(input_ids[:, -1].tolist()):
            forced[row, self.next_of.get(last, self.first)] = 0.0
        return forced


WRITERS = {
    "gpt": write_gpt,
    "vq": write_vq,
    "clip": write_clip,
    "hps": write_hps,
    "maniqa": write_maniqa,
    "qwen": write_qwen,
}
