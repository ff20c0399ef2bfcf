"""Streaming reader/writer for the guided-diffusion sample/reference npz layout.

Layout: an (uncompressed or deflated) zip whose member ``arr_0.npy`` holds uint8 images N x H x W x 3; sample
files may add ``arr_1.npy`` (class labels) and reference batches add the FID statistics ``mu``, ``sigma``
(pool_3) and ``mu_s``, ``sigma_s`` (spatial). 50k 256x256 images are ~10 GB, so neither direction holds the
whole image array in memory: the reader parses the ``.npy`` header of the zip member and then reads rows
batch by batch; the writer streams batches into the zip member.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

IMAGES_KEY = "arr_0"
LABELS_KEY = "arr_1"
_COPY_CHUNK_BYTES = 4 << 20


class NpzArrayReader:
    """Reads one array of an npz file in batches along its first axis.

    Use as a context manager: ``with NpzArrayReader(path) as reader: for batch in reader.iter_batches(64)``.
    C-ordered arrays in .npy format 1.0/2.0 are streamed; anything else (Fortran order, format 3.0) is
    loaded whole, which is what numpy itself would have to do.
    """

    def __init__(self, path: str | os.PathLike, name: str = IMAGES_KEY):
        self.path = Path(path)
        self.name = name
        self._zip: zipfile.ZipFile | None = None
        self._member: IO[bytes] | None = None
        self._in_memory: np.ndarray | None = None
        self.shape: tuple[int, ...] = ()
        self.dtype: np.dtype = np.dtype(np.uint8)

    def __enter__(self) -> NpzArrayReader:
        self._zip = _open_zip(self.path)
        member_name = f"{self.name}.npy"
        if member_name not in self._zip.namelist():
            available = sorted(n.removesuffix(".npy") for n in self._zip.namelist())
            self.close()
            raise KeyError(f"{self.path}: no array '{self.name}' in the npz (it has {available})")
        self._member = self._zip.open(member_name)
        try:
            version = np.lib.format.read_magic(self._member)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(self._member)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(self._member)
            else:
                shape, fortran_order, dtype = None, True, None
        except ValueError as err:
            self.close()
            raise ValueError(f"{self.path}: '{self.name}' is not a valid .npy array ({err})") from err
        if fortran_order:
            with np.load(self.path) as npz:
                self._in_memory = npz[self.name]
            shape, dtype = self._in_memory.shape, self._in_memory.dtype
        if dtype.hasobject:
            self.close()
            raise ValueError(f"{self.path}: '{self.name}' has an object dtype, expected a numeric array")
        if len(shape) == 0:
            self.close()
            raise ValueError(f"{self.path}: '{self.name}' is a scalar, expected an array with a batch axis")
        self.shape, self.dtype = tuple(shape), dtype
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._member is not None:
            self._member.close()
            self._member = None
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __len__(self) -> int:
        return self.shape[0]

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def iter_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Yields consecutive writable arrays of at most ``batch_size`` rows; call once per open reader."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self._zip is None:
            raise RuntimeError("NpzArrayReader must be used inside a `with` block")
        if self._in_memory is not None:
            for start in range(0, len(self), batch_size):
                yield np.ascontiguousarray(self._in_memory[start : start + batch_size])
            return
        row_shape = self.shape[1:]
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize
        for start in range(0, len(self), batch_size):
            rows = min(batch_size, len(self) - start)
            buffer = _read_exactly(self._member, rows * row_bytes, f"{self.path}:{self.name} rows {start}+")
            yield np.frombuffer(buffer, dtype=self.dtype).reshape(rows, *row_shape)


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path}")
    try:
        return zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a valid .npz file (not a zip archive: {err})") from err


def _read_exactly(stream: IO[bytes], nbytes: int, what: str) -> bytearray:
    """Reads ``nbytes`` (zip members may return short reads) into a writable buffer, or fails loudly."""
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    filled = 0
    while filled < nbytes:
        got = stream.readinto(view[filled:])
        if not got:
            raise ValueError(f"truncated npz: expected {nbytes} bytes for {what}, got {filled}")
        filled += got
    return buffer


def check_image_batch(batch: np.ndarray, source: str) -> None:
    """The evaluator's input contract: uint8 RGB images N x H x W x 3."""
    if batch.dtype != np.uint8:
        raise ValueError(f"{source}: images must be uint8 in [0, 255], got dtype {batch.dtype}")
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"{source}: images must have shape N x H x W x 3, got {batch.shape}")


def read_npz_statistics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Returns the stored FID statistics (any of mu/sigma, mu_s/sigma_s pairs present), without touching arr_0.

    Each pair must describe one Gaussian (``mu`` 1-d, ``sigma`` square of the same size); no pickles are read.
    """
    path = Path(path)
    with _open_zip(path) as archive:
        names = {n.removesuffix(".npy") for n in archive.namelist()}
    stats: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as npz:
        for mean_key, cov_key in (("mu", "sigma"), ("mu_s", "sigma_s")):
            if (mean_key in names) != (cov_key in names):
                raise ValueError(f"{path}: has only one of '{mean_key}'/'{cov_key}'; both or neither are needed")
            if mean_key in names:
                mean = np.asarray(npz[mean_key], dtype=np.float64)
                cov = np.asarray(npz[cov_key], dtype=np.float64)
                if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
                    raise ValueError(
                        f"{path}: {mean_key} {mean.shape} and {cov_key} {cov.shape} do not describe one Gaussian"
                    )
                stats[mean_key], stats[cov_key] = mean, cov
    return stats


def read_fid_reference(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The pool_3 ``mu``/``sigma`` a reference npz must hold (e.g. ADM's ``VIRTUAL_imagenet256_labeled.npz``)."""
    stats = read_npz_statistics(path)
    if "mu" not in stats:
        with np.load(path, allow_pickle=False) as npz:
            raise ValueError(f"{path}: FID reference lacks ['mu', 'sigma'] (has {npz.files})")
    return {"mu": stats["mu"], "sigma": stats["sigma"]}


def write_sample_npz(
    path: str | os.PathLike,
    images: np.ndarray | Iterable[np.ndarray],
    labels: np.ndarray | None = None,
) -> int:
    """Writes images (uint8 N x H x W x 3, as one array or an iterable of batches/shards) as ``arr_0``.

    Optional ``labels`` (one per image) go to ``arr_1`` like guided-diffusion's sampling scripts. Batches are
    streamed: an iterable is first spooled to a temporary file beside ``path`` (the .npy header needs the total
    count), so only one batch is in memory at a time. The file appears atomically; returns the image count.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp_dir:
        if isinstance(images, np.ndarray):
            check_image_batch(images, "write_sample_npz images")
            count, image_shape, rows = images.shape[0], images.shape[1:], _array_chunks(images)
        else:
            spool_path = Path(tmp_dir) / "rows.bin"
            count, image_shape = _spool_batches(images, spool_path)
            rows = _file_chunks(spool_path)
        if count == 0:
            raise ValueError("write_sample_npz: no images given")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape[:1] != (count,):
                raise ValueError(f"labels must have one entry per image: {count} images, labels {labels.shape}")
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
            "fortran_order": False,
            "shape": (count, *image_shape),
        }
        tmp_zip = Path(tmp_dir) / "out.npz"
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            with archive.open(f"{IMAGES_KEY}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_2_0(member, header)
                for chunk in rows:
                    member.write(chunk)
            if labels is not None:
                with archive.open(f"{LABELS_KEY}.npy", "w") as member:
                    np.lib.format.write_array(member, labels, allow_pickle=False)
        os.replace(tmp_zip, path)
    return count


def _array_chunks(images: np.ndarray) -> Iterator[memoryview]:
    rows_per_chunk = max(1, _COPY_CHUNK_BYTES // max(1, images[0].nbytes if len(images) else 1))
    for start in range(0, len(images), rows_per_chunk):
        yield np.ascontiguousarray(images[start : start + rows_per_chunk]).data


def _file_chunks(path: Path) -> Iterator[memoryview]:
    """Reuses one buffer: each chunk is consumed (written) before the next is read."""
    buffer = memoryview(bytearray(_COPY_CHUNK_BYTES))
    with path.open("rb") as stream:
        while filled := stream.readinto(buffer):
            yield buffer[:filled]


def _spool_batches(batches: Iterable[np.ndarray], spool_path: Path) -> tuple[int, tuple[int, int, int]]:
    count = 0
    image_shape: tuple[int, int, int] | None = None
    with spool_path.open("wb") as spool:
        for index, batch in enumerate(batches):
            batch = np.asarray(batch)
            check_image_batch(batch, f"write_sample_npz batch {index}")
            if image_shape is None:
                image_shape = batch.shape[1:]
            elif batch.shape[1:] != image_shape:
                raise ValueError(f"write_sample_npz batch {index}: image shape {batch.shape[1:]} != {image_shape}")
            spool.write(np.ascontiguousarray(batch).data)
            count += batch.shape[0]
    if image_shape is None:
        raise ValueError("write_sample_npz: no images given")
    return count, image_shape
