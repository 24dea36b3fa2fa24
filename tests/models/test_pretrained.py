"""The shipped adversarially trained checkpoints (``models/pretrained/<arch>``).

Each must be a plain challenge checkpoint (no optimizer slots) that ``load_model`` reads AND
that the REAL published TF1 graph restores with equal logits, and its clean accuracy on the
first 1,000 real test images must agree with its model card.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from attacks import predict
from mnist_challenge_compat import latest_checkpoint, load_dataset, load_model
from mnist_challenge_compat.checkpoint import is_model_variable_name
from tests.conftest import require_fashion_mnist
from tests.tf1_reference import meta_for, restore_model_vars

PRETRAINED = Path(__file__).resolve().parents[2] / "models" / "pretrained"

# folder -> (arch, dataset, epsilon trained at, minimum clean accuracy on the first 1,000
# test images)
SHIPPED = {
    "madry_mnist": ("madry_mnist", "mnist", 0.3, 0.96),
    "daa_fashion": ("daa_fashion", "fashion_mnist", 0.1, 0.78),
    "daa_fashion_eps02": ("daa_fashion", "fashion_mnist", 0.2, 0.80),
}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request) -> tuple[str, Path, str]:
    """(folder, model directory, checkpoint prefix) of one shipped model."""
    arch = request.param
    model_dir = PRETRAINED / arch
    prefix = latest_checkpoint(model_dir)
    if prefix is None:
        pytest.fail(f"{model_dir}: no checkpoint (state file 'checkpoint' + .index/.data)")
    return arch, model_dir, prefix


def first_test_images(dataset: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images of ``dataset``; skips when Fashion-MNIST is not installed."""
    if dataset == "fashion_mnist":
        require_fashion_mnist()
    x, y = load_dataset(dataset, "test")
    return x[:n], y[:n]


def test_shipped_checkpoint_has_model_variables_only(shipped):
    _, model_dir, prefix = shipped
    names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    assert all(is_model_variable_name(n) or n == "global_step" for n in names), sorted(names)
    assert sorted(p.name for p in model_dir.glob("*.index")) == [Path(prefix).name + ".index"]


def test_real_tf1_graph_restores_the_shipped_checkpoint(shipped, shared_data):
    folder, _, prefix = shipped
    arch, dataset = SHIPPED[folder][:2]
    x, _ = first_test_images(dataset, 200)
    keras_logits = np.asarray(load_model(prefix, arch=arch)(x))
    with restore_model_vars(meta_for(arch, shared_data), prefix) as graph:
        np.testing.assert_allclose(graph.logits(x), keras_logits, rtol=1e-4, atol=1e-4)


def test_config_and_card_describe_the_model(shipped):
    folder, model_dir, _ = shipped
    arch, _, epsilon, _ = SHIPPED[folder]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["epsilon"] == pytest.approx(epsilon)
    assert config["arch"] == arch
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert "python train.py" in card and "PGD-40" in card


def test_clean_accuracy_matches_the_card(shipped):
    folder, model_dir, _ = shipped
    _, dataset, _, minimum = SHIPPED[folder]
    x, y = first_test_images(dataset, 1000)
    accuracy = float(np.mean(predict(load_model(model_dir), x) == y))
    assert accuracy >= minimum


def test_the_paper_regime_fashion_model_holds_its_cards_pgd40_accuracy_at_eps_0_2():
    """The card's 71.21% PGD-40 (eps 0.2) on all 10,000 images; on the first 200 (a seed-0
    random start) at least the issue's 65% target."""
    import attacks
    model = load_model(PRETRAINED / "daa_fashion_eps02")
    x, y = first_test_images("fashion_mnist", 200)
    x_adv = attacks.perturb(model, x, y, method="pgd", epsilon=0.2, steps=40, step_size=0.01,
                            seed=0)
    assert np.abs(x_adv - x).max() <= 0.2 + 1e-6
    assert float(np.mean(predict(model, x_adv) == y)) >= 0.65
