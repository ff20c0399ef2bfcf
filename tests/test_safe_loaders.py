"""Every weights loader the project calls refuses a pickle payload, names the file, and never runs it.

Each test plants a file whose unpickling would create a marker file (tests/payloads.py) where a loader reads
weights, and sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, under which torch.load calls that rely on torch's default
unpickle everything: only loaders that ask for weights_only=True themselves (or read safetensors) stay safe.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest
import torch

from autoregressive.checkpoint import CheckpointError
from tests.helpers import no_pretrained_timm
from tests.payloads import write_payload


@pytest.fixture(autouse=True)
def torch_default_is_full_pickle(monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "code_ran"
    yield path
    assert not path.exists(), "a loader unpickled the payload and ran its code"


def _refused(error_info, path) -> None:
    assert str(path) in str(error_info.value)


def test_gpt_and_vq_checkpoints(tmp_path, marker):
    from autoregressive.models.gpt import build_gpt, load_gpt_weights
    from tokenizer.vq_model import load_vq

    payload = write_payload(tmp_path / "c2i_payload.pt", marker)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_gpt_weights(build_gpt("GPT-Tiny", block_size=16, vocab_size=48, num_classes=15), payload)
    _refused(info, payload)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_vq(payload, "VQ-16")
    _refused(info, payload)


def test_maniqa_checkpoint(tmp_path, marker):
    from reward_utils.maniqa import load_maniqa

    payload = write_payload(tmp_path / "maniqa.pth", marker)
    with no_pretrained_timm(), pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_maniqa("maniqa", "cpu", checkpoint=str(payload), crops=1)
    _refused(info, payload)


def test_maniqa_checkpoint_of_another_network_is_named(tmp_path):
    from reward_utils.maniqa import load_maniqa

    path = tmp_path / "other.pth"
    torch.save({"params": {"head.weight": torch.zeros(1)}}, path)
    with no_pretrained_timm(), pytest.raises(CheckpointError, match="Missing key") as info:
        load_maniqa("maniqa", "cpu", checkpoint=str(path), crops=1)
    _refused(info, path)


def test_image_reward_checkpoint(tmp_path, marker):
    from reward_utils.image_reward import load_image_reward

    payload = write_payload(tmp_path / "ImageReward.pt", marker)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_image_reward(str(payload), "cpu", med_config=str(tmp_path / "unused.json"))
    _refused(info, payload)


def test_hps_checkpoint(tmp_path, marker):
    from reward_utils.hps import load_hps

    payload = write_payload(tmp_path / "HPS_v2.1_compressed.pt", marker)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_hps("v2.1", str(payload))  # refused before the ViT-H model is built
    _refused(info, payload)


def test_aesthetic_head_local_file(tmp_path, marker):
    from reward_utils.aesthetic import load_aesthetic_mlp

    payload = write_payload(tmp_path / "aesthetic.pth", marker)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_aesthetic_mlp(str(payload), "cpu")
    _refused(info, payload)


def test_aesthetic_head_downloaded_from_a_url(tmp_path, marker, monkeypatch):
    from reward_utils.aesthetic import load_aesthetic_mlp

    served = tmp_path / "served"
    served.mkdir()
    write_payload(served / "head.pth", marker)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(CheckpointError, match="refused to unpickle") as info:
            load_aesthetic_mlp(f"http://127.0.0.1:{server.server_address[1]}/head.pth", "cpu")
    finally:
        server.shutdown()
        server.server_close()
    assert "head.pth" in str(info.value)


def _t5_folder(tmp_path):
    from autoregressive.text_encoder import T5TextEncoder

    encoder = T5TextEncoder.tiny(d_model=32, seed=0, max_length=8)
    encoder.model.save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    return tmp_path


def test_text_encoder_folder_with_a_pickled_bin(tmp_path, marker):
    from autoregressive.text_encoder import T5TextEncoder

    folder = _t5_folder(tmp_path / "t5")
    (folder / "model.safetensors").unlink()
    write_payload(folder / "pytorch_model.bin", marker)
    with pytest.raises(OSError) as info:
        T5TextEncoder.from_pretrained(str(folder))
    _refused(info, folder)
    assert "safetensors" in str(info.value)


def test_clip_folder_with_a_pickled_bin(tmp_path, marker):
    from reward_utils.hf_clip import load_hf_clip
    from tests.helpers import tiny_clip

    folder = tmp_path / "clip"
    tiny_clip().save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    write_payload(folder / "pytorch_model.bin", marker)
    with pytest.raises(OSError) as info:
        load_hf_clip(str(folder), "cpu")
    _refused(info, folder)


def test_training_checkpoint_payload_json_is_data(tmp_path):
    """The JSON files of a checkpoint are parsed as data; nothing in them can name code to run."""
    from grpo.checkpointing import read_json

    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"__reduce__": ["os.system", ["touch x"]], "step": 1}))
    assert read_json(path)["step"] == 1 and not (tmp_path / "x").exists()
