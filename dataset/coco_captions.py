"""COCO captions as T2I training prompts (upstream AR-GRPO trains t2i on 30,000 COCO captions).

Sampling rule (deterministic from the seed and independent of the annotation list's order): take the
images that have at least one non-empty caption, sort their ids, draw ``num_captions`` distinct images
with ``random.Random(seed).sample``, then one caption per drawn image (``choice`` among its captions
sorted by annotation id). Whitespace inside a caption is collapsed (COCO captions contain stray newlines
and trailing spaces). The result is written in upstream's conversation layout, which ``load_prompts``
reads.
"""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path
from typing import Any


def _caption_groups(annotations: dict[str, Any]) -> dict[int, list[tuple[int, str]]]:
    if not isinstance(annotations, dict) or not isinstance(annotations.get("annotations"), list):
        raise ValueError("not a COCO captions annotation dict: expected a top-level 'annotations' list")
    groups: dict[int, list[tuple[int, str]]] = {}
    for i, ann in enumerate(annotations["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"COCO annotation #{i} is not an object: {ann!r:.80}")
        image_id, ann_id, caption = ann.get("image_id"), ann.get("id"), ann.get("caption")
        if not isinstance(image_id, int) or not isinstance(ann_id, int):
            raise ValueError(
                f"COCO annotation #{i} needs integer 'image_id' and 'id', got {image_id!r}, {ann_id!r}")
        if not isinstance(caption, str):
            raise ValueError(f"COCO annotation #{i} (id {ann_id}) has no string 'caption'")
        caption = " ".join(caption.split())
        if caption:
            groups.setdefault(image_id, []).append((ann_id, caption))
    return groups


def sample_coco_captions(annotations: dict[str, Any], num_captions: int = 30_000,
                         seed: int = 0) -> list[dict[str, Any]]:
    """Pick ``num_captions`` captions from distinct images, as ``{"image_id", "caption_id", "caption"}``."""
    if num_captions < 1:
        raise ValueError(f"num_captions must be >= 1, got {num_captions}")
    groups = _caption_groups(annotations)
    image_ids = sorted(groups)
    if len(image_ids) < num_captions:
        raise ValueError(f"asked for {num_captions} captions from distinct images, but the annotations "
                         f"have only {len(image_ids)} captioned images")
    rng = random.Random(seed)
    chosen = rng.sample(image_ids, num_captions)
    samples = []
    for image_id in chosen:
        caption_id, caption = rng.choice(sorted(groups[image_id]))
        samples.append({"image_id": image_id, "caption_id": caption_id, "caption": caption})
    return samples


def to_conversation_records(samples: list[dict[str, Any]],
                            id_prefix: str = "coco_caption") -> list[dict[str, Any]]:
    """Upstream AR-GRPO's prompt layout: ``conversations[0]`` is the human turn holding the prompt."""
    return [
        {
            "id": f"{id_prefix}_{i:05d}",
            "image_id": s["image_id"],
            "caption_id": s["caption_id"],
            "conversations": [{"from": "human", "value": s["caption"]}, {"from": "gpt", "value": ""}],
        }
        for i, s in enumerate(samples)
    ]


def read_json_from_zip(zip_path: str | Path, member: str) -> Any:
    """Parse one JSON member of a zip (COCO ships captions inside ``annotations_trainval*.zip``)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            if member not in names:
                raise ValueError(f"{zip_path} has no member {member!r}; it has: {', '.join(names[:10])}")
            with archive.open(member) as handle:
                return json.load(handle)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{zip_path} is not a valid zip file ({err})") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{zip_path}:{member} is not valid JSON ({err})") from err
