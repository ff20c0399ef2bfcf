"""GRPO fine-tuning of a class-conditional LlamaGen GPT (see run_c2i_train.sh for the paper's settings).

Prompts are ImageNet class ids drawn uniformly from the seed, so no ImageNet download is needed; with
--image_root, labels (and reference images, for the `mse` reward) come from an ImageNet train folder.
"""

from __future__ import annotations

import argparse

import torch

import demo.rewards  # noqa: F401  (registers the demo's shapes_* rewards)
from grpo.cli import add_model_args, run_training
from grpo.config import add_grpo_args
from grpo.prompts import ClassPrompts
from img_gen_grpo_rewards import add_reward_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_args(parser, "c2i")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--image_root",
        default=None,
        help="ImageNet train folder (<wnid>/*.JPEG); optional: without it class ids are uniform",
    )
    add_grpo_args(parser)
    add_reward_args(parser)
    return parser.parse_args(argv)


def make_prompts(args: argparse.Namespace) -> ClassPrompts:
    if args.image_root is None:
        return ClassPrompts(args.num_classes, args.seed)
    from dataset.imagenet import ImageNetFolder

    folder = ImageNetFolder(args.image_root)
    labels = [label for _, label in folder.samples]
    metadata = [{"image_path": str(path)} for path, _ in folder.samples]
    return ClassPrompts(args.num_classes, args.seed, labels, metadata)


def make_encoder(args: argparse.Namespace, device: torch.device):
    def encode(class_ids: list) -> tuple[torch.Tensor, None]:
        return torch.tensor(class_ids, dtype=torch.long, device=device), None

    return encode


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run_training(parse_args(argv), make_prompts, make_encoder)


if __name__ == "__main__":
    main()
