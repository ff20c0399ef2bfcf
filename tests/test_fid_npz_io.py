"""Streaming npz reader/writer on the guided-diffusion reference-batch and sample layouts."""

import tracemalloc
import zipfile

import numpy as np
import pytest

from evaluation.npz_io import NpzArrayReader, read_fid_reference, read_npz_statistics, write_sample_npz


def _images(rng, n, size=8):
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _read_all(path, batch_size, name="arr_0"):
    with NpzArrayReader(path, name) as reader:
        batches = list(reader.iter_batches(batch_size))
        assert len(batches) == reader.num_batches(batch_size)
        return batches, reader.shape, reader.dtype


@pytest.mark.parametrize("saver", [np.savez, np.savez_compressed])
def test_reference_batch_layout_streams_images_and_reads_statistics(tmp_path, saver):
    rng = np.random.default_rng(0)
    images = _images(rng, 13)
    stats = {
        "mu": rng.normal(size=4),
        "sigma": np.eye(4),
        "mu_s": rng.normal(size=3).astype(np.float32),
        "sigma_s": 2 * np.eye(3),
    }
    path = tmp_path / "VIRTUAL_ref.npz"
    saver(path, images, **stats)  # arr_0 = images, like the published reference batches

    batches, shape, dtype = _read_all(path, batch_size=5)
    assert shape == (13, 8, 8, 3) and dtype == np.uint8
    assert [len(b) for b in batches] == [5, 5, 3]
    np.testing.assert_array_equal(np.concatenate(batches), images)
    batches[0][0, 0, 0, 0] = 7  # batches are writable (torch.from_numpy needs that)

    stored = read_npz_statistics(path)
    assert sorted(stored) == ["mu", "mu_s", "sigma", "sigma_s"]
    for key, value in stats.items():
        np.testing.assert_array_equal(stored[key], value)
        assert stored[key].dtype == np.float64


def test_statistics_absent_or_half_present(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "plain.npz", _images(rng, 2))
    assert read_npz_statistics(tmp_path / "plain.npz") == {}
    np.savez(tmp_path / "half.npz", _images(rng, 2), mu=np.zeros(3))
    with pytest.raises(ValueError, match="only one of 'mu'/'sigma'"):
        read_npz_statistics(tmp_path / "half.npz")


def test_fortran_ordered_array_is_still_read_correctly(tmp_path):
    rng = np.random.default_rng(2)
    images = np.asfortranarray(_images(rng, 6))
    np.savez(tmp_path / "f.npz", images)
    batches, _, _ = _read_all(tmp_path / "f.npz", batch_size=4)
    np.testing.assert_array_equal(np.concatenate(batches), images)


def test_reader_holds_one_batch_not_the_whole_array(tmp_path):
    rng = np.random.default_rng(3)
    images = _images(rng, 200, size=64)  # 2.4 MB
    np.savez(tmp_path / "big.npz", images)
    checksum = 0
    tracemalloc.start()
    try:
        with NpzArrayReader(tmp_path / "big.npz") as reader:
            for batch in reader.iter_batches(10):  # 120 kB per batch
                checksum += int(batch.sum(dtype=np.int64))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checksum == int(images.sum(dtype=np.int64))
    assert peak < images.nbytes / 4


def test_write_sample_npz_from_array_with_labels(tmp_path):
    rng = np.random.default_rng(4)
    images, labels = _images(rng, 9), rng.integers(0, 1000, size=9)
    path = tmp_path / "samples" / "out.npz"
    assert write_sample_npz(path, images, labels=labels) == 9
    with np.load(path) as npz:
        assert sorted(npz.files) == ["arr_0", "arr_1"]
        np.testing.assert_array_equal(npz["arr_0"], images)
        np.testing.assert_array_equal(npz["arr_1"], labels)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.npz"]  # no temporary files left


def test_write_sample_npz_streams_shards_without_holding_them(tmp_path):
    rng = np.random.default_rng(5)
    shards = [_images(rng, n, size=128) for n in (70, 1, 129)]  # 9.8 MB in all
    total_bytes = sum(s.nbytes for s in shards)

    def shard_source():
        for shard in shards:
            yield shard.copy()

    tracemalloc.start()
    try:
        count = write_sample_npz(tmp_path / "s.npz", shard_source())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200
    # the largest shard copy (4.2 MB) plus one 4 MB copy buffer, never all shards at once
    assert peak < 0.9 * total_bytes
    batches, shape, _ = _read_all(tmp_path / "s.npz", batch_size=64)
    assert shape == (200, 128, 128, 3)
    np.testing.assert_array_equal(np.concatenate(batches), np.concatenate(shards))
    with np.load(tmp_path / "s.npz") as npz:
        np.testing.assert_array_equal(npz["arr_0"], np.concatenate(shards))


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((2, 4, 4, 3), dtype=np.float32), None, "uint8"),
        (np.zeros((2, 4, 4), dtype=np.uint8), None, "N x H x W x 3"),
        ([np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 5, 5, 3), np.uint8)], None, "image shape"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), np.zeros(3), "one entry per image"),
        ([], None, "no images"),
    ],
)
def test_write_sample_npz_rejects_bad_input_and_leaves_nothing(tmp_path, images, labels, message):
    with pytest.raises(ValueError, match=message):
        write_sample_npz(tmp_path / "bad.npz", images, labels=labels)
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        NpzArrayReader(tmp_path / "missing.npz").__enter__()

    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="junk.npz is not a valid .npz"):
        NpzArrayReader(tmp_path / "junk.npz").__enter__()

    np.savez(tmp_path / "other.npz", images=np.zeros((2, 2, 2, 3), np.uint8))
    with pytest.raises(KeyError, match=r"no array 'arr_0'.*\['images'\]"):
        NpzArrayReader(tmp_path / "other.npz").__enter__()


def test_truncated_array_data_is_reported(tmp_path):
    rng = np.random.default_rng(6)
    full = tmp_path / "full.npz"
    np.savez(full, _images(rng, 4))
    with zipfile.ZipFile(full) as archive:
        payload = archive.read("arr_0.npy")
    truncated = tmp_path / "truncated.npz"
    with zipfile.ZipFile(truncated, "w") as archive:
        archive.writestr("arr_0.npy", payload[:-50])
    with pytest.raises(ValueError, match=r"truncated npz.*truncated.npz:arr_0 rows 3\+"):
        _read_all(truncated, batch_size=3)


def test_fid_reference_needs_one_gaussian(tmp_path):
    """The fid reward and fid_evaluation.py read reference statistics through the same checks."""
    np.savez(tmp_path / "ref.npz", mu=np.zeros(4, dtype=np.float32), sigma=np.eye(4, dtype=np.float32))
    reference = read_fid_reference(tmp_path / "ref.npz")
    assert sorted(reference) == ["mu", "sigma"] and reference["sigma"].dtype == np.float64
    np.savez(tmp_path / "other.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"lacks \['mu', 'sigma'\] \(has \['mean'\]\)"):
        read_fid_reference(tmp_path / "other.npz")
    np.savez(tmp_path / "skewed.npz", mu=np.zeros(4), sigma=np.eye(3))
    with pytest.raises(ValueError, match=r"skewed.npz: mu \(4,\) and sigma \(3, 3\) do not describe one Gaussian"):
        read_npz_statistics(tmp_path / "skewed.npz")
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        read_fid_reference(tmp_path / "nothing.npz")
