"""The MNIST Adversarial Examples Challenge CNN (Madry et al.)."""
import keras
from keras import layers

from models.initializers import tf1_bias_initializer, tf1_weight_initializer


def madry_mnist(seed: int | None = None, name: str = "madry_mnist") -> keras.Model:
    """Builds the challenge CNN.

    Input: ``(N, 784)`` float32 images in [0, 1]. Output: ``(N, 10)`` float32 logits.
    Layers in the order of the TF1 variables ``Variable`` .. ``Variable_7``: conv 5x5x32,
    max-pool, conv 5x5x64, max-pool (all SAME, NHWC), flatten to 3136 in ``tf.reshape``
    order, dense 1024 + ReLU, dense 10. Initialisation follows the original: weights from a
    truncated normal with std 0.1, biases 0.1.
    """
    w = lambda i: tf1_weight_initializer(seed, i)  # noqa: E731
    b = tf1_bias_initializer
    x_in = keras.Input(shape=(784,), name="x")
    x = layers.Reshape((28, 28, 1))(x_in)
    x = layers.Conv2D(32, 5, padding="same", activation="relu", kernel_initializer=w(0),
                      bias_initializer=b(), name="conv1")(x)
    x = layers.MaxPooling2D(2, 2, padding="same")(x)
    x = layers.Conv2D(64, 5, padding="same", activation="relu", kernel_initializer=w(1),
                      bias_initializer=b(), name="conv2")(x)
    x = layers.MaxPooling2D(2, 2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu", kernel_initializer=w(2), bias_initializer=b(),
                     name="fc1")(x)
    logits = layers.Dense(10, kernel_initializer=w(3), bias_initializer=b(), name="fc2")(x)
    return keras.Model(x_in, logits, name=name)
