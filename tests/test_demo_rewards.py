"""The shapes rewards of the demo (``shapes*``): modes, metadata, class ids and captions, errors."""

from __future__ import annotations

import pytest
import torch

from demo.dataset import build_c2i
from demo.render import Placed, draw
from demo.rewards import ShapesReward
from demo.world import NUM_CLASSES, ObjectReq, PromptSpec, parse_caption
from reward_utils.base import RewardError


def test_reward_scores_captions_and_class_ids(clean_t2i):
    reward = ShapesReward()
    images = torch.from_numpy(clean_t2i.images[:8]).permute(0, 3, 1, 2).float() / 255.0
    captions = list(clean_t2i.captions[:8])
    scores = reward(images, captions)
    assert scores.shape == (8,) and scores.dtype == torch.float32
    assert torch.equal(scores, torch.ones(8))
    wrong = reward(images, captions[1:] + captions[:1])  # every image paired with another prompt
    assert bool(((wrong >= 0) & (wrong <= 1)).all()) and float(wrong.mean()) < 1.0
    c2i = build_c2i(NUM_CLASSES, seed=2)
    ids = [int(c) for c in c2i.class_ids]
    assert torch.equal(reward(c2i.tensors(), ids), torch.ones(NUM_CLASSES))
    assert torch.equal(reward(c2i.tensors(), torch.tensor(ids)), torch.ones(NUM_CLASSES))
    shifted = [(i + 1) % NUM_CLASSES for i in ids]  # same shape, next colour (or next shape): never right
    assert float(reward(c2i.tensors(), shifted).max()) <= 0.5


def test_reward_dense_and_strict_modes():
    image = (
        torch.from_numpy(draw([Placed("circle", "blue", 10, 10, 12)])).permute(2, 0, 1)[None].float() / 255.0
    )
    assert ShapesReward("dense")(image, ["a photo of a red circle"]).tolist() == [0.5]
    assert ShapesReward("strict")(image, ["a photo of a red circle"]).tolist() == [0.0]
    assert ShapesReward("strict")(image, ["a photo of a blue circle"]).tolist() == [1.0]
    with pytest.raises(ValueError, match="mode"):
        ShapesReward("sparse")


def test_tidy_mode_makes_clutter_cost():
    def as_tensor(objects):
        return torch.from_numpy(draw(objects)).permute(2, 0, 1)[None].float() / 255.0

    one = [Placed("circle", "blue", 4, 4, 10)]
    cluttered = one + [Placed("square", "red", 18, 4, 10), Placed("triangle", "green", 4, 18, 10)]
    tidy = ShapesReward("tidy")
    assert tidy(as_tensor(one), ["a photo of a circle"]).tolist() == [1.0]
    assert tidy(as_tensor(cluttered), ["a photo of a circle"]).tolist() == pytest.approx([1 / 3])
    assert tidy(as_tensor(cluttered), ["a photo of a circle and a square"]).tolist() == pytest.approx([2 / 3])
    assert tidy(as_tensor([]), ["a photo of a circle"]).tolist() == [0.0]
    # Too few objects cost as much as too many: one object does not pay full marks for a two-object prompt.
    assert tidy(as_tensor(one), ["a photo of a circle and a square"]).tolist() == pytest.approx([1 / 2])
    assert tidy(as_tensor(one), ["a photo of three blue circles"]).tolist() == pytest.approx([1 / 3])
    # GenEval's own rules do not see the clutter: the dense and strict modes still give full marks.
    assert ShapesReward("strict")(as_tensor(cluttered), ["a photo of a circle"]).tolist() == [1.0]


def test_clean_mode_pays_nothing_for_wrong_objects_and_less_for_every_extra_one():
    def as_tensor(objects):
        return torch.from_numpy(draw(objects)).permute(2, 0, 1)[None].float() / 255.0

    red_circle = [Placed("circle", "red", 4, 4, 10)]
    extras = [Placed("square", "blue", 18, 4, 10), Placed("triangle", "green", 4, 18, 10)]
    clean, exact = ShapesReward("clean"), ShapesReward("exact")
    assert clean(as_tensor(red_circle), ["a photo of a red circle"]).tolist() == [1.0]
    assert clean(as_tensor(red_circle), ["a photo of a blue circle"]).tolist() == [0.0]  # wrong colour
    # precision^2 x recall: (1/2)^2 and (1/3)^2 with one and two extra objects
    assert clean(as_tensor(red_circle + extras[:1]), ["a photo of a red circle"]).tolist() == pytest.approx([1 / 4])
    assert clean(as_tensor(red_circle + extras), ["a photo of a red circle"]).tolist() == pytest.approx([1 / 9])
    # half the asked objects, nothing extra: recall 1/2
    assert clean(as_tensor(red_circle), ["a photo of a red circle and a blue square"]).tolist() == [0.5]
    assert clean(as_tensor([]), ["a photo of a red circle"]).tolist() == [0.0]
    # exact: GenEval-correct with nothing else in the image
    assert exact(as_tensor(red_circle), ["a photo of a red circle"]).tolist() == [1.0]
    assert exact(as_tensor(red_circle + extras), ["a photo of a red circle"]).tolist() == [0.0]
    assert ShapesReward("strict")(as_tensor(red_circle + extras), ["a photo of a red circle"]).tolist() == [1.0]


def test_colour_mode_is_the_fraction_of_pixels_in_the_prompts_colour():
    image = torch.from_numpy(draw([Placed("square", "red", 0, 0, 16)])).permute(2, 0, 1)[None].float() / 255.0
    colour = ShapesReward("colour")
    red = colour(image, ["a photo of a red square"]).item()
    assert red == pytest.approx(16 * 16 / 32**2, abs=0.03)
    assert colour(image, [0]).item() == pytest.approx(red)  # class 0 is the red circle: its colour is red
    assert colour(image, ["a photo of a blue square"]).tolist() == [0.0]
    with pytest.raises(RewardError, match="exactly one colour"):
        colour(image, ["a photo of a square"])


def test_reward_uses_metadata_spec_and_checks_it_agrees():
    image = (
        torch.from_numpy(draw([Placed("square", "green", 10, 10, 12)])).permute(2, 0, 1)[None].float() / 255.0
    )
    spec = parse_caption("a photo of a green square")
    reward = ShapesReward()
    assert reward(image, [spec.caption], [{"spec": spec}]).tolist() == [1.0]
    assert reward(image, [spec.caption], [{"spec": spec.to_geneval_metadata()}]).tolist() == [1.0]
    with pytest.raises(RewardError, match="describes"):
        reward(image, ["a photo of a red square"], [{"spec": spec}])
    with pytest.raises(RewardError, match="not a PromptSpec"):
        reward(image, [spec.caption], [{"spec": 3}])


@pytest.mark.parametrize(
    ("images", "prompts", "message"),
    [
        (torch.full((1, 3, 32, 32), float("nan")), ["a photo of a circle"], "NaN"),
        (torch.full((1, 3, 32, 32), -1.0), ["a photo of a circle"], r"\[0, 1\]"),
        (torch.ones(1, 1, 32, 32), ["a photo of a circle"], r"\(B, 3, H, W\)"),
        (torch.ones(2, 3, 32, 32), ["a photo of a circle"], "2 images but 1 prompts"),
        (torch.ones(1, 3, 32, 32), ["a photo of a dog"], "a dog"),
        (torch.ones(1, 3, 32, 32), [NUM_CLASSES], "class id"),
        (torch.ones(1, 3, 32, 32), [-1], "class id"),
        (torch.ones(1, 3, 32, 32), [2.5], "no caption or class id"),
    ],
)
def test_reward_raises_on_bad_input(images, prompts, message):
    with pytest.raises(RewardError, match=message):
        ShapesReward()(images, prompts)


def test_object_requirements_validate_their_vocabulary():
    with pytest.raises(ValueError, match="unknown shape"):
        ObjectReq("hexagon")
    with pytest.raises(ValueError, match="unknown colour"):
        ObjectReq("circle", colour="teal")
    with pytest.raises(ValueError, match="relation"):
        PromptSpec("colors", (ObjectReq("circle"), ObjectReq("square", position=("left of", 0))))
