"""Public entry point for prompt data: import every prompt loader and type from here.

- ``load_prompts``: any list of T2I prompts (.txt, .csv, JSON array, JSON lines; see ``prompt_files``).
- ``load_geneval_metadata`` / ``load_object_names``: GenEval's files, lines kept verbatim.
- ``load_drawbench``: DrawBench from the Imagen sheet CSV or upstream's 5x-repeated JSON.
"""

from dataset.benchmark_prompts import GenEvalEntry, load_drawbench, load_geneval_metadata, load_object_names
from dataset.prompt_files import detect_format, load_prompts
from dataset.prompt_parsing import PromptFileError, PromptRecord

__all__ = [
    "GenEvalEntry",
    "PromptFileError",
    "PromptRecord",
    "detect_format",
    "load_drawbench",
    "load_geneval_metadata",
    "load_object_names",
    "load_prompts",
]
