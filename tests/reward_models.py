"""Random-weight reward models for tests, built offline in the layout each shipped loader reads (CLIP folder,
HPS checkpoint, ImageReward model, MANIQA weights). Weights are scaled where random init would give nearly
constant scores, so comparisons between two scoring paths are not void. Test files import from here (and from
tests/helpers.py), never from each other."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import torch

from tests.helpers import HPS_TINY_ARCH, HPS_TINY_CONFIG, no_pretrained_timm, tiny_clip

IMAGE_REWARD_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "on",
    "in",
    "photo",
    "painting",
    "dog",
    "cat",
    "red",
    "blue",
    "car",
    "street",
    "lighthouse",
    "watercolor",
    "bowl",
    "soup",
]
IMAGE_REWARD_MED_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 512,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 64,
    "encoder_width": 768,
    "add_cross_attention": True,
}
"""ImageReward's BERT, shallow (2 layers); hidden size 768 as the package's MLP requires."""


def write_tiny_clip(folder: Path) -> Path:
    """:func:`tests.helpers.tiny_clip` saved as a CLIP folder (safetensors, CLIP BPE tokenizer, the openai
    processor config) that ``load_hf_clip`` reads."""
    from transformers import CLIPImageProcessor

    from reward_utils.clip_vocab import clip_tokenizer

    torch.manual_seed(0)
    tiny_clip().save_pretrained(folder, safe_serialization=True)
    clip_tokenizer(folder / "vocab").save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def write_tiny_aesthetic_mlp(path: Path, embed_dim: int = 16) -> Path:
    """An aesthetic head in the published key layout, with N(0, 1) weights (the default init is too flat for a
    linear stack: scores would barely vary)."""
    from reward_utils.aesthetic import AestheticMLP

    torch.manual_seed(1)
    mlp = AestheticMLP(embed_dim=embed_dim).eval()
    with torch.no_grad():
        for layer in mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0.0, 1.0)
    torch.save(mlp.state_dict(), path)
    return path


def write_tiny_hps(directory: Path) -> Path:
    """hpsv2's OpenCLIP :data:`HPS_TINY_ARCH` (registered with the package's config registry, so ``load_hps``
    can build it) with random weights, saved as an HPS checkpoint ``{"state_dict": ...}``."""
    from hpsv2.src.open_clip import add_model_config, create_model_and_transforms

    (directory / f"{HPS_TINY_ARCH}.json").write_text(json.dumps(HPS_TINY_CONFIG))
    add_model_config(directory / f"{HPS_TINY_ARCH}.json")
    torch.manual_seed(0)
    model, _, _ = create_model_and_transforms(HPS_TINY_ARCH, None, precision="amp", device="cpu", output_dict=True)
    with torch.no_grad():  # let image content, not the shared embeddings, dominate the random features
        model.visual.conv1.weight.mul_(20)
    path = directory / "HPS_test.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def offline_blip_tokenizer(directory: Path):
    """Patch ImageReward's BLIP ``init_tokenizer`` (it fetches bert-base-uncased) with a ``BertTokenizer`` over
    a small WordPiece vocab written to ``directory``; use as a context manager around building the model."""
    from transformers import BertTokenizer

    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *IMAGE_REWARD_WORDS]) + "\n")

    def offline_tokenizer():
        tokenizer = BertTokenizer(str(vocab))
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        tokenizer.enc_token_id = tokenizer.additional_special_tokens_ids[0]
        return tokenizer

    return mock.patch("ImageReward.models.BLIP.blip_pretrain.init_tokenizer", offline_tokenizer)


def write_image_reward_med_config(directory: Path) -> Path:
    path = directory / "med_config.json"
    path.write_text(json.dumps(IMAGE_REWARD_MED_CONFIG))
    return path


def tiny_image_reward(directory: Path) -> torch.nn.Module:
    """The real ImageReward architecture (BLIP ViT-L/16 + shallow BERT + MLP) with random weights; the MLP is
    re-initialised because its published init gives the same score for every input."""
    import ImageReward

    med_config = write_image_reward_med_config(directory)
    torch.manual_seed(0)
    with offline_blip_tokenizer(directory):
        built = ImageReward.ImageReward(med_config=str(med_config), device="cpu").eval()
    with torch.no_grad():
        for layer in built.mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                layer.reset_parameters()
                layer.weight.mul_(3.0)  # five linear layers: scores of order 1
    return built


def write_tiny_maniqa(directory: Path) -> Path:
    """pyiqa's MANIQA (KonIQ variant) with random weights as ``{"params": state_dict}`` (timm's ImageNet
    download for the backbone is switched off; the file replaces those weights anyway)."""
    from pyiqa.archs.maniqa_arch import MANIQA

    torch.manual_seed(0)
    with no_pretrained_timm():
        network = MANIQA(pretrained=False, train_dataset="koniq", scale=0.8, test_sample=1)
    path = directory / "maniqa_test.pth"
    torch.save({"params": network.state_dict()}, path)
    return path
