"""The dataset protocol table: its values against the challenges' own config files, and the
one-line refusals of a missing model or data set."""
import json

import numpy as np
import pytest

from mnist_challenge_compat import CompatError
from tests.conftest import write_cifar10_batch
from workflow.datasets import PROTOCOLS, protocol, require_data, require_model_dir


def _config(path):
    return json.loads(path.read_text())  # its repeated "_comment" keys do not matter here


def test_cifar10_protocol_is_the_shipped_challenge_config_on_the_0_255_scale():
    spec = protocol("cifar10")
    config = _config(spec.challenge_config)
    assert (spec.epsilon, spec.steps, spec.step_size) == (config["epsilon"], config["num_steps"],
                                                          config["step_size"]) == (8.0, 10, 2.0)
    assert spec.bounds == (0.0, 255.0) and spec.image_shape == (32, 32, 3)
    assert spec.num_eval_examples == config["num_eval_examples"] and spec.arch == "madry_cifar10"


def test_mnist_protocol_is_the_shipped_challenge_config():
    spec = protocol("mnist")
    config = _config(spec.challenge_config)
    assert (spec.epsilon, spec.steps, spec.step_size) == (config["epsilon"], config["k"],
                                                          config["a"])
    assert spec.bounds == (0.0, 1.0) and spec.image_shape == (784,)
    assert (spec.default_model_dir / "config.json").is_file()


def test_shipped_cifar10_config_is_the_challenges_file_unchanged(shared_data):
    shipped = protocol("cifar10").challenge_config.read_bytes()
    assert shipped == (shared_data / "cifar10_challenge" / "config.json").read_bytes()


def test_every_protocol_names_a_registered_architecture():
    import models
    assert {p.arch for p in PROTOCOLS.values()} <= set(models.ARCHITECTURES)


def test_no_cifar10_model_is_one_line_naming_the_download_command():
    with pytest.raises(CompatError) as err:
        require_model_dir("cifar10", None, flag="cifar10_model_dir")
    text = str(err.value)
    assert "\n" not in text
    assert "python -m mnist_challenge_compat.model_download cifar10_adv_trained" in text
    assert "--cifar10_model_dir" in text


def test_a_cifar10_model_dir_without_a_checkpoint_is_refused_by_name(tmp_path):
    with pytest.raises(CompatError, match=f"{tmp_path / 'empty'}: no CIFAR-10 checkpoint"):
        require_model_dir("cifar10", tmp_path / "empty")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "checkpoint").write_text('model_checkpoint_path: "checkpoint-1"\n')
    assert require_model_dir("cifar10", tmp_path / "m") == tmp_path / "m"


def test_missing_cifar10_data_names_the_binary_batches_and_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
    for data_dir in (None, tmp_path / "absent"):
        with pytest.raises(CompatError) as err:
            require_data("cifar10", data_dir)
        text = str(err.value)
        assert "\n" not in text and "cifar-10-binary.tar.gz" in text
        assert "cifar-10-batches-bin" in text and "--data_dir" in text


def test_cifar10_data_in_the_binary_format_is_accepted(tmp_path):
    rng = np.random.default_rng(0)
    write_cifar10_batch(tmp_path / "cifar-10-batches-bin" / "test_batch.bin",
                        rng.integers(0, 256, (2, 32, 32, 3)), [3, 4])
    assert "test_batch.bin" in require_data("cifar10", tmp_path)


def test_a_prepared_tfds_copy_counts_as_data(tmp_path, monkeypatch):
    (tmp_path / "cifar10" / "3.0.2").mkdir(parents=True)
    (tmp_path / "cifar10" / "3.0.2" / "dataset_info.json").write_text("{}")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert "tensorflow_datasets" in require_data("cifar10", None)
