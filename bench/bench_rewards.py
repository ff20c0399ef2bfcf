"""Images per second of the batched tensor CLIP reward vs. upstream's per-image PIL path, same model.

Upstream AR-GRPO scored each decoded image alone: tensor -> PIL -> ``CLIPProcessor`` -> ``CLIPModel`` on a
batch of one, text encoded again for every image. The batched path preprocesses the whole float batch on the
device and encodes each distinct prompt once (a GRPO batch holds few prompts, each repeated group-size times).

The model is a random-weight CLIP with the architecture of ``openai/clip-vit-base-patch32`` (the checkpoint
upstream's ``clip_score.py`` loads) unless ``--arch large`` picks ViT-L/14 or ``--arch tiny`` a 2-layer toy;
nothing is downloaded. Reported
numbers are medians over ``--repeats`` runs after one warm-up, both paths in the same process.

    python bench/bench_rewards.py [--batch_sizes 16 64] [--group_size 8] [--threads 1] [--arch base]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reward_utils.clip_vocab import clip_tokenizer  # noqa: E402  (builds the CLIP vocab offline)
from reward_utils.hf_clip import HFClipScorer, SimilarityReward  # noqa: E402
from reward_utils.prompt_text import class_prompt  # noqa: E402
from reward_utils.tensor_transforms import transform_from_hf_processor  # noqa: E402

ARCHS = {
    "tiny": {  # 2-layer, 32-wide (the tests' model): shows the overhead-bound regime, as on a fast GPU
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                   "patch_size": 32},
        "projection_dim": 16,
    },
    "base": {  # openai/clip-vit-base-patch32
        "text": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8},
        "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "patch_size": 32},
        "projection_dim": 512,
    },
    "large": {  # openai/clip-vit-large-patch14 (the default --clip_model)
        "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
        "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                   "patch_size": 14},
        "projection_dim": 768,
    },
}  # fmt: skip


def build_model(arch: str):
    from transformers import CLIPConfig, CLIPModel

    spec = ARCHS[arch]
    config = CLIPConfig(
        text_config={**spec["text"], "vocab_size": 49408, "max_position_embeddings": 77},
        vision_config={**spec["vision"], "image_size": 224},
        projection_dim=spec["projection_dim"],
    )
    return CLIPModel(config).eval()


def per_image_pil_path(model, tokenizer, processor, images, texts) -> torch.Tensor:
    """Upstream's way: one PIL conversion, processor call and forward pass per image (and per text)."""
    from torchvision.transforms.functional import to_pil_image

    scores = []
    with torch.no_grad():
        for image, text in zip(images, texts):
            pixels = processor(images=to_pil_image(image.float()), return_tensors="pt")["pixel_values"]
            tokens = tokenizer(text, padding=True, truncation=True, return_tensors="pt")
            img = model.get_image_features(pixel_values=pixels)
            txt = model.get_text_features(**tokens)
            img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
            scores.append(5 * (img * txt).sum())
    return torch.stack(scores)


def timed(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--group_size", type=int, default=8, help="images per prompt (GRPO group)")
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch", choices=sorted(ARCHS), default="base")
    args = parser.parse_args()

    from transformers import CLIPImageProcessor

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.arch)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = clip_tokenizer(Path(tmp))
    processor = CLIPImageProcessor()
    reward = SimilarityReward(
        HFClipScorer(model, tokenizer, transform_from_hf_processor(processor)),
        "class",
        False,
        "clip_distance",
    )
    print(
        f"CLIP {args.arch} (random weights), {args.image_size}px images, group size {args.group_size}, "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    print(f"{'batch':>5} {'per-image PIL img/s':>20} {'batched tensor img/s':>21} {'speed-up':>9} {'max |diff|':>11}")
    for batch in args.batch_sizes:
        images = torch.rand(batch, 3, args.image_size, args.image_size)
        labels = [(i // args.group_size) * 37 % 1000 for i in range(batch)]
        texts = [class_prompt(label) for label in labels]
        t_pil, pil_scores = timed(
            lambda images=images, texts=texts: per_image_pil_path(model, tokenizer, processor, images, texts),
            args.repeats,
        )
        t_batched, batched_scores = timed(lambda images=images, labels=labels: reward(images, labels), args.repeats)
        diff = (pil_scores - batched_scores).abs().max().item()
        print(f"{batch:>5} {batch / t_pil:>20.1f} {batch / t_batched:>21.1f} {t_pil / t_batched:>8.2f}x {diff:>11.2e}")


if __name__ == "__main__":
    main()
