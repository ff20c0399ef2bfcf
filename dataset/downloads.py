"""Fetch a URL to a file safely: streamed, with a progress bar and a timeout, checked, then moved into place.

A download (or a generated file) is written to a hidden temporary file beside its destination, checked by
the caller's validator, and only then renamed over the destination, so an interrupted or bad download
never leaves a partial file under the real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from tqdm.auto import tqdm

USER_AGENT = "ar-grpo-prompt-downloader"


class DownloadError(RuntimeError):
    """A download failed or produced an unusable file; the message names the URL and the reason."""


Validator = Callable[[Path], Any]


def _temp_beside(dest: Path) -> Path:
    # Keep the real suffix: the validators pick a parser by suffix (.csv, .jsonl, ...).
    fd, name = tempfile.mkstemp(prefix=f".{dest.stem}.partial-", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    return Path(name)


def _validate(tmp: Path, validate: Validator | None, source: str) -> None:
    if validate is None:
        return
    try:
        validate(tmp)
    except (ValueError, OSError) as err:
        reason = str(err).replace(str(tmp), source)
        raise DownloadError(f"{source} was fetched but is not usable: {reason}") from err


def _stream_to(url: str, out, timeout: float, progress: bool, chunk_size: int, max_bytes: int | None = None,
               hasher: Any = None) -> int:
    headers = {"User-Agent": USER_AGENT}
    try:
        with requests.get(url, stream=True, timeout=timeout, headers=headers) as response:
            if response.status_code != 200:
                raise DownloadError(f"could not download {url}: the server answered HTTP "
                                    f"{response.status_code} {response.reason}")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if max_bytes is not None and total is not None and total > max_bytes:
                raise DownloadError(f"could not download {url}: {total} bytes announced, more than the "
                                    f"{max_bytes} expected of this file")
            received = 0
            desc = url.rsplit("/", 1)[-1][:40] or url
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
                for chunk in response.iter_content(chunk_size=chunk_size):
                    received += len(chunk)
                    if max_bytes is not None and received > max_bytes:
                        raise DownloadError(f"could not download {url}: more than the {max_bytes} bytes "
                                            f"expected of this file")
                    out.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    bar.update(len(chunk))
            # A body shorter than its Content-Length is caught by urllib3 (a RequestException below).
            return received
    except requests.exceptions.Timeout as err:
        raise DownloadError(f"could not download {url}: no answer within {timeout} s ({err})") from err
    except requests.exceptions.ConnectionError as err:
        raise DownloadError(f"could not download {url}: cannot reach the server (offline, or blocked by a "
                            f"proxy/firewall?): {err}") from err
    except requests.exceptions.RequestException as err:
        raise DownloadError(f"could not download {url}: {err}") from err


def download_file(url: str, dest: str | Path, *, timeout: float = 60.0, validate: Validator | None = None,
                  progress: bool = True, chunk_size: int = 1 << 20, sha256: str | None = None,
                  max_bytes: int | None = None) -> Path:
    """Stream ``url`` into ``dest`` once ``validate(path)`` (raising ValueError/OSError) accepts it.

    ``sha256`` pins the exact file; ``max_bytes`` stops a body larger than the file can be, while it streams.
    Raises ``DownloadError`` naming the URL for HTTP errors, unreachable servers, timeouts, truncated,
    empty, oversized or altered bodies and files the validator rejects; ``dest`` is then left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(dest)
    try:
        hasher = hashlib.sha256() if sha256 else None
        with open(tmp, "wb") as out:
            received = _stream_to(url, out, timeout, progress, chunk_size, max_bytes, hasher)
        if received == 0:
            raise DownloadError(f"could not download {url}: the server sent an empty file")
        if hasher is not None and hasher.hexdigest() != sha256.lower():
            raise DownloadError(f"{url} was fetched but is not the pinned file: sha256 {hasher.hexdigest()}, "
                                f"expected {sha256.lower()}")
        _validate(tmp, validate, url)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def write_text_atomically(dest: str | Path, text: str, validate: Validator | None = None) -> Path:
    """Write a generated file the same all-or-nothing way as a download."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(dest)
    try:
        tmp.write_text(text, encoding="utf-8")
        _validate(tmp, validate, str(dest))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def git_blob_sha1(path: str | Path) -> str:
    """The file's git object id (what ``git hash-object`` prints): pins a file whose tree entry is known."""
    size = Path(path).stat().st_size
    hasher = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
