"""Checkpoint reading (every LlamaGen layout), strict loading with readable errors, atomic saving."""

import argparse
import os

import pytest
import torch
from torch import nn

from autoregressive.checkpoint import (
    CheckpointError,
    load_state_dict_strict,
    read_state_dict,
    save_checkpoint_atomic,
)
from tests.helpers import make_upstream_checkpoint, upstream_models


class TinyNet(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.proj = nn.Linear(3, width)
        self.head = nn.Linear(width, 2, bias=False)
        self.register_buffer("scale", torch.ones(width))


class NotAllowed:
    """A class torch's weights-only unpickler must refuse."""


def _train_args() -> argparse.Namespace:
    return argparse.Namespace(gpt_model="GPT-B", lr=1e-4, ch_mult=[1, 2], image_size=256, ema=True)


def _assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _save_layout(layout: str, state_dict: dict, directory) -> str:
    if layout == "safetensors":
        path = directory / "weights.safetensors"
        save_checkpoint_atomic(state_dict, path)
        return str(path)
    path = directory / f"{layout}.pt"
    if layout == "raw":
        obj = state_dict
    else:
        obj = {layout: state_dict, "args": _train_args(), "steps": 7}
        if layout == "model":  # DDP training file: optimizer state sits next to the weights
            obj["optimizer"] = {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1, 2]}]}
    torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize("layout", ["model", "module", "state_dict", "raw", "safetensors"])
def test_round_trip_every_layout(layout, tmp_path):
    source = TinyNet()
    path = _save_layout(layout, source.state_dict(), tmp_path)
    state_dict = read_state_dict(path)
    _assert_same(state_dict, source.state_dict())
    target = TinyNet()
    load_state_dict_strict(target, state_dict, source=path)
    _assert_same(target.state_dict(), source.state_dict())


def test_use_ema_selects_ema_weights_and_complains_without_them(tmp_path):
    weights, ema = TinyNet().state_dict(), TinyNet().state_dict()
    path = tmp_path / "train.pt"
    torch.save({"model": weights, "ema": ema, "args": _train_args()}, path)
    _assert_same(read_state_dict(path, use_ema=True), ema)
    _assert_same(read_state_dict(path), weights)
    no_ema = tmp_path / "no_ema.pt"
    torch.save({"model": weights}, no_ema)
    with pytest.raises(CheckpointError, match="no 'ema' entry"):
        read_state_dict(no_ema, use_ema=True)


def test_wrapper_prefix_is_stripped(tmp_path):
    source = TinyNet()
    path = tmp_path / "ddp.pt"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    _assert_same(read_state_dict(path), source.state_dict())


def test_bf16_checkpoint_loads_into_fp32_model(tmp_path):
    source = TinyNet()
    path = tmp_path / "bf16.pt"
    torch.save({k: v.to(torch.bfloat16) for k, v in source.state_dict().items()}, path)
    target = TinyNet()
    load_state_dict_strict(target, read_state_dict(path), source=str(path))
    assert target.proj.weight.dtype == torch.float32
    torch.testing.assert_close(
        target.proj.weight, source.proj.weight.to(torch.bfloat16).float(), rtol=0, atol=0
    )
    assert not torch.equal(target.proj.weight, source.proj.weight)  # bf16 rounding really happened


def test_stale_keys_are_dropped():
    source = TinyNet()
    state_dict = dict(source.state_dict())
    state_dict["freqs_cis"] = torch.zeros(5, 2)
    state_dict["layers.0.attention.kv_cache.k_cache"] = torch.zeros(1)
    state_dict["layers.0.attention.kv_cache.v_cache"] = torch.zeros(1)
    target = TinyNet()
    load_state_dict_strict(target, state_dict, source="mem")
    _assert_same(target.state_dict(), source.state_dict())


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="not found") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file(suffix, tmp_path):
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".pt":
        torch.save({"model": TinyNet(width=64).state_dict(), "args": _train_args()}, path)
    else:
        save_checkpoint_atomic(TinyNet(width=64).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt|not a readable safetensors") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None  # the low-level error stays attached for debugging


def test_garbage_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"definitely not a checkpoint")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path in (garbage, empty):
        with pytest.raises(CheckpointError, match="not a torch checkpoint"):
            read_state_dict(path)


def test_unknown_layout_names_top_level_keys(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"weights_here": {"a": 1}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="none of the known checkpoint layouts") as info:
        read_state_dict(path)
    assert "weights_here" in str(info.value)


def test_non_tensor_entries_in_state_dict(tmp_path):
    path = tmp_path / "mixed.pt"
    torch.save({"model": {"proj.weight": torch.zeros(1), "note": "hello"}}, path)
    with pytest.raises(CheckpointError, match="'note'"):
        read_state_dict(path)


def test_refuses_arbitrary_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": TinyNet().state_dict(), "extra": NotAllowed()}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        read_state_dict(path)
    assert "NotAllowed" in str(info.value)


def test_missing_unexpected_and_mismatched_keys_are_named():
    state_dict = dict(TinyNet().state_dict())
    del state_dict["head.weight"]
    state_dict["extra.bias"] = torch.zeros(3)
    state_dict["proj.weight"] = torch.zeros(8, 3)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(
            TinyNet(), state_dict, source="ckpt/c2i_B_256.pt", hint="Try --gpt_model GPT-L."
        )
    message = str(info.value)
    assert "ckpt/c2i_B_256.pt" in message
    assert 'Missing key(s) in state_dict: "head.weight"' in message  # torch's own strict-load report
    assert 'Unexpected key(s) in state_dict: "extra.bias"' in message
    assert "size mismatch for proj.weight: copying a param with shape torch.Size([8, 3])" in message
    assert message.endswith("Try --gpt_model GPT-L.")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_every_missing_key_is_named():
    big = nn.ModuleDict({f"layer{i}": nn.Linear(2, 2) for i in range(9)})
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(big, {}, source="empty")
    assert all(f'"layer{i}.{p}"' in str(info.value) for i in range(9) for p in ("weight", "bias"))


def test_mismatched_shape_leaves_module_untouched():
    """A shape mismatch is found before anything is copied (torch alone copies the fitting tensors first)."""
    target = TinyNet()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state_dict = {k: v + 1 for k, v in TinyNet().state_dict().items()}
    state_dict["proj.weight"] = torch.zeros(8, 3)
    with pytest.raises(CheckpointError, match="proj.weight"):
        load_state_dict_strict(target, state_dict, source="wrong_size.pt")
    _assert_same(target.state_dict(), before)


def test_nan_weights_are_rejected():
    state_dict = dict(TinyNet().state_dict())
    state_dict["head.weight"] = torch.full_like(state_dict["head.weight"], float("nan"))
    with pytest.raises(CheckpointError, match="non-finite.*head.weight"):
        load_state_dict_strict(TinyNet(), state_dict, source="nan.pt")


def test_failed_load_leaves_module_untouched():
    target = TinyNet()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state_dict = dict(TinyNet().state_dict())
    del state_dict["scale"]
    with pytest.raises(CheckpointError, match="scale"):
        load_state_dict_strict(target, state_dict, source="partial.pt")
    _assert_same(target.state_dict(), before)


def test_atomic_save_replaces_and_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "ckpt.pt"
    save_checkpoint_atomic({"model": {"w": torch.ones(2)}, "args": _train_args()}, path)
    save_checkpoint_atomic({"model": {"w": torch.zeros(2)}}, path)
    assert torch.equal(read_state_dict(path)["w"], torch.zeros(2))
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails with a pickle-specific error
        save_checkpoint_atomic({"model": {"w": torch.full((2,), 5.0)}, "fn": lambda: 0}, path)
    assert torch.equal(read_state_dict(path)["w"], torch.zeros(2))
    assert os.listdir(path.parent) == ["ckpt.pt"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # ordinary file permissions, not mkstemp's 0600


def test_gpt_size_mismatch_names_the_file_and_the_matching_flags(tmp_path):
    from autoregressive.models.gpt import build_gpt, load_gpt_weights

    path = tmp_path / "tiny_c2i.pt"
    torch.save({"model": build_gpt("GPT-Tiny", block_size=16, vocab_size=48).state_dict()}, path)
    with pytest.raises(CheckpointError) as info:
        load_gpt_weights(build_gpt("GPT-Small", block_size=16, vocab_size=48), path)
    message = str(info.value)
    assert message.startswith(str(path)) and "size mismatch for tok_embeddings.weight" in message
    assert "looks like --gpt_model GPT-Tiny --gpt_type c2i" in message


# ------------------------------------------------------------------------ upstream AR-GRPO checkpoints
@pytest.mark.parametrize("shards", [1, 3])
def test_upstream_checkpoint_loads_gpt_and_vq_strictly(shards, tmp_path):
    from autoregressive.models.gpt import build_gpt, load_gpt_weights
    from tokenizer.vq_model import load_vq

    gpt, vq = upstream_models()
    folder = make_upstream_checkpoint(tmp_path / "checkpoint-300", gpt, vq, shards=shards)
    weights = folder / ("model.safetensors" if shards == 1 else "model.safetensors.index.json")
    for given in (folder, weights):  # the folder or its weights file
        loaded = load_gpt_weights(build_gpt("GPT-Tiny", block_size=16, vocab_size=48), given)
        _assert_same(loaded.state_dict(), gpt.state_dict())
        loaded_vq = load_vq(given, "VQ-Tiny", codebook_size=48)
        _assert_same(loaded_vq.state_dict(), vq.state_dict())


def test_upstream_checkpoint_mismatch_names_the_file(tmp_path):
    from safetensors.torch import load_file, save_file

    from autoregressive.models.gpt import build_gpt, load_gpt_weights

    gpt, vq = upstream_models()
    folder = make_upstream_checkpoint(tmp_path / "checkpoint-1", gpt, vq)
    path = folder / "model.safetensors"
    with pytest.raises(CheckpointError, match=f"^{path}: checkpoint does not fit"):  # wrong size: strict
        load_gpt_weights(build_gpt("GPT-Small", block_size=16, vocab_size=48), path)
    tensors = load_file(str(path))
    tensors.pop("gpt_model.norm.weight")
    tensors["gpt_model.extra.weight"] = torch.zeros(1)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError) as info:
        load_gpt_weights(build_gpt("GPT-Tiny", block_size=16, vocab_size=48), path)
    assert str(info.value).startswith(str(path)) and '"norm.weight"' in str(info.value)
    assert '"extra.weight"' in str(info.value)
    tensors["text_encoder.w"] = torch.zeros(1)  # keys of neither part are never dropped silently
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match="keys outside gpt_model., vq_model.: text_encoder.w"):
        read_state_dict(path, part="gpt_model")
    with pytest.raises(CheckpointError, match="say which part"):
        read_state_dict(path)


def test_sharded_index_is_checked(tmp_path):
    import json

    gpt, vq = upstream_models()
    folder = make_upstream_checkpoint(tmp_path / "checkpoint-2", gpt, vq, shards=2)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    moved = next(iter(index["weight_map"]))
    index["weight_map"][moved] = "../elsewhere.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="is not a file name beside the index"):
        read_state_dict(index_path, part="gpt_model")
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if k != moved}
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="does not hold what model.safetensors.index.json lists"):
        read_state_dict(index_path, part=moved.split(".")[0])  # a tensor the index does not list
    index_path.write_text("{" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupt JSON"):
        read_state_dict(folder, part="gpt_model")


# ------------------------------------------------------------------------ export and model-only checkpoints
def _exported_loads_strictly(pt_path, expected: dict, build) -> None:
    """Both exported files load strictly into the LlamaGen-layout GPT with exactly ``expected``'s tensors."""
    from safetensors.torch import load_file

    from autoregressive.models.gpt import load_gpt_weights

    saved = torch.load(pt_path, map_location="cpu", weights_only=True)
    assert list(saved) == ["model"]  # LlamaGen's layout, nothing else
    assert load_file(str(pt_path.with_suffix(".safetensors"))).keys() == saved["model"].keys()
    for path in (pt_path, pt_path.with_suffix(".safetensors")):
        model = load_gpt_weights(build(), path)
        _assert_same({k: v for k, v in model.state_dict().items() if k in expected}, expected)
        assert set(model.state_dict()) == set(expected)


def test_export_our_checkpoint_and_upstreams_round_trip(tmp_path, capsys):
    from autoregressive.models.gpt import build_gpt
    from scripts import export
    from tests.grpo_fixtures import make_trainer

    run = tmp_path / "run"
    trainer = make_trainer(run, max_steps=1, save_steps=1)
    trainer.train()
    expected = {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}

    def build_ours():
        return build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=10)

    out = tmp_path / "ours" / "gpt.pt"
    export.main([str(run / "checkpoint-1"), "--out", str(out)])
    assert f"to {out} and {out.with_suffix('.safetensors')}" in capsys.readouterr().out
    _exported_loads_strictly(out, expected, build_ours)
    export.main([str(run), "--step", "latest", "--out", str(tmp_path / "latest.pt")])
    _exported_loads_strictly(tmp_path / "latest.pt", expected, build_ours)

    gpt, vq = upstream_models()
    upstream = make_upstream_checkpoint(tmp_path / "up" / "checkpoint-300", gpt, vq, shards=2)
    export.main([str(upstream), "--out", str(tmp_path / "upstream.pt")])
    _exported_loads_strictly(
        tmp_path / "upstream.pt", gpt.state_dict(), lambda: build_gpt("GPT-Tiny", block_size=16, vocab_size=48)
    )
    with pytest.raises(SystemExit, match="no checkpoint-7 folder"):
        export.main([str(run), "--step", "7", "--out", str(tmp_path / "x.pt")])


def test_save_only_model_checkpoints_evaluate_but_cannot_resume(tmp_path):
    from autoregressive.run_layout import resolve_gpt_checkpoint
    from tests.grpo_fixtures import make_trainer

    run = tmp_path / "run"
    make_trainer(run, max_steps=1, save_steps=1, save_only_model=True).train()
    checkpoint = run / "checkpoint-1"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["model.safetensors", "trainer_state.json"]
    assert resolve_gpt_checkpoint(run, "1") == checkpoint / "model.safetensors"
    with pytest.raises(CheckpointError, match="saved with --save_only_model.*cannot resume") as info:
        make_trainer(run, max_steps=2, save_steps=1, resume_from_checkpoint="latest").train()
    assert str(checkpoint / "model.safetensors") in str(info.value)
