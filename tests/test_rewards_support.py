"""Shared builders for the reward tests (no tests here): tiny random-weight models and test images.

Nothing is downloaded: the CLIP tokenizer files are derived from the BPE merges that open_clip ships (the same
construction the published CLIP vocab uses), so token ids equal the real CLIP ids.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import torch


def _byte_symbols() -> list[str]:
    """CLIP's reversible byte -> unicode table, in vocabulary order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_clip_tokenizer_files(directory: Path) -> Path:
    """``vocab.json`` + ``merges.txt`` for a Hugging Face ``CLIPTokenizer``, built from open_clip's BPE file."""
    bpe = Path(importlib.util.find_spec("open_clip").origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = _byte_symbols()
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return directory


def clip_tokenizer(directory: Path):
    from transformers import CLIPTokenizer

    write_clip_tokenizer_files(directory)
    return CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))


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
