"""The shapes world of the offline demo: determinism, caption round trip, and the exact evaluator/reward.

The evaluator is the demo's reward and metric, so it is checked on the generator's own clean images
(>= 99 % required; docs/demo_world.md has the measured rate), on deliberately wrong images (each rejected by
the right requirement) and on noisy / blurred copies (what a small VQ + GPT produces).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from demo.dataset import build_c2i, build_t2i, load_or_build
from demo.detect import Detection, detect
from demo.evaluator import evaluate, evaluate_images, format_report, geneval_style_report
from demo.render import Placed, draw, render_spec
from demo.rewards import ShapesReward
from demo.world import (
    BACKGROUND,
    COLOURS,
    NUM_CLASSES,
    TAGS,
    ObjectReq,
    PromptSpec,
    all_prompts,
    class_spec,
    class_to_pair,
    counting_spec,
    iter_all_prompts,
    pair_to_class,
    parse_caption,
    prompt_pool,
    relative_position,
    sample_prompts,
)
from reward_utils.base import RewardError

GENEVAL_METADATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geneval" / "evaluation_metadata.jsonl"
)


@pytest.fixture(scope="module")
def clean_t2i():
    """1200 clean images: 300 prompts (50 per tag) x 4 scenes."""
    return build_t2i(num_prompts=300, images_per_prompt=4, seed=123)


def _accuracy(images: np.ndarray, data) -> dict:
    return geneval_style_report(evaluate_images(images, data.specs))


# ------------------------------------------------------------------------------------- determinism


def test_dataset_is_a_function_of_the_seed():
    a = build_t2i(num_prompts=12, images_per_prompt=2, seed=7)
    b = build_t2i(num_prompts=12, images_per_prompt=2, seed=7)
    assert a.captions == b.captions and np.array_equal(a.images, b.images)
    other = build_t2i(num_prompts=12, images_per_prompt=2, seed=8)
    assert not np.array_equal(a.images, other.images)
    prefix = build_t2i(num_prompts=6, images_per_prompt=2, seed=7)  # a smaller dataset is a prefix
    assert prefix.captions == a.captions[:12] and np.array_equal(prefix.images, a.images[:12])
    c1, c2 = build_c2i(30, seed=1), build_c2i(30, seed=1)
    assert np.array_equal(c1.images, c2.images) and np.array_equal(c1.class_ids, c2.class_ids)
    assert np.bincount(c1.class_ids, minlength=NUM_CLASSES).tolist() == [2] * NUM_CLASSES


def test_images_use_exact_palette_colours_and_tensors_are_unit_range():
    data = build_c2i(NUM_CLASSES, seed=0)
    for image, class_id in zip(data.images, data.class_ids):
        colours = {tuple(p) for p in image.reshape(-1, 3)}
        _, colour = class_to_pair(int(class_id))
        assert colours == {BACKGROUND, COLOURS[colour]}
    x = data.tensors()
    assert x.shape == (NUM_CLASSES, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) == 1.0


def test_dataset_cache_round_trip_and_corrupt_file(tmp_path):
    built = load_or_build(tmp_path, "t2i", num_prompts=6, images_per_prompt=2, seed=4)
    (path,) = list(tmp_path.glob("*.npz"))
    loaded = load_or_build(tmp_path, "t2i", num_prompts=6, images_per_prompt=2, seed=4)
    assert loaded.captions == built.captions and np.array_equal(loaded.images, built.images)
    path.write_bytes(b"not an npz file")
    with pytest.raises(ValueError, match="unreadable"):
        load_or_build(tmp_path, "t2i", num_prompts=6, images_per_prompt=2, seed=4)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        load_or_build(tmp_path, "video", num_images=3, seed=0)


# ------------------------------------------------------------------------------------ prompts, split


def test_caption_parser_inverts_the_renderer_on_every_prompt():
    prompts = list(iter_all_prompts())
    assert len(prompts) == 774
    for spec in prompts:
        assert parse_caption(spec.caption) == spec, spec.caption
        assert PromptSpec.from_geneval_metadata(spec.to_geneval_metadata()) == spec
    assert parse_caption("  A photo of two RED circles. ") == counting_spec("circle", "red", 2)
    assert parse_caption("a photo of two circles") == counting_spec("circle", None, 2)  # GenEval's own style


@pytest.mark.parametrize(
    "caption",
    [
        "a photo of a dog",
        "a photo of two red circle",
        "a photo of an red circle",
        "a photo of a red circles",
        "a photo of a red circle left of a blue circle",
        "a photo of a red circle and a square",
        "a photo of four red circles",
        "a red circle",
        "",
    ],
)
def test_caption_parser_rejects_what_the_world_cannot_say(caption):
    with pytest.raises(ValueError, match="caption"):
        parse_caption(caption)


def test_caption_wording_and_metadata_follow_geneval():
    spec = parse_caption("a photo of a blue square left of a yellow triangle")
    assert spec.tag == "position"
    meta = spec.to_geneval_metadata()
    assert meta == {
        "tag": "position",
        "include": [
            {"class": "triangle", "count": 1, "color": "yellow"},
            {"class": "square", "count": 1, "color": "blue", "position": ["left of", 0]},
        ],
        "prompt": "a photo of a blue square left of a yellow triangle",
    }
    assert counting_spec("circle", "red", 3).to_geneval_metadata()["exclude"] == [
        {"class": "circle", "count": 4, "color": "red"}
    ]
    tags = {
        parse_caption(c).tag
        for c in [
            "a photo of a circle",
            "a photo of a circle and a square",
            "a photo of two red circles",
            "a photo of a red circle",
            "a photo of a red circle above a blue square",
            "a photo of a red circle and a blue square",
        ]
    }
    assert tags == set(TAGS)


def test_metadata_structure_matches_the_real_geneval_file():
    if not GENEVAL_METADATA.exists():
        pytest.skip(f"GenEval metadata not found at {GENEVAL_METADATA}")
    real = {}
    for line in GENEVAL_METADATA.read_text().splitlines():
        row = json.loads(line)
        real.setdefault(row["tag"], row)
    assert set(real) == set(TAGS)
    for tag in TAGS:
        ours = all_prompts(tag)[0].to_geneval_metadata()
        assert set(ours) == set(real[tag]), tag
        # counting and position prompts also name colours here (the world's objects always have one)
        extra = set() if tag in ("colors", "color_attr") else {"color"}
        assert [set(r) - extra for r in ours["include"]] == [set(r) for r in real[tag]["include"]], tag
        assert ours["prompt"].startswith("a photo of ")


def test_heldout_prompts_are_unseen_combinations():
    for tag in TAGS:
        train, heldout = prompt_pool(tag, "train"), prompt_pool(tag, "heldout")
        assert prompt_pool(tag, "heldout") == heldout  # deterministic
        if len(all_prompts(tag)) >= 10:
            assert not set(train) & set(heldout), tag
            assert sorted(map(str, train + heldout)) == sorted(map(str, all_prompts(tag)))
            assert len(heldout) == round(0.2 * len(all_prompts(tag)))
        else:  # too few prompts to hold any out (single_object, two_object)
            assert train == heldout == all_prompts(tag)
    sampled = sample_prompts(60, seed=3, split="heldout")
    assert [s.tag for s in sampled[:6]] == list(TAGS)
    assert all(s in prompt_pool(s.tag, "heldout") for s in sampled)
    assert sample_prompts(60, seed=3, split="heldout") == sampled
    with pytest.raises(ValueError, match="split"):
        prompt_pool("colors", "test")


def test_class_table_is_a_bijection():
    pairs = {class_to_pair(i) for i in range(NUM_CLASSES)}
    assert len(pairs) == NUM_CLASSES
    assert all(pair_to_class(*class_to_pair(i)) == i for i in range(NUM_CLASSES))
    assert class_spec(0).caption == "a photo of a red circle"
    with pytest.raises(ValueError, match="class id"):
        class_to_pair(NUM_CLASSES)


# ------------------------------------------------------------------------------------ evaluator: clean


def test_evaluator_is_right_on_clean_generated_images(clean_t2i):
    report = _accuracy(clean_t2i.images, clean_t2i)
    print("\nclean generated images (1200):\n" + format_report(report))
    assert report["num_images"] == 1200 and set(report["per_tag"]) == set(TAGS)
    assert all(r["accuracy"] >= 0.99 for r in report["per_tag"].values()), report
    assert report["overall_exact"] >= 0.99, report  # and no phantom extra objects
    c2i = build_c2i(150, seed=9)
    verdicts = evaluate_images(c2i.images, [class_spec(int(c)) for c in c2i.class_ids])
    assert sum(v.strict for v in verdicts) / len(verdicts) >= 0.99


def test_detector_recovers_every_drawn_object(clean_t2i):
    """Stronger than the verdict: shape, colour and exact box of each drawn object are recovered."""
    specs = clean_t2i.specs[:240:4]
    for i, spec in enumerate(specs):
        image, drawn = render_spec(spec, np.random.default_rng([55, i]))
        (found,) = detect(image[None])
        assert sorted((d.shape, d.colour, d.box) for d in found) == sorted(
            (o.shape, o.colour, tuple(float(v) for v in o.box)) for o in drawn
        ), spec.caption


def test_uint8_and_float_images_get_the_same_verdicts(clean_t2i):
    images, specs = clean_t2i.images[:120], clean_t2i.specs[:120]
    as_uint8 = [v.checks for v in evaluate_images(images, specs)]
    as_float = [v.checks for v in evaluate_images(images.astype(np.float32) / 255.0, specs)]
    assert as_uint8 == as_float


# ------------------------------------------------------------------------------------ evaluator: wrong


def _verdict(caption: str, objects: list[Placed]):
    (v,) = evaluate_images(draw(objects)[None], [parse_caption(caption)])
    return v


WRONG_IMAGES = [
    ("wrong colour", "a photo of a red circle", [Placed("circle", "blue", 10, 10, 12)], {"colour"}),
    ("wrong shape", "a photo of a red circle", [Placed("square", "red", 10, 10, 12)], {"count", "colour"}),
    ("wrong shape (no colour)", "a photo of a triangle", [Placed("circle", "green", 10, 10, 12)], {"count"}),
    (
        "one too few",
        "a photo of two red circles",
        [Placed("circle", "red", 3, 3, 10)],
        {"count", "colour"},
    ),
    (
        "one too many",
        "a photo of two red circles",
        [
            Placed("circle", "red", 2, 2, 9),
            Placed("circle", "red", 20, 2, 9),
            Placed("circle", "red", 10, 20, 9),
        ],
        {"exclude"},
    ),
    (
        "counted objects of another colour",
        "a photo of three green squares",
        [
            Placed("square", "green", 2, 2, 9),
            Placed("square", "green", 20, 2, 9),
            Placed("square", "blue", 10, 20, 9),
        ],
        {"colour"},
    ),
    (
        "missing second object",
        "a photo of a circle and a triangle",
        [Placed("circle", "yellow", 4, 4, 12)],
        {"count"},
    ),
    (
        "swapped colours",
        "a photo of a red circle and a blue square",
        [Placed("circle", "blue", 3, 3, 10), Placed("square", "red", 18, 18, 10)],
        {"colour"},
    ),
    (
        "swapped position",
        "a photo of a blue square left of a yellow triangle",
        [Placed("triangle", "yellow", 3, 10, 12), Placed("square", "blue", 19, 10, 12)],
        {"position"},
    ),
    (
        "vertical instead of horizontal",
        "a photo of a red circle right of a green square",
        [Placed("square", "green", 10, 2, 11), Placed("circle", "red", 10, 19, 11)],
        {"position"},
    ),
    ("empty image", "a photo of a red circle", [], {"count", "colour"}),
    ("empty image, counting", "a photo of three red circles", [], {"present", "count", "colour"}),
    (
        "empty image, position",
        "a photo of a blue square left of a yellow triangle",
        [],
        {"count", "colour", "position"},
    ),
]


@pytest.mark.parametrize(
    ("case", "caption", "objects", "failed"), WRONG_IMAGES, ids=[w[0] for w in WRONG_IMAGES]
)
def test_evaluator_rejects_wrong_images_for_the_right_reason(case, caption, objects, failed):
    verdict = _verdict(caption, objects)
    assert not verdict.strict, case
    assert {c.kind for c in verdict.failed} == failed, [c.description for c in verdict.failed]
    assert 0.0 <= verdict.dense < 1.0


def test_the_corrected_images_pass():
    """The same layouts with the mistake fixed pass, so the rejections above are not blanket failures."""
    assert _verdict("a photo of a red circle", [Placed("circle", "red", 10, 10, 12)]).strict
    assert _verdict(
        "a photo of a blue square left of a yellow triangle",
        [Placed("triangle", "yellow", 19, 10, 12), Placed("square", "blue", 3, 10, 12)],
    ).strict
    assert _verdict(
        "a photo of two red circles", [Placed("circle", "red", 2, 2, 9), Placed("circle", "red", 20, 2, 9)]
    ).strict


def test_dense_score_grades_partial_answers():
    scores = [
        _verdict("a photo of three red circles", objects).dense
        for objects in (
            [],
            [Placed("circle", "red", 2, 2, 9)],
            [
                Placed("circle", "red", 2, 2, 9),
                Placed("circle", "red", 20, 2, 9),
                Placed("circle", "red", 10, 20, 9),
            ],
        )
    ]
    assert scores == [pytest.approx(0.25), pytest.approx(0.5), 1.0]  # exclude / + present / all four checks


def test_geneval_relative_position_rule():
    left, right = (0, 0, 10, 10), (20, 0, 30, 10)
    assert relative_position(left, right) == {"left of"}
    assert relative_position(right, left) == {"right of"}
    assert relative_position((0, 0, 10, 10), (20, 20, 30, 30)) == {"left of", "above"}  # diagonal: both
    assert relative_position((0, 0, 10, 10), (1, 1, 11, 11)) == set()  # within the size slack: none


def test_geneval_rules_on_detections():
    def det(shape, colour, x, y, size=10):
        return Detection(shape, colour, size * size, (x, y, x + size, y + size))

    spec = parse_caption("a photo of a red circle")
    # GenEval judges the colour of the most confident circle (here: the largest), whatever its colour
    assert not evaluate(spec, [det("circle", "blue", 0, 0, 14), det("circle", "red", 20, 20)]).strict
    assert evaluate(spec, [det("circle", "blue", 0, 0, 8), det("circle", "red", 20, 20)]).strict
    # so extra circles in other colours cannot buy a pass, while other shapes do not matter
    clutter = [det("circle", c, 20 * i, 0, 12) for i, c in enumerate(["blue", "green", "yellow"])]
    assert not evaluate(spec, [*clutter, det("circle", "red", 0, 20)]).strict
    assert evaluate(spec, [det("square", "blue", 0, 0, 14), det("circle", "red", 20, 20)]).strict
    # unrecognised blobs match nothing
    assert not evaluate(spec, [Detection(None, "red", 100, (0, 0, 10, 10))]).strict
    # position with no target: GenEval's "no target" failure
    pos = parse_caption("a photo of a red circle left of a blue square")
    verdict = evaluate(pos, [det("circle", "red", 0, 0)])
    assert {c.kind for c in verdict.failed} == {"count", "colour", "position"}


def test_report_averages_per_tag_accuracies_like_geneval():
    ok = evaluate(parse_caption("a photo of a circle"), [Detection("circle", "red", 80, (0, 0, 10, 10))])
    bad = evaluate(parse_caption("a photo of a circle"), [])
    miss = evaluate(parse_caption("a photo of two red circles"), [])
    report = geneval_style_report([ok, ok, bad, miss])
    assert report["per_tag"]["single_object"]["accuracy"] == pytest.approx(2 / 3)
    assert report["per_tag"]["counting"] == {
        "accuracy": 0.0, "correct": 0, "total": 1, "dense": 0.25, "exact": 0.0
    }
    assert report["overall"] == pytest.approx((2 / 3 + 0.0) / 2)  # mean over tags, not over images (0.5)
    with pytest.raises(ValueError, match="no verdicts"):
        geneval_style_report([])


def test_exact_accuracy_counts_correct_images_without_extra_objects():
    circle = Detection("circle", "red", 80, (0, 0, 10, 10))
    square = Detection("square", "blue", 80, (20, 0, 30, 10))
    blob = Detection(None, "green", 30, (0, 20, 5, 25))
    spec = parse_caption("a photo of a circle")
    tidy, cluttered, smudged = (evaluate(spec, dets) for dets in ([circle], [circle, square], [circle, blob]))
    assert tidy.strict and cluttered.strict and smudged.strict  # GenEval ignores what else is in the image
    assert tidy.exact and not cluttered.exact and not smudged.exact
    two = evaluate(parse_caption("a photo of a circle and a square"), [circle, square])
    assert two.exact and two.asked == 2
    report = geneval_style_report([tidy, cluttered, two])
    assert report["per_tag"]["single_object"]["exact"] == pytest.approx(0.5)
    assert report["overall"] == pytest.approx(1.0)
    assert report["overall_exact"] == pytest.approx((0.5 + 1.0) / 2)


# ------------------------------------------------------------------------------------ evaluator: noise


@pytest.mark.parametrize(
    ("name", "corrupt"),
    [
        ("gaussian noise sigma 0.05", lambda x, rng: x + rng.normal(0.0, 0.05, x.shape)),
        ("gaussian noise sigma 0.1", lambda x, rng: x + rng.normal(0.0, 0.1, x.shape)),
        ("gaussian noise sigma 0.15", lambda x, rng: x + rng.normal(0.0, 0.15, x.shape)),
        ("blur sigma 0.7 px", lambda x, rng: ndimage.gaussian_filter(x, (0, 0.7, 0.7, 0))),
        ("blur sigma 1.0 px", lambda x, rng: ndimage.gaussian_filter(x, (0, 1.0, 1.0, 0))),
        (
            "blur 0.7 px + noise 0.05",
            lambda x, rng: ndimage.gaussian_filter(x, (0, 0.7, 0.7, 0)) + rng.normal(0.0, 0.05, x.shape),
        ),
        ("washed-out colours (40 % contrast)", lambda x, rng: 0.6 + 0.4 * x),
    ],
)
def test_evaluator_tolerates_mild_noise_and_blur(clean_t2i, name, corrupt):
    images = clean_t2i.images[:600].astype(np.float64) / 255.0
    corrupted = np.clip(corrupt(images, np.random.default_rng(0)), 0.0, 1.0)
    report = geneval_style_report(evaluate_images(corrupted, clean_t2i.specs[:600]))
    print(f"\n{name}: overall {report['overall']:.4f}")
    assert report["overall"] >= 0.99, format_report(report)


def test_pure_noise_is_not_mistaken_for_objects(clean_t2i):
    """Random pixels must score near zero: the evaluator does not hallucinate shapes in noise."""
    images = clean_t2i.images[:300].astype(np.float64) / 255.0
    noise = np.random.default_rng(1).uniform(0.0, 1.0, images.shape)
    report = geneval_style_report(evaluate_images(noise, clean_t2i.specs[:300]))
    assert report["overall"] < 0.1


def test_tinted_background_is_not_an_object():
    image = draw([Placed("circle", "blue", 10, 10, 10)]).astype(np.float64) / 255.0
    image[..., 2] *= 0.7  # a yellowish cast over the whole image (chroma 0.3 on the background)
    (found,) = detect(image[None])
    assert [(d.shape, d.colour) for d in found if d.shape] == [("circle", "blue")]
    assert any(d.shape is None and d.box == (0.0, 0.0, 32.0, 32.0) for d in found)  # the tint: no shape
    (v,) = evaluate_images(image[None], [parse_caption("a photo of a yellow square")])
    assert not v.strict


def test_evaluator_rejects_malformed_input(clean_t2i):
    specs = clean_t2i.specs[:2]
    with pytest.raises(ValueError, match="channel-last"):
        evaluate_images(np.zeros((2, 3, 32, 32), dtype=np.float32), specs)
    nan = np.full((2, 32, 32, 3), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_images(nan, specs)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_images(np.full((2, 32, 32, 3), 2.0), specs)
    with pytest.raises(ValueError, match="2 images but 1"):
        evaluate_images(clean_t2i.images[:2], specs[:1])


# ------------------------------------------------------------------------------------ reward backend


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
