"""CIFAR-10 binary batches: parsing, folder layouts, the tfds fallback, and refused files.

No CIFAR-10 images are available offline, so every test writes small files in the official
binary format (records of 1 label byte + 3,072 pixel bytes, channel-major) itself.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mnist_challenge_compat import CompatError, dataset_source, load_dataset
from mnist_challenge_compat.data import read_cifar10_batch

TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
RECORD = 3073


def _records(rng: np.random.Generator, count: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(file bytes, uint8 NHWC images, labels) of ``count`` random records."""
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    raw = b"".join(bytes([label]) + image.transpose(2, 0, 1).tobytes()
                   for image, label in zip(images, labels))
    return raw, images, labels


def _write_split(directory: Path, names: list[str], seed: int, count: int = 3):
    """Writes one file per name; returns the concatenated images and labels in file order."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for name in names:
        raw, x, y = _records(rng, count)
        (directory / name).write_bytes(raw)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _error(*args) -> str:
    with pytest.raises(CompatError) as info:
        load_dataset(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_pixel_layout_is_label_then_red_green_blue_planes_row_major(tmp_path):
    raw, _, _ = _records(np.random.default_rng(0), 2)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(raw)
    images, labels = read_cifar10_batch(path)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    for i, row, col, channel in [(0, 0, 0, 0), (1, 31, 31, 2), (1, 5, 17, 1), (0, 30, 2, 2)]:
        offset = i * RECORD + 1 + channel * 1024 + row * 32 + col
        assert images[i, row, col, channel] == raw[offset]
    assert labels.tolist() == [raw[0], raw[RECORD]]


def test_test_split_is_float32_nhwc_on_the_0_255_scale_with_int64_labels(tmp_path):
    images, labels = _write_split(tmp_path, ["test_batch.bin"], seed=1, count=4)
    x, y = load_dataset("cifar10", "test", tmp_path)
    assert x.dtype == np.float32 and x.shape == (4, 32, 32, 3)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, images.astype(np.float32))
    assert y.tolist() == labels.tolist()
    assert x.max() <= 255 and x.min() >= 0


def test_train_split_concatenates_batches_1_to_5_in_order(tmp_path):
    images, labels = _write_split(tmp_path, TRAIN_FILES, seed=2, count=2)
    x, y = load_dataset("cifar10", "train", tmp_path)
    assert x.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(x, images.astype(np.float32))
    assert y.tolist() == labels.tolist()


def test_the_extracted_folder_and_its_parent_both_work(tmp_path):
    images, _ = _write_split(tmp_path / "cifar-10-batches-bin", ["test_batch.bin"], seed=3)
    from_parent, _ = load_dataset("cifar10", "test", tmp_path)
    from_folder, _ = load_dataset("cifar10", "test", tmp_path / "cifar-10-batches-bin")
    np.testing.assert_array_equal(from_parent, images.astype(np.float32))
    np.testing.assert_array_equal(from_folder, from_parent)
    assert "cifar-10-batches-bin/test_batch.bin" in dataset_source("cifar10", "test", tmp_path)


@pytest.mark.parametrize("keep", [3 * RECORD - 1, 2 * RECORD + 5, 100])
def test_file_that_is_not_whole_records_is_named_as_truncated(tmp_path, keep):
    _write_split(tmp_path, ["test_batch.bin"], seed=4, count=3)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:keep])
    message = _error("cifar10", "test", tmp_path)
    assert "test_batch.bin" in message and "truncated or corrupt" in message
    assert f"{keep} bytes" in message


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(b"")
    message = _error("cifar10", "test", tmp_path)
    assert "test_batch.bin" in message and "0 bytes" in message


def test_label_out_of_range_is_named_with_its_record(tmp_path):
    _write_split(tmp_path, ["test_batch.bin"], seed=5, count=3)
    path = tmp_path / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[2 * RECORD] = 10
    path.write_bytes(bytes(raw))
    message = _error("cifar10", "test", tmp_path)
    assert "test_batch.bin" in message and "label 10 of record 2 is out of range" in message


def test_missing_train_batch_is_named(tmp_path):
    _write_split(tmp_path, TRAIN_FILES[:3] + TRAIN_FILES[4:], seed=6)
    message = _error("cifar10", "train", tmp_path)
    assert "data_batch_4.bin" in message and "data_batch_1.bin" not in message


@pytest.mark.parametrize("name", ["cifar-10-batches-py", "data_batch_1", "test_batch"])
def test_python_pickle_batches_are_refused_naming_the_binary_version(tmp_path, name):
    target = tmp_path / name
    if name.endswith("-py"):
        target.mkdir()
    else:
        target.write_bytes(b"\x80\x02}q\x00.")  # a pickle header: must never be loaded
    message = _error("cifar10", "test", tmp_path)
    assert name in message and "pickle" in message and "cifar-10-batches-bin" in message


def test_folder_without_any_cifar10_file_is_named(tmp_path):
    message = _error("cifar10", "test", tmp_path)
    assert str(tmp_path) in message and "test_batch.bin" in message


def test_without_data_dir_falls_back_to_tfds_cifar10(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    assert dataset_source("cifar10", "test") == \
        "cifar10/test: tensorflow_datasets cifar10 split=test"
    _, images, labels = _records(np.random.default_rng(7), 3)
    calls = []

    def fake_load(name, split, batch_size, as_supervised):  # no network in tests
        calls.append((name, split, batch_size, as_supervised))
        return tf.constant(images), tf.constant(labels.astype(np.int64))

    monkeypatch.setattr(tfds, "load", fake_load)
    x, y = load_dataset("cifar10", "test")
    assert calls == [("cifar10", "test", -1, True)]
    assert x.dtype == np.float32 and x.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(x, images.astype(np.float32))
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()
