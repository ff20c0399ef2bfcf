"""VLM-as-judge rewards: ``qwenvl_3b``, ``qwenvl_3b_text``, ``qwenvl_fake``, ``qwenvl_weird``,
``unifiedreward``.

A *judge* turns (images, questions) into answer texts, either in-process (:class:`LocalQwenJudge`, Qwen2.5-VL
through transformers) or through an OpenAI-compatible server (:class:`ServerJudge`). :class:`VLMJudgeReward`
asks, parses the score out of each answer, re-asks only the images whose answer had no usable score (bounded),
and divides by the reward's divisor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from reward_utils import judge_prompts
from reward_utils.backend import ModelCache, RewardFactory, from_env, option
from reward_utils.base import Prompt, RewardError, RewardFunction
from reward_utils.chat_client import ChatClient
from reward_utils.prompt_text import PromptKind, prompt_texts
from reward_utils.remote import RemoteOptions
from reward_utils.reward_server import UPSTREAM_JPEG_QUALITY, encode_jpeg_batch
from reward_utils.scaling import UNIFIED_REWARD_DIVISOR, VLM_DIVISOR
from reward_utils.tensor_transforms import to_uint8
from reward_utils.vlm_answers import AnswerError, parse_final_score, parse_json_score

JUDGE_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 10}
"""Sampling for the Qwen judges (upstream's vLLM settings); sampling also makes a re-ask worthwhile."""


class Judge(Protocol):
    device: torch.device | None

    def answer(self, images: torch.Tensor, questions: Sequence[str], what: str) -> list[str]: ...


class ServerJudge:
    """Sends each image (JPEG or PNG) with its question to an OpenAI-compatible server."""

    device = None

    def __init__(
        self, client: ChatClient, image_format: str = "jpeg", jpeg_quality: int = UPSTREAM_JPEG_QUALITY
    ):
        if image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
        self.client, self.image_format, self.jpeg_quality = client, image_format, jpeg_quality

    def answer(self, images: torch.Tensor, questions: Sequence[str], what: str) -> list[str]:
        if self.image_format == "jpeg":
            encoded, mime = encode_jpeg_batch(images, self.jpeg_quality), "image/jpeg"
        else:
            from torchvision.io import encode_png

            encoded = [bytes(encode_png(img.cpu()).numpy().tobytes()) for img in to_uint8(images)]
            mime = "image/png"
        return self.client.ask_many(questions, encoded, mime, what)


class LocalQwenJudge:
    """Qwen2.5-VL in-process: one batched, left-padded ``generate`` per call.

    Images go to the processor as float tensors on the model's device (``do_rescale=False``), so there is no
    PIL round trip. Only the newly generated tokens are decoded.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        max_new_tokens: int = 512,
        generate_kwargs: dict[str, Any] | None = None,
    ):
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"
        self.max_new_tokens = max_new_tokens
        self.generate_kwargs = {"do_sample": True, **JUDGE_SAMPLING, **(generate_kwargs or {})}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def inputs(self, images: torch.Tensor, questions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Chat-formatted, tokenised questions and processed images for one batch."""
        texts = [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for q in questions
        ]
        images = images.to(self.device).float().clamp(0, 1)
        batch = self.processor(
            text=texts, images=list(images), padding=True, return_tensors="pt", do_rescale=False
        )
        return batch.to(self.device)  # float32 pixels: Qwen2.5-VL's patch embedding casts them to its dtype

    @torch.no_grad()
    def answer(self, images: torch.Tensor, questions: Sequence[str], what: str) -> list[str]:
        batch = self.inputs(images, questions)
        output = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, **self.generate_kwargs)
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


def load_local_qwen(
    model_id: str, device: torch.device | str, dtype: torch.dtype | None = None
) -> LocalQwenJudge:
    """Qwen2.5-VL (hub id or local directory) in ``dtype`` and its processor, for :class:`LocalQwenJudge`.

    ``dtype`` None: bfloat16 on CUDA, float32 elsewhere (a 3B judge next to the policy)."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    dtype = dtype or (torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(  # safetensors only: never a pickled .bin
        model_id, torch_dtype=dtype, use_safetensors=True
    ).to(device)
    processor = AutoProcessor.from_pretrained(model_id, use_fast=True)
    return LocalQwenJudge(model, processor)


class VLMJudgeReward(RewardFunction):
    """Ask ``judge`` a question per image, parse a score, divide by ``divisor``.

    ``question`` maps a prompt text to the question (ignored by prompt-free questions); ``prompt_kind`` is the
    prompt type the reward accepts, or None for rewards that do not read the prompt. ``attempts`` bounds how
    often an image whose answer has no usable score is asked again; after that a :class:`RewardError` names
    the prompt and quotes the answer.
    """

    def __init__(
        self,
        name: str,
        judge: Judge,
        question: Callable[[str], str],
        parse: Callable[[str], float],
        divisor: float,
        prompt_kind: PromptKind | None,
        attempts: int = 3,
    ):
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.name, self.judge, self.question, self.parse = name, judge, question, parse
        self.divisor, self.prompt_kind, self.attempts = divisor, prompt_kind, attempts

    @property
    def device(self) -> torch.device | None:
        return self.judge.device

    def score(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> torch.Tensor:
        if self.prompt_kind is None:
            questions = [self.question("") for _ in prompts]
        else:
            questions = [self.question(t) for t in prompt_texts(self.name, prompts, self.prompt_kind)]
        scores: list[float | None] = [None] * len(prompts)
        errors: dict[int, AnswerError] = {}
        pending = list(range(len(prompts)))
        for _ in range(self.attempts):
            answers = self.judge.answer(
                images[pending], [questions[i] for i in pending], f"reward {self.name!r}"
            )
            if len(answers) != len(pending):
                raise RewardError(
                    f"reward {self.name!r}: judge gave {len(answers)} answers for {len(pending)} images"
                )
            retry = []
            for i, text in zip(pending, answers):
                try:
                    scores[i] = self.parse(text)
                except AnswerError as err:
                    errors[i] = err
                    retry.append(i)
            pending = retry
            if not pending:
                break
        if pending:
            i = pending[0]
            raise RewardError(
                f"reward {self.name!r}: no usable score for prompt #{i} {prompts[i]!r} after {self.attempts}"
                f" attempt(s) ({len(pending)} image(s) failed): {errors[i]}"
            )
        return torch.tensor(scores, dtype=torch.float32) / self.divisor


@dataclass
class VLMOptions(RemoteOptions):
    ENV_VARS: ClassVar[dict[str, str]] = {"qwenvl_url": "QWENVL_URL", "unifiedreward_url": "UNIFIEDREWARD_URL"}
    PATHS: ClassVar[dict[str, str]] = {"qwenvl_model": "dir"}

    qwenvl_mode: str = option(
        "transformers", "run Qwen2.5-VL in-process or ask a server", choices=("transformers", "server", "vllm")
    )
    qwenvl_model: str = option("Qwen/Qwen2.5-VL-3B-Instruct", "hub id / local dir (in-process) or served model name")
    qwenvl_url: str | None = option(
        from_env("QWENVL_URL", "http://localhost:20004/v1"),
        "OpenAI-compatible base URL of the Qwen-VL server (env QWENVL_URL)",
    )
    qwenvl_max_new_tokens: int = option(512, "generation budget of the in-process Qwen-VL judge")
    vlm_attempts: int = option(3, "how often a VLM judge is asked again when its answer has no usable score")
    unifiedreward_url: str | None = option(
        from_env("UNIFIEDREWARD_URL", "http://127.0.0.1:17140/v1"),
        "UnifiedReward server base URL (env UNIFIEDREWARD_URL)",
    )
    unifiedreward_model: str = option("UnifiedReward-7b-v1.5", "model name served by the UnifiedReward server")


def _qwen_judge(o: VLMOptions, cache: ModelCache) -> Judge:
    """The in-process Qwen-VL, or a client of its server: one per model (and device or URL) for all qwenvl_*."""
    if o.qwenvl_mode == "transformers":
        dtype = o.dtype() if o.reward_dtype else None  # unset: load_local_qwen's per-device default

        def build_local() -> LocalQwenJudge:
            judge = load_local_qwen(o.qwenvl_model, o.device(), dtype)
            judge.max_new_tokens = o.qwenvl_max_new_tokens
            return judge

        return cache.get(("qwenvl_local", o.qwenvl_model, str(o.device()), dtype), build_local)
    if o.qwenvl_mode not in ("server", "vllm"):
        raise ValueError(f"unknown qwenvl_mode {o.qwenvl_mode!r}")
    url = o.required_url("qwenvl_url")
    return cache.get(
        ("qwenvl_server", url, o.qwenvl_model),
        lambda: ServerJudge(ChatClient(url, o.qwenvl_model, sampling=JUDGE_SAMPLING, **o.client_settings())),
    )


def _qwen_factory(name: str, task: str, prompt_kind: PromptKind | None) -> RewardFactory:
    """``task`` "quality" asks about the prompt (a 0-5 score); "fake" and "weird" ask a fixed 0-1 question."""

    def build(o: VLMOptions, cache: ModelCache) -> RewardFunction:
        if task == "quality":
            high = 5.0

            def ask(text: str) -> str:
                return judge_prompts.QUALITY_QUESTION.format(prompt=text)
        else:
            fixed, high = (judge_prompts.FAKE_QUESTION if task == "fake" else judge_prompts.WEIRD_QUESTION), 1.0

            def ask(text: str) -> str:
                return fixed

        return VLMJudgeReward(
            name,
            _qwen_judge(o, cache),
            ask,
            lambda answer: parse_json_score(answer, "score", 0.0, high),
            VLM_DIVISOR,
            prompt_kind,
            attempts=o.vlm_attempts,
        )

    return build


def _unifiedreward(o: VLMOptions, cache: ModelCache) -> RewardFunction:
    url = o.required_url("unifiedreward_url")
    client = ChatClient(url, o.unifiedreward_model, sampling={"temperature": 0.0}, **o.client_settings())
    return VLMJudgeReward(
        "unifiedreward",
        ServerJudge(client, image_format="png"),
        lambda text: judge_prompts.UNIFIED_REWARD_QUESTION.format(prompt=text),
        parse_final_score,
        UNIFIED_REWARD_DIVISOR,
        "caption",
        attempts=o.vlm_attempts,
    )


OPTIONS = VLMOptions
REWARDS: dict[str, RewardFactory] = {
    "qwenvl_3b": _qwen_factory("qwenvl_3b", "quality", "class"),
    "qwenvl_3b_text": _qwen_factory("qwenvl_3b_text", "quality", "caption"),
    "qwenvl_fake": _qwen_factory("qwenvl_fake", "fake", None),
    "qwenvl_weird": _qwen_factory("qwenvl_weird", "weird", None),
    "unifiedreward": _unifiedreward,
}
