"""The CIFAR-10 challenge network's Keras pieces, against TensorFlow's own ops and formulas.

Equality with the REAL TF1 graph (logits, input gradient, checkpoints) is tested in
``tests/mnist_challenge_compat/test_checkpoint_cifar10.py``.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from models import ChannelZeroPadding, PerImageStandardization


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return models.build_model("madry_cifar10", seed=0)


def test_per_image_standardization_equals_tf_image_op_including_flat_images():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)
    x[1] = 17.0  # std 0: divided by 1 / sqrt(3072) instead
    x[2, :, :, 0] += 1e-3 * rng.standard_normal((32, 32)).astype(np.float32) - x[2, :, :, 0]
    got = keras.ops.convert_to_numpy(PerImageStandardization()(x))
    expected = np.stack([tf.image.per_image_standardization(image).numpy() for image in x])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[1], 0.0)


def test_per_image_standardization_is_the_textbook_formula_in_float64():
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 8, 8, 3))
    got = keras.ops.convert_to_numpy(PerImageStandardization()(x.astype(np.float32)))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(8 * 8 * 3))
    np.testing.assert_allclose(got, (x - mean) / std, rtol=1e-5, atol=1e-5)


def test_channel_zero_padding_puts_zero_channels_on_both_sides():
    x = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3) + 1
    got = keras.ops.convert_to_numpy(ChannelZeroPadding(2, 2)(x))
    assert got.shape == (2, 2, 2, 7)
    np.testing.assert_array_equal(got[..., 2:5], x)
    np.testing.assert_array_equal(got[..., :2], 0)
    np.testing.assert_array_equal(got[..., 5:], 0)


def test_wide_resnet_28_10_has_45_9m_parameters_and_maps_32x32x3_to_10_logits(model):
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(convs) == 1 + 3 * 5 * 2 and len(bns) == 3 * 5 * 2 + 1
    assert all(layer.bias is None and layer.padding == "same" for layer in convs)
    assert [layer.strides for layer in convs if layer.strides != (1, 1)] == [(2, 2), (2, 2)]
    assert all(layer.epsilon == 1e-3 for layer in bns)
    # init conv + per stage: first unit (in -> out), four units (out -> out), 3x3 kernels
    widths = [(16, 160), (160, 320), (320, 640)]
    conv_params = 3 * 3 * 3 * 16 + sum(
        9 * (cin * cout + cout * cout) + 4 * 9 * 2 * cout * cout for cin, cout in widths)
    # BN (gamma, beta, moving mean, moving variance): per stage the first unit's two BNs see
    # cin and cout channels, the other four units' 2 x cout; then the final BN (640)
    bn_channels = sum(cin + cout + 4 * 2 * cout for cin, cout in widths) + 640
    bn_params = 4 * bn_channels
    assert model.count_params() == conv_params + bn_params + 640 * 10 + 10
    assert round(model.count_params() / 1e6, 1) == 45.9
    out = model(np.zeros((2, 32, 32, 3), np.float32))
    assert out.shape == (2, 10) and out.dtype == "float32"


def test_batch_norm_uses_moving_statistics_even_when_training(model):
    x = np.random.default_rng(2).uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=True)),
                                  keras.ops.convert_to_numpy(model(x, training=False)))


def test_logits_ignore_a_positive_affine_change_of_each_image(model):
    # per-image standardization inside the model: a * x + b (a > 0) gives the same input
    x = np.random.default_rng(3).uniform(0, 200, size=(2, 32, 32, 3)).astype(np.float32)
    z = keras.ops.convert_to_numpy(model(x))
    z_affine = keras.ops.convert_to_numpy(model(np.float32(1.25) * x + np.float32(10.0)))
    np.testing.assert_allclose(z_affine, z, rtol=1e-4, atol=1e-4 * np.abs(z).max())


def test_seed_makes_weights_reproducible_and_init_follows_the_challenge(model):
    again = models.build_model("madry_cifar10", seed=0)
    for a, b in zip(model.get_weights()[:4], again.get_weights()[:4]):
        np.testing.assert_array_equal(a, b)
    conv = model.get_layer("unit_3_1.sub1.conv1").kernel.numpy()
    assert abs(conv.std() - np.sqrt(2.0 / (3 * 3 * 640))) < 0.01 * np.sqrt(2.0 / (3 * 3 * 640))
    dense = model.get_layer("logit").kernel.numpy()
    assert np.abs(dense).max() <= np.sqrt(3.0 / 640)
    np.testing.assert_array_equal(model.get_layer("logit").bias.numpy(), 0.0)
