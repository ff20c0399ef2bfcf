"""hpsv2 rewards: the batched tensor path against the package's own ``hpsv2.img_score.score``.

A tiny OpenCLIP architecture is registered with hpsv2's config registry (``add_model_config``) and its random
weights saved as an HPS-style checkpoint (``{"state_dict": ...}``). ``load_hps`` builds it the shipped way;
the reference is ``hpsv2.img_score.score(pil_images, prompt, cp=checkpoint)`` with the package's model cache
(``model_dict``) holding the same architecture, since the package hard-codes ViT-H-14 there.

hpsv2's transform runs on tensors after ``ToTensor``, so with images on the 8-bit grid both paths see the same
pixels: the tolerance is float round-off, including non-square images (docs/rewards.md has the measured
differences).
"""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import to_pil_image

from reward_utils.base import RewardError
from reward_utils.hps import load_hps
from reward_utils.prompt_text import class_prompt
from reward_utils.scaling import step_map
from reward_utils.similarity import SimilarityReward
from tests.helpers import HPS_TINY_ARCH, smooth_images
from tests.reward_models import write_tiny_hps


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_hps(tmp_path_factory.mktemp("hps"))


@pytest.fixture(scope="module")
def scorer(checkpoint):
    return load_hps("v2.1", str(checkpoint), "cpu", arch=HPS_TINY_ARCH)


@pytest.fixture(scope="module")
def reference_score(checkpoint, tmp_path_factory):
    import hpsv2.img_score as img_score
    from hpsv2.src.open_clip import create_model_and_transforms

    model, _, preprocess_val = create_model_and_transforms(
        HPS_TINY_ARCH, None, precision="amp", device="cpu", output_dict=True, light_augmentation=True
    )
    saved_cache, saved_root = dict(img_score.model_dict), img_score.root_path
    img_score.model_dict.update(model=model, preprocess_val=preprocess_val)
    img_score.root_path = str(tmp_path_factory.mktemp("hps_root"))  # score() creates this directory
    yield lambda images, prompt: img_score.score([to_pil_image(i) for i in images], prompt, cp=str(checkpoint))
    img_score.model_dict.clear()
    img_score.model_dict.update(saved_cache)
    img_score.root_path = saved_root


@pytest.mark.parametrize(("height", "width"), [(224, 224), (256, 256), (256, 384), (320, 200)])
def test_batched_hps_matches_package_score(scorer, reference_score, height, width):
    images = smooth_images(4, height, width, seed=height * width)
    prompt = "a watercolor painting of a lighthouse"
    batched = scorer.similarity(images, [prompt] * 4)
    reference = torch.tensor([float(s) for s in reference_score(images, prompt)])
    diff = (batched - reference).abs().max().item()
    print(f"hps {height}x{width}: max |diff| {diff:.2e}, spread {reference.std().item():.2e}")
    assert diff <= 1e-5, f"{height}x{width}: {diff}"
    assert reference.std().item() > 1e-3, "scores barely vary between images: the comparison would be void"


def test_hps_reward_variants(scorer):
    images = smooth_images(4, 256, seed=1)
    labels = [1, 2, 3, 4]
    similarity = scorer.similarity(images, [class_prompt(x) for x in labels])
    torch.testing.assert_close(SimilarityReward(scorer, "class", False, "hpsv2")(images, labels), 5 * similarity)
    torch.testing.assert_close(
        SimilarityReward(scorer, "class", True, "hpsv2_quantize")(images, labels),
        step_map(similarity, (0.0, 0.3, 0.6), (-1.0, 0.5, 1.0, 1.5)),
    )
    captions = ["a cat", "a dog", "a cat", "a bird"]
    text_similarity = scorer.similarity(images, captions)
    torch.testing.assert_close(
        SimilarityReward(scorer, "caption", False, "hpsv2_text")(images, captions), 5 * text_similarity
    )
    with pytest.raises(RewardError, match="hpsv2_text"):
        SimilarityReward(scorer, "caption", False, "hpsv2_text")(images, labels)


def test_load_hps_errors(tmp_path, checkpoint):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_hps("v2.1", str(tmp_path / "nope.pt"), "cpu", arch=HPS_TINY_ARCH)
    with pytest.raises(ValueError, match="unknown HPS version 'v3'"):
        load_hps("v3", str(checkpoint), "cpu", arch=HPS_TINY_ARCH)
    bare = tmp_path / "bare.pt"
    torch.save({"weights": 1}, bare)
    with pytest.raises(ValueError, match="not an HPS checkpoint"):
        load_hps("v2.1", str(bare), "cpu", arch=HPS_TINY_ARCH)
