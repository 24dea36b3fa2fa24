"""Initialisers of the original TF1 code: the MNIST challenge's truncated normal (std 0.1)
weights and 0.1 biases, the CIFAR-10 challenge's fan-out normal and unit-scaling ones."""
import keras


def _layer_seed(seed: int | None, index: int) -> int | None:
    return None if seed is None else seed * 1000 + index


def tf1_weight_initializer(seed: int | None, index: int) -> keras.initializers.Initializer:
    """``tf.truncated_normal(shape, stddev=0.1)``; ``index`` decorrelates layers under one seed."""
    return keras.initializers.TruncatedNormal(mean=0.0, stddev=0.1, seed=_layer_seed(seed, index))


def tf1_bias_initializer() -> keras.initializers.Initializer:
    """``tf.constant(0.1, shape=shape)``."""
    return keras.initializers.Constant(0.1)


def resnet_conv_initializer(seed: int | None, index: int) -> keras.initializers.Initializer:
    """The CIFAR-10 challenge's conv kernels: ``tf.random_normal_initializer(stddev=
    sqrt(2 / n))`` with ``n = kernel_h * kernel_w * out_channels`` (fan-out, untruncated)."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out",
                                              distribution="untruncated_normal",
                                              seed=_layer_seed(seed, index))


def unit_scaling_initializer(seed: int | None, index: int) -> keras.initializers.Initializer:
    """``tf.uniform_unit_scaling_initializer(factor=1.0)`` of a dense kernel:
    U(-sqrt(3 / fan_in), sqrt(3 / fan_in))."""
    return keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="uniform",
                                              seed=_layer_seed(seed, index))
