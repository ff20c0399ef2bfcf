"""Registry, options / flags / env vars, composition, model sharing through the real loaders, and the layer
rule: rewards import nothing of the models' training, the trainer, the entry points or the demo."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import img_gen_grpo_rewards as rewards
from reward_utils.base import RewardError, RewardFunction
from reward_utils.clip_vocab import clip_tokenizer
from tests.helpers import HPS_TINY_ARCH, HPS_TINY_CONFIG, smooth_images, tiny_clip

REPO = Path(__file__).resolve().parents[1]


def test_import_is_lazy():
    code = (
        "import sys, img_gen_grpo_rewards as r; heavy = [m for m in "
        "('transformers', 'open_clip', 'hpsv2', 'ImageReward', 'pyiqa', 'openai', 'torch_fidelity') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_upstream_names_are_registered():
    upstream = {
        "clip_distance", "clip_quantize", "clip_text", "clip_text_quantize", "hpsv2", "hpsv2_quantize",
        "hpsv2_text", "hpsv2_text_quantize", "qwenvl_3b", "qwenvl_3b_text", "qwenvl_fake", "qwenvl_weird",
        "imagereward", "pickscore", "aesthetic", "maniqa", "unifiedreward", "deqa", "geneval", "mse", "fid",
    }  # fmt: skip
    assert upstream <= set(rewards.REWARD_FUNCS)


def test_flags_env_vars_and_secret_handling(monkeypatch):
    from transformers import HfArgumentParser

    monkeypatch.setenv("QWENVL_URL", "http://judge-host:9000/v1")
    monkeypatch.setenv("REWARD_API_KEY", "sk-from-env")
    parser = HfArgumentParser(rewards.RewardArguments)
    (options,) = parser.parse_args_into_dataclasses(
        [
            *("--reward_funcs", "clip_distance", "hpsv2_quantize", "--reward_weights", "1", "0.5"),
            *("--clip_model", "/models/clip", "--reward_timeout", "3.5", "--reward_retries", "5"),
            *("--geneval_only_strict", "--reward_server_format", "json"),
        ]
    )
    assert options.reward_funcs == ["clip_distance", "hpsv2_quantize"] and options.reward_weights == [1.0, 0.5]
    assert options.clip_model == "/models/clip" and options.reward_timeout == 3.5 and options.reward_retries == 5
    assert options.geneval_only_strict is True and options.reward_server_format == "json"
    assert options.qwenvl_url == "http://judge-host:9000/v1"  # from the environment
    assert options.hps_version == "v2.1" and options.deqa_url == "http://127.0.0.1:18086"  # defaults
    assert options.reward_api_key == "sk-from-env" and "sk-from-env" not in repr(options)
    (flagged,) = parser.parse_args_into_dataclasses(["--reward_api_key", "sk-flag", "--qwenvl_url", "http://x/v1"])
    assert flagged.reward_api_key == "sk-flag" and flagged.qwenvl_url == "http://x/v1"
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--hps_version", "v9"])


def test_reward_arguments_parse_through_hf_argument_parser(monkeypatch):
    from transformers import HfArgumentParser

    monkeypatch.setenv("REWARD_API_KEY", "sk-from-env")
    parser = HfArgumentParser(rewards.RewardArguments)
    argv = ["--reward_funcs", "a", "b", "--reward_weights", "1", "2", "--maniqa_crops", "3"]
    (args,) = parser.parse_args_into_dataclasses(argv)
    assert args.reward_funcs == ["a", "b"] and args.reward_weights == [1.0, 2.0] and args.maniqa_crops == 3
    assert args.hps_version == "v2.1" and args.geneval_only_strict is False and args.reward_timeout == 120.0
    assert args.reward_api_key == "sk-from-env" and "sk-from-env" not in repr(args)
    assert isinstance(args, rewards.RewardOptions)  # the parsed flags are the options build_reward takes
    (strict,) = parser.parse_args_into_dataclasses(["--geneval_only_strict", "--qwenvl_mode", "server"])
    assert strict.geneval_only_strict is True and strict.qwenvl_mode == "server" and strict.reward_funcs is None
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--hps_version", "v9"])


NEW_BACKEND = """
from dataclasses import dataclass

from reward_utils.backend import BackendOptions, option


@dataclass
class BrightnessOptions(BackendOptions):
    brightness_scale: float = option(2.0, "factor on the mean pixel value")


def brightness(options, cache):
    return lambda images, prompts, metadata: options.brightness_scale * images.mean(dim=(1, 2, 3))


OPTIONS = BrightnessOptions
REWARDS = {"brightness": brightness}
"""


def test_a_new_reward_is_one_file_in_reward_utils_with_its_own_flags(tmp_path):
    (tmp_path / "brightness_bonus.py").write_text(NEW_BACKEND)
    code = f"""
import json, torch, reward_utils
reward_utils.__path__.append({str(tmp_path)!r})  # as if brightness_bonus.py were saved in reward_utils/
import img_gen_grpo_rewards as r
from transformers import HfArgumentParser
argv = ["--reward_funcs", "brightness", "--brightness_scale", "3", "--maniqa_crops", "4"]
(args,) = HfArgumentParser(r.RewardArguments).parse_args_into_dataclasses(argv)
total, values = r.build_reward(args.reward_funcs, args.reward_weights, args)(torch.full((2, 3, 4, 4), 0.5), [0, 1])
(flagged,) = HfArgumentParser(r.RewardArguments).parse_args_into_dataclasses(["--brightness_scale", "5"])
print(json.dumps([total.tolist(), args.maniqa_crops, r.RewardOptions().brightness_scale, flagged.brightness_scale]))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [[1.5, 1.5], 4, 2.0, 5.0]


def test_two_backends_may_not_declare_the_same_flag():
    from dataclasses import dataclass

    from reward_utils.backend import BackendOptions, option

    @dataclass
    class First(BackendOptions):
        clip_model: str = option("a", "one backend's model")

    @dataclass
    class Second(BackendOptions):
        clip_model: str = option("b", "another backend's model")

    with pytest.raises(TypeError, match="--clip_model is declared twice"):
        rewards.merge_options([First, Second])
    merged = rewards.merge_options([First])  # the shared base's --reward_device is no clash
    assert merged().clip_model == "a" and merged().reward_device is None


FORBIDDEN_FOR_REWARDS = ("demo", "grpo", "grpo_trainer", "train_c2i", "train_t2i", "sampling", "tokenizer")
ALLOWED_MODEL_SIDE = ("autoregressive.checkpoint", "evaluation.inception", "evaluation.npz_io")


def test_rewards_import_nothing_of_models_training_entry_points_or_the_demo():
    offenders = []
    for path in [REPO / "img_gen_grpo_rewards.py", *sorted((REPO / "reward_utils").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                forbidden = top in FORBIDDEN_FOR_REWARDS or (
                    top in ("autoregressive", "evaluation") and module not in ALLOWED_MODEL_SIDE
                )
                if forbidden:
                    offenders.append(f"{path.relative_to(REPO)} imports {module}")
    assert offenders == []


def test_the_demo_registers_its_shapes_rewards_and_the_training_entry_points_load_them():
    code = (
        "import img_gen_grpo_rewards as r; before = sorted(n for n in r.REWARD_FUNCS if n.startswith('shapes'));"
        " import train_t2i; print(before, sorted(n for n in r.REWARD_FUNCS if n.startswith('shapes')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    names = "['shapes', 'shapes_clean', 'shapes_colour', 'shapes_exact', 'shapes_strict', 'shapes_tidy']"
    assert out.stdout.strip() == f"[] {names}"


def test_build_reward_rejects_bad_configuration():
    with pytest.raises(ValueError, match=r"unknown reward function\(s\) \['clip_dist'\]; registered: .*clip_distance"):
        rewards.build_reward(["clip_dist"])
    with pytest.raises(ValueError, match="2 reward functions .* but 1 weights"):
        rewards.build_reward(["mse", "deqa"], [1.0])
    with pytest.raises(ValueError, match="listed twice"):
        rewards.build_reward(["mse", "mse"])
    with pytest.raises(ValueError, match="no reward functions"):
        rewards.build_reward([])
    with pytest.raises(ValueError, match="no reward functions given: pass --reward_funcs"):
        rewards.build_reward(None)  # what argparse gives when --reward_funcs is left out
    with pytest.raises(ValueError, match="--fid_reference_stats"):
        rewards.build_reward(["fid"])
    with pytest.raises(ValueError, match="already registered"):
        rewards.register_reward("mse", lambda o, c: None)


class Probe(RewardFunction):
    """Records what it was called with; returns ``value`` per image."""

    def __init__(self, name: str, value, device=None):
        self.name, self.value, self.device, self.calls = name, value, device, []

    def score(self, images, prompts, metadata=None):
        self.calls.append((images.device, torch.is_grad_enabled(), list(prompts), metadata))
        if callable(self.value):
            return self.value(images)
        return torch.full((images.shape[0],), float(self.value))


@pytest.fixture
def probes():
    created = {}

    def register(name, value, device=None):
        created[name] = Probe(name, value, device)
        rewards.register_reward(name, lambda options, cache: created[name], overwrite=True)
        return created[name]

    yield register
    for name in created:
        rewards.REWARD_FUNCS.pop(name, None)


def test_composer_weights_devices_and_no_grad(probes):
    a = probes("probe_a", 2.0)
    b = probes(
        "probe_b",
        lambda images: torch.arange(images.shape[0], dtype=torch.float32),
        device=torch.device("meta"),
    )
    composer = rewards.build_reward(["probe_a", "probe_b"], [0.5, -1.0], device="cpu")
    images = torch.rand(3, 3, 8, 8, requires_grad=True)
    metadata = [{"k": i} for i in range(3)]
    total, values = composer(images, ["x", "y", "z"], metadata)
    torch.testing.assert_close(total, torch.tensor([1.0, 0.0, -1.0]))
    assert set(values) == {"probe_a", "probe_b"} and values["probe_b"].tolist() == [0.0, 1.0, 2.0]
    assert all(v.device == images.device for v in values.values())
    assert a.calls[0][0].type == "cpu" and b.calls[0][0].type == "meta"  # each reward gets images on its device
    assert a.calls[0][1] is False and a.calls[0][3] == metadata
    assert "0.5*probe_a" in repr(composer)


def test_composer_names_a_plain_callable_that_returns_inf():
    def plain(images, prompts, metadata):  # a registered callable that is not a RewardFunction
        return torch.tensor([1.0, float("inf")])

    rewards.register_reward("plain_inf", lambda options, cache: plain)
    try:
        with pytest.raises(RewardError, match=r"'plain_inf' returned inf for prompt #1 'two'"):
            rewards.build_reward(["plain_inf"])(torch.rand(2, 3, 8, 8), ["one", "two"])
    finally:
        rewards.REWARD_FUNCS.pop("plain_inf", None)


def test_composer_propagates_validation_errors(probes):
    probes("probe_nan", lambda images: torch.tensor([0.0, float("nan")]))
    probes("probe_short", lambda images: torch.zeros(1))
    images = torch.rand(2, 3, 8, 8)
    with pytest.raises(RewardError, match=r"'probe_nan' returned nan for prompt #1 'two'"):
        rewards.build_reward(["probe_nan"])(images, ["one", "two"])
    with pytest.raises(RewardError, match=r"'probe_short' returned shape \(1,\) for 2 prompts"):
        rewards.build_reward(["probe_short"])(images, ["one", "two"])
    with pytest.raises(RewardError, match="float images"):
        rewards.build_reward(["probe_short"])((images * 255).to(torch.uint8), ["one", "two"])


def test_plain_and_quantized_variants_share_one_model_loaded_from_local_files(tmp_path):
    from transformers import CLIPImageProcessor

    from reward_utils.aesthetic import AestheticMLP

    clip_dir = tmp_path / "clip"
    torch.manual_seed(0)
    tiny_clip().save_pretrained(clip_dir)
    clip_tokenizer(tmp_path / "tok").save_pretrained(clip_dir)
    CLIPImageProcessor().save_pretrained(clip_dir)
    mlp_path = tmp_path / "aesthetic.pth"
    torch.save(AestheticMLP(16).state_dict(), mlp_path)

    options = rewards.RewardOptions(
        clip_model=str(clip_dir), aesthetic_clip_model=str(clip_dir), aesthetic_mlp=str(mlp_path)
    )
    cache = rewards.ModelCache()
    composer = rewards.build_reward(
        ["clip_distance", "clip_quantize", "aesthetic"], [1.0, 1.0, 0.1], options, device="cpu", cache=cache
    )
    scorers = {id(composer.functions[n].scorer) for n in ("clip_distance", "clip_quantize", "aesthetic")}
    assert len(scorers) == 1, "one CLIP model must serve all three rewards"
    assert len(cache) == 2  # the CLIP scorer and the aesthetic head
    images = smooth_images(4, 256)
    total, values = composer(images, [1, 2, 3, 4])
    from reward_utils.scaling import SIMILARITY_EDGES, SIMILARITY_LEVELS, step_map

    similarity = values["clip_distance"] / 5
    torch.testing.assert_close(values["clip_quantize"], step_map(similarity, SIMILARITY_EDGES, SIMILARITY_LEVELS))
    torch.testing.assert_close(total, values["clip_distance"] + values["clip_quantize"] + 0.1 * values["aesthetic"])


def test_hps_variants_share_one_model(tmp_path):
    from hpsv2.src.open_clip import add_model_config, create_model_and_transforms

    config = tmp_path / f"{HPS_TINY_ARCH}.json"
    config.write_text(json.dumps(HPS_TINY_CONFIG))
    add_model_config(config)
    model, _, _ = create_model_and_transforms(HPS_TINY_ARCH, None, precision="amp", device="cpu")
    checkpoint = tmp_path / "hps.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    options = rewards.RewardOptions(hps_checkpoint=str(checkpoint), hps_arch=HPS_TINY_ARCH)
    composer = rewards.build_reward(["hpsv2", "hpsv2_quantize", "hpsv2_text"], options=options, device="cpu")
    assert len({id(f.scorer) for f in composer.functions.values()}) == 1
    with pytest.raises(RewardError, match="hpsv2_text.*captions"):
        composer(smooth_images(2, 224), [1, 2])


def test_noise_control_ignores_image_and_prompt_and_is_standard_normal():
    def build():
        return rewards.build_reward(["noise_control"])

    bright, dark = torch.ones(64, 3, 8, 8), torch.zeros(64, 3, 8, 8)
    first, _ = build()(bright, ["a photo of a red circle"] * 64)
    again, _ = build()(dark, ["a photo of a blue square"] * 64)
    torch.testing.assert_close(first, again, rtol=0, atol=0)  # same seed: the image and prompt change nothing
    composer = build()
    draws = torch.cat([composer(bright, [0] * 64)[0] for _ in range(64)])
    assert len(draws.unique()) == len(draws)  # fresh noise on every call
    assert abs(draws.mean().item()) < 0.1 and abs(draws.std().item() - 1) < 0.1  # 4096 draws: se ~0.016
