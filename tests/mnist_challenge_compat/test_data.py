"""IDX loading of the real MNIST / Fashion-MNIST files, sources, and malformed-file errors."""
from __future__ import annotations

import functools
import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mnist_challenge_compat import CompatError, dataset_source, load_dataset
from mnist_challenge_compat import data as data_module

SHIPPED = data_module.SHIPPED_MNIST_DIR  # the official test files (checked below)
OFFICIAL_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mnist_test(mnist_dir) -> tuple[np.ndarray, np.ndarray]:
    return load_dataset("mnist", "test", mnist_dir)


@pytest.fixture(scope="module")
def shipped_test() -> tuple[np.ndarray, np.ndarray]:
    return load_dataset("mnist", "test", SHIPPED)


@pytest.fixture()
def raw_test_files(tmp_path) -> tuple[Path, bytes, bytes]:
    """(a writable data dir, uncompressed image bytes, uncompressed label bytes)."""
    images = gzip.decompress((SHIPPED / f"{TEST_FILES[0]}.gz").read_bytes())
    labels = gzip.decompress((SHIPPED / f"{TEST_FILES[1]}.gz").read_bytes())
    return tmp_path, images, labels


def _write(directory: Path, images: bytes, labels: bytes, gz: bool = False) -> None:
    for stem, content in zip(TEST_FILES, (images, labels)):
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(content))
        else:
            (directory / stem).write_bytes(content)


def _error(*args) -> str:
    with pytest.raises(CompatError) as info:
        load_dataset(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- real data

def test_official_mnist_test_set(mnist_dir, mnist_test):
    for name, md5 in OFFICIAL_MD5.items():
        assert _md5(mnist_dir / name) == md5
    x, y = mnist_test
    assert x.shape == (10_000, 784) and x.dtype == np.float32
    assert y.shape == (10_000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y, minlength=10).tolist() == MNIST_TEST_HISTOGRAM


def test_pixels_are_scaled_exactly_like_the_challenge_loader(mnist_dir, mnist_test):
    raw = gzip.decompress((mnist_dir / f"{TEST_FILES[0]}.gz").read_bytes())
    pixels = np.frombuffer(raw, np.uint8, offset=16).reshape(10_000, 784)
    # input_data.read_data_sets: images.astype(float32); numpy.multiply(images, 1.0 / 255.0)
    expected = np.multiply(pixels.astype(np.float32), np.float32(1.0 / 255.0))
    np.testing.assert_array_equal(mnist_test[0], expected)
    np.testing.assert_allclose(mnist_test[0], pixels / 255.0, rtol=1e-6)


def test_shared_mnist_train_has_10000_images(mnist_dir):
    x, y = load_dataset("mnist", "train", mnist_dir)
    assert x.shape == (10_000, 784) and x.dtype == np.float32
    assert y.shape == (10_000,) and set(np.unique(y).tolist()) == set(range(10))
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_fashion_mnist_from_debian(fashion_dir):
    x_train, y_train = load_dataset("fashion_mnist", "train")
    x_test, y_test = load_dataset("fashion_mnist", "test")
    assert x_train.shape == (60_000, 784) and x_test.shape == (10_000, 784)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert "debian" in dataset_source("fashion_mnist", "test")
    assert str(fashion_dir) in dataset_source("fashion_mnist", "train")


def test_fashion_mnist_folder_comes_from_the_environment_variable(raw_test_files, shipped_test,
                                                                  monkeypatch):
    directory, images, labels = raw_test_files
    _write(directory, images, labels, gz=True)  # any IDX pair: here MNIST's test files
    monkeypatch.setenv("QG_FASHION_MNIST_DIR", str(directory))
    x, y = load_dataset("fashion_mnist", "test")
    np.testing.assert_array_equal(x, shipped_test[0])
    np.testing.assert_array_equal(y, shipped_test[1])
    assert str(directory / f"{TEST_FILES[0]}.gz") in dataset_source("fashion_mnist", "test")
    monkeypatch.setenv("QG_FASHION_MNIST_DIR", str(directory / "absent"))
    assert "tensorflow_datasets" in dataset_source("fashion_mnist", "test")


def test_uncompressed_idx_files_work(raw_test_files, shipped_test):
    directory, images, labels = raw_test_files
    _write(directory, images, labels)
    x, y = load_dataset("mnist", "test", directory)
    np.testing.assert_array_equal(x, shipped_test[0])
    np.testing.assert_array_equal(y, shipped_test[1])
    assert str(directory / TEST_FILES[0]) in dataset_source("mnist", "test", directory)


def test_shipped_copy_equals_the_shared_one(mnist_dir, mnist_test):
    shipped = SHIPPED
    for name, md5 in OFFICIAL_MD5.items():
        assert _md5(shipped / name) == md5
    assert (shipped / "PROVENANCE.md").is_file()
    x, y = load_dataset("mnist", "test")
    np.testing.assert_array_equal(x, mnist_test[0])
    np.testing.assert_array_equal(y, mnist_test[1])
    assert "shipped" in dataset_source("mnist", "test")
    assert "(data_dir)" in dataset_source("mnist", "test", mnist_dir)


def test_without_local_files_falls_back_to_tfds(shipped_test, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    import tensorflow_datasets as tfds
    assert "tensorflow_datasets" in dataset_source("mnist", "train")
    calls = []

    def fake_load(name, split, batch_size, as_supervised):  # no network in tests
        calls.append((name, split, batch_size, as_supervised))
        pixels = np.rint(shipped_test[0][:5] * 255).astype(np.uint8).reshape(5, 28, 28, 1)
        return tf.constant(pixels), tf.constant(shipped_test[1][:5])

    monkeypatch.setattr(tfds, "load", fake_load)
    x, y = load_dataset("mnist", "train")
    assert calls == [("mnist", "train", -1, True)]
    np.testing.assert_array_equal(x, shipped_test[0][:5])
    assert y.dtype == np.int64 and y.tolist() == shipped_test[1][:5].tolist()


def test_real_tfds_fallback_offline_is_one_line_naming_tfds(tmp_path, monkeypatch):
    # The real tensorflow_datasets builder on an empty data_dir: it prepares the download
    # (importing its lazy dependencies, importlib_resources among them) and fails where it
    # would go online.
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network in this test")

    monkeypatch.setattr(tfds.download.DownloadManager, "download", offline)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", offline)
    monkeypatch.setattr(tfds, "load", functools.partial(tfds.load, data_dir=str(tmp_path)))
    assert _error("mnist", "train") == ("mnist/train: tensorflow_datasets failed (no network "
                                        "in this test); pass data_dir=<folder with the IDX files>")


def test_a_missing_tfds_dependency_is_named_with_how_to_install_it(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def load_missing_dependency(*args, **kwargs):  # what tfds raises when its import fails
        raise ModuleNotFoundError("No module named 'importlib_resources'",
                                  name="importlib_resources")

    monkeypatch.setattr(tfds, "load", load_missing_dependency)
    message = _error("mnist", "train")
    assert message.startswith("mnist/train: tensorflow_datasets needs the Python module "
                              "'importlib_resources', which is not installed; install it")


# --------------------------------------------------------------------------- errors

def test_bad_magic_is_named(raw_test_files):
    directory, images, labels = raw_test_files
    _write(directory, (2049).to_bytes(4, "big") + images[4:], labels, gz=True)
    message = _error("mnist", "test", directory)
    assert f"{TEST_FILES[0]}.gz" in message
    assert "bad IDX magic number 2049, expected 2051" in message
    _write(directory, images, (2051).to_bytes(4, "big") + labels[4:], gz=True)
    assert "expected 2049" in _error("mnist", "test", directory)


def test_wrong_image_dims_are_named(raw_test_files):
    directory, images, labels = raw_test_files
    _write(directory, images[:12] + (27).to_bytes(4, "big") + images[16:], labels)
    assert "28x27, expected 28x28" in _error("mnist", "test", directory)


@pytest.mark.parametrize("cut,word", [(-784, "truncated"), (None, "too long")])
def test_wrong_payload_length_is_named(raw_test_files, cut, word):
    directory, images, labels = raw_test_files
    _write(directory, images[:cut] if cut else images + b"\0", labels)
    message = _error("mnist", "test", directory)
    assert TEST_FILES[0] in message and f"payload {word}" in message


def test_truncated_gzip_is_named(raw_test_files):
    directory, _, _ = raw_test_files
    for stem in TEST_FILES:
        shutil.copy(SHIPPED / f"{stem}.gz", directory / f"{stem}.gz")
    gz = directory / f"{TEST_FILES[0]}.gz"
    gz.write_bytes(gz.read_bytes()[:100_000])
    message = _error("mnist", "test", directory)
    assert str(gz) in message and "truncated gzip" in message


def test_corrupt_gzip_is_named(raw_test_files):
    directory, _, _ = raw_test_files
    for stem in TEST_FILES:
        shutil.copy(SHIPPED / f"{stem}.gz", directory / f"{stem}.gz")
    gz = directory / f"{TEST_FILES[1]}.gz"
    raw = bytearray(gz.read_bytes())
    raw[-6] ^= 0xFF  # inside the CRC32 / length trailer
    gz.write_bytes(bytes(raw))
    message = _error("mnist", "test", directory)
    assert str(gz) in message and "corrupt gzip" in message


def test_count_mismatch_is_named(raw_test_files):
    directory, images, labels = raw_test_files
    _write(directory, images, labels[:4] + (9_999).to_bytes(4, "big") + labels[8:-1])
    message = _error("mnist", "test", directory)
    assert "10000 images" in message and "9999 labels" in message
    assert TEST_FILES[0] in message and TEST_FILES[1] in message


def test_label_out_of_range_is_named(raw_test_files):
    directory, images, labels = raw_test_files
    bad = bytearray(labels)
    bad[8 + 42] = 10
    _write(directory, images, bytes(bad))
    message = _error("mnist", "test", directory)
    assert TEST_FILES[1] in message and "label 10 at index 42 is out of range" in message


def test_missing_files_are_named(tmp_path, raw_test_files):
    directory, images, _ = raw_test_files
    (directory / TEST_FILES[0]).write_bytes(images)
    message = _error("mnist", "test", directory)
    assert str(directory) in message and TEST_FILES[1] in message and TEST_FILES[0] not in message
    assert "does not exist" in _error("mnist", "test", tmp_path / "nope")


@pytest.mark.parametrize("name,split,word", [("svhn", "test", "dataset 'svhn'"),
                                             ("mnist", "validation", "split 'validation'")])
def test_unknown_name_or_split_is_named(name, split, word):
    assert f"unknown {word}" in _error(name, split)
    with pytest.raises(CompatError):
        dataset_source(name, split)
