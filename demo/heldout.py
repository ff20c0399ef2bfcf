"""The held-out evaluation: the same prompts and per-sample seeds before and after GRPO, scored by GenEval's rules.

Sampling goes through the evaluation library's ``ImageSampler`` (the one that writes GenEval and FID samples),
so the demo scores its images exactly as the evaluation scripts would make them: 8-bit, one seed per sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from autoregressive.models.generate import SamplingConfig
from autoregressive.models.gpt import GPT, load_gpt_weights
from autoregressive.text_encoder import T5TextEncoder
from demo.evaluator import evaluate_images, geneval_style_report
from demo.pretrain import DemoModels, build_demo_gpt
from demo.settings import DemoSettings
from demo.world import NUM_CLASSES, class_spec, parse_caption, sample_prompts
from sampling.sampler import ImageSampler
from tokenizer.vq_model import VQModel

EVAL_SEED = 10_000
"""Sample i of an evaluation draws from the stream of ``(EVAL_SEED, i)``, before GRPO and after."""
BATCH = 64


def eval_prompts(settings: DemoSettings) -> list[str | int]:
    """Held-out captions (combinations never seen in pretraining or GRPO), 4 seeds each, or every class in turn."""
    if settings.task == "c2i":
        return [i % NUM_CLASSES for i in range(settings.eval_samples)]
    count = settings.eval_samples // 4
    specs = sample_prompts(count, seed=settings.seed + 1000, split="heldout", tags=settings.tag_list)
    return [s.caption for s in specs for _ in range(4)]


def sample(
    gpt: GPT, vq: VQModel, grid: int, settings: DemoSettings, prompts: list, encoder: T5TextEncoder | None = None
) -> np.ndarray:
    """One 8-bit image (N, H, W, 3) per prompt entry; entry i is seeded by its index alone."""
    sampler = ImageSampler(
        model=gpt.eval(),
        decode=lambda tokens: vq.decode_to_images(tokens, grid),
        cfg=SamplingConfig(cfg_scale=settings.cfg_scale, temperature=settings.temperature),
        device=torch.device("cpu"),
        seed=EVAL_SEED,
    )
    images = []
    for start in range(0, len(prompts), BATCH):
        chunk = prompts[start : start + BATCH]
        cond, mask = encoder.encode(chunk) if settings.task == "t2i" else (torch.tensor(chunk), None)
        images.append(sampler(cond, [(start + i,) for i in range(len(chunk))], cond_mask=mask))
    return np.concatenate(images)


def score(images: np.ndarray, prompts: list) -> dict:
    """GenEval-style report, plus per-sample verdicts (for paired changes) and the objects per image."""
    specs = [parse_caption(p) if isinstance(p, str) else class_spec(p) for p in prompts]
    verdicts = evaluate_images(images, specs)
    report = geneval_style_report(verdicts)
    report["per_sample"] = {
        "strict": [float(v.strict) for v in verdicts],
        "dense": [v.dense for v in verdicts],
        "exact": [float(v.exact) for v in verdicts],
    }
    # GenEval's rules ignore extra objects, so a policy can score by clutter: keep the object count in view.
    report["objects_per_image"] = sum(len(v.detections) for v in verdicts) / len(verdicts)
    report["objects_asked_per_image"] = sum(v.asked for v in verdicts) / len(verdicts)
    return report


def evaluate(
    checkpoint: Path, vq: VQModel, models: DemoModels, settings: DemoSettings, prompts: list, encoder=None
) -> tuple[dict, np.ndarray]:
    """Load a GPT checkpoint strictly, sample every prompt entry and score the samples: (report, images)."""
    gpt = load_gpt_weights(build_demo_gpt(models, settings.task, settings.seed), checkpoint)
    images = sample(gpt, vq, models.grid, settings, prompts, encoder)
    return score(images, prompts), images
