"""``--reward_dtype``: every reward network is cast once at load, scores stay float32 and close to float32's.

The models are the reward tests' random-weight ones (tests/reward_models.py; the Qwen judge from
bench/dry_run_models.py), written to disk and loaded by the shipped loaders through ``build_reward``.

Tolerance: bf16 keeps 8 significant bits (each value rounded by up to 2^-8, about 0.4 %, of itself). Through
tens of layers these errors add up to a few percent of a feature; random-weight features vary little from image to
image, so what matters for GRPO (the differences between images of a group) is compared with the spread (std) of
the float32 scores over the batch: the bound is 0.25 x spread, about twice the largest ratio measured
(docs/rewards.md, "Reward precision").
"""

from __future__ import annotations

import pytest
import torch

import train_c2i
from bench.dry_run_models import SMALL, ForcedAnswer, qwen_answer_ids, write_qwen
from img_gen_grpo_rewards import RewardOptions, build_reward
from reward_utils.backend import ModelCache
from tests.grpo_fixtures import tiny_gpt_ckpt, tiny_run_flags, tiny_vq
from tests.helpers import HPS_TINY_ARCH, no_pretrained_timm, smooth_images
from tests.reward_models import (
    offline_blip_tokenizer,
    tiny_image_reward,
    write_image_reward_med_config,
    write_tiny_aesthetic_mlp,
    write_tiny_clip,
    write_tiny_hps,
    write_tiny_maniqa,
)

pytestmark = pytest.mark.slow

MAX_DIFF_OVER_SPREAD = 0.25
CAPTIONS = [
    "a photo of a red car",
    "a blue dog on the street",
    "a watercolor painting of a lighthouse",
    "a bowl of soup",
    "a cat in the car",
    "the red lighthouse",
    "a painting of a dog",
    "a blue bowl",
]
# reward -> how many test images it scores (the ViT-L and ViT-B/8 backbones are slow on one CPU thread)
BATCH = {"clip_text": 8, "pickscore": 8, "aesthetic": 8, "hpsv2_text": 8, "imagereward": 4, "maniqa": 4}
REWARDS = [*BATCH, "qwenvl_fake"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("reward_models")


@pytest.fixture(scope="module")
def flags(root) -> dict:
    """The reward flags naming every model file, as a run would pass them."""
    clip = write_tiny_clip(root / "clip")
    torch.save(tiny_image_reward(root).state_dict(), root / "ImageReward.pt")
    qwen, _ = write_qwen(root, SMALL)
    return dict(
        reward_device="cpu",
        clip_model=str(clip),
        pickscore_model=str(clip),
        pickscore_processor=str(clip),
        aesthetic_clip_model=str(clip),
        aesthetic_mlp=str(write_tiny_aesthetic_mlp(root / "aesthetic.pth")),
        hps_checkpoint=str(write_tiny_hps(root)),
        hps_arch=HPS_TINY_ARCH,
        imagereward_model=str(root / "ImageReward.pt"),
        imagereward_med_config=str(write_image_reward_med_config(root)),
        maniqa_checkpoint=str(write_tiny_maniqa(root)),
        maniqa_crops=1,
        qwenvl_mode="transformers",
        qwenvl_model=str(qwen),
        qwenvl_max_new_tokens=4,
    )


def build(root, flags: dict, names=REWARDS, cache: ModelCache | None = None, **options):
    with offline_blip_tokenizer(root), no_pretrained_timm():
        composer = build_reward(names, None, RewardOptions(**flags, **options), cache=cache)
    if "qwenvl_fake" in composer.functions:  # a random judge never writes JSON: force the answer's tokens
        judge = composer.functions["qwenvl_fake"].judge
        judge.generate_kwargs["logits_processor"] = [ForcedAnswer(qwen_answer_ids(judge.processor.tokenizer))]
    return composer


@pytest.fixture(scope="module")
def fp32(root, flags):
    return build(root, flags, reward_dtype="float32")


@pytest.fixture(scope="module")
def bf16(root, flags):
    return build(root, flags, reward_dtype="bfloat16")


def networks(composer) -> dict[str, torch.nn.Module]:
    """reward -> the network that follows --reward_dtype (score heads that stay float32 are left out)."""
    f = composer.functions
    return {
        "clip_text": f["clip_text"].scorer.model,
        "pickscore": f["pickscore"].scorer.model,
        "aesthetic": f["aesthetic"].scorer.model,
        "hpsv2_text": f["hpsv2_text"].scorer.model,
        "imagereward": f["imagereward"].model.blip,
        "maniqa": f["maniqa"].metric,
        "qwenvl_fake": f["qwenvl_fake"].judge.model,
    }


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


@pytest.mark.parametrize("name", REWARDS)
def test_bf16_casts_every_floating_weight(fp32, bf16, name):
    full, half = networks(fp32)[name], networks(bf16)[name]
    dtypes = {p.dtype for p in half.parameters() if p.is_floating_point()}
    assert dtypes == {torch.bfloat16}, f"{name}: weights in {dtypes}"
    assert {p.dtype for p in full.parameters() if p.is_floating_point()} == {torch.float32}
    assert 2 * weight_bytes(half) == weight_bytes(full), f"{name}: weight bytes not halved"


def test_score_heads_stay_float32(bf16):
    """The aesthetic and ImageReward MLPs (under 1 M parameters each) are not worth bf16's rounding."""
    for head in (bf16.functions["aesthetic"].mlp, bf16.functions["imagereward"].model.mlp):
        assert {p.dtype for p in head.parameters()} == {torch.float32}


@pytest.mark.parametrize("name", list(BATCH))
def test_bf16_scores_are_float32_and_close(fp32, bf16, name):
    n = BATCH[name]
    images, captions = smooth_images(n, 224, seed=5), CAPTIONS[:n]
    reference = fp32.functions[name](images, captions)
    scores = bf16.functions[name](images, captions)
    assert scores.dtype == torch.float32 and reference.dtype == torch.float32
    diff, spread = (scores - reference).abs().max().item(), reference.std().item()
    print(f"{name}: max |bf16 - fp32| {diff:.3g}, spread {spread:.3g}, ratio {diff / spread:.3g}")
    assert spread > 1e-3, f"{name}: scores {reference} barely vary; the comparison would be void"
    assert diff <= MAX_DIFF_OVER_SPREAD * spread


def test_bf16_qwen_judge_scores_float32_and_logits_close(fp32, bf16):
    """The judge's score is parsed from text (forced here), so closeness is checked on its next-token logits."""
    images, questions = smooth_images(4, 56, seed=5), ["is this image fake?"] * 4
    scores = bf16.functions["qwenvl_fake"](images, ["ignored"] * 4)
    assert scores.dtype == torch.float32
    logits = {}
    for label, composer in (("fp32", fp32), ("bf16", bf16)):
        judge = composer.functions["qwenvl_fake"].judge
        with torch.no_grad():
            logits[label] = judge.model(**judge.inputs(images, questions)).logits[:, -1].float()
    diff, spread = (logits["bf16"] - logits["fp32"]).abs().max().item(), logits["fp32"].std().item()
    print(f"qwen logits: max |bf16 - fp32| {diff:.3g}, spread {spread:.3g}, ratio {diff / spread:.3g}")
    assert spread > 1e-3
    assert diff <= MAX_DIFF_OVER_SPREAD * spread


def test_dtype_is_part_of_the_model_cache_key(root, flags):
    cache = ModelCache()
    first = build(root, flags, ["clip_text", "aesthetic"], cache, reward_dtype="float32")
    again = build(root, flags, ["clip_text"], cache, reward_dtype="float32")
    half = build(root, flags, ["clip_text"], cache, reward_dtype="bfloat16")
    assert again.functions["clip_text"].scorer is first.functions["clip_text"].scorer
    assert first.functions["clip_text"].scorer is first.functions["aesthetic"].scorer
    assert half.functions["clip_text"].scorer.dtype == torch.bfloat16
    assert first.functions["clip_text"].scorer.dtype == torch.float32
    assert len(cache) == 3  # float32 CLIP, the aesthetic head, bfloat16 CLIP


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run_files")
    torch.save({"model": tiny_vq().state_dict()}, folder / "vq.pt")
    return tiny_gpt_ckpt(folder, num_classes=15), folder / "vq.pt"


@pytest.mark.parametrize(
    ("dtype_flags", "expected"),
    [
        ([], torch.float32),
        (["--torch_dtype", "bfloat16"], torch.bfloat16),
        (["--torch_dtype", "bfloat16", "--reward_dtype", "float32"], torch.float32),
        (["--reward_dtype", "bfloat16"], torch.bfloat16),
    ],
)
def test_training_flags_reach_the_reward_models(tmp_path, flags, run_files, dtype_flags, expected):
    """train_c2i's parser and build_trainer: --reward_dtype defaults to a lowered --torch_dtype; given, it wins."""
    gpt, vq = run_files
    rewards = ["--reward_funcs", "clip_distance", "--clip_model", flags["clip_model"], "--reward_device", "cpu"]
    argv = tiny_run_flags(gpt, vq, tmp_path / "run", "--num_classes", "15", *rewards, *dtype_flags)
    trainer = train_c2i.build_trainer(*train_c2i.parse_args(argv))
    assert trainer.reward_fn.functions["clip_distance"].scorer.dtype == expected
    recorded = None if not dtype_flags else str(expected).removeprefix("torch.")  # unset stays unset: per backend
    assert trainer.run_config["reward_dtype"] == recorded  # what a checkpoint records


def test_unknown_reward_dtype_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        train_c2i.parse_args(["--reward_funcs", "clip_distance", "--reward_dtype", "fp8"])
    assert "--reward_dtype" in capsys.readouterr().err
