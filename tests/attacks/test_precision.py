"""The bfloat16 copy of a model: made once per model, always carrying the current weights."""
import numpy as np

from attacks import AttackConfig, make_runner
from attacks.precision import model_in_dtype


def test_float32_is_the_model_itself(tiny_model):
    assert model_in_dtype(tiny_model, "float32") is tiny_model


def test_the_bfloat16_copy_is_reused_so_compiled_loops_are_not_retraced(tiny_model):
    a = model_in_dtype(tiny_model, "bfloat16")
    b = model_in_dtype(tiny_model, "bfloat16")
    assert a is b and a is not tiny_model
    assert all(w.dtype == "bfloat16" for w in a.weights if "kernel" in w.path)
    config = AttackConfig(method="pgd", epsilon=0.3, steps=2, step_size=0.1,
                          compute_dtype="bfloat16")
    assert make_runner(tiny_model, config)._compiled is make_runner(tiny_model, config)._compiled


def test_the_bfloat16_copy_follows_weight_changes_of_the_model(tiny_model):
    copy = model_in_dtype(tiny_model, "bfloat16")
    original = tiny_model.get_weights()
    try:
        changed = [w + 0.5 for w in original]
        tiny_model.set_weights(changed)
        refreshed = model_in_dtype(tiny_model, "bfloat16")
        assert refreshed is copy
        for got, want in zip(refreshed.get_weights(), changed):
            np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-2, atol=1e-2)
    finally:
        tiny_model.set_weights(original)
