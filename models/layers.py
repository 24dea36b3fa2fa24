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
