"""The CIFAR-10 challenge's TF1 checkpoints <-> the Keras wide ResNet, proved against the REAL
graph (``.meta``/``.index`` rebuilt from the challenge's public code): scoped variable names,
Momentum slots, ``global_step``; logits and input gradients on random 0-255 images."""
from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from mnist_challenge_compat import (CompatError, latest_checkpoint, load_model,
                                    restore_optimizer, save_checkpoint, tf1_variable_map)
from mnist_challenge_compat.checkpoint import (is_model_variable_name, read_global_step,
                                               tf1_layout, uses_scoped_names)
from tests.tf1_reference import TF1Model, make_tf1_checkpoint

ARCH = "madry_cifar10"
N_IMAGES = 3
LEARNING_RATE = 0.01  # the challenge's schedule between steps 40,000 and 60,000


def _prefix(meta: Path) -> str:
    return str(meta)[: -len(".meta")]


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _xent_input_gradient(model: keras.Model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        total = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=model(xt)))
    return tape.gradient(total, xt).numpy()


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """Random 0-255 images (no CIFAR-10 images offline) and labels."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(N_IMAGES, 32, 32, 3)).astype(np.float32)
    return x, rng.integers(0, 10, size=N_IMAGES).astype(np.int64)


@pytest.fixture(scope="module")
def tf1_dir(cifar10_meta, tmp_path_factory) -> Path:
    """A genuine TF1 checkpoint of the real graph (random weights, BN statistics and Momentum
    accumulators) written by its own ``tf.compat.v1.train.Saver``."""
    directory = tmp_path_factory.mktemp("tf1_cifar10")
    make_tf1_checkpoint(cifar10_meta, directory, seed=5, step=70000)
    return directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[keras.Model, keras.optimizers.SGD, Path]:
    """A fresh Keras model with a built momentum SGD (random momenta) saved at step 45000."""
    model = models.build_model(ARCH, seed=3)
    optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=0.9)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(4)
    for momentum in optimizer.momentums:
        momentum.assign(rng.normal(0, 1e-3, size=momentum.shape).astype(np.float32))
    optimizer.iterations.assign(45000)
    directory = tmp_path_factory.mktemp("saved_cifar10")
    save_checkpoint(model, directory, 45000, optimizer=optimizer)
    return model, optimizer, directory


# --------------------------------------------------------------------------- names

def test_real_index_maps_one_to_one_with_momentum_slots_and_global_step(cifar10_meta):
    real = dict(tf.train.list_variables(_prefix(cifar10_meta)))
    model_vars = {n: tuple(s) for n, s in real.items() if is_model_variable_name(n)}
    model_map = tf1_variable_map(models.build_model(ARCH, seed=0))
    assert model_vars == {n: tuple(v.shape) for n, v in model_map.items()}
    assert model_vars == tf1_layout(ARCH)
    assert len(model_vars) == 1 + 30 + 31 * 4 + 2
    trainable = {n for n, v in model_map.items() if v.trainable}
    assert {n for n in real if n.endswith("/Momentum")} == {n + "/Momentum" for n in trainable}
    assert set(real) - set(model_vars) - {n + "/Momentum" for n in trainable} == {"global_step"}


def test_scoped_names_come_from_dotted_layer_names():
    x_in = keras.Input(shape=(4, 4, 2))
    x = keras.layers.Conv2D(3, 3, use_bias=False, name="a.conv")(x_in)
    x = keras.layers.BatchNormalization(name="a.b.BatchNorm")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(x_in, keras.layers.Dense(2, name="logit")(x))
    assert uses_scoped_names(model)
    assert list(tf1_variable_map(model)) == [
        "a/conv/DW", "a/b/BatchNorm/gamma", "a/b/BatchNorm/beta", "a/b/BatchNorm/moving_mean",
        "a/b/BatchNorm/moving_variance", "logit/DW", "logit/biases"]
    assert not uses_scoped_names(models.build_model("madry_mnist", seed=0))


def test_real_graph_files_without_weights_name_the_missing_data_file(cifar10_meta):
    with pytest.raises(CompatError, match=r"checkpoint-70000\.data-00000-of-00001.*missing"):
        load_model(cifar10_meta.parent)


# --------------------------------------------------------------------------- TF1 -> Keras

@pytest.mark.slow
def test_tf1_checkpoint_loads_with_equal_logits_and_input_gradient(cifar10_meta, tf1_dir,
                                                                   images):
    x, y = images
    with TF1Model(cifar10_meta, latest_checkpoint(tf1_dir)) as ref:
        expected_logits = ref.logits(x)
        expected_gradient = ref.input_gradient(x, y, loss="xent")
    model = load_model(tf1_dir)
    assert model.name == ARCH
    logits = keras.ops.convert_to_numpy(model(x))
    assert logits.shape == (N_IMAGES, 10) and logits.dtype == np.float32
    assert _rel_diff(logits, expected_logits) < 1e-5
    gradient = _xent_input_gradient(model, x, y)
    assert gradient.shape == x.shape
    # 1e-4 as for the MNIST graphs: the backward pass through 30 layers sums in another order
    # than TF1's kernels (measured 4e-7 to 2e-5); a wrong layer or slope would be off by far more
    assert _rel_diff(gradient, expected_gradient) < 1e-4


@pytest.mark.slow
def test_momentum_slots_of_a_genuine_tf1_checkpoint_restore_into_sgd(cifar10_meta, tf1_dir):
    model = load_model(tf1_dir)
    optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=0.9)
    restore_optimizer(optimizer, model, tf1_dir)
    assert int(optimizer.iterations.numpy()) == 70000
    variables = tf1_variable_map(model)
    reader = tf.train.load_checkpoint(latest_checkpoint(tf1_dir))
    for name in ("input/init_conv/DW", "unit_3_4/sub2/BatchNorm/gamma", "logit/biases"):
        momentum = optimizer.momentums[optimizer._get_variable_index(variables[name])]
        np.testing.assert_allclose(momentum.numpy(),
                                   -LEARNING_RATE * reader.get_tensor(name + "/Momentum"),
                                   rtol=1e-6)


# --------------------------------------------------------------------------- Keras -> TF1

@pytest.mark.slow
def test_saved_checkpoint_restores_in_real_graph_with_same_logits_slots_and_step(
        cifar10_meta, saved, images):
    model, optimizer, directory = saved
    prefix = latest_checkpoint(directory)
    assert dict(tf.train.list_variables(prefix)) == dict(
        tf.train.list_variables(_prefix(cifar10_meta)))
    assert tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()["global_step"] == tf.int64
    x, _ = images
    expected = keras.ops.convert_to_numpy(model(x))
    variables = tf1_variable_map(model)
    with TF1Model(cifar10_meta, prefix) as ref:  # the graph's own full Saver
        assert _rel_diff(ref.logits(x), expected) < 1e-5
        assert ref.variable_value("global_step") == 45000
        for name in ("unit_1_0/sub1/conv1/DW", "unit_2_0/residual_only_activation/BatchNorm/beta",
                     "logit/DW"):
            m = optimizer.momentums[optimizer._get_variable_index(variables[name])].numpy()
            np.testing.assert_allclose(ref.variable_value(name + "/Momentum"),
                                       -m / LEARNING_RATE, rtol=1e-6)


@pytest.mark.slow
def test_saved_momentum_round_trips_through_restore_optimizer(saved):
    model, optimizer, directory = saved
    restored_model = load_model(directory)
    restored = keras.optimizers.SGD(LEARNING_RATE, momentum=0.9)
    restore_optimizer(restored, restored_model, directory)
    assert int(restored.iterations.numpy()) == read_global_step(directory) == 45000
    original, again = tf1_variable_map(model), tf1_variable_map(restored_model)
    for name in ("unit_1_2/sub2/conv2/DW", "unit_last/BatchNorm/gamma", "logit/biases"):
        m = optimizer.momentums[optimizer._get_variable_index(original[name])].numpy()
        m2 = restored.momentums[restored._get_variable_index(again[name])].numpy()
        np.testing.assert_allclose(m2, m, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(again[name].numpy(), original[name].numpy())


# --------------------------------------------------------------------------- errors

@pytest.mark.slow
def test_sgd_restore_from_a_checkpoint_without_slots_names_the_slot(tmp_path):
    model = models.build_model(ARCH, seed=6)
    save_checkpoint(model, tmp_path, 1)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "checkpoint-1.data-00000-of-00001",
                                            "checkpoint-1.index"]
    optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=0.9)
    with pytest.raises(CompatError, match=r"no optimizer slot 'input/init_conv/DW/Momentum'"):
        restore_optimizer(optimizer, model, tmp_path)
    assert int(optimizer.iterations.numpy()) == 0


@pytest.mark.parametrize("optimizer", [keras.optimizers.SGD(0.1),
                                       keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                                       keras.optimizers.RMSprop()])
def test_optimizers_without_tf1_slots_are_refused(optimizer, tmp_path):
    x_in = keras.Input(shape=(3,))
    model = keras.Model(x_in, keras.layers.Dense(2, name="logit")(x_in))
    optimizer.build(model.trainable_variables)
    with pytest.raises(CompatError, match="optimizer"):
        save_checkpoint(model, tmp_path, 1, optimizer=optimizer)


def test_loading_an_mnist_checkpoint_never_builds_the_cifar10_network(tmp_path, monkeypatch):
    save_checkpoint(models.build_model("madry_mnist", seed=1), tmp_path, 1)
    built = []
    real_build = models.build_model
    monkeypatch.setattr(models, "build_model",
                        lambda arch, seed=None: built.append(arch) or real_build(arch, seed))
    tf1_layout.cache_clear()
    try:
        assert load_model(tmp_path).name == "madry_mnist"
    finally:
        tf1_layout.cache_clear()
    assert ARCH not in built and "madry_mnist" in built
