"""Shared fixtures: the real data in ``../shared/data`` (override with ``QG_SHARED_DATA``)."""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QG_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (set QG_SHARED_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real data (MNIST, challenge and DAA checkpoint metadata)."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def mnist_dir(shared_data) -> Path:
    """The challenge's ``MNIST_data`` layout: official test set, first 10,000 training images."""
    return _require(shared_data / "mnist")


@pytest.fixture(scope="session")
def secret_meta(shared_data) -> Path:
    """The real MNIST Challenge secret model's ``.meta`` (TF1 MetaGraphDef)."""
    return _require(shared_data / "mnist_challenge" / "secret" / "checkpoint-99900.meta")


@pytest.fixture(scope="session")
def daa_meta(shared_data) -> Path:
    """The real DAA Fashion-MNIST model's ``.meta``."""
    return _require(shared_data / "daa_fashion_mnist" / "a_very_robust_model" / "checkpoint-99900.meta")


@pytest.fixture(scope="session")
def cifar10_meta(shared_data) -> Path:
    """The CIFAR-10 challenge graph's ``.meta`` (rebuilt from its public code, no weights)."""
    return _require(shared_data / "cifar10_challenge" / "adv_trained_graph"
                    / "checkpoint-70000.meta")
