"""The questions put to the VLM judges; each asks for an answer that ``vlm_answers`` can parse."""

from __future__ import annotations

QUALITY_QUESTION = """This image was generated from the text prompt: "{prompt}".
1. Describe the image in detail (objects, colours, layout) without letting the prompt influence you.
2. Rate the image on each of these five criteria with a number from 0 to 1:
- Does the object in the image belong to the category, or match the description, given by the prompt?
- Is the generated object complete, with no missing parts?
- Does the content look real and reasonable?
- Is the image clear, bright and of high quality?
- Is the image free of noise, defects and artifacts?

Answer in JSON with exactly three keys:
- "description": your description of the image;
- "score": the sum of the five ratings, a number between 0 and 5 (decimals are allowed);
- "explanation": how you arrived at each rating.
For example:
```json
{{"description": "A brown dog with its tongue out on a lawn.", "score": 3.5,
 "explanation": "Matches the prompt (1). Complete (1). The eyes are misplaced, so not realistic (0).
 The face is sharp but the body is blurred (0.5). No visible artifacts (1)."}}
```"""

FAKE_QUESTION = """Inspect the image carefully and answer this question:
- Is this an AI-generated image? If yes, the score is 0; otherwise the score is 1.
Answer in JSON, for example:
```json
{"score": 0}
```"""

WEIRD_QUESTION = """Inspect the image carefully and answer this question:
- Does the image contain any strange or unnatural feature? If yes, the score is 0; otherwise the score is 1.
Answer in JSON, for example:
```json
{"score": 0}
```"""

UNIFIED_REWARD_QUESTION = """You are given a text caption and an image generated from it.
Evaluate the image on two criteria:
1. Alignment with the caption: how well the image shows the objects, attributes and relations
the caption describes.
2. Overall image quality: clarity, detail, colour accuracy and aesthetic appeal.
Taking both into account, give a score from 1 to 5 after 'Final Score:'.
Text caption: [{prompt}]"""
