"""TF1 checkpoints <-> Keras models, proved against the REAL published TF1 graphs and indexes."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from mnist_challenge_compat import (CompatError, latest_checkpoint, load_dataset, load_model,
                                    restore_optimizer, save_checkpoint, tf1_variable_map)
from mnist_challenge_compat.checkpoint import (is_model_variable_name, read_global_step,
                                               tf1_layout)
from mnist_challenge_compat.data import fashion_mnist_dir
from tests.tf1_reference import TF1Model, make_tf1_checkpoint, meta_for, restore_model_vars

ARCHS = ("madry_mnist", "daa_fashion")
N_IMAGES = 1000


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def images(mnist_dir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """1,000 real test images per architecture: MNIST for madry_mnist, Fashion-MNIST (Debian)
    for daa_fashion (MNIST when Debian's package is absent)."""
    x, y = load_dataset("mnist", "test", mnist_dir)
    out = {"madry_mnist": (x[:N_IMAGES], y[:N_IMAGES])}
    if fashion_mnist_dir().is_dir():
        xf, yf = load_dataset("fashion_mnist", "test", fashion_mnist_dir())
        out["daa_fashion"] = (xf[:N_IMAGES], yf[:N_IMAGES])
    else:
        out["daa_fashion"] = out["madry_mnist"]
    return out


@pytest.fixture(scope="module")
def tf1_dirs(shared_data, tmp_path_factory) -> dict[str, Path]:
    """A genuine TF1 checkpoint (random values, real graph's Saver) per architecture."""
    out = {}
    for seed, arch in enumerate(ARCHS):
        directory = tmp_path_factory.mktemp(f"tf1_{arch}")
        make_tf1_checkpoint(meta_for(arch, shared_data), directory, seed=seed + 1)
        out[arch] = directory
    return out


@pytest.fixture(scope="module")
def saved_dirs(tmp_path_factory) -> dict[str, tuple[keras.Model, Path]]:
    """A fresh Keras model per architecture saved (no optimizer) at step 1234."""
    out = {}
    for seed, arch in enumerate(ARCHS):
        model = models.build_model(arch, seed=seed + 10)
        directory = tmp_path_factory.mktemp(f"saved_{arch}")
        save_checkpoint(model, directory, 1234)
        out[arch] = (model, directory)
    return out


def _real_index(shared_data: Path, arch: str) -> dict[str, list[int]]:
    prefix = str(meta_for(arch, shared_data))[: -len(".meta")]
    return dict(tf.train.list_variables(prefix))


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _train_steps(model: keras.Model, optimizer: keras.optimizers.Adam, x: np.ndarray,
                 y: np.ndarray, steps: int) -> None:
    for i in range(steps):
        xb, yb = x[i * 50:(i + 1) * 50], y[i * 50:(i + 1) * 50]
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=yb, logits=model(xb, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))


@pytest.fixture(scope="module")
def adam_saved(images, tmp_path_factory) -> dict[str, tuple]:
    """Per architecture: (model, Adam after 3 steps on real images, checkpoint dir)."""
    out = {}
    for seed, arch in enumerate(ARCHS):
        model = models.build_model(arch, seed=seed + 20)
        optimizer = keras.optimizers.Adam(1e-3)
        _train_steps(model, optimizer, *images[arch], steps=3)
        directory = tmp_path_factory.mktemp(f"adam_{arch}")
        save_checkpoint(model, directory, 3, optimizer=optimizer)
        out[arch] = (model, optimizer, directory)
    return out


# --------------------------------------------------------------------------- real indexes

@pytest.mark.parametrize("arch", ARCHS)
def test_real_index_maps_one_to_one_onto_architecture(shared_data, arch):
    real = _real_index(shared_data, arch)
    real_model_vars = {n: tuple(s) for n, s in real.items() if is_model_variable_name(n)}
    model_map = tf1_variable_map(models.build_model(arch, seed=0))
    assert real_model_vars == {n: tuple(v.shape) for n, v in model_map.items()}
    assert real_model_vars == tf1_layout(arch)
    trainable = {n for n, v in model_map.items() if v.trainable}
    slots = {n for n in real if n.endswith(("/Adam", "/Adam_1"))}
    assert slots == {n + s for n in trainable for s in ("/Adam", "/Adam_1")}
    assert set(real) - set(real_model_vars) - slots == {"beta1_power", "beta2_power",
                                                        "global_step"}


def test_real_daa_index_sorts_variable_10_before_variable_2_yet_maps_numerically(shared_data):
    real_names = [n for n, _ in tf.train.list_variables(
        str(meta_for("daa_fashion", shared_data))[: -len(".meta")])]
    assert real_names.index("Variable_10") < real_names.index("Variable_2")
    names = list(tf1_variable_map(models.build_model("daa_fashion", seed=0)))
    assert names.index("Variable_2") < names.index("Variable_10")
    assert names[-2:] == ["Variable_10", "Variable_11"]


def test_real_secret_checkpoint_without_weights_names_the_missing_data_file(shared_data):
    secret = shared_data / "mnist_challenge" / "secret"
    with pytest.raises(CompatError, match=r"checkpoint-99900\.data-00000-of-00001.*missing"):
        load_model(secret)


# --------------------------------------------------------------------------- real-graph equivalence

@pytest.mark.parametrize("arch", ARCHS)
def test_load_model_reproduces_real_tf1_logits_with_inferred_arch(shared_data, tf1_dirs,
                                                                  images, arch):
    x, _ = images[arch]
    directory = tf1_dirs[arch]
    with TF1Model(meta_for(arch, shared_data), latest_checkpoint(directory)) as ref:
        expected = ref.logits(x)
    model = load_model(directory)
    assert model.name == arch
    got = keras.ops.convert_to_numpy(model.predict(x, batch_size=500, verbose=0))
    assert got.shape == (N_IMAGES, 10) and got.dtype == np.float32
    assert _rel_diff(got, expected) < 1e-4


@pytest.mark.parametrize("loss", ["xent", "cw"])
def test_tf1_reference_input_gradient_matches_keras_gradient(shared_data, tf1_dirs, images,
                                                             loss):
    x, y = images["madry_mnist"][0][:100], images["madry_mnist"][1][:100]
    model = load_model(tf1_dirs["madry_mnist"])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        z = model(xt)
        if loss == "xent":
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z)
        else:
            mask = tf.one_hot(y, 10)
            wrong = tf.reduce_max((1 - mask) * z - 1e4 * mask, axis=1)
            per_example = -tf.nn.relu(tf.reduce_sum(mask * z, axis=1) - wrong + 50)
        total = tf.reduce_sum(per_example)
    expected = tape.gradient(total, xt).numpy()
    with TF1Model(meta_for("madry_mnist", shared_data),
                  latest_checkpoint(tf1_dirs["madry_mnist"])) as ref:
        got = ref.input_gradient(x, y, loss=loss)
    assert got.shape == (100, 784)
    assert _rel_diff(got, expected) < 1e-4


# --------------------------------------------------------------------------- writing

@pytest.mark.parametrize("arch", ARCHS)
def test_saved_checkpoint_restores_in_real_graph_with_same_logits(shared_data, saved_dirs,
                                                                  images, arch):
    model, directory = saved_dirs[arch]
    x, _ = images[arch]
    expected = keras.ops.convert_to_numpy(model.predict(x, batch_size=500, verbose=0))
    with restore_model_vars(meta_for(arch, shared_data), latest_checkpoint(directory)) as ref:
        got = ref.logits(x)
    assert _rel_diff(got, expected) < 1e-4


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_index_has_real_names_shapes_and_int64_global_step(shared_data, saved_dirs,
                                                                 arch):
    _, directory = saved_dirs[arch]
    prefix = latest_checkpoint(directory)
    assert prefix == str(directory / "checkpoint-1234")
    real = _real_index(shared_data, arch)
    expected = {n: s for n, s in real.items()
                if is_model_variable_name(n) or n == "global_step"}
    assert dict(tf.train.list_variables(prefix)) == expected
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    assert dtypes.pop("global_step") == tf.int64
    assert set(dtypes.values()) == {tf.float32}
    assert reader.get_tensor("global_step") == 1234
    assert read_global_step(directory) == 1234
    assert sorted(os.listdir(directory)) == ["checkpoint", "checkpoint-1234.data-00000-of-00001",
                                             "checkpoint-1234.index"]


@pytest.mark.parametrize("arch", ARCHS)
def test_adam_slots_are_written_under_real_names_and_full_real_saver_restores(
        shared_data, adam_saved, images, arch):
    model, optimizer, directory = adam_saved[arch]
    prefix = latest_checkpoint(directory)
    assert dict(tf.train.list_variables(prefix)) == _real_index(shared_data, arch)
    x, _ = images[arch]
    variables = tf1_variable_map(model)
    with TF1Model(meta_for(arch, shared_data), prefix) as ref:  # the graph's own full Saver
        for name in ("Variable", "Variable_3"):
            index = optimizer._get_variable_index(variables[name])
            np.testing.assert_array_equal(ref.variable_value(name + "/Adam"),
                                          optimizer._momentums[index].numpy())
            np.testing.assert_array_equal(ref.variable_value(name + "/Adam_1"),
                                          optimizer._velocities[index].numpy())
        assert ref.variable_value("beta1_power") == np.float32(0.9 ** 4)
        assert ref.variable_value("beta2_power") == np.float32(0.999 ** 4)
        assert ref.variable_value("global_step") == 3
        expected = keras.ops.convert_to_numpy(model.predict(x, batch_size=500, verbose=0))
        assert _rel_diff(ref.logits(x), expected) < 1e-4


def test_restore_optimizer_round_trips_m_v_iterations_and_resumes_training(images, tmp_path):
    x, y = images["daa_fashion"]
    model = models.build_model("daa_fashion", seed=30)
    optimizer = keras.optimizers.Adam(1e-3)
    _train_steps(model, optimizer, x, y, steps=3)
    save_checkpoint(model, tmp_path, 3, optimizer=optimizer)
    restored_model = load_model(tmp_path)
    restored = keras.optimizers.Adam(1e-3)
    restore_optimizer(restored, restored_model, tmp_path)
    assert int(restored.iterations.numpy()) == 3
    original_vars = tf1_variable_map(model)
    restored_vars = tf1_variable_map(restored_model)
    for name, var in original_vars.items():
        if not var.trainable:
            continue
        i = optimizer._get_variable_index(var)
        j = restored._get_variable_index(restored_vars[name])
        np.testing.assert_array_equal(restored._momentums[j].numpy(),
                                      optimizer._momentums[i].numpy())
        np.testing.assert_array_equal(restored._velocities[j].numpy(),
                                      optimizer._velocities[i].numpy())
    # a further step moves the original and the resumed copy identically
    _train_steps(model, optimizer, x[500:], y[500:], steps=1)
    _train_steps(restored_model, restored, x[500:], y[500:], steps=1)
    for name, var in original_vars.items():
        np.testing.assert_allclose(restored_vars[name].numpy(), var.numpy(), rtol=0, atol=1e-6)


def test_restore_optimizer_reads_slots_of_a_genuine_tf1_checkpoint(shared_data, tf1_dirs):
    directory = tf1_dirs["madry_mnist"]
    model = load_model(directory)
    optimizer = keras.optimizers.Adam()
    restore_optimizer(optimizer, model, directory)
    assert int(optimizer.iterations.numpy()) == 99900
    variables = tf1_variable_map(model)
    with TF1Model(meta_for("madry_mnist", shared_data), latest_checkpoint(directory)) as ref:
        for name in ("Variable_4", "Variable_7"):
            index = optimizer._get_variable_index(variables[name])
            np.testing.assert_array_equal(optimizer._momentums[index].numpy(),
                                          ref.variable_value(name + "/Adam"))
            np.testing.assert_array_equal(optimizer._velocities[index].numpy(),
                                          ref.variable_value(name + "/Adam_1"))


def test_restore_optimizer_without_slots_names_the_missing_slot(saved_dirs):
    _, directory = saved_dirs["madry_mnist"]
    model = load_model(directory)
    with pytest.raises(CompatError, match=r"checkpoint-1234.*no optimizer slot 'Variable/Adam'"):
        restore_optimizer(keras.optimizers.Adam(), model, directory)


def test_save_keeps_newest_three_like_max_to_keep(tmp_path):
    model = models.build_model("madry_mnist", seed=3)
    for step in (100, 200, 300, 400, 500):
        save_checkpoint(model, tmp_path, step)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"] + [
        f"checkpoint-{s}.{ext}" for s in (300, 400, 500)
        for ext in ("data-00000-of-00001", "index")]
    state = (tmp_path / "checkpoint").read_text().splitlines()
    assert state == ['model_checkpoint_path: "checkpoint-500"',
                     'all_model_checkpoint_paths: "checkpoint-300"',
                     'all_model_checkpoint_paths: "checkpoint-400"',
                     'all_model_checkpoint_paths: "checkpoint-500"']
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-500")
    assert read_global_step(tmp_path) == 500


def test_state_file_paths_absolute_and_relative_both_work(tf1_dirs, tmp_path):
    genuine = tf1_dirs["madry_mnist"]
    state = (genuine / "checkpoint").read_text()
    assert f'model_checkpoint_path: "{genuine}/checkpoint-99900"' in state  # TF1: absolute
    expected = load_model(genuine).get_weights()
    relative = tmp_path / "relative"
    shutil.copytree(genuine, relative)
    (relative / "checkpoint").write_text('model_checkpoint_path: "checkpoint-99900"\n'
                                         'all_model_checkpoint_paths: "checkpoint-99900"\n')
    for a, b in zip(load_model(relative).get_weights(), expected):
        np.testing.assert_array_equal(a, b)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "checkpoint").write_text(
        f'model_checkpoint_path: "{relative}/checkpoint-99900"\n')
    assert latest_checkpoint(elsewhere) == f"{relative}/checkpoint-99900"
    assert load_model(elsewhere, arch="madry_mnist").name == "madry_mnist"


def test_checkpoint_prefix_path_works(tf1_dirs):
    prefix = tf1_dirs["daa_fashion"] / "checkpoint-99900"
    by_prefix = load_model(prefix)
    by_index = load_model(str(prefix) + ".index")
    assert by_prefix.name == by_index.name == "daa_fashion"
    for a, b in zip(by_prefix.get_weights(), load_model(tf1_dirs["daa_fashion"]).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert read_global_step(prefix) == 99900


def test_save_leaves_no_temporary_files_and_overwrites_same_step(tmp_path):
    model = models.build_model("madry_mnist", seed=4)
    save_checkpoint(model, tmp_path, 7)
    save_checkpoint(model, tmp_path, 7)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "checkpoint-7.data-00000-of-00001",
                                            "checkpoint-7.index"]
    assert (tmp_path / "checkpoint").read_text().count("checkpoint-7") == 2


# --------------------------------------------------------------------------- errors

@pytest.fixture()
def broken_copy(saved_dirs, tmp_path) -> Path:
    """A writable copy of the saved madry_mnist checkpoint directory (step 1234)."""
    directory = tmp_path / "model"
    shutil.copytree(saved_dirs["madry_mnist"][1], directory)
    return directory


def _load_error(path, **kwargs) -> str:
    with pytest.raises(CompatError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_directory_is_named(tmp_path):
    message = _load_error(tmp_path / "nope")
    assert str(tmp_path / "nope") in message and "no such" in message


def test_directory_without_state_file_is_named(broken_copy):
    (broken_copy / "checkpoint").unlink()
    message = _load_error(broken_copy)
    assert str(broken_copy) in message and "no 'checkpoint' state file" in message


def test_state_file_naming_missing_checkpoint_is_named(broken_copy):
    (broken_copy / "checkpoint").write_text('model_checkpoint_path: "checkpoint-5"\n')
    message = _load_error(broken_copy)
    assert "checkpoint-5.index does not exist" in message


def test_missing_data_shard_is_named(broken_copy):
    (broken_copy / "checkpoint-1234.data-00000-of-00001").unlink()
    message = _load_error(broken_copy)
    assert "checkpoint-1234.data-00000-of-00001" in message and "missing" in message


@pytest.mark.parametrize("keep", [1_000_000, -4])
def test_truncated_data_file_is_named(broken_copy, keep):
    data = broken_copy / "checkpoint-1234.data-00000-of-00001"
    raw = data.read_bytes()
    data.write_bytes(raw[:keep])
    message = _load_error(broken_copy)
    assert "checkpoint-1234.data-00000-of-00001" in message and "truncated" in message


def test_corrupt_data_file_is_named(broken_copy):
    data = broken_copy / "checkpoint-1234.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[5000] ^= 0xFF
    data.write_bytes(bytes(raw))
    message = _load_error(broken_copy)
    assert "checkpoint-1234.data-00000-of-00001" in message and "corrupt" in message


@pytest.mark.parametrize("keep", [0, 100])
def test_truncated_index_is_named(broken_copy, keep):
    index = broken_copy / "checkpoint-1234.index"
    index.write_bytes(index.read_bytes()[:keep])
    message = _load_error(broken_copy)
    assert "checkpoint-1234.index" in message and "cannot read checkpoint index" in message


def test_wrong_forced_architecture_names_the_variable_and_shapes(tf1_dirs):
    message = _load_error(tf1_dirs["daa_fashion"], arch="madry_mnist")
    assert "checkpoint-99900" in message and "madry_mnist" in message
    assert "'Variable_2' has shape [5, 5, 32, 32], expected [5, 5, 32, 64]" in message


def test_unknown_architecture_is_named(tf1_dirs):
    message = _load_error(tf1_dirs["madry_mnist"], arch="resnet")
    assert "unknown architecture 'resnet'" in message and "madry_mnist" in message


def test_checkpoint_matching_no_architecture_is_named(tmp_path):
    x_in = keras.Input(shape=(784,))
    other = keras.Model(x_in, keras.layers.Dense(10)(keras.layers.Dense(32)(x_in)))
    save_checkpoint(other, tmp_path, 1)
    message = _load_error(tmp_path)
    assert "checkpoint-1" in message and "match no known architecture" in message
    assert "daa_fashion" in message and "madry_mnist" in message
