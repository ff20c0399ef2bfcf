"""The demo's frozen caption encoder: a small random-weight T5 with a word-level tokenizer, saved as a folder.

Why a folder: the training script then loads it with ``T5TextEncoder.from_pretrained`` exactly as it loads
flan-t5-xl for the paper's runs, so the demo exercises the real loading path. Why word-level: the world has
about thirty words, so a caption is at most 13 tokens instead of ~55 bytes; the GPT's prefix shrinks from 64
to 16 slots (every pass gets cheaper) and each word arrives as one feature vector, which a tiny GPT binds to
colours and shapes far more easily than bytes mixed by a random encoder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from demo.world import COLOUR_NAMES, COUNT_WORDS, RELATIONS, SHAPES

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
"""T5's convention: pad id 0, end of sequence id 1, unknown id 2."""


def caption_vocabulary() -> list[str]:
    """Every word a shapes-world caption can contain, after the special tokens (ids are list positions)."""
    words = ["a", "an", "photo", "of", "and", *COUNT_WORDS.values(), *COLOUR_NAMES]
    words += [part for relation in RELATIONS for part in relation.split()]
    words += [*SHAPES, *(shape + "s" for shape in SHAPES)]
    return [*SPECIAL_TOKENS, *dict.fromkeys(words)]


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` over :func:`caption_vocabulary` that appends ``</s>`` like T5's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(caption_vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def write_text_encoder(
    folder: Path, d_model: int, seed: int = 0, num_layers: int = 2, num_heads: int = 4, d_ff: int = 128
) -> Path:
    """Write config, seeded random weights and tokenizer to ``folder`` (kept if already complete)."""
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    if (folder / "demo_text_encoder.json").is_file():
        return folder
    tokenizer = build_tokenizer()
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        num_heads=num_heads,
        pad_token_id=0,
        eos_token_id=1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "demo_text_encoder.json").write_text(json.dumps({"seed": seed, "vocabulary": caption_vocabulary()}))
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier attempt
    tmp.replace(folder)
    return folder
