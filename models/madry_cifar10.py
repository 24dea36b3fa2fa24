"""The CIFAR-10 Adversarial Examples Challenge network (Madry et al.): a wide ResNet 28-10."""
import keras
from keras import layers

from models.initializers import resnet_conv_initializer, unit_scaling_initializer
from models.layers import ChannelZeroPadding, InferenceBatchNormalization, PerImageStandardization

# (stage, output channels, stride of its first unit, activate before the residual split)
_STAGES = ((1, 160, 1, True), (2, 320, 2, False), (3, 640, 2, False))
_UNITS_PER_STAGE = 5
_INIT_FILTERS = 16
_LEAKINESS = 0.1
_BN_EPSILON = 1e-3


class _Builder:
    """Creates the layers in TF1 variable order, numbering initialiser seeds."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.n_conv = 0

    def conv(self, x, filters: int, stride: int, scope: str):
        self.n_conv += 1
        return layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                             kernel_initializer=resnet_conv_initializer(self.seed, self.n_conv),
                             name=scope)(x)

    @staticmethod
    def bn_leaky_relu(x, scope: str):
        x = InferenceBatchNormalization(epsilon=_BN_EPSILON, name=f"{scope}.BatchNorm")(x)
        return layers.LeakyReLU(negative_slope=_LEAKINESS, name=f"{scope}.leaky_relu")(x)

    def residual(self, x, in_filters: int, out_filters: int, stride: int,
                 activate_before_residual: bool, scope: str):
        """One unit: ``x + conv(act(bn(conv(act(bn(x))))))``; the shortcut starts after the
        first activation when ``activate_before_residual``, before it otherwise."""
        if activate_before_residual:
            x = self.bn_leaky_relu(x, f"{scope}.shared_activation")
            shortcut = x
        else:
            shortcut = x
            x = self.bn_leaky_relu(x, f"{scope}.residual_only_activation")
        x = self.conv(x, out_filters, stride, f"{scope}.sub1.conv1")
        x = self.bn_leaky_relu(x, f"{scope}.sub2")
        x = self.conv(x, out_filters, 1, f"{scope}.sub2.conv2")
        if in_filters != out_filters:
            if stride != 1:  # a 1x1 average pool (stride 1) is the identity
                shortcut = layers.AveragePooling2D(stride, stride, padding="valid",
                                                   name=f"{scope}.sub_add.avg_pool")(shortcut)
            half = (out_filters - in_filters) // 2
            shortcut = ChannelZeroPadding(half, half, name=f"{scope}.sub_add.pad")(shortcut)
        return layers.Add(name=f"{scope}.sub_add")([x, shortcut])


def madry_cifar10(seed: int | None = None, name: str = "madry_cifar10") -> keras.Model:
    """Builds the challenge's wide ResNet 28-10 (45.9M parameters).

    Input: ``(N, 32, 32, 3)`` float32 images on the 0-255 scale. Output: ``(N, 10)`` float32
    logits. Per-image standardization, a 3x3x16 conv, three stages of five residual units
    (160, 320, 640 channels; the first unit of stages 2 and 3 has stride 2), batch
    normalization (inference form, epsilon 1e-3) + leaky ReLU (0.1) + global average pool,
    dense 10. Convolutions are SAME and bias-free. Where a unit widens, its shortcut is an
    average pool of the stride's size and zero channels padded on both sides.

    Layer names are the TF1 variable scopes of the challenge's ``model.py`` with ``.`` for
    ``/`` (``unit_2_0.sub1.conv1``, ``unit_2_0.residual_only_activation.BatchNorm``,
    ``logit``), so the checkpoint names follow from them. Initialisation follows the
    original: conv kernels N(0, 2 / (3 * 3 * out_channels)), dense kernel uniform unit
    scaling, bias 0, batch-norm gamma 1, beta 0, moving mean 0, moving variance 1.
    """
    build = _Builder(seed)
    x_in = keras.Input(shape=(32, 32, 3), name="x")
    x = PerImageStandardization(name="input.per_image_standardization")(x_in)
    x = build.conv(x, _INIT_FILTERS, 1, "input.init_conv")
    in_filters = _INIT_FILTERS
    for stage, filters, stride, activate_first in _STAGES:
        for unit in range(_UNITS_PER_STAGE):
            first = unit == 0
            x = build.residual(x, in_filters if first else filters, filters,
                               stride if first else 1, activate_first and first,
                               f"unit_{stage}_{unit}")
        in_filters = filters
    x = build.bn_leaky_relu(x, "unit_last")
    x = layers.GlobalAveragePooling2D(name="unit_last.global_avg_pool")(x)
    logits = layers.Dense(10, kernel_initializer=unit_scaling_initializer(seed, 0),
                          bias_initializer="zeros", name="logit")(x)
    return keras.Model(x_in, logits, name=name)
