"""imagereward: the batched tensor path against the package's own ``ImageReward.score(prompt, pil_image)``.

The real ImageReward architecture (BLIP ViT-L/16 + BERT with cross-attention + MLP) is built offline with
random weights by tests/reward_models.py. Test-only offline tricks there: the tokenizer is a ``BertTokenizer``
over a small WordPiece vocab (the package otherwise fetches bert-base-uncased), the BERT config is shallow (2
layers, hidden size 768 as the MLP requires), and the MLP is re-initialised because its published init gives the
same score for every input.

Tolerances, relative to the spread (std) of the scores over the test images: 224 px images on the 8-bit
grid need no resize, so both paths see identical pixels and only batched-vs-single float round-off remains
(bound 1e-4 x spread). At 256 px the bicubic kernels differ (PIL vs torch uint8 antialiased): bound 5e-3 x
spread. The measured differences are in docs/rewards.md.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import to_pil_image

from reward_utils.base import RewardError
from reward_utils.image_reward import ImageRewardReward
from tests.helpers import smooth_images
from tests.reward_models import offline_blip_tokenizer, tiny_image_reward, write_image_reward_med_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_image_reward(tmp_path_factory.mktemp("imagereward"))


@pytest.mark.parametrize(("size", "relative_tolerance"), [(224, 1e-4), (256, 5e-3)])
def test_batched_imagereward_matches_package_score(model, size, relative_tolerance):
    images = smooth_images(3, size, seed=size)
    prompts = ["a photo of a red car", "a watercolor painting of a lighthouse", "a bowl of soup"]
    batched = ImageRewardReward(model)(images, prompts)
    with torch.no_grad():
        reference = torch.tensor([model.score(p, to_pil_image(i)) for p, i in zip(prompts, images)])
    diff = (batched - reference).abs().max().item()
    spread = reference.std().item()
    print(f"imagereward {size}px: max |diff| {diff:.3g}, spread {spread:.3g}, ratio {diff / spread:.3g}")
    assert spread > 0.05, f"scores {reference} barely vary; the comparison would be void"
    assert diff <= relative_tolerance * spread, f"{size}px: batched vs package differ by {diff} (spread {spread})"


def test_imagereward_needs_captions(model):
    with pytest.raises(RewardError, match="imagereward.*captions"):
        ImageRewardReward(model)(smooth_images(1, 224), [5])


def test_load_image_reward_reads_weights_only_and_strictly(model, tmp_path):
    """The shipped loader (weights read weights-only, every key required) on a checkpoint of the real model."""
    from autoregressive.checkpoint import CheckpointError
    from reward_utils.image_reward import load_image_reward

    path = tmp_path / "ImageReward.pt"
    torch.save(model.state_dict(), path)
    partial = tmp_path / "partial.pt"
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("mlp.")}, partial)
    med_config = write_image_reward_med_config(tmp_path)
    with offline_blip_tokenizer(tmp_path):
        loaded = load_image_reward(str(path), "cpu", med_config=str(med_config))
        with pytest.raises(CheckpointError, match="missing key") as info:
            load_image_reward(str(partial), "cpu", med_config=str(med_config))
    assert str(partial) in str(info.value)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
