"""The Fashion-MNIST CNN of the Distributionally Adversarial Attack (DAA) authors."""
import keras
from keras import layers

from models.initializers import tf1_bias_initializer, tf1_weight_initializer
from models.layers import InferenceBatchNormalization


def daa_fashion(seed: int | None = None, name: str = "daa_fashion") -> keras.Model:
    """Builds the DAA Fashion-MNIST CNN.

    Input: ``(N, 784)`` float32 images in [0, 1]. Output: ``(N, 10)`` float32 logits.
    conv 5x5x32, conv 5x5x32, max-pool, conv 3x3x64, conv 3x3x64, max-pool (SAME, NHWC,
    ReLU after every conv), flatten to 3136, dense 1024 + ReLU, batch normalization in
    inference form (epsilon 1e-3), dense 10; TF1 variables ``Variable`` .. ``Variable_11``
    and ``batch_normalization/*`` in that order.
    """
    w = lambda i: tf1_weight_initializer(seed, i)  # noqa: E731
    b = tf1_bias_initializer
    x_in = keras.Input(shape=(784,), name="x")
    x = layers.Reshape((28, 28, 1))(x_in)
    convs = [(32, 5), (32, 5), None, (64, 3), (64, 3), None]
    n = 0
    for spec in convs:
        if spec is None:
            x = layers.MaxPooling2D(2, 2, padding="same")(x)
            continue
        filters, size = spec
        n += 1
        x = layers.Conv2D(filters, size, padding="same", activation="relu",
                          kernel_initializer=w(n - 1), bias_initializer=b(),
                          name=f"conv{n}")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu", kernel_initializer=w(4), bias_initializer=b(),
                     name="fc1")(x)
    x = InferenceBatchNormalization(epsilon=1e-3, name="batch_normalization")(x)
    logits = layers.Dense(10, kernel_initializer=w(5), bias_initializer=b(), name="fc2")(x)
    return keras.Model(x_in, logits, name=name)
