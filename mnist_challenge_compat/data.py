"""MNIST / Fashion-MNIST from IDX files (gzip or not) and CIFAR-10 from its binary batch
files, with ``tensorflow_datasets`` as fallback.

MNIST / Fashion-MNIST images come out as float32 ``(N, 784)`` in [0, 1], computed exactly as
the challenge's ``input_data.read_data_sets`` does (``uint8 -> float32``, times
``1.0 / 255.0``); CIFAR-10 images as float32 ``(N, 32, 32, 3)`` on the 0-255 scale (the CIFAR-10
challenge's scale). Labels are int64 ``(N,)`` in 0..9, all in file order.
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_challenge_compat.errors import CompatError

DATASETS = ("mnist", "fashion_mnist", "cifar10")
SPLITS = ("train", "test")
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
ROWS = COLS = 28
NUM_CLASSES = 10

SHIPPED_MNIST_DIR = Path(__file__).resolve().parent / "data" / "mnist"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_DIR_ENV = "QG_FASHION_MNIST_DIR"

CIFAR10_SIDE = 32
CIFAR10_CHANNELS = 3
CIFAR10_RECORD_BYTES = 1 + CIFAR10_CHANNELS * CIFAR10_SIDE * CIFAR10_SIDE  # label + CHW pixels
CIFAR10_BIN_DIR = "cifar-10-batches-bin"
_CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
_CIFAR10_PICKLE_NAMES = ("cifar-10-batches-py", "data_batch_1", "test_batch")

_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

__all__ = ["load_dataset", "dataset_source", "fashion_mnist_dir", "read_idx_images",
           "read_idx_labels", "read_cifar10_batch", "DATASETS", "SPLITS"]


@dataclass(frozen=True)
class _Source:
    """Where a split comes from: IDX files (``images``/``labels`` set), CIFAR-10 binary batch
    files (``batches`` set) or tfds."""
    kind: str  # "data_dir", "debian", "shipped" or "tfds"
    images: Path | None = None
    labels: Path | None = None
    batches: tuple[Path, ...] = ()


# --------------------------------------------------------------------------- IDX parsing

def _read_bytes(path: Path) -> bytes:
    """File content, gunzipped when the file starts with the gzip magic."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise CompatError(f"{path}: cannot read ({err.strerror or err})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise CompatError(f"{path}: truncated gzip file") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        raise CompatError(f"{path}: corrupt gzip file ({err})") from None


def _parse_header(path: Path, raw: bytes, magic: int, ndim: int) -> tuple[int, ...]:
    """Checks the IDX magic and returns the ``ndim`` big-endian uint32 dimensions."""
    header_len = 4 * (1 + ndim)
    if len(raw) < header_len:
        raise CompatError(f"{path}: file too short for an IDX header ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        kind = "images" if magic == IMAGE_MAGIC else "labels"
        raise CompatError(f"{path}: bad IDX magic number {found}, expected {magic} ({kind})")
    return tuple(int.from_bytes(raw[4 * (i + 1): 4 * (i + 2)], "big") for i in range(ndim))


def _payload(path: Path, raw: bytes, header_len: int, expected: int) -> np.ndarray:
    got = len(raw) - header_len
    if got != expected:
        what = "truncated" if got < expected else "too long"
        raise CompatError(f"{path}: IDX payload {what}: {got} bytes, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """uint8 ``(N, 28, 28)`` images of an IDX3 file (gzip or not); N from the header."""
    path = Path(path)
    raw = _read_bytes(path)
    count, rows, cols = _parse_header(path, raw, IMAGE_MAGIC, 3)
    if (rows, cols) != (ROWS, COLS):
        raise CompatError(f"{path}: images are {rows}x{cols}, expected {ROWS}x{COLS}")
    data = _payload(path, raw, 16, count * rows * cols)
    return data.reshape(count, rows, cols)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """uint8 ``(N,)`` labels in 0..9 of an IDX1 file (gzip or not); N from the header."""
    path = Path(path)
    raw = _read_bytes(path)
    (count,) = _parse_header(path, raw, LABEL_MAGIC, 1)
    labels = _payload(path, raw, 8, count)
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise CompatError(f"{path}: label {int(labels[bad])} at index {bad} is out of range 0-9")
    return labels


def _to_float(images: np.ndarray) -> np.ndarray:
    """``(N, 28, 28)`` uint8 -> ``(N, 784)`` float32 in [0, 1], like the challenge's loader."""
    flat = images.reshape(images.shape[0], ROWS * COLS).astype(np.float32)
    return np.multiply(flat, np.float32(1.0 / 255.0))


def _load_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise CompatError(f"{images_path}: {images.shape[0]} images but {labels_path} "
                          f"has {labels.shape[0]} labels")
    return _to_float(images), labels.astype(np.int64)


# --------------------------------------------------------------------------- CIFAR-10 binary

def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(N, 32, 32, 3)`` images (NHWC) and uint8 ``(N,)`` labels of one CIFAR-10 binary
    batch file (``data_batch_<i>.bin``, ``test_batch.bin``): N records of one label byte and
    3,072 pixel bytes (1,024 red, then green, then blue, rows top to bottom)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise CompatError(f"{path}: cannot read ({err.strerror or err})") from None
    if not raw or len(raw) % CIFAR10_RECORD_BYTES:
        raise CompatError(f"{path}: truncated or corrupt CIFAR-10 batch ({len(raw)} bytes is "
                          f"not a whole number of {CIFAR10_RECORD_BYTES}-byte records)")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise CompatError(f"{path}: label {int(labels[bad])} of record {bad} is out of range "
                          "0-9 (corrupt file, or not the CIFAR-10 binary format)")
    images = records[:, 1:].reshape(-1, CIFAR10_CHANNELS, CIFAR10_SIDE, CIFAR10_SIDE)
    return images.transpose(0, 2, 3, 1), labels


def _load_cifar10(batches: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar10_batch(path) for path in batches]
    images = np.concatenate([p[0] for p in parts]).astype(np.float32)
    return images, np.concatenate([p[1] for p in parts]).astype(np.int64)


def _cifar10_source(directory: Path, split: str) -> _Source:
    """The split's binary batches in ``directory`` or its ``cifar-10-batches-bin`` folder;
    refuses the python (pickle) version of the set, which is never unpickled."""
    for folder in (directory, directory / CIFAR10_BIN_DIR):
        files = tuple(folder / name for name in _CIFAR10_FILES[split])
        if all(path.is_file() for path in files):
            return _Source("data_dir", batches=files)
    for folder in (directory, directory / CIFAR10_BIN_DIR):
        missing = [path.name for path in (folder / n for n in _CIFAR10_FILES[split])
                   if not path.exists()]
        if len(missing) < len(_CIFAR10_FILES[split]):
            raise CompatError(f"{folder}: missing CIFAR-10 file(s) {', '.join(missing)} "
                              f"for cifar10 {split}")
    pickled = [name for name in _CIFAR10_PICKLE_NAMES if (directory / name).exists()]
    if pickled:
        raise CompatError(f"{directory / pickled[0]}: the python (pickle) CIFAR-10 batches are "
                          "not read (unpickling can run code); use the binary version "
                          f"(cifar-10-binary.tar.gz, folder {CIFAR10_BIN_DIR})")
    raise CompatError(f"{directory}: no CIFAR-10 binary batches "
                      f"({', '.join(_CIFAR10_FILES[split])}) here or in {CIFAR10_BIN_DIR}/")


# --------------------------------------------------------------------------- sources

def _check_name_split(name: str, split: str) -> None:
    if name not in DATASETS:
        raise CompatError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise CompatError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


def _find_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz`` (the uncompressed one first), or None."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist_dir() -> Path:
    """Where Fashion-MNIST is looked for when no ``data_dir`` is given: ``$QG_FASHION_MNIST_DIR``
    if set, else Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install -y
    dataset-fashion-mnist``). Read on every call, so setting the variable takes effect at once."""
    return Path(os.environ.get(FASHION_DIR_ENV) or DEBIAN_FASHION_DIR)


def _idx_source(kind: str, directory: Path, split: str) -> _Source | None:
    found = [_find_file(directory, stem) for stem in _FILE_STEMS[split]]
    if None in found:
        return None
    return _Source(kind, found[0], found[1])


def _resolve(name: str, split: str, data_dir: str | os.PathLike | None) -> _Source:
    """The first source that exists, in the documented order."""
    _check_name_split(name, split)
    if data_dir is not None:
        directory = Path(data_dir)
        if not directory.is_dir():
            raise CompatError(f"{directory}: data directory does not exist")
        if name == "cifar10":
            return _cifar10_source(directory, split)
        source = _idx_source("data_dir", directory, split)
        if source is None:
            missing = [s for s in _FILE_STEMS[split] if _find_file(directory, s) is None]
            raise CompatError(f"{directory}: missing IDX file(s) "
                              f"{', '.join(m + '[.gz]' for m in missing)} for {name} {split}")
        return source
    if name == "fashion_mnist" and fashion_mnist_dir().is_dir():
        source = _idx_source("debian", fashion_mnist_dir(), split)
        if source is not None:
            return source
    if name == "mnist" and split == "test":
        source = _idx_source("shipped", SHIPPED_MNIST_DIR, split)
        if source is not None:
            return source
    return _Source("tfds")


def dataset_source(name: str, split: str, data_dir: str | os.PathLike | None = None) -> str:
    """One line saying where ``load_dataset(name, split, data_dir)`` reads from, e.g.
    ``"mnist/test: IDX files /x/t10k-images-idx3-ubyte.gz, /x/t10k-labels-idx1-ubyte.gz
    (data_dir)"`` or ``"mnist/train: tensorflow_datasets mnist split=train"``.
    Touches no network."""
    source = _resolve(name, split, data_dir)
    if source.kind == "tfds":
        return f"{name}/{split}: tensorflow_datasets {name} split={split}"
    if source.batches:
        return (f"{name}/{split}: CIFAR-10 binary files "
                f"{', '.join(str(path) for path in source.batches)} ({source.kind})")
    return f"{name}/{split}: IDX files {source.images}, {source.labels} ({source.kind})"


def _load_tfds(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split from ``tensorflow_datasets`` (downloads on first use)."""
    files = "CIFAR-10 binary batches" if name == "cifar10" else "IDX files"
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise CompatError(f"{name}/{split}: no local {files} and tensorflow_datasets is not "
                          f"installed; pass data_dir=<folder with the {files}>") from None
    try:
        images, labels = tfds.as_numpy(
            tfds.load(name, split=split, batch_size=-1, as_supervised=True))
    except ModuleNotFoundError as err:  # tfds imports some of its dependencies lazily
        raise CompatError(f"{name}/{split}: tensorflow_datasets needs the Python module "
                          f"{err.name or str(err)!r}, which is not installed; install it with "
                          "pip, or pass data_dir=<folder with the IDX files>") from None
    except Exception as err:  # noqa: BLE001 - tfds raises many types; one line for the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CompatError(f"{name}/{split}: tensorflow_datasets failed ({first}); pass "
                          f"data_dir=<folder with the {files}>") from None
    labels = np.asarray(labels, dtype=np.int64)
    if name == "cifar10":
        return np.asarray(images, dtype=np.uint8).astype(np.float32), labels
    images = np.asarray(images, dtype=np.uint8).reshape(-1, ROWS, COLS)
    return _to_float(images), labels


def load_dataset(name: str, split: str,
                 data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Loads ``name`` ("mnist", "fashion_mnist" or "cifar10"), ``split`` ("train" or "test").

    Sources, first found wins: ``data_dir`` (must then hold the split's two IDX files,
    ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` with or without ``.gz``; for cifar10 the
    binary batches ``data_batch_{1..5}.bin`` / ``test_batch.bin``, in ``data_dir`` or in its
    ``cifar-10-batches-bin`` folder); for fashion_mnist :func:`fashion_mnist_dir` (Debian's
    ``/usr/share/datasets/fashion-mnist`` or ``$QG_FASHION_MNIST_DIR``); for the mnist test
    split the copy shipped in this package; otherwise ``tensorflow_datasets``.

    Returns:
        ``x``: float32 ``(N, 784)`` in [0, 1] (pixel * (1/255) in float32, as the challenge),
        for cifar10 float32 ``(N, 32, 32, 3)`` pixels 0-255 (NHWC);
        ``y``: int64 ``(N,)`` in 0..9; rows in file order (cifar10 train: batches 1 to 5).

    Raises:
        CompatError: unknown name/split, missing files, or a malformed file (bad magic,
        wrong dims, truncated payload or gzip, labels out of range, count mismatch, a CIFAR-10
        file that is not whole records, the python-pickle CIFAR-10 version).
    """
    source = _resolve(name, split, data_dir)
    if source.kind == "tfds":
        return _load_tfds(name, split)
    if source.batches:
        return _load_cifar10(source.batches)
    return _load_idx_pair(source.images, source.labels)
