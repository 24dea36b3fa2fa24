"""Fixtures for attack tests: the real challenge graph with random weights, real test images."""
import keras
import numpy as np
import pytest

from mnist_challenge_compat import load_dataset, load_model
from tests.tf1_reference import TF1Model, make_tf1_checkpoint


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    """The official MNIST test set: float32 (10000, 784) in [0, 1], int64 (10000,)."""
    return load_dataset("mnist", "test", mnist_dir)


@pytest.fixture(scope="session")
def challenge_pair(tmp_path_factory, secret_meta):
    """(Keras model from load_model, TF1Model of the real graph) sharing one checkpoint."""
    out = tmp_path_factory.mktemp("challenge_ckpt")
    prefix = make_tf1_checkpoint(secret_meta, out, seed=7)
    keras_model = load_model(out)
    tf1 = TF1Model(secret_meta, prefix)
    yield keras_model, tf1
    tf1.close()


@pytest.fixture(scope="session")
def shipped_mnist():
    """The robust MNIST model shipped in models/pretrained (adversarially trained)."""
    from tests.conftest import REPO_ROOT
    return load_model(REPO_ROOT / "models" / "pretrained" / "madry_mnist")


@pytest.fixture(scope="session")
def cifar_cnn():
    """A small NHWC CNN on 32x32x3 images with pixels on the 0-255 scale (random weights)."""
    keras.utils.set_random_seed(8)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inputs)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


@pytest.fixture(scope="session")
def tiny_model():
    """A small smooth model (784 -> 10) for fast invariant and gradient checks."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((784,))
    hidden = keras.layers.Dense(32, activation="tanh")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(hidden))


@pytest.fixture(scope="session")
def held_out_batch(mnist_test):
    """40 real test images (1000-1039) and their labels, for attacks on the shipped model."""
    x, y = mnist_test
    return x[1000:1040], y[1000:1040]


@pytest.fixture(scope="session")
def tiny_batch(tiny_model, mnist_test):
    """12 real test images labelled with tiny_model's own predictions (all correct)."""
    from attacks import predict
    x = mnist_test[0][:12]
    return x, predict(tiny_model, x)


@pytest.fixture(scope="session")
def trained_mnist(mnist_dir):
    """The challenge CNN trained naturally for 2 epochs on the 10,000 real training images."""
    x, y = load_dataset("mnist", "train", mnist_dir)
    import models
    model = models.build_model("madry_mnist", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keras.utils.set_random_seed(0)
    model.fit(x, y, batch_size=50, epochs=2, verbose=0, shuffle=True)
    return model


def numpy_zeta(v: np.ndarray) -> np.ndarray:
    """zeta(v) = sign(v) where |v| < 1, round(v) elsewhere."""
    return np.where(np.abs(v) < 1, np.sign(v), np.round(v))


def numpy_quantize(g: np.ndarray, b: float) -> np.ndarray:
    """qg = zeta(b * g / max|g|) per row; rows of zeros stay zero."""
    m = np.abs(g).max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(m > 0, g.dtype.type(b) * (g / m), 0)
    return numpy_zeta(v).astype(g.dtype)


def numpy_blob(x: np.ndarray, g: np.ndarray, c: float) -> np.ndarray:
    """The DAA-BLOB direction in float64, written from the formula (pairwise loops avoided)."""
    x = x.astype(np.float64)
    g = g.astype(np.float64)
    m = len(x)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    h2 = 0.5 * np.median(d) / np.log(m)
    k = np.exp(-d / (2 * h2))
    r = np.stack([(k[i][:, None] * (x[i][None, :] - x)).sum(0) for i in range(m)]) / h2
    return g + (c / m) * (k @ g - r)


def numpy_project(x, x_nat, eps):
    return np.clip(np.clip(x, x_nat - eps, x_nat + eps), 0, 1)
