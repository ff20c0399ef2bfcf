"""The in-process Qwen2.5-VL judge on a tiny random model: tensor inputs against the processor on PIL images, and
the reward end to end with a forced answer."""

from __future__ import annotations

import pytest
import torch

from bench.dry_run_models import SMALL, qwen_config, qwen_processor
from reward_utils.base import RewardError
from reward_utils.vlm_answers import parse_json_score
from reward_utils.vlm_judge import LocalQwenJudge, VLMJudgeReward
from tests.helpers import smooth_images


@pytest.fixture(scope="module")
def qwen():
    """A 0.2 M-parameter Qwen2.5-VL with a word-level tokenizer (the real one needs vocab files)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    processor = qwen_processor(['{"score":', "3}", "a", "photo", "of"])
    config = qwen_config(SMALL, processor.tokenizer)  # the dry run's small Qwen: 2 layers, 2 vision blocks
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(config).eval(), processor


@pytest.mark.parametrize(("size", "tolerance"), [(56, 1e-6), (64, 0.05)])
def test_local_judge_tensor_inputs_match_processor_on_pil(qwen, size, tolerance):
    """56 px needs no resize (identical pixels); 64 px is resized to 56 (8-bit vs float resize; the measured
    difference is in docs/rewards.md)."""
    from torchvision.transforms.functional import to_pil_image

    model, processor = qwen
    judge = LocalQwenJudge(model, processor)
    images = smooth_images(2, size, seed=size)
    questions = ["a photo of", "a photo"]
    batch = judge.inputs(images, questions)
    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for q in questions
    ]
    reference = processor(
        text=texts, images=[to_pil_image(i) for i in images], padding=True, return_tensors="pt"
    )
    assert torch.equal(batch["input_ids"], reference["input_ids"])
    assert torch.equal(batch["image_grid_thw"], reference["image_grid_thw"])
    diff = (batch["pixel_values"] - reference["pixel_values"]).abs().max().item()
    print(f"qwen pixels {size}px: max |diff| {diff:.2e}")
    assert diff <= tolerance


class ForceAnswer:
    """Logits processor that makes the random model 'say' a fixed token sequence."""

    def __init__(self, token_ids: list[int]):
        self.token_ids, self.start = token_ids, None

    def __call__(self, input_ids, scores):
        self.start = input_ids.shape[1] if self.start is None else self.start
        step = min(input_ids.shape[1] - self.start, len(self.token_ids) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.token_ids[step]] = 0.0
        return forced


def test_local_judge_reward_end_to_end(qwen):
    from transformers import LogitsProcessorList

    model, processor = qwen
    ids = processor.tokenizer.convert_tokens_to_ids
    force = ForceAnswer([ids('{"score":'), ids("3}"), processor.tokenizer.eos_token_id])
    judge = LocalQwenJudge(
        model, processor, max_new_tokens=4, generate_kwargs={"logits_processor": LogitsProcessorList([force])}
    )
    reward = VLMJudgeReward(
        "qwenvl_3b", judge, lambda t: f"rate {t}", lambda a: parse_json_score(a, "score", 0, 5), 4.0, "class"
    )
    values = reward(smooth_images(2, 56), [1, 2])
    assert values.tolist() == [0.75, 0.75]

    unforced = LocalQwenJudge(model, processor, max_new_tokens=3)  # random weights: babble, never JSON
    reward = VLMJudgeReward(
        "qwenvl_3b", unforced, lambda t: t, lambda a: parse_json_score(a, "score", 0, 5), 4.0, "class", 2
    )
    with pytest.raises(RewardError, match=r"qwenvl_3b.*prompt #0 1 after 2 attempt"):
        reward(smooth_images(1, 56), [1])
