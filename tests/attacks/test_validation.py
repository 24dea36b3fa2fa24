"""Bad inputs and settings are refused with one clear message."""
import numpy as np
import pytest

from attacks import perturb

X = np.full((3, 784), 0.5, np.float32)
Y = np.array([1, 2, 3])
OK = dict(method="pgd", epsilon=0.3, steps=2, step_size=0.01)


@pytest.mark.parametrize("x,y,match", [
    (np.zeros((3, 28, 28), np.float32), Y, r"shape \(N, 784\)"),
    (np.where(np.eye(3, 784) > 0, np.nan, 0.5).astype(np.float32), Y, "NaN"),
    (X + 0.6, Y, r"pixels must be in \[0, 1\]"),
    (X, np.array([1, 2]), "labels must have shape"),
    (X, np.array([1, 2, 10]), r"labels must be in \[0, 10\)"),
    (X, np.array([0.5, 1, 2]), "labels must be integers"),
    (np.full((3, 784), 1, np.int64), Y, "floating point"),
])
def test_bad_data_is_rejected(tiny_model, x, y, match):
    with pytest.raises(ValueError, match=match):
        perturb(tiny_model, x, y, **OK)


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="pdg"), "unknown method"), (dict(epsilon=0.0), "epsilon must be"),
    (dict(epsilon=float("nan")), "epsilon must be"), (dict(steps=0), "steps must be"),
    (dict(step_size=-0.1), "step_size must be"), (dict(method="pqgd"), "needs the quantization level b"),
    (dict(method="pqgd", b=0.5), "b must be >= 1"), (dict(b=100), "use pqgd"),
    (dict(loss="hinge"), "unknown loss"), (dict(c=1.0), "blob and blob_qg only"),
    (dict(method="blob", c=-1.0), "c must be"), (dict(batch_size=0), "batch_size"),
    (dict(restarts=0), "restarts"), (dict(compute_dtype="float16"), "compute_dtype"),
    (dict(method="fgsm", steps=5), "fgsm takes exactly one step"), (dict(xla="maybe"), "xla"),
])
def test_bad_settings_are_rejected(tiny_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        perturb(tiny_model, X, Y, **{**OK, **kwargs})


def test_start_outside_the_eps_ball_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="more than epsilon"):
        perturb(tiny_model, X, Y, x_start=X + 0.31, **OK)
    with pytest.raises(ValueError, match=r"x_start must have the images' shape"):
        perturb(tiny_model, X, Y, x_start=X[:2], **OK)


@pytest.mark.parametrize("kwargs,match", [
    (dict(bounds=(1.0, 0.0)), r"bounds must be \(lo, hi\) with finite lo < hi"),
    (dict(bounds=(0.0, float("inf"))), "bounds must be"), (dict(bounds=(0.0,)), "bounds must be"),
    (dict(bounds=(0.0, 0.4)), r"pixels must be in \[0, 0.4\] \(bounds\)"),
    (dict(y_target=Y), "y_target must differ from y"),
    (dict(y_target=np.array([0, 1, 10])), r"y_target must be in \[0, 10\)"),
    (dict(y_target=np.array([0, 1])), "y_target must have the labels' shape"),
    (dict(loss="hinge"), "unknown loss 'hinge'"), (dict(norm="l1"), "norm must be one of"),
    (dict(keep="last"), "keep must be one of"), (dict(kappa=5.0), "kappa .* cw loss only"),
    (dict(loss=lambda logits, y: logits), "loss callable must return one value per example"),
    (dict(method="blob", loss="dlr"), "needs c"),
    (dict(norm="l2", x_start=X + 0.5 * np.eye(3, 784, dtype=np.float32)), "more than epsilon"),
])
def test_bad_new_settings_are_rejected_with_one_line(tiny_model, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        perturb(tiny_model, X, Y, **{**OK, **kwargs})
    assert "\n" not in str(err.value)


def test_images_of_another_shape_than_the_model_input_are_rejected(cifar_cnn):
    x = np.full((2, 32, 32, 1), 100.0, np.float32)
    with pytest.raises(ValueError, match=r"shape \(N, 32, 32, 3\) to match the model's input"):
        perturb(cifar_cnn, x, np.array([1, 2]), bounds=(0, 255), **OK)


def test_dlr_on_a_two_class_model_is_rejected():
    import keras
    inputs = keras.Input((784,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="needs at least 3 classes"):
        perturb(model, X, np.array([0, 1, 1]), loss="dlr", **OK)
