"""Turn prompts (ImageNet class ids or captions) into the text a reward model reads.

Class names come from torchvision's ImageNet weight metadata, which ships inside the package (no download).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from reward_utils.base import Prompt, RewardError

PromptKind = Literal["class", "caption"]


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in label order (torchvision's ``meta["categories"]``)."""
    from torchvision.models import ResNet50_Weights

    names = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:
        raise RuntimeError(f"torchvision returned {len(names)} ImageNet class names, expected 1000")
    return names


def class_prompt(label: int) -> str:
    """The text used for a c2i class id: ``"a photo of {class name}"`` (as upstream AR-GRPO)."""
    names = imagenet_class_names()
    if not 0 <= label < len(names):
        raise ValueError(f"ImageNet class id {label} is outside [0, {len(names)})")
    return f"a photo of {names[label]}"


def prompt_texts(reward_name: str, prompts: Sequence[Prompt], kind: PromptKind) -> list[str]:
    """Texts for a batch, insisting on the prompt type the reward expects.

    A c2i reward fed captions (or a t2i reward fed class ids) is a configuration error, not something to guess
    around, so it raises naming the reward and the prompt.
    """
    texts = []
    for i, prompt in enumerate(prompts):
        if kind == "class":
            if isinstance(prompt, bool) or not isinstance(prompt, int):
                raise RewardError(
                    f"reward {reward_name!r} expects ImageNet class ids (c2i) but prompt #{i} is {prompt!r};"
                    " use the *_text variant for captions"
                )
            try:
                texts.append(class_prompt(prompt))
            except ValueError as err:
                raise RewardError(f"reward {reward_name!r}, prompt #{i}: {err}") from err
        else:
            if not isinstance(prompt, str):
                raise RewardError(
                    f"reward {reward_name!r} expects captions (t2i) but prompt #{i} is {prompt!r};"
                    " use the class-id variant for c2i"
                )
            texts.append(prompt)
    return texts
