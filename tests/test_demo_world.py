"""The shapes world of the offline demo: determinism, the dataset cache, and the prompts (caption round trip,
GenEval wording and metadata, the held-out split, the class table). The evaluator and the rewards are in
test_demo_evaluator.py and test_demo_rewards.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from demo.dataset import build_c2i, build_t2i, load_or_build
from demo.world import (
    BACKGROUND,
    COLOURS,
    NUM_CLASSES,
    TAGS,
    PromptSpec,
    all_prompts,
    class_spec,
    class_to_pair,
    counting_spec,
    iter_all_prompts,
    pair_to_class,
    parse_caption,
    prompt_pool,
    sample_prompts,
)

GENEVAL_METADATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geneval" / "evaluation_metadata.jsonl"
)


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
