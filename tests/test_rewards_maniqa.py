"""maniqa: pyiqa's MANIQA built offline with random weights, loaded through the shipped ``load_maniqa``.

pyiqa already scores batched tensors, so the reward calls the metric on the whole batch; the check is that this
equals pyiqa's own per-image scoring times 2 (MANIQA's eval crops are deterministic ``uniform_crop``s).
Test-only offline trick: MANIQA hard-codes ``timm.create_model('vit_base_patch8_224', pretrained=True)``, so
construction runs with timm's ``pretrained`` forced off; the random weights are saved and reloaded through
``pretrained_model_path`` like a real checkpoint. One 224 crop per image (``test_sample=1``) keeps it fast.
"""

from __future__ import annotations

import pytest
import torch

from reward_utils.maniqa import ManiqaReward, load_maniqa
from tests.helpers import no_pretrained_timm, smooth_images
from tests.reward_models import write_tiny_maniqa


@pytest.fixture(scope="module")
def metric(tmp_path_factory):
    path = write_tiny_maniqa(tmp_path_factory.mktemp("maniqa"))
    with no_pretrained_timm():
        return load_maniqa("maniqa", "cpu", checkpoint=str(path), crops=1)


def test_batched_maniqa_equals_per_image_pyiqa(metric):
    images = smooth_images(2, 224, seed=3)
    overshoot = images.clone()
    overshoot[0, :, 0, 0] = 1.0 + 1e-4  # pyiqa asserts inputs in [0, 1]; decoders overshoot by round-off
    clipped = overshoot.clamp(0, 1)
    reward = ManiqaReward(metric)(overshoot, ["ignored"] * 2)
    with torch.no_grad():
        per_image = torch.cat([metric(image[None]).reshape(-1) for image in clipped])
    torch.testing.assert_close(reward, 2.0 * per_image, atol=1e-5, rtol=1e-4)
    assert (per_image[0] - per_image[1]).abs() > 1e-5, "identical scores: the comparison would be void"


def test_load_maniqa_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_maniqa("maniqa", "cpu", checkpoint=str(tmp_path / "absent.pth"), crops=1)
