"""Bins and scales at their edges, prompt texts, and the tensor transform's geometry."""

from __future__ import annotations

import pytest
import torch

from reward_utils.base import RewardError
from reward_utils.prompt_text import class_prompt, imagenet_class_names, prompt_texts
from reward_utils.scaling import FID_EDGES, FID_LEVELS, similarity_reward, step_map
from reward_utils.tensor_transforms import ImageTransform, center_crop


def test_similarity_bins_at_the_edges():
    s = torch.tensor([-1.0, -1e-6, 0.0, 0.1, 0.3 - 1e-6, 0.3, 0.45, 0.6 - 1e-6, 0.6, 0.99, 1.0])
    expected = [-1.0, -1.0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.5, 1.5, 1.5]
    assert similarity_reward(s, quantize=True).tolist() == expected


def test_similarity_scale():
    s = torch.tensor([-0.2, 0.0, 0.25, 1.0])
    torch.testing.assert_close(similarity_reward(s, quantize=False), torch.tensor([-1.0, 0.0, 1.25, 5.0]))


def test_fid_levels_at_the_edges():
    fids = torch.tensor(
        [
            0.0,
            1.999,
            2.0,
            4.9,
            5.0,
            10.0,
            19.9,
            20.0,
            49.0,
            50.0,
            99.0,
            100.0,
            124.0,
            125.0,
            199.0,
            200.0,
            300.0,
            499.0,
            500.0,
            999.0,
            1000.0,
            5000.0,
        ],
        dtype=torch.float64,
    )
    expected = [
        2.0,
        2.0,
        1.8,
        1.8,
        1.5,
        1.0,
        1.0,
        0.9,
        0.9,
        0.8,
        0.7,
        0.5,
        0.5,
        0.4,
        0.3,
        0.2,
        0.1,
        0.1,
        0.05,
        0.05,
        0.0,
        0.0,
    ]
    assert step_map(fids, FID_EDGES, FID_LEVELS).tolist() == pytest.approx(expected)
    assert step_map(torch.tensor([-0.5]), FID_EDGES, FID_LEVELS).tolist() == [-1.0]


def test_step_map_validates_its_table():
    with pytest.raises(ValueError, match="len\\(levels\\) == len\\(edges\\) \\+ 1"):
        step_map(torch.zeros(1), (0.0, 1.0), (1.0, 2.0))
    with pytest.raises(ValueError, match="increase strictly"):
        step_map(torch.zeros(1), (1.0, 0.0), (1.0, 2.0, 3.0))


def test_imagenet_names_come_from_torchvision():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[207] == "golden retriever"
    assert class_prompt(207) == "a photo of golden retriever"


def test_prompt_texts_checks_kinds():
    assert prompt_texts("r", [1, 2], "class") == ["a photo of goldfish", "a photo of great white shark"]
    assert prompt_texts("r", ["x"], "caption") == ["x"]
    with pytest.raises(RewardError, match=r"reward 'r'.*prompt #1 is True"):
        prompt_texts("r", [1, True], "class")
    with pytest.raises(RewardError, match="outside"):
        prompt_texts("r", [-1], "class")


def test_shortest_side_resize_and_centre_crop_geometry():
    images = torch.rand(2, 3, 256, 384)
    out = ImageTransform(size=224, crop=224, mean=(0, 0, 0), std=(1, 1, 1), eight_bit=False)(images)
    assert out.shape == (2, 3, 224, 224)
    resized = torch.nn.functional.interpolate(images, size=(224, 336), mode="bicubic", antialias=True)
    torch.testing.assert_close(out, resized[..., :, 56:280])


def test_eight_bit_path_quantises_before_and_after_the_resize():
    images = torch.rand(2, 3, 256, 256)
    out = ImageTransform(size=224, crop=224, mean=(0, 0, 0), std=(1, 1, 1))(images)
    as_uint8 = (images * 255).round().to(torch.uint8)
    expected = torch.nn.functional.interpolate(as_uint8, size=(224, 224), mode="bicubic", antialias=True)
    torch.testing.assert_close(out, expected.float() / 255, atol=1e-6, rtol=0)
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-3)  # values stay on the 8-bit grid


def test_longest_side_resize_pads_with_zeros_like_hpsv2():
    images = torch.full((1, 3, 100, 200), 0.5)
    out = ImageTransform(size=50, resize="longest", mean=(0, 0, 0), std=(1, 1, 1), eight_bit=False)(images)
    assert out.shape == (1, 3, 50, 50)
    assert torch.all(out[..., :12, :] == 0) and torch.all(
        out[..., 37:, :] == 0
    )  # 25 rows of image, padded 12/13
    torch.testing.assert_close(out[..., 12:37, :], torch.full((1, 3, 25, 50), 0.5))


def test_normalisation_and_identity_size():
    images = torch.rand(1, 3, 224, 224)
    mean, std = (
        torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1),
        torch.tensor([0.5, 0.25, 1.0]).view(1, 3, 1, 1),
    )
    out = ImageTransform(size=224, crop=224, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), eight_bit=False)(
        images
    )
    torch.testing.assert_close(out, (images - mean) / std)
    out8 = ImageTransform(size=224, crop=224, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))(images)
    torch.testing.assert_close(out8, ((images * 255).round() / 255 - mean) / std)


def test_center_crop_pads_small_images():
    assert center_crop(torch.ones(1, 3, 10, 12), 16).shape == (1, 3, 16, 16)
