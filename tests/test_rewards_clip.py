"""CLIP-family rewards (clip_*, pickscore, aesthetic): the batched tensor path against the per-image PIL path
that upstream used (``CLIPImageProcessor`` on a PIL image + ``CLIPModel``), on a tiny random-weight CLIP.

Tolerances (docs/rewards.md has the measured differences):
- 224 px images on the 8-bit grid: no resize, so both paths see identical pixels: bound 1e-5 in cosine;
- 256 px and 256x384 images: PIL's bicubic vs torch's antialiased uint8 bicubic: bound 2e-4, checked to be
  well under the spread between images; pixel-level: a mean and a max of two grey levels;
- float (not 8-bit) inputs add the rounding difference (upstream's ``to_pil_image`` truncates, the tensor path
  rounds): bound 3e-3.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import to_pil_image

from reward_utils.aesthetic import AestheticMLP, AestheticReward, load_aesthetic_mlp
from reward_utils.base import RewardError
from reward_utils.clip_vocab import clip_tokenizer
from reward_utils.hf_clip import HFClipScorer, PickScoreReward, SimilarityReward
from reward_utils.prompt_text import class_prompt
from reward_utils.scaling import step_map
from reward_utils.tensor_transforms import transform_from_hf_processor
from tests.helpers import detailed_images, smooth_images, tiny_clip
from tests.reward_models import write_tiny_aesthetic_mlp


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from transformers import CLIPImageProcessor

    torch.manual_seed(0)
    tokenizer = clip_tokenizer(tmp_path_factory.mktemp("clip_tok"))
    model = tiny_clip()
    processor = CLIPImageProcessor()  # the openai/clip-vit-* preprocessing config
    return model, tokenizer, processor


@pytest.fixture(scope="module")
def scorer(parts):
    model, tokenizer, processor = parts
    return HFClipScorer(model, tokenizer, transform_from_hf_processor(processor))


def reference_features(parts, image: torch.Tensor, text: str):
    """Upstream's per-image path: tensor -> PIL -> CLIPImageProcessor -> CLIPModel."""
    model, tokenizer, processor = parts
    with torch.no_grad():
        pixels = processor(images=to_pil_image(image), return_tensors="pt")["pixel_values"]
        tokens = tokenizer(text, padding=True, truncation=True, return_tensors="pt")
        img = model.get_image_features(pixel_values=pixels)
        txt = model.get_text_features(**tokens)
    return img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)


def reference_cosine(parts, images, texts) -> torch.Tensor:
    out = []
    for image, text in zip(images, texts):
        img, txt = reference_features(parts, image, text)
        out.append((img * txt).sum().item())
    return torch.tensor(out)


@pytest.mark.parametrize(
    ("height", "width", "tolerance"),
    [(224, 224, 1e-5), (256, 256, 2e-4), (256, 384, 2e-4)],
)
def test_batched_cosine_matches_per_image_processor_path(parts, scorer, height, width, tolerance):
    images = smooth_images(6, height, width, seed=height + width)
    texts = [class_prompt(1), class_prompt(207), "a red car on a street"] * 2
    batched = scorer.similarity(images, texts)
    reference = reference_cosine(parts, images, texts)
    diff = (batched - reference).abs().max().item()
    print(f"clip {height}x{width}: max |diff| {diff:.2e}, spread {reference[0::3].std().item():.2e}")
    assert diff <= tolerance, f"{height}x{width}: batched vs PIL path differ by {diff}"
    # The tolerance must be far below how much the score moves between images of one prompt, or the
    # comparison could not catch a wrong transform.
    spread = reference[0::3].std().item()
    assert tolerance < spread / 5, f"tolerance {tolerance} is not small against the image spread {spread}"


@pytest.mark.parametrize(("height", "width"), [(224, 224), (256, 256), (256, 384), (512, 512)])
def test_tensor_transform_matches_processor_pixels(parts, height, width):
    """Pixel-level check, sharper than the score check: PIL's 8-bit bicubic vs torch's uint8 antialiased
    bicubic on detailed images. Measured: mean |diff| ~6e-5, max two grey levels (0.030) in normalised units;
    a bilinear kernel would be off by ~2e-2 on average."""
    _, _, processor = parts
    images = detailed_images(3, height, width, seed=height + width)
    ours = transform_from_hf_processor(processor)(images)
    reference = torch.cat(
        [processor(images=to_pil_image(i), return_tensors="pt")["pixel_values"] for i in images]
    )
    diff = (ours - reference).abs()
    print(f"pixels {height}x{width}: mean {diff.mean().item():.2e} max {diff.max().item():.4f}")
    assert diff.mean().item() <= 5e-4 and diff.max().item() <= 0.04, (diff.mean().item(), diff.max().item())


def test_float_inputs_within_quantisation_bound(parts, scorer):
    images = smooth_images(4, 256, seed=3, quantize=False)
    texts = ["a photo of a cat"] * 4
    diff = (scorer.similarity(images, texts) - reference_cosine(parts, images, texts)).abs().max().item()
    print(f"clip float inputs: max |diff| {diff:.2e}")
    assert diff <= 3e-3


def test_wrong_normalisation_is_detected(parts):
    """Guard for the parity tests: a transform with the wrong mean/std must land outside the tolerance."""
    from dataclasses import replace

    model, tokenizer, processor = parts
    wrong = replace(transform_from_hf_processor(processor), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    images = smooth_images(4, 256, seed=5)
    texts = ["a photo of a cat"] * 4
    diff = HFClipScorer(model, tokenizer, wrong).similarity(images, texts) - reference_cosine(
        parts, images, texts
    )
    assert diff.abs().max().item() > 1e-3


def test_clip_rewards_scale_and_bins(scorer):
    images = smooth_images(4, 256, seed=7)
    prompts = [0, 1, 2, 3]
    similarity = scorer.similarity(images, [class_prompt(p) for p in prompts])
    plain = SimilarityReward(scorer, "class", quantize=False, name="clip_distance")(images, prompts)
    binned = SimilarityReward(scorer, "class", quantize=True, name="clip_quantize")(images, prompts)
    torch.testing.assert_close(plain, 5 * similarity)
    torch.testing.assert_close(binned, step_map(similarity, (0.0, 0.3, 0.6), (-1.0, 0.5, 1.0, 1.5)))


def test_prompt_kind_is_enforced(scorer):
    images = smooth_images(2, 224)
    with pytest.raises(RewardError, match=r"clip_distance.*class ids.*'a cat'"):
        SimilarityReward(scorer, "class", False, "clip_distance")(images, [3, "a cat"])
    with pytest.raises(RewardError, match=r"clip_text.*captions.*prompt #0 is 7"):
        SimilarityReward(scorer, "caption", False, "clip_text")(images, [7, "a cat"])
    with pytest.raises(RewardError, match="outside"):
        SimilarityReward(scorer, "class", False, "clip_distance")(images, [3, 1000])


def test_repeated_prompts_are_encoded_once_and_consistently(scorer):
    images = smooth_images(4, 224, seed=11)
    grouped = scorer.similarity(images, ["a dog"] * 2 + ["a cat"] * 2)
    separate = torch.cat([scorer.similarity(images[:2], ["a dog"] * 2), scorer.similarity(images[2:], ["a cat"] * 2)])
    torch.testing.assert_close(grouped, separate, atol=1e-6, rtol=0)


def test_pickscore_matches_upstream_formula(parts, scorer):
    model, _, _ = parts
    with torch.no_grad():
        model.logit_scale.fill_(4.0)  # exp(4) ~ 54.6; the released PickScore has 100
    images = smooth_images(3, 256, seed=13)
    prompts = ["a cat", "a dog on the grass", "a bowl of soup"]
    reward = PickScoreReward(scorer)(images, prompts)
    expected = []
    for image, prompt in zip(images, prompts):
        img, txt = reference_features(parts, image, prompt)
        expected.append((model.logit_scale.exp() * (txt @ img.T)).item() / 26)
    print(f"pickscore: max |diff| {(reward - torch.tensor(expected)).abs().max().item():.2e}")
    torch.testing.assert_close(reward, torch.tensor(expected), atol=5e-4, rtol=0)


def test_aesthetic_matches_per_image_path_and_loads_published_layout(parts, scorer, tmp_path):
    path = write_tiny_aesthetic_mlp(tmp_path / "aesthetic.pth", embed_dim=16)
    mlp = AestheticMLP(embed_dim=16).eval()
    mlp.load_state_dict(torch.load(path, weights_only=True))
    loaded = load_aesthetic_mlp(str(path), "cpu")
    assert list(loaded.state_dict()) == [
        f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")
    ], "keys must match sac+logos+ava1-l14-linearMSE.pth"
    images = smooth_images(4, 256, seed=17)
    reward = AestheticReward(scorer, loaded)(images, ["ignored"] * 4)
    expected = []
    for image in images:
        img, _ = reference_features(parts, image, "x")
        expected.append(mlp(img).item())
    expected = torch.tensor(expected)
    print(
        f"aesthetic: max |diff| {(reward - expected).abs().max().item():.2e}, max |score| {expected.abs().max():.2f}"
    )
    assert (reward - expected).abs().max().item() <= 2e-3 * expected.abs().max().item()
    assert expected.std() > 0.1, "random aesthetic head gives constant scores; the comparison would be void"


def test_aesthetic_rejects_bad_weights(scorer, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_aesthetic_mlp(str(tmp_path / "missing.pth"), "cpu")
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an aesthetic-predictor state dict"):
        load_aesthetic_mlp(str(bad), "cpu")
    with pytest.raises(ValueError, match="expects 768-d CLIP embeddings but the CLIP model gives 16"):
        AestheticReward(scorer, AestheticMLP(768))
