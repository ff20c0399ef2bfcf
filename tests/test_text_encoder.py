"""T5 caption encoder: LlamaGen's left-padded layout, truncation, determinism, frozen weights."""

import pytest
import torch

from autoregressive.text_encoder import T5TextEncoder, left_pad

CAPTIONS = ["a cat", "A photo of a red dog sitting on green grass", ""]


@pytest.fixture(scope="module")
def encoder() -> T5TextEncoder:
    return T5TextEncoder.tiny(d_model=32, seed=0)


def _token_counts(encoder: T5TextEncoder, captions) -> list[int]:
    return [len(encoder.tokenizer(c.lower().strip())["input_ids"]) for c in captions]


def test_left_padding_layout(encoder):
    emb, mask = encoder.encode(CAPTIONS)
    assert emb.shape == (3, 120, encoder.caption_dim) and emb.dtype == torch.float32
    assert mask.shape == (3, 120) and mask.dtype == torch.long
    for row, count in enumerate(_token_counts(encoder, CAPTIONS)):
        expected = torch.cat(
            [torch.zeros(120 - count, dtype=torch.long), torch.ones(count, dtype=torch.long)]
        )
        assert torch.equal(mask[row], expected)
        assert torch.all(emb[row, : 120 - count] == 0)  # padded slots are zero vectors
        assert torch.all(emb[row, 120 - count :].abs().sum(dim=-1) > 0)  # real tokens are not
    assert torch.all(mask[:, -1] == 1)  # the slot that predicts the first image token is a real token


def test_matches_llamagen_rotation_of_right_padded_features(encoder):
    right = T5TextEncoder(encoder.model, encoder.tokenizer, left_padding=False)
    emb_right, mask_right = right.encode(CAPTIONS)
    emb_left, mask_left = encoder.encode(CAPTIONS)
    # The reference procedure: flip the mask; per row, move the first `valid` slots behind the rest.
    expected_mask = torch.flip(mask_right, dims=[-1])
    rows = []
    for features, row_mask in zip(emb_right, mask_right):
        valid = int(row_mask.sum())
        rows.append(torch.cat([features[valid:], features[:valid]]))
    expected = torch.stack(rows) * expected_mask[:, :, None]
    assert torch.equal(mask_left, expected_mask)
    torch.testing.assert_close(emb_left, expected, rtol=0, atol=0)
    # Right-padded mode keeps tokens first and zeroes the pads after them.
    assert torch.all(mask_right[:, 0] == 1) and torch.all(emb_right[0, 10:] == 0)


def test_features_do_not_depend_on_batch_or_padding(encoder):
    batch_emb, batch_mask = encoder.encode(CAPTIONS)
    alone_emb, alone_mask = encoder.encode([CAPTIONS[1]])
    assert torch.equal(alone_mask[0], batch_mask[1])
    torch.testing.assert_close(alone_emb[0], batch_emb[1], rtol=1e-5, atol=1e-5)


def test_truncation_at_max_length(encoder):
    long_caption = "a very long caption about many things " * 20
    assert _token_counts(encoder, [long_caption])[0] > 120
    emb, mask = encoder.encode([long_caption, "short"])
    assert emb.shape == (2, 120, 32)
    assert int(mask[0].sum()) == 120
    tokens = encoder.tokenizer([long_caption.lower().strip()], max_length=120, truncation=True)["input_ids"][
        0
    ]
    assert tokens[-1] == encoder.tokenizer.eos_token_id  # truncation keeps the end-of-sequence token


def test_custom_max_length():
    short = T5TextEncoder.tiny(max_length=16)
    emb, mask = short.encode(["hello world, this is longer than sixteen bytes"])
    assert emb.shape == (1, 16, 32) and int(mask.sum()) == 16


def test_tiny_is_deterministic_and_leaves_global_rng_alone(encoder):
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    same = T5TextEncoder.tiny(d_model=32, seed=0)
    assert torch.equal(torch.rand(3), expected_draw)
    other = T5TextEncoder.tiny(d_model=32, seed=1)
    emb, _ = encoder.encode(CAPTIONS)
    torch.testing.assert_close(same.encode(CAPTIONS)[0], emb, rtol=0, atol=0)
    assert not torch.allclose(other.encode(CAPTIONS)[0], emb)


def test_frozen_and_stays_in_eval(encoder):
    assert all(not p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training and not encoder.model.training
    emb, _ = encoder.encode(["a cat"])
    assert not emb.requires_grad


def test_caption_dim_and_bad_input(encoder):
    assert encoder.caption_dim == 32
    assert T5TextEncoder.tiny(d_model=48, num_heads=4).encode(["x"])[0].shape[-1] == 48
    with pytest.raises(ValueError, match="no captions"):
        encoder.encode([])
    with pytest.raises(TypeError, match="caption 1"):
        encoder.encode(["ok", None])


def test_left_pad_rejects_left_padded_masks():
    mask = torch.tensor([[0, 1, 1]])
    with pytest.raises(ValueError, match="right-padded"):
        left_pad(torch.zeros(1, 3, 2), mask)


def test_from_pretrained_loads_a_saved_folder(encoder, tmp_path):
    encoder.model.save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    loaded = T5TextEncoder.from_pretrained(str(tmp_path), dtype=torch.bfloat16)
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    emb, mask = loaded.encode(CAPTIONS)
    ref_emb, ref_mask = encoder.encode(CAPTIONS)
    assert emb.dtype == torch.float32 and torch.equal(mask, ref_mask)
    torch.testing.assert_close(emb, ref_emb, rtol=0.05, atol=0.05)  # bf16 weights: loose tolerance


def test_from_pretrained_names_the_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="not-here"):
        T5TextEncoder.from_pretrained(str(tmp_path / "not-here"))
    with pytest.raises(OSError, match="no-such-org/no-such-t5"):  # offline in tests: the hub is unreachable
        T5TextEncoder.from_pretrained("no-such-org/no-such-t5")


def test_a_caption_over_the_budget_is_reported_as_truncated_once():
    encoder = T5TextEncoder.tiny(d_model=32, seed=0, max_length=16)
    with pytest.warns(UserWarning) as record:
        encoder.encode(["short", "a caption with far more than sixteen byte tokens"])
        encoder.encode(["another caption that is also much too long for the budget"])
        encoder.encode(["short again"])
    messages = [str(w.message) for w in record if "caption budget" in str(w.message)]
    assert len(messages) == 1
    assert "'a caption with far more" in messages[0] and "budget of 16" in messages[0] and "truncated" in messages[0]


def test_captions_within_the_budget_raise_no_warning(recwarn):
    T5TextEncoder.tiny(d_model=32, seed=0, max_length=16).encode(["short", "tiny"])
    assert not [w for w in recwarn if "caption budget" in str(w.message)]
