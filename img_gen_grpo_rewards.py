"""Reward registry and composition for AR-GRPO.

``build_reward(names, weights, options, device)`` turns upstream-style ``--reward_funcs`` and
``--reward_weights`` into one callable ``(images, prompts, metadata=None) -> (weighted total,
{name: values})`` for the trainer and the evaluation scripts. Backends live in ``reward_utils/`` and are
imported only when a reward is built, so importing this module stays cheap (no transformers, open_clip,
hpsv2, ImageReward or pyiqa).

Other code adds rewards with ``register_reward(name, factory)``; a factory receives the shared
:class:`RewardOptions` and a :class:`ModelCache`, so variants of one model (``clip_distance`` and
``clip_quantize``) load it once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from reward_utils.base import Prompt, RewardError, RewardFunction, check_scores

API_KEY_ENV = "REWARD_API_KEY"
URL_ENVS = {
    "qwenvl_url": "QWENVL_URL",
    "unifiedreward_url": "UNIFIEDREWARD_URL",
    "geneval_url": "GENEVAL_URL",
    "deqa_url": "DEQA_URL",
}


def _env(name: str, default: str | None) -> Callable[[], str | None]:
    return lambda: os.environ.get(name, default)


def _opt(default: Any = MISSING, help: str = "", choices: Sequence[str] | None = None, **kw: Any) -> Any:
    metadata = {"help": help, "choices": choices}
    if callable(default):
        return field(default_factory=default, metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


@dataclass
class RewardOptions:
    """Everything reward backends need to load; training and evaluation share it via ``add_reward_args``."""

    reward_device: str | None = _opt(None, "device for reward models (default: the policy's device)")
    # --- CLIP family (transformers) ---
    clip_model: str = _opt(
        "openai/clip-vit-large-patch14", "hub id or local dir of the CLIP model for clip_*"
    )
    pickscore_model: str = _opt("yuvalkirstain/PickScore_v1", "hub id or local dir of PickScore")
    pickscore_processor: str = _opt(
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "hub id or local dir holding PickScore's tokenizer/processor"
    )
    aesthetic_clip_model: str = _opt(
        "openai/clip-vit-large-patch14", "CLIP whose image embeddings feed the aesthetic MLP"
    )
    aesthetic_mlp: str | None = _opt(
        None, "aesthetic MLP weights (local .pth or URL; default: the LAION release)"
    )
    # --- HPS ---
    hps_version: str = _opt("v2.1", "HPS checkpoint version", choices=("v2.0", "v2.1"))
    hps_checkpoint: str | None = _opt(None, "local HPS checkpoint (default: download from xswu/HPSv2)")
    hps_arch: str = _opt("ViT-H-14", "OpenCLIP architecture of the HPS model (hpsv2 model config name)")
    # --- ImageReward ---
    imagereward_model: str = _opt("ImageReward-v1.0", "ImageReward release name or local ImageReward.pt")
    imagereward_med_config: str | None = _opt(
        None, "local med_config.json for ImageReward (default: download)"
    )
    # --- MANIQA (pyiqa) ---
    maniqa_metric: str = _opt(
        "maniqa", "pyiqa metric name", choices=("maniqa", "maniqa-kadid", "maniqa-pipal")
    )
    maniqa_checkpoint: str | None = _opt(None, "local MANIQA weights (default: pyiqa downloads them)")
    maniqa_crops: int = _opt(20, "224x224 crops averaged per image by MANIQA (pyiqa test_sample)")
    # --- VLM judges ---
    qwenvl_mode: str = _opt(
        "transformers",
        "run Qwen2.5-VL in-process or ask a server",
        choices=("transformers", "server", "vllm"),
    )
    qwenvl_model: str = _opt(
        "Qwen/Qwen2.5-VL-3B-Instruct", "hub id / local dir (in-process) or served model name"
    )
    qwenvl_url: str | None = _opt(
        _env(URL_ENVS["qwenvl_url"], "http://localhost:20004/v1"),
        f"OpenAI-compatible base URL of the Qwen-VL server (env {URL_ENVS['qwenvl_url']})",
    )
    qwenvl_max_new_tokens: int = _opt(512, "generation budget of the in-process Qwen-VL judge")
    vlm_attempts: int = _opt(3, "how often a VLM judge is asked again when its answer has no usable score")
    unifiedreward_url: str | None = _opt(
        _env(URL_ENVS["unifiedreward_url"], "http://127.0.0.1:17140/v1"),
        f"UnifiedReward server base URL (env {URL_ENVS['unifiedreward_url']})",
    )
    unifiedreward_model: str = _opt("UnifiedReward-7b-v1.5", "model name served by the UnifiedReward server")
    # --- reward-server (DeQA, GenEval) ---
    geneval_url: str | None = _opt(
        _env(URL_ENVS["geneval_url"], "http://127.0.0.1:18085"),
        f"GenEval reward-server URL (env {URL_ENVS['geneval_url']})",
    )
    geneval_only_strict: bool = _opt(False, "ask the GenEval server for strict scoring only")
    geneval_score_key: str = _opt(
        "rewards", "which GenEval answer list is the reward", choices=("rewards", "strict_rewards", "scores")
    )
    deqa_url: str | None = _opt(
        _env(URL_ENVS["deqa_url"], "http://127.0.0.1:18086"),
        f"DeQA reward-server URL (env {URL_ENVS['deqa_url']})",
    )
    reward_server_format: str = _opt("pickle", "reward-server wire format", choices=("pickle", "json"))
    reward_server_batch_size: int = _opt(64, "images per reward-server request")
    # --- every remote reward ---
    reward_timeout: float = _opt(
        120.0, "total deadline in seconds of one remote request: the whole answer, retries and waits included"
    )
    reward_retries: int = _opt(
        3, "attempts per remote request within its deadline (connection lost, 5xx, 429, answer cut short)"
    )
    reward_backoff: float = _opt(
        1.0, "urllib3 backoff factor: waits 0, 2x, 4x ... s between attempts, plus up to x s of jitter"
    )
    reward_max_response_bytes: int = _opt(8 * 2**20, "largest remote answer body accepted, in bytes")
    reward_max_depth: int = _opt(32, "deepest nesting of lists/dicts accepted in a remote answer")
    reward_max_items: int = _opt(1_000_000, "most list/dict elements accepted in one remote answer, in all")
    reward_max_concurrency: int = _opt(8, "remote requests in flight per reward")
    reward_api_key: str | None = _opt(
        _env(API_KEY_ENV, None), f"API key for remote rewards (prefer the env var {API_KEY_ENV})", repr=False
    )
    # --- FID ---
    fid_reference_stats: str | None = _opt(None, ".npz with reference 'mu'/'sigma' for the fid reward")
    fid_inception_weights: str | None = _opt(
        None, "local torch-fidelity InceptionV3 weights (default: download)"
    )
    fid_groups: int = _opt(2, "the fid reward splits each batch into this many groups")

    def device(self) -> torch.device:
        if self.reward_device:
            return torch.device(self.reward_device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class RewardArguments(RewardOptions):
    """The reward flags of an entry point: which rewards, their weights, and every backend's options."""

    reward_funcs: list[str] | None = _opt(None, "reward functions to combine (see docs/rewards.md for the names)")
    reward_weights: list[float] | None = _opt(None, "one weight per reward function (default: 1 each)")


class ModelCache:
    """Models built so far, by key, so every reward naming the same model shares one instance."""

    def __init__(self) -> None:
        self._models: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        if key not in self._models:
            self._models[key] = build()
        return self._models[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._models

    def __len__(self) -> int:
        return len(self._models)


RewardFactory = Callable[[RewardOptions, ModelCache], RewardFunction]
REWARD_FUNCS: dict[str, RewardFactory] = {}


def register_reward(name: str, factory: RewardFactory, overwrite: bool = False) -> None:
    """Make ``name`` usable in ``--reward_funcs``; ``factory(options, cache)`` builds the reward."""
    if name in REWARD_FUNCS and not overwrite:
        raise ValueError(f"reward {name!r} is already registered (pass overwrite=True to replace it)")
    REWARD_FUNCS[name] = factory


# ----------------------------------------------------------------------------------------------- factories


def _retry(o: RewardOptions):
    from reward_utils.remote import RetryPolicy

    return RetryPolicy(attempts=o.reward_retries, backoff=o.reward_backoff)


def _limits(o: RewardOptions):
    from reward_utils.answer_limits import ResponseLimits

    return ResponseLimits(o.reward_max_response_bytes, o.reward_max_depth, o.reward_max_items)


def _require_url(url: str | None, flag: str) -> str:
    if not url:
        raise ValueError(f"--{flag} (or env {URL_ENVS[flag]}) is required for this reward")
    return url


def _hf_clip(o: RewardOptions, cache: ModelCache, model_id: str, processor_id: str | None = None):
    from reward_utils.hf_clip import load_hf_clip

    key = ("hf_clip", model_id, processor_id, str(o.device()))
    return cache.get(key, lambda: load_hf_clip(model_id, o.device(), processor_id))


def _clip_factory(prompt_kind: str, quantize: bool, name: str) -> RewardFactory:
    def build(o: RewardOptions, cache: ModelCache) -> RewardFunction:
        from reward_utils.hf_clip import ClipSimilarityReward

        return ClipSimilarityReward(_hf_clip(o, cache, o.clip_model), prompt_kind, quantize, name)

    return build


def _hps_factory(prompt_kind: str, quantize: bool, name: str) -> RewardFactory:
    def build(o: RewardOptions, cache: ModelCache) -> RewardFunction:
        from reward_utils.hps import HPSReward, load_hps

        key = ("hps", o.hps_version, o.hps_checkpoint, o.hps_arch, str(o.device()))
        scorer = cache.get(key, lambda: load_hps(o.hps_version, o.hps_checkpoint, o.device(), o.hps_arch))
        return HPSReward(scorer, prompt_kind, quantize, name)

    return build


def _pickscore(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.hf_clip import PickScoreReward

    return PickScoreReward(_hf_clip(o, cache, o.pickscore_model, o.pickscore_processor))


def _aesthetic(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.aesthetic import AestheticReward, load_aesthetic_mlp

    mlp = cache.get(
        ("aesthetic_mlp", o.aesthetic_mlp, str(o.device())),
        lambda: load_aesthetic_mlp(o.aesthetic_mlp, o.device()),
    )
    return AestheticReward(_hf_clip(o, cache, o.aesthetic_clip_model), mlp)


def _imagereward(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.image_reward import ImageRewardReward, load_image_reward

    key = ("imagereward", o.imagereward_model, o.imagereward_med_config, str(o.device()))
    model = cache.get(
        key, lambda: load_image_reward(o.imagereward_model, o.device(), o.imagereward_med_config)
    )
    return ImageRewardReward(model)


def _maniqa(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.maniqa import ManiqaReward, load_maniqa

    key = ("maniqa", o.maniqa_metric, o.maniqa_checkpoint, o.maniqa_crops, str(o.device()))
    metric = cache.get(
        key, lambda: load_maniqa(o.maniqa_metric, o.device(), o.maniqa_checkpoint, o.maniqa_crops)
    )
    return ManiqaReward(metric)


def _qwen_judge(o: RewardOptions, cache: ModelCache):
    from reward_utils.chat_client import ChatClient
    from reward_utils.vlm_judge import JUDGE_SAMPLING, ServerJudge, load_local_qwen

    if o.qwenvl_mode == "transformers":
        key = ("qwenvl_local", o.qwenvl_model, str(o.device()))

        def build_local():
            judge = load_local_qwen(o.qwenvl_model, o.device())
            judge.max_new_tokens = o.qwenvl_max_new_tokens
            return judge

        return cache.get(key, build_local)
    if o.qwenvl_mode not in ("server", "vllm"):
        raise ValueError(f"unknown qwenvl_mode {o.qwenvl_mode!r}")
    url = _require_url(o.qwenvl_url, "qwenvl_url")
    key = ("qwenvl_server", url, o.qwenvl_model)
    return cache.get(
        key,
        lambda: ServerJudge(
            ChatClient(
                url,
                o.qwenvl_model,
                api_key=o.reward_api_key,
                timeout=o.reward_timeout,
                retry=_retry(o),
                max_concurrency=o.reward_max_concurrency,
                sampling=JUDGE_SAMPLING,
                limits=_limits(o),
            )
        ),
    )


def _qwen_factory(task: str, prompt_kind: str | None, name: str) -> RewardFactory:
    def build(o: RewardOptions, cache: ModelCache) -> RewardFunction:
        from reward_utils import judge_prompts
        from reward_utils.scaling import VLM_DIVISOR
        from reward_utils.vlm_answers import parse_json_score
        from reward_utils.vlm_judge import VLMJudgeReward

        if task == "quality":
            question, high = judge_prompts.QUALITY_QUESTION.format, 5.0

            def ask(text: str) -> str:
                return question(prompt=text)
        else:
            fixed = judge_prompts.FAKE_QUESTION if task == "fake" else judge_prompts.WEIRD_QUESTION
            high = 1.0

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


def _unifiedreward(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.chat_client import ChatClient
    from reward_utils.judge_prompts import UNIFIED_REWARD_QUESTION
    from reward_utils.scaling import UNIFIED_REWARD_DIVISOR
    from reward_utils.vlm_answers import parse_final_score
    from reward_utils.vlm_judge import ServerJudge, VLMJudgeReward

    url = _require_url(o.unifiedreward_url, "unifiedreward_url")
    client = ChatClient(
        url,
        o.unifiedreward_model,
        api_key=o.reward_api_key,
        timeout=o.reward_timeout,
        retry=_retry(o),
        max_concurrency=o.reward_max_concurrency,
        sampling={"temperature": 0.0},
        limits=_limits(o),
    )
    return VLMJudgeReward(
        "unifiedreward",
        ServerJudge(client, image_format="png"),
        lambda text: UNIFIED_REWARD_QUESTION.format(prompt=text),
        parse_final_score,
        UNIFIED_REWARD_DIVISOR,
        "caption",
        attempts=o.vlm_attempts,
    )


def _server_client(o: RewardOptions, url: str | None, flag: str):
    from reward_utils.reward_server import RewardServerClient

    return RewardServerClient(
        _require_url(url, flag),
        timeout=o.reward_timeout,
        retry=_retry(o),
        max_concurrency=o.reward_max_concurrency,
        batch_size=o.reward_server_batch_size,
        wire_format=o.reward_server_format,
        api_key=o.reward_api_key,
        limits=_limits(o),
    )


def _deqa(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.reward_server import DeQAReward

    return DeQAReward(_server_client(o, o.deqa_url, "deqa_url"))


def _geneval(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.reward_server import GenEvalReward

    return GenEvalReward(
        _server_client(o, o.geneval_url, "geneval_url"), o.geneval_only_strict, o.geneval_score_key
    )


def _mse(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from reward_utils.mse import MSEReward

    return MSEReward()


def _fid(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    from evaluation.inception import load_inception
    from evaluation.npz_io import read_fid_reference
    from reward_utils.fid import GroupFIDReward

    if not o.fid_reference_stats:
        raise ValueError("the fid reward needs --fid_reference_stats (an .npz with 'mu' and 'sigma')")
    key = ("inception", o.fid_inception_weights, str(o.device()))
    extractor = cache.get(key, lambda: load_inception(o.fid_inception_weights, o.device(), "--fid_inception_weights"))
    return GroupFIDReward(extractor, read_fid_reference(o.fid_reference_stats), o.fid_groups)


def _shapes_factory(mode: str, name: str) -> RewardFactory:
    """The offline demo's exact shapes-world evaluator (modes in reward_utils/shapes.py)."""

    def build(o: RewardOptions, cache: ModelCache) -> RewardFunction:
        from reward_utils.shapes import ShapesReward

        reward = ShapesReward(mode)
        reward.name = name
        return reward

    return build


for _name, _kind, _quantize in [
    ("clip_distance", "class", False),
    ("clip_quantize", "class", True),
    ("clip_text", "caption", False),
    ("clip_text_quantize", "caption", True),
]:
    register_reward(_name, _clip_factory(_kind, _quantize, _name))
for _name, _kind, _quantize in [
    ("hpsv2", "class", False),
    ("hpsv2_quantize", "class", True),
    ("hpsv2_text", "caption", False),
    ("hpsv2_text_quantize", "caption", True),
]:
    register_reward(_name, _hps_factory(_kind, _quantize, _name))
register_reward("qwenvl_3b", _qwen_factory("quality", "class", "qwenvl_3b"))
register_reward("qwenvl_3b_text", _qwen_factory("quality", "caption", "qwenvl_3b_text"))
register_reward("qwenvl_fake", _qwen_factory("fake", None, "qwenvl_fake"))
register_reward("qwenvl_weird", _qwen_factory("weird", None, "qwenvl_weird"))
register_reward("pickscore", _pickscore)
register_reward("aesthetic", _aesthetic)
register_reward("imagereward", _imagereward)
register_reward("maniqa", _maniqa)
register_reward("unifiedreward", _unifiedreward)
register_reward("deqa", _deqa)
register_reward("geneval", _geneval)
register_reward("mse", _mse)
register_reward("fid", _fid)
register_reward("shapes", _shapes_factory("dense", "shapes"))
register_reward("shapes_strict", _shapes_factory("strict", "shapes_strict"))
register_reward("shapes_tidy", _shapes_factory("tidy", "shapes_tidy"))
register_reward("shapes_clean", _shapes_factory("clean", "shapes_clean"))
register_reward("shapes_exact", _shapes_factory("exact", "shapes_exact"))
register_reward("shapes_colour", _shapes_factory("colour", "shapes_colour"))


def _noise_control(o: RewardOptions, cache: ModelCache) -> RewardFunction:
    """Noise that ignores image and prompt: the null baseline every reward's gain should beat."""
    from reward_utils.noise import NoiseReward

    return NoiseReward()


register_reward("noise_control", _noise_control)

# ----------------------------------------------------------------------------------------------- composition


class RewardComposer:
    """Weighted sum of reward functions, each run on its own device under ``no_grad``.

    Returns ``(total, values)``: ``total`` is ``sum_i w_i * r_i`` and ``values[name]`` the unweighted
    per-image values of each function (for logging), all on the images' device.
    """

    def __init__(self, functions: dict[str, RewardFunction], weights: dict[str, float]):
        if set(functions) != set(weights):
            raise ValueError(
                f"functions {sorted(functions)} and weights {sorted(weights)} name different rewards"
            )
        self.functions, self.weights = functions, weights

    @property
    def names(self) -> list[str]:
        return list(self.functions)

    def __call__(
        self,
        images: torch.Tensor,
        prompts: Sequence[Prompt],
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not torch.is_floating_point(images):
            raise RewardError(f"rewards expect float images in [0, 1], got dtype {images.dtype}")
        values: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, function in self.functions.items():
                device = getattr(function, "device", None)
                batch = images.detach() if device is None else images.detach().to(device)
                # checked here too: a registered plain callable has no RewardFunction.__call__ checks
                values[name] = check_scores(name, function(batch, prompts, metadata), prompts).to(images.device)
        total = torch.zeros(images.shape[0], dtype=torch.float32, device=images.device)
        for name, value in values.items():
            total = total + self.weights[name] * value
        return total, values

    def __repr__(self) -> str:
        terms = " + ".join(f"{w:g}*{n}" for n, w in self.weights.items())
        return f"RewardComposer({terms})"


LOCAL_FILE_OPTIONS = (
    "aesthetic_mlp",
    "hps_checkpoint",
    "imagereward_med_config",
    "maniqa_checkpoint",
    "fid_reference_stats",
    "fid_inception_weights",
)
"""RewardOptions fields that name a local file when set (``aesthetic_mlp`` may also be a URL)."""
LOCAL_DIR_OPTIONS = ("clip_model", "pickscore_model", "pickscore_processor", "aesthetic_clip_model", "qwenvl_model")
"""Fields that are a hub id or a local folder; a value that is clearly a path must be an existing folder."""


def _check_local_paths(options: RewardOptions) -> None:
    files = [(flag, getattr(options, flag)) for flag in LOCAL_FILE_OPTIONS]
    if options.imagereward_model.endswith((".pt", ".pth")):
        files.append(("imagereward_model", options.imagereward_model))
    for flag, value in files:
        if value and "://" not in value and not Path(value).expanduser().is_file():
            raise ValueError(f"--{flag} {value}: file not found")
    for flag in LOCAL_DIR_OPTIONS:
        value = getattr(options, flag)
        if value and value.startswith(("/", ".", "~")) and not Path(value).expanduser().is_dir():
            raise ValueError(f"--{flag} {value}: folder not found (give a local folder or a hub id)")


def check_reward_setup(
    names: Sequence[str] | None, weights: Sequence[float] | None, options: RewardOptions | None = None
) -> list[str]:
    """Reject what :func:`build_reward` would, and every missing local file a reward flag names, without
    loading anything: the checks a run does before its models load. Returns the reward names as a list."""
    if names is None or not list(names):
        raise ValueError(
            "no reward functions given: pass --reward_funcs NAME [NAME ...] "
            f"(registered: {', '.join(sorted(REWARD_FUNCS))})"
        )
    names = list(names)
    unknown = [n for n in names if n not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"unknown reward function(s) {unknown}; registered: {sorted(REWARD_FUNCS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"reward functions listed twice: {names}")
    if weights is not None and len(weights) != len(names):
        raise ValueError(f"{len(names)} reward functions {names} but {len(weights)} weights {list(weights)}")
    if options is not None:
        _check_local_paths(options)
    return names


def build_reward(
    names: Sequence[str] | None,
    weights: Sequence[float] | None = None,
    options: RewardOptions | None = None,
    device: torch.device | str | None = None,
    cache: ModelCache | None = None,
) -> RewardComposer:
    """Build the named rewards (upstream ``--reward_funcs`` names) with ``weights`` (default all 1).

    Reward models go to ``options.reward_device`` if set, else to ``device`` (the policy's device).
    """
    names = check_reward_setup(names, weights)
    weights = [1.0] * len(names) if weights is None else [float(w) for w in weights]
    options = options or RewardOptions()
    if options.reward_device is None and device is not None:
        options = replace(options, reward_device=str(device))
    cache = cache if cache is not None else ModelCache()
    functions = {name: REWARD_FUNCS[name](options, cache) for name in names}
    return RewardComposer(functions, dict(zip(names, weights)))


# ----------------------------------------------------------------------------------------------- flags


def add_reward_args(parser: argparse.ArgumentParser, default_funcs: Sequence[str] | None = None) -> None:
    """``--reward_funcs``, ``--reward_weights`` and one flag per :class:`RewardOptions` field."""
    group = parser.add_argument_group("rewards")
    group.add_argument(
        "--reward_funcs",
        nargs="+",
        default=list(default_funcs) if default_funcs else None,
        help=f"reward functions to combine (registered: {', '.join(sorted(REWARD_FUNCS))})",
    )
    group.add_argument(
        "--reward_weights", nargs="+", type=float, default=None, help="one weight per reward (default 1)"
    )
    for f in fields(RewardOptions):
        help_text = f.metadata.get("help", "")
        if f.name != "reward_api_key" and "default" not in help_text:
            default = f.default if f.default is not MISSING else f.default_factory()
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"default": None, "help": help_text}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if f.type in ("bool", bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.type in ("int", int):
            kwargs["type"] = int
        elif f.type in ("float", float):
            kwargs["type"] = float
        group.add_argument(f"--{f.name}", **kwargs)


def reward_options_from_args(args: argparse.Namespace) -> RewardOptions:
    """Flags that were given override :class:`RewardOptions` defaults (which read the env vars)."""
    given = {
        f.name: getattr(args, f.name)
        for f in fields(RewardOptions)
        if getattr(args, f.name, None) is not None
    }
    return RewardOptions(**given)
