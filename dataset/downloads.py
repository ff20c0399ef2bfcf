"""Fetch a URL to a file safely: streamed, with a progress bar and a timeout, checked, then moved into place.

A download (or a generated file) is written to a hidden temporary file beside its destination, checked by
the caller's validator, and only then renamed over the destination, so an interrupted or bad download
never leaves a partial file under the real name.
"""

from __future__ import annotations

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


def _stream_to(url: str, out, timeout: float, progress: bool, chunk_size: int) -> int:
    headers = {"User-Agent": USER_AGENT}
    try:
        with requests.get(url, stream=True, timeout=timeout, headers=headers) as response:
            if response.status_code != 200:
                raise DownloadError(f"could not download {url}: the server answered HTTP "
                                    f"{response.status_code} {response.reason}")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            desc = url.rsplit("/", 1)[-1][:40] or url
            with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
                for chunk in response.iter_content(chunk_size=chunk_size):
                    out.write(chunk)
                    received += len(chunk)
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
                  progress: bool = True, chunk_size: int = 1 << 20) -> Path:
    """Stream ``url`` into ``dest`` once ``validate(path)`` (raising ValueError/OSError) accepts it.

    Raises ``DownloadError`` naming the URL for HTTP errors, unreachable servers, timeouts, truncated or
    empty bodies and files the validator rejects; ``dest`` is then left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(dest)
    try:
        with open(tmp, "wb") as out:
            received = _stream_to(url, out, timeout, progress, chunk_size)
        if received == 0:
            raise DownloadError(f"could not download {url}: the server sent an empty file")
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
