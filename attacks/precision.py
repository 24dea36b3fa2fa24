"""Compute-dtype copies of a model for the attack's forward and backward passes."""
import keras

COMPUTE_DTYPES = ("float32", "bfloat16")


def model_in_dtype(model: keras.Model, dtype: str) -> keras.Model:
    """Returns ``model`` itself for float32, else a copy whose layers compute in ``dtype``.

    The copy shares no variables with ``model``: its weights are the float32 weights cast
    once to ``dtype``. Inputs to the copy must be cast by the caller (the attack casts its
    float32 images, and casts logits and gradients back to float32).
    """
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
    if dtype == "float32":
        return model

    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = dtype
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone_layer)
    copy.set_weights(model.get_weights())
    return copy
