"""Initialisers of the original TF1 code: truncated normal (std 0.1) weights, 0.1 biases."""
import keras


def tf1_weight_initializer(seed: int | None, index: int) -> keras.initializers.Initializer:
    """``tf.truncated_normal(shape, stddev=0.1)``; ``index`` decorrelates layers under one seed."""
    layer_seed = None if seed is None else seed * 1000 + index
    return keras.initializers.TruncatedNormal(mean=0.0, stddev=0.1, seed=layer_seed)


def tf1_bias_initializer() -> keras.initializers.Initializer:
    """``tf.constant(0.1, shape=shape)``."""
    return keras.initializers.Constant(0.1)
