"""fid (group FID against reference statistics) and mse (against a per-sample reference image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.inception import load_inception, save_random_inception_weights
from evaluation.npz_io import read_fid_reference
from reward_utils.base import RewardError
from reward_utils.fid import GroupFIDReward, group_fid
from reward_utils.mse import MSEReward
from reward_utils.scaling import FID_EDGES, FID_LEVELS, step_map
from tests.helpers import smooth_images


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    """The Inception port with random He-initialised weights, loaded through the shipped ``load_inception``."""
    path = save_random_inception_weights(tmp_path_factory.mktemp("inception") / "inception.pth", seed=0)
    return load_inception(path, "cpu")


def test_group_fid_reward(inception, tmp_path):
    group_a = smooth_images(6, 64, seed=1)
    group_b = torch.rand(6, 3, 64, 64)  # noise: far from group A
    with torch.no_grad():
        features_a, _ = inception((group_a * 255).round().to(torch.uint8).permute(0, 2, 3, 1))
        features_b, _ = inception((group_b * 255).round().to(torch.uint8).permute(0, 2, 3, 1))
    reference_path = tmp_path / "ref.npz"
    np.savez(
        reference_path,
        mu=features_a.double().mean(0).numpy(),
        sigma=np.cov(features_a.double().numpy(), rowvar=False),
    )
    reference = read_fid_reference(str(reference_path))

    fid_b = group_fid(features_b, reference)
    assert fid_b > 2.0, "noise should be far from the reference group"
    reward = GroupFIDReward(inception, reference, groups=2)(torch.cat([group_a, group_b]), ["x"] * 12)
    expected_b = step_map(torch.tensor([fid_b], dtype=torch.float64), FID_EDGES, FID_LEVELS).item()
    # group A against its own statistics has FID ~0 -> the top level, 2.0
    assert reward.tolist() == pytest.approx([2.0] * 6 + [expected_b] * 6)


@pytest.mark.parametrize("n", [2, 16])
def test_fast_group_fid_equals_torch_fidelity(n):
    """The N x N trace formulation against torch-fidelity's D x D eigendecomposition (D = 256 keeps the
    reference fast; docs/rewards.md times both at D = 2048)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    generator = torch.Generator().manual_seed(n)
    features = torch.randn(n, 256, generator=generator, dtype=torch.float64) * 2 + 0.5
    reference_samples = (
        torch.randn(400, 256, generator=generator, dtype=torch.float64)
        @ torch.randn(256, 256, generator=generator, dtype=torch.float64)
        / 16
    )
    reference = fid_features_to_statistics(reference_samples)
    expected = fid_statistics_to_metric(fid_features_to_statistics(features), reference, False)[
        KEY_METRIC_FID
    ]
    assert group_fid(features, reference) == pytest.approx(expected, rel=1e-6)


def test_group_fid_reward_errors(inception, tmp_path):
    reference = {"mu": np.zeros(2048), "sigma": np.eye(2048)}
    with pytest.raises(RewardError, match="batch of 5 cannot be split into 2 groups"):
        GroupFIDReward(inception, reference, groups=2)(torch.rand(5, 3, 32, 32), ["x"] * 5)
    small = {"mu": np.zeros(8), "sigma": np.eye(8)}
    with pytest.raises(RewardError, match="2048-d but the reference statistics are 8-d"):
        GroupFIDReward(inception, small, groups=1)(torch.rand(2, 3, 32, 32), ["x"] * 2)
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"lacks \['mu', 'sigma'\]"):
        read_fid_reference(str(bad))
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        read_fid_reference(str(tmp_path / "nothing.npz"))


def test_mse_reward_with_tensor_and_file_references(tmp_path):
    from torchvision.io import write_png

    images = smooth_images(2, 16, seed=2)
    reference_file = tmp_path / "ref.png"
    write_png((images[1] * 255).round().to(torch.uint8), str(reference_file))
    shifted = (images[0] + 0.1).clamp(0, 1)
    reward = MSEReward()(images, ["a", "b"], [{"reference": shifted}, {"reference": str(reference_file)}])
    expected0 = 2 * (1 - ((images[0] - shifted) ** 2).mean())
    torch.testing.assert_close(reward, torch.stack([expected0, torch.tensor(2.0)]), atol=1e-6, rtol=0)


def test_mse_reward_errors(tmp_path):
    images = smooth_images(1, 16)
    with pytest.raises(RewardError, match=r"mse.*prompt #0 'a'.*metadata\[0\]\['reference'\]"):
        MSEReward()(images, ["a"])
    with pytest.raises(
        RewardError, match=r"reference shape \(3, 8, 8\) differs from image shape \(3, 16, 16\)"
    ):
        MSEReward()(images, ["a"], [{"reference": torch.zeros(3, 8, 8)}])
    with pytest.raises(RewardError, match="reference image not found"):
        MSEReward()(images, ["a"], [{"reference": str(tmp_path / "gone.png")}])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(RewardError, match="cannot decode reference image"):
        MSEReward()(images, ["a"], [{"reference": str(tmp_path / "broken.png")}])
