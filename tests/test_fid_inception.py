"""The Inception port's feature taps (random weights, no download) and the weights-path resolution."""

import functools
import http.server
import socket
import threading

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from evaluation import inception
from evaluation.activations import class_logits, compute_activations
from evaluation.inception import (
    WEIGHTS_ENV_VAR,
    InceptionV3Features,
    resolve_weights_path,
    save_random_inception_weights,
)
from evaluation.npz_io import write_sample_npz


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    return save_random_inception_weights(tmp_path_factory.mktemp("inception") / "random.pth", seed=0)


@pytest.fixture(scope="module")
def model(weights_file):
    return InceptionV3Features(weights_file).eval()


def _images(n, size, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def test_feature_shapes_and_spatial_tap_is_mixed_6d_branch1x1_in_hwc_order(model):
    block_outputs = {}
    hooks = [
        getattr(model.net, name).register_forward_hook(
            lambda _m, _i, out, name=name: block_outputs.__setitem__(name, out.clone())
        )
        for name in ("Mixed_6d", "Mixed_6e")
    ]
    try:
        pool, spatial = model(_images(2, 40))
    finally:
        for hook in hooks:
            hook.remove()
    assert pool.shape == (2, 2048) and spatial.shape == (2, 17 * 17 * 7)
    assert pool.dtype == spatial.dtype == torch.float32
    assert torch.isfinite(pool).all() and pool.std() > 0 and spatial.std() > 0
    # The block concatenates branch1x1 first, so its channels 0..6 are the mixed_6/conv channels 0..6.
    mixed_6d = block_outputs["Mixed_6d"]
    assert mixed_6d.shape == (2, 768, 17, 17)
    expected = mixed_6d[:, :7].permute(0, 2, 3, 1).reshape(2, -1)
    torch.testing.assert_close(spatial, expected, rtol=0, atol=0)
    assert not torch.allclose(spatial, block_outputs["Mixed_6e"][:, :7].permute(0, 2, 3, 1).reshape(2, -1))
    assert not torch.allclose(spatial, mixed_6d[:, :7].reshape(2, -1))  # CHW order would differ


def test_pool_and_unbiased_logits_match_torch_fidelity(model, weights_file):
    images = _images(2, 32, seed=1)
    reference = FeatureExtractorInceptionV3("check", ["2048", "logits_unbiased", "logits"], str(weights_file))
    ref_pool, ref_unbiased, ref_biased = reference(images.permute(0, 3, 1, 2))
    pool, _ = model(images)
    logits = model.class_logits(pool)
    assert logits.shape == (2, 1008)
    torch.testing.assert_close(pool, ref_pool)
    torch.testing.assert_close(logits, ref_unbiased)
    assert not torch.allclose(logits, ref_biased)  # the evaluator's softmax input has no bias


def test_compute_activations_streams_an_npz(model, tmp_path):
    images = _images(5, 24, seed=2).numpy()
    write_sample_npz(tmp_path / "s.npz", images)
    acts = compute_activations(tmp_path / "s.npz", model, batch_size=2, progress=False)
    assert acts.pool.shape == (5, 2048) and acts.spatial.shape == (5, 2023)
    pool, spatial = model(torch.from_numpy(images[3:5]))
    np.testing.assert_allclose(acts.pool[3:5], pool.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(acts.spatial[3:5], spatial.numpy(), rtol=1e-4, atol=1e-5)
    logits = class_logits(model, acts.pool, batch_size=2)
    np.testing.assert_allclose(logits, model.class_logits(torch.from_numpy(acts.pool)).numpy(), rtol=1e-4, atol=1e-5)


def test_non_image_arrays_are_rejected(model, tmp_path):
    with pytest.raises(ValueError, match="uint8 images"):
        model(torch.zeros(1, 8, 8, 3))
    np.savez(tmp_path / "float.npz", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"float.npz: 'arr_0' must be uint8 images"):
        compute_activations(tmp_path / "float.npz", model, progress=False)


def test_corrupt_weights_file_is_named(tmp_path):
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="corrupt.pth"):
        InceptionV3Features(bad)


def test_weights_path_precedence(tmp_path, monkeypatch, weights_file):
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(weights_file))
    assert resolve_weights_path(None) == weights_file
    assert resolve_weights_path(str(weights_file)) == weights_file
    with pytest.raises(FileNotFoundError, match="--inception-weights does not exist"):
        resolve_weights_path(tmp_path / "nope.pth")
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match=f"{WEIGHTS_ENV_VAR} does not exist"):
        resolve_weights_path(None)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_download_error_names_url_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    url = f"http://127.0.0.1:{_closed_port()}/weights-inception.pth"
    with pytest.raises(RuntimeError) as info:
        resolve_weights_path(None, url=url)
    message = str(info.value)
    assert url in message and "--inception-weights" in message and WEIGHTS_ENV_VAR in message
    assert not inception.default_weights_path().exists()


def test_first_use_downloads_into_the_hub_cache(tmp_path, monkeypatch, weights_file):
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(weights_file.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{weights_file.name}"
        path = resolve_weights_path(None, url=url)
    finally:
        server.shutdown()
        server.server_close()
    assert path == inception.default_weights_path()
    assert path.read_bytes() == weights_file.read_bytes()
    assert resolve_weights_path(None, url="http://127.0.0.1:1/unused") == path  # cached: no second download


def test_a_pickle_payload_in_place_of_the_weights_is_refused(tmp_path):
    # torch-fidelity unpickles the weights file with full pickle; the project must read it weights-only.
    from autoregressive.checkpoint import CheckpointError
    from tests.payloads import write_payload

    marker = tmp_path / "code_ran"
    payload = write_payload(tmp_path / "weights-inception.pth", marker)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        inception.load_inception(payload)
    assert str(payload) in str(info.value)
    assert not marker.exists()


def test_the_fid_reward_loads_inception_weights_through_the_same_safe_loader(tmp_path, weights_file):
    from autoregressive.checkpoint import CheckpointError
    from img_gen_grpo_rewards import RewardOptions, build_reward
    from tests.payloads import write_payload

    reference = tmp_path / "ref.npz"
    np.savez(reference, mu=np.zeros(2048), sigma=np.eye(2048))
    marker = tmp_path / "code_ran"
    payload = write_payload(tmp_path / "payload.pth", marker)
    options = RewardOptions(fid_reference_stats=str(reference), fid_inception_weights=str(payload))
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        build_reward(["fid"], options=options, device="cpu")
    assert str(payload) in str(info.value)
    assert not marker.exists()
    options = RewardOptions(fid_reference_stats=str(reference), fid_inception_weights=str(weights_file))
    reward = build_reward(["fid"], options=options, device="cpu")
    total, parts = reward(torch.rand(4, 3, 32, 32), ["a"] * 4, [{}] * 4)
    assert total.shape == (4,) and torch.isfinite(total).all()


def test_weights_of_the_wrong_network_are_an_error_naming_the_file(tmp_path):
    from autoregressive.checkpoint import CheckpointError

    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match="not torch-fidelity Inception-v3 weights") as info:
        inception.load_inception(path)
    assert str(path) in str(info.value)
