"""Compute-dtype copies of a model for the attack's forward and backward passes."""
import weakref

import keras

COMPUTE_DTYPES = ("float32", "bfloat16")
# What an attack accepts: "auto" is resolved per machine and network by attacks.calibration.
COMPUTE_DTYPE_CHOICES = ("auto",) + COMPUTE_DTYPES

# One copy per (model, dtype), weakly keyed on the model: the attack's compiled step loops are
# cached per model object, so a fresh copy per call would retrace them every call.
_COPIES = weakref.WeakKeyDictionary()


def model_in_dtype(model: keras.Model, dtype: str) -> keras.Model:
    """Returns ``model`` itself for float32, else a copy whose layers compute in ``dtype``.

    The copy is made once per model and dtype and reused; its weights are refreshed from
    ``model``'s current float32 weights (cast to ``dtype``) on every call, so a model trained
    between calls is attacked with its new weights. The copy shares no variables with
    ``model``. Inputs to the copy must be cast by the caller (the attack casts its float32
    images, and casts logits and gradients back to float32).
    """
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
    if dtype == "float32":
        return model
    try:
        per_model = _COPIES.setdefault(model, {})
    except TypeError:  # not weakly referenceable: no reuse
        per_model = {}
    copy = per_model.get(dtype)
    if copy is None:
        copy = per_model[dtype] = _clone_in_dtype(model, dtype)
    copy.set_weights(model.get_weights())
    return copy


def _clone_in_dtype(model: keras.Model, dtype: str) -> keras.Model:
    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = dtype
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone_layer)
