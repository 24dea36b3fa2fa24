"""Custom Keras layers needed to reproduce the original TF1 graphs."""
import keras


@keras.saving.register_keras_serializable(package="qg_attacks")
class InferenceBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization that always runs in inference form.

    The DAA Fashion-MNIST code calls ``tf.layers.batch_normalization(..., training=False)``
    even while training, so the layer normalises with its moving mean and variance
    (which never change) while ``gamma`` and ``beta`` stay trainable. Keras' own layer
    would switch to batch statistics when the model is called with ``training=True``.
    """

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


@keras.saving.register_keras_serializable(package="qg_attacks")
class PerImageStandardization(keras.layers.Layer):
    """``tf.image.per_image_standardization`` of every image of an NHWC batch.

    Each image becomes ``(x - mean) / max(std, 1 / sqrt(H * W * C))`` with its own mean and
    population standard deviation over all its pixels and channels; the lower bound keeps
    uniform images finite. No weights.
    """

    def call(self, inputs):
        axes = (1, 2, 3)
        mean = keras.ops.mean(inputs, axis=axes, keepdims=True)
        centered = inputs - mean
        std = keras.ops.sqrt(keras.ops.mean(keras.ops.square(centered), axis=axes,
                                            keepdims=True))
        num_elements = inputs.shape[1] * inputs.shape[2] * inputs.shape[3]
        min_std = keras.ops.rsqrt(keras.ops.convert_to_tensor(num_elements, inputs.dtype))
        return centered / keras.ops.maximum(std, min_std)


@keras.saving.register_keras_serializable(package="qg_attacks")
class ChannelZeroPadding(keras.layers.Layer):
    """Appends ``before`` zero channels in front of and ``after`` behind the last axis of an
    NHWC tensor (the ResNet shortcut's ``tf.pad`` when a unit widens). No weights."""

    def __init__(self, before: int, after: int, **kwargs):
        super().__init__(**kwargs)
        self.before = int(before)
        self.after = int(after)

    def call(self, inputs):
        return keras.ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [self.before, self.after]])

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (*input_shape[:-1],
                None if channels is None else channels + self.before + self.after)

    def get_config(self):
        return {**super().get_config(), "before": self.before, "after": self.after}
