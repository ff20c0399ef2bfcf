"""Small builders shared by tests: tiny real models (attention made sharp enough to expose bugs), test images,
a scripted HTTP server on 127.0.0.1 for the remote rewards (and a DeQA handler and client for it), and the
constants several test files agree on (bf16 tolerances, the tiny HPS architecture). Test files import from
here, never from each other."""

from __future__ import annotations

import base64
import json
import pickle
from unittest import mock

import torch

from autoregressive.models.gpt import GPT, ModelArgs
from reward_utils.remote import RetryPolicy
from reward_utils.reward_server import RewardServerClient


def tiny_gpt(
    model_type: str = "c2i",
    *,
    seed: int = 0,
    block_size: int = 16,
    sharp: bool = True,
    cls_token_num: int | None = None,
    caption_dim: int = 24,
    **overrides,
) -> GPT:
    """A 2-layer GPT with a non-zero head and (optionally) q/k scaled up.

    A randomly initialised transformer attends almost uniformly, so a wrong RoPE row or mask barely moves its
    logits; scaling q/k makes attention sharp and such bugs visible.
    """
    torch.manual_seed(seed)
    args = dict(
        dim=64,
        n_layer=2,
        n_head=4,
        vocab_size=48,
        num_classes=10,
        block_size=block_size,
        model_type=model_type,
        caption_dim=caption_dim,
        cls_token_num=cls_token_num or (1 if model_type == "c2i" else 6),
    )
    args.update(overrides)
    model = GPT(ModelArgs(**args))
    with torch.no_grad():
        torch.nn.init.normal_(model.output.weight, std=0.3)
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, std=1.0)
        if sharp:
            for layer in model.layers:
                w = layer.attention.wqkv.weight
                qk = 2 * args["dim"]
                w[:qk] *= 8.0
    return model.eval()


def t2i_condition(model: GPT, batch: int, *, seed: int = 1, pad: list[int] | None = None):
    """Caption features (B, T, C) and a left-padding mask with ``pad[i]`` leading pads per row."""
    g = torch.Generator().manual_seed(seed)
    t, c = model.cls_token_num, model.config.caption_dim
    feats = torch.randn(batch, t, c, generator=g)
    mask = torch.ones(batch, t, dtype=torch.long)
    for i, p in enumerate(pad or [0] * batch):
        mask[i, :p] = 0
    return feats * mask.unsqueeze(-1), mask


def tiny_clip(projection_dim: int = 16, patch_size: int = 32, boost: float = 20.0):
    """A 2-layer CLIPModel at 224 px. ``boost`` scales the patch embedding so that image content, not the
    shared class/position embeddings, dominates the image features (random init is otherwise nearly blind)."""
    from transformers import CLIPConfig, CLIPModel

    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={**layers, "vocab_size": 49408, "max_position_embeddings": 77},
        vision_config={**layers, "image_size": 224, "patch_size": patch_size},
        projection_dim=projection_dim,
    )
    model = CLIPModel(config).eval()
    with torch.no_grad():
        model.vision_model.embeddings.patch_embedding.weight.mul_(boost)
    return model


def smooth_images(n: int, height: int, width: int | None = None, seed: int = 0, quantize: bool = True):
    """Natural-ish test images: random 8x8 colour fields upsampled bicubically, optionally on the 8-bit grid
    (so a PIL round trip is lossless and any difference comes from the resize alone)."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=generator)
    images = torch.nn.functional.interpolate(low, size=(height, width or height), mode="bicubic").clamp(0, 1)
    return (images * 255).round() / 255 if quantize else images


class ScriptedServer:
    """A real HTTP/1.1 server on 127.0.0.1 (keep-alive) whose answers a test scripts.

    ``handler(server, path, headers, body) -> (status, content_type, body_bytes)`` is called per request, in
    the server's thread; the server records request count, client ports and peak concurrency.
    """

    def __init__(self, handler):
        import http.server
        import threading

        self.handler = handler
        self.requests = 0
        self.ports: set[int] = set()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with outer.lock:
                    outer.requests += 1
                    outer.ports.add(self.client_address[1])
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                try:
                    status, content_type, payload = outer.handler(outer, self.path, self.headers, body)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url() -> str:
    """A 127.0.0.1 URL nobody listens on (a port just released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def decode_jpeg_means(images: list[bytes]) -> list[float]:
    """What a test server 'scores': the mean grey level of each received JPEG, in [0, 1]."""
    import io

    import numpy as np
    from PIL import Image

    return [float(np.asarray(Image.open(io.BytesIO(b), formats=["jpeg"])).mean() / 255) for b in images]


def flat_images(levels: list[float], size: int = 32) -> torch.Tensor:
    """Uniform grey images, one per level, so a server's per-image answer identifies the image."""
    return torch.tensor(levels).view(-1, 1, 1, 1).expand(-1, 3, size, size).contiguous()


def detailed_images(n: int, height: int, width: int | None = None, seed: int = 0) -> torch.Tensor:
    """8-bit images with fine detail (sharp 4-px blocks over a smooth field): the resize kernel matters."""
    generator = torch.Generator().manual_seed(seed)
    size = (height, width or height)
    low = torch.nn.functional.interpolate(
        torch.rand(n, 3, 8, 8, generator=generator), size=size, mode="bicubic"
    )
    blocks = torch.rand(n, 3, size[0] // 4, size[1] // 4, generator=generator)
    high = torch.nn.functional.interpolate(blocks, size=size, mode="nearest")
    return ((0.7 * low.clamp(0, 1) + 0.3 * high) * 255).round() / 255


# The bf16 inference copy's accepted drift on GRPO's log-probs (tests/test_precision.py says why).
MAX_ABS_DLOGP = 0.15
MEAN_ABS_DLOGP = 0.03
MAX_GREEDY_CHANGED = 0.03

# A tiny OpenCLIP architecture for hpsv2's config registry (``add_model_config``), so HPS tests need no download.
HPS_TINY_ARCH = "hps-test-tiny"
HPS_TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "patch_size": 32, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def no_pretrained_timm():
    """Patch ``timm.create_model`` to build without pretrained weights (MANIQA's ViT backbone downloads them)."""
    import timm

    original = timm.create_model
    return mock.patch("timm.create_model", lambda *a, **k: original(*a, **{**k, "pretrained": False}))


def read_request(headers, body) -> dict:
    """What the upstream Flask app does (pickle.loads), or the JSON form with base64 images."""
    if headers.get("Content-Type") == "application/json":
        data = json.loads(body)
        data["images"] = [base64.b64decode(b) for b in data["images"]]
        return data
    return pickle.loads(body)


def deqa_handler(server, path, headers, body):
    """A DeQA server for ScriptedServer: each image's score is its mean grey level."""
    data = read_request(headers, body)
    return 200, "application/octet-stream", pickle.dumps({"outputs": decode_jpeg_means(data["images"])})


def server_client(url: str, **kw) -> RewardServerClient:
    """A reward-server client with short deadlines and quick retries for tests; ``kw`` overrides."""
    quick = {"timeout": 5.0, "retry": RetryPolicy(attempts=3, backoff=0.05), "batch_size": 2, "max_concurrency": 3}
    return RewardServerClient(url, **{**quick, **kw})


# ---------------------------------------------------------------------- upstream AR-GRPO checkpoints
UPSTREAM_CONFIG = {
    "model_type": "imggen",
    "vq_model": "VQ-Tiny",
    "gpt_model": "GPT-Tiny",
    "codebook_size": 48,
    "codebook_embed_dim": 8,
    "image_size": 16,
    "downsample_size": 4,
    "cls_token_num": 1,
    "gpt_type": "c2i",
    "text_encoder": "google/flan-t5-xl",
}


def upstream_models():
    from autoregressive.models.gpt import build_gpt
    from tokenizer.vq_model import VQ_Tiny

    torch.manual_seed(0)
    gpt = build_gpt("GPT-Tiny", block_size=16, vocab_size=48)
    torch.nn.init.normal_(gpt.output.weight)  # LlamaGen zero-inits the head: make every tensor distinctive
    return gpt, VQ_Tiny(codebook_size=48)


def make_upstream_checkpoint(folder, gpt, vq, *, shards: int = 1):
    """``folder`` as upstream's ImgGen_HF.save_pretrained writes it: config.json + prefixed safetensors."""
    import json

    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(UPSTREAM_CONFIG))
    tensors = {f"gpt_model.{k}": v.contiguous() for k, v in gpt.state_dict().items() if k != "freqs_cis"}
    tensors.update({f"vq_model.{k}": v.contiguous() for k, v in vq.state_dict().items()})
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"))
        return folder
    keys = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i::shards]
        save_file({k: tensors[k] for k in part}, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder
