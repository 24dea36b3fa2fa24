"""``models.predict_labels``: the one batched prediction used by attacks, eval and the verifier."""
import keras
import numpy as np
import pytest

from models import predict_labels


@pytest.fixture(scope="module")
def small_cnn():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(7)(keras.layers.Flatten()(hidden)))


@pytest.mark.parametrize("batch_size", [1, 4, 13, 200])
def test_labels_equal_the_argmax_of_one_full_forward_pass_for_any_batch_size(small_cnn, batch_size):
    x = np.random.default_rng(0).uniform(0, 255, (13, 8, 8, 3))
    expected = np.argmax(np.asarray(small_cnn(x.astype(np.float32), training=False)), axis=1)
    labels = predict_labels(small_cnn, x, batch_size)
    assert labels.dtype == np.int64 and labels.shape == (13,)
    np.testing.assert_array_equal(labels, expected)


def test_no_images_give_no_labels(small_cnn):
    assert predict_labels(small_cnn, np.zeros((0, 8, 8, 3))).shape == (0,)


def test_a_model_that_does_not_return_batch_by_classes_logits_is_named():
    with pytest.raises(ValueError, match=r"model returned shape \(2,\) for a batch of 2"):
        predict_labels(lambda x, training=False: np.zeros(len(x)), np.zeros((2, 3)))


def test_batch_size_below_one_is_refused(small_cnn):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        predict_labels(small_cnn, np.zeros((2, 8, 8, 3)), 0)
