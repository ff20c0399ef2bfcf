"""The demo's word-level T5 folder: covers every caption, loads through the real from_pretrained path."""

from __future__ import annotations

import torch

from autoregressive.text_encoder import T5TextEncoder
from demo.text_encoder import build_tokenizer, caption_vocabulary, write_text_encoder
from demo.world import iter_all_prompts, render_caption


def test_every_caption_is_in_vocabulary_and_fits_16_slots():
    tokenizer = build_tokenizer()
    unk = tokenizer.convert_tokens_to_ids("<unk>")
    longest = 0
    for spec in iter_all_prompts():
        ids = tokenizer(render_caption(spec))["input_ids"]
        assert unk not in ids, render_caption(spec)
        assert ids[-1] == tokenizer.convert_tokens_to_ids("</s>")
        longest = max(longest, len(ids))
    assert longest <= 16
    assert len(set(caption_vocabulary())) == len(caption_vocabulary())
    assert tokenizer("a photo of a hexagon")["input_ids"][-2] == unk  # unknown words are not silently dropped


def test_written_folder_loads_like_a_released_encoder(tmp_path):
    folder = write_text_encoder(tmp_path / "enc", d_model=32, seed=3)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert write_text_encoder(folder, d_model=32, seed=3) == folder  # complete folder is reused, not rewritten
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    encoder = T5TextEncoder.from_pretrained(str(folder), max_length=16)
    captions = ["a photo of two red circles", "a photo of a blue square left of a yellow triangle"]
    feats, mask = encoder.encode(captions)
    assert feats.shape == (2, 16, 32) and mask.sum(1).tolist() == [7, 12]
    assert mask[:, -1].all() and (feats[mask == 0] == 0).all()  # LlamaGen's left padding
    # Same seed -> same weights; another seed -> other features.
    again = T5TextEncoder.from_pretrained(str(write_text_encoder(tmp_path / "b", d_model=32, seed=3)), max_length=16)
    other = T5TextEncoder.from_pretrained(str(write_text_encoder(tmp_path / "c", d_model=32, seed=4)), max_length=16)
    torch.testing.assert_close(again.encode(captions)[0], feats)
    assert not torch.allclose(other.encode(captions)[0], feats)
