"""VQ tokenizer: LlamaGen key/shape parity, decode_code layout, codebook normalisation, training, loading."""

import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from autoregressive.checkpoint import CheckpointError
from tokenizer.vq_layers import AttnBlock
from tokenizer.vq_model import VQ_models, VQConfig, VQModel, load_vq

SCHEMA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "llamagen_state_dict_schema.json"
)
# A small VQ-16-class tokenizer: downsample factor 4, 256 x 8 codebook.
SMALL = dict(
    ch=32,
    encoder_ch_mult=[1, 1, 2],
    decoder_ch_mult=[1, 1, 2],
    z_channels=32,
    codebook_size=256,
    codebook_embed_dim=8,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convolutions run far faster on one thread when the few cores are shared (no OpenMP waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_vq() -> VQModel:
    torch.manual_seed(0)
    return VQ_models["VQ-16"](**SMALL).eval()


@pytest.mark.parametrize("name", ["VQ-16", "VQ-8"])
def test_state_dict_matches_llamagen_schema(name):
    if not SCHEMA.exists():
        pytest.skip(f"reference schema not available at {SCHEMA}")
    reference = json.loads(SCHEMA.read_text())["vq"]["models"][name]
    with torch.device("meta"):
        model = VQ_models[name](codebook_size=16384, codebook_embed_dim=8)
    ours = [(key, list(value.shape)) for key, value in model.state_dict().items()]
    theirs = [(entry["key"], entry["shape"]) for entry in reference["state_dict"]]
    assert len(ours) == reference["num_keys"]
    assert sorted(ours) == sorted(theirs)
    assert sum(p.numel() for p in model.parameters()) == reference["num_parameters"]
    buffers = dict(model.named_buffers())
    assert list(buffers) == ["quantize.codebook_used"] and buffers["quantize.codebook_used"].shape == (65536,)


@pytest.mark.parametrize("grid", [16, 24])
def test_decode_code_shapes(small_vq, grid):
    codes = torch.randint(0, SMALL["codebook_size"], (2, grid * grid))
    with torch.no_grad():
        out = small_vq.decode_code(codes, (2, 8, grid, grid))
        inferred = small_vq.decode_code(codes)  # square grid inferred when shape is omitted
    assert out.shape == (2, 3, grid * 4, grid * 4)
    torch.testing.assert_close(inferred, out, rtol=0, atol=0)


def test_codebook_lookup_normalises_rows_in_raster_order(small_vq):
    quantizer = small_vq.quantize
    original = quantizer.embedding.weight.detach().clone()
    try:
        with torch.no_grad():  # stored rows need not be unit-norm: scale each one differently
            quantizer.embedding.weight.mul_(torch.linspace(0.1, 9.0, original.shape[0])[:, None])
        weight = quantizer.embedding.weight.detach()
        codes = torch.randint(0, original.shape[0], (2, 4 * 3))
        entry = quantizer.get_codebook_entry(codes, (2, 8, 4, 3), channel_first=True)
        expected_rows = weight / weight.norm(dim=1, keepdim=True)
        # Element (b, :, r, c) is the normalised row of code b, r*w + c (raster order, channels first).
        expected = expected_rows[codes].view(2, 4, 3, 8).permute(0, 3, 1, 2)
        torch.testing.assert_close(entry, expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(entry.norm(dim=1), torch.ones(2, 4, 3), rtol=0, atol=1e-5)
        with torch.no_grad():
            decoded = small_vq.decode_code(codes, (2, 8, 4, 3))
            torch.testing.assert_close(decoded, small_vq.decode(expected), rtol=0, atol=1e-5)
    finally:
        with torch.no_grad():
            quantizer.embedding.weight.copy_(original)


def test_encode_then_decode_code_round_trip(small_vq):
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        quant, _, (_, _, indices) = small_vq.encode(images)
        codes = small_vq.encode_to_codes(images)
        assert quant.shape == (3, 8, 8, 8) and codes.shape == (3, 64)
        assert torch.equal(codes.flatten(), indices)
        torch.testing.assert_close(
            small_vq.decode_code(codes, (3, 8, 8, 8)), small_vq.decode(quant), rtol=0, atol=1e-4
        )
        # Quantized latents are codebook rows: quantizing them again must return the same codes.
        _, _, (_, _, again) = small_vq.quantize(quant)
    assert torch.equal(again, indices)


def test_decode_to_images_batches_and_range(small_vq):
    codes = torch.randint(0, SMALL["codebook_size"], (5, 64))
    images = small_vq.decode_to_images(codes, grid=8, batch_size=2)
    with torch.no_grad():
        reference = (small_vq.decode_code(codes, (5, 8, 8, 8)) * 0.5 + 0.5).clamp(0, 1)
    assert images.shape == (5, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        small_vq.decode_to_images(codes.view(5, 8, 8), grid=8), images, rtol=0, atol=1e-5
    )


def test_decode_to_images_rejects_bad_codes(small_vq):
    with pytest.raises(ValueError, match=r"\[0, 256\).*max 256"):
        small_vq.decode_to_images(torch.full((1, 64), 256), grid=8)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        small_vq.decode_to_images(torch.zeros(1, 63, dtype=torch.long), grid=8)
    with pytest.raises(TypeError, match="integer"):
        small_vq.decode_to_images(torch.zeros(1, 64), grid=8)


def test_forward_trains_encoder_decoder_and_codebook():
    torch.manual_seed(0)
    model = VQ_models["VQ-16"](**SMALL).train()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    recon, losses = model(images)
    assert recon.shape == images.shape
    loss = F.mse_loss(recon, images) + losses.vq_loss + losses.commit_loss + losses.entropy_loss
    loss.backward()
    # Straight-through estimator: the reconstruction loss reaches the encoder; the vq loss the codebook.
    for name in (
        "encoder.conv_in.weight",
        "quant_conv.weight",
        "quantize.embedding.weight",
        "decoder.conv_out.weight",
    ):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert 0 < losses.codebook_usage <= 1
    assert model.quantize.codebook_used[-128:].ne(0).any()  # the usage window recorded the new codes


def test_straight_through_gradient():
    torch.manual_seed(0)
    model = VQ_models["VQ-16"](**SMALL).train()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    recon, _ = model(images)
    F.mse_loss(recon, images).backward()
    params = dict(model.named_parameters())
    # The reconstruction gradient skips the argmin and reaches the encoder...
    assert params["encoder.conv_in.weight"].grad.abs().sum() > 0
    # ...while the codebook only learns from the vq loss (the lookup itself is detached).
    codebook_grad = params["quantize.embedding.weight"].grad
    assert codebook_grad is None or torch.count_nonzero(codebook_grad) == 0


def test_attention_block_matches_explicit_formula():
    torch.manual_seed(0)
    block = AttnBlock(32, num_groups=8)
    x = torch.randn(2, 32, 3, 5)
    with torch.no_grad():
        h = block.norm(x)
        q, k, v = (conv(h).flatten(2) for conv in (block.q, block.k, block.v))  # (B, C, HW)
        weights = torch.softmax(q.transpose(1, 2) @ k / 32**0.5, dim=-1)  # (B, HW_query, HW_key)
        attended = (v @ weights.transpose(1, 2)).view(2, 32, 3, 5)
        expected = x + block.proj_out(attended)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_tokenizer_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = VQ_models["VQ-16"](**{**SMALL, "encoder_ch_mult": [1, 2], "decoder_ch_mult": [1, 2]}).train()
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses_seen = []
    for _ in range(10):
        optimizer.zero_grad()
        recon, losses = model(images)
        loss = F.mse_loss(recon, images) + losses.vq_loss + losses.commit_loss
        loss.backward()
        optimizer.step()
        losses_seen.append(loss.item())
    assert losses_seen[-1] < 0.6 * losses_seen[0]


def test_entropy_loss_is_used_when_enabled():
    torch.manual_seed(0)
    model = VQ_models["VQ-16"](**SMALL, entropy_loss_ratio=0.1)
    _, losses = model(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert losses.entropy_loss.requires_grad and losses.entropy_loss.abs() > 0


def test_config_validation():
    with pytest.raises(ValueError, match="norm_groups"):
        VQConfig(ch=24, norm_groups=32)
    with pytest.raises(ValueError, match="same length"):
        VQConfig(encoder_ch_mult=[1, 2], decoder_ch_mult=[1, 2, 2])
    assert VQConfig().downsample_factor == 16 and VQConfig(**SMALL).downsample_factor == 4


def test_load_vq_round_trip_and_mismatch(small_vq, tmp_path):
    path = tmp_path / "vq_small.pt"
    args = argparse.Namespace(vq_model="VQ-16", codebook_size=256)
    torch.save({"model": small_vq.state_dict(), "optimizer": {}, "steps": 3, "args": args}, path)
    loaded = load_vq(path, "VQ-16", **SMALL)
    assert not loaded.training
    for key, value in small_vq.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    with pytest.raises(CheckpointError) as info:
        load_vq(path, "VQ-16", **{**SMALL, "codebook_size": 512})
    message = str(info.value)
    assert "size mismatch for quantize.embedding.weight: copying a param with shape torch.Size([256, 8])" in message
    assert "codebook 256 x 8" in message and str(path) in message

    with pytest.raises(CheckpointError, match="VQ-4"):  # 3 decoder levels in the file, 4 in VQ-8
        load_vq(path, "VQ-8", ch=32, z_channels=32, codebook_size=256)
    with pytest.raises(ValueError, match="VQ-16"):
        load_vq(path, "VQ-32")


def test_vq_tiny_is_a_registered_size(tmp_path):
    """``VQ-Tiny`` is built and loaded by name, like LlamaGen's sizes: 16 px images become 4x4 codes."""
    torch.manual_seed(0)
    model = VQ_models["VQ-Tiny"](codebook_size=48).eval()
    assert model.config.downsample_factor == 4 and model.config.ch == 16
    codes = model.encode_to_codes(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert codes.shape == (2, 16) and int(codes.max()) < 48
    path = tmp_path / "vq_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    loaded = load_vq(path, "VQ-Tiny", codebook_size=48)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
