"""Shared fixtures: the real data in ``../shared/data`` (override with ``QG_SHARED_DATA``) and
Debian's Fashion-MNIST (override with ``QG_FASHION_MNIST_DIR``).

A test that needs data which is not there is SKIPPED with a reason naming the missing path and
how to provide it; every other test still runs.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest  # noqa: E402

from workflow.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # the test log without TensorFlow's start-up lines (QG_TF_LOG=1 shows them)

from mnist_challenge_compat.data import FASHION_DIR_ENV, fashion_mnist_dir  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QG_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
FASHION_INSTALL = "apt-get install -y dataset-fashion-mnist"


def assert_help_lists(command: Sequence[str], flag: str) -> None:
    """``command --help`` and ``command --helpfull`` (``command`` after the Python interpreter,
    run from the checkout) exit 0 and print ``--flag`` with its help."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    for help_flag in ("--help", "--helpfull"):
        proc = subprocess.run([sys.executable, *command, help_flag], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (help_flag, proc.stdout[-1000:], proc.stderr[-1000:])
        assert f"--{flag}:" in proc.stdout, (help_flag, proc.stdout[-2000:])


def _require(path: Path) -> Path:
    """``path``, or a skip naming it when the shared data is not there."""
    if not path.exists():
        pytest.skip(f"shared test data missing: {path} (put the shared data folder at "
                    f"{REPO_ROOT.parent / 'shared' / 'data'} or set QG_SHARED_DATA to it)")
    return path


def require_fashion_mnist() -> Path:
    """The Fashion-MNIST IDX folder ``load_dataset`` reads by default, or a skip naming the
    package that provides it."""
    directory = fashion_mnist_dir()
    if not directory.is_dir():
        pytest.skip(f"Fashion-MNIST missing: {directory} (install it with `{FASHION_INSTALL}` "
                    f"or set {FASHION_DIR_ENV} to a folder with its four IDX files)")
    return directory


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


@pytest.fixture()
def fashion_dir() -> Path:
    """Debian's Fashion-MNIST folder (or ``$QG_FASHION_MNIST_DIR``); skips when it is missing."""
    return require_fashion_mnist()


def write_cifar10_batch(path: Path, images, labels) -> Path:
    """Writes a CIFAR-10 binary batch file: per image one label byte, then the 1,024 red, 1,024
    green and 1,024 blue bytes (rows top to bottom), from uint8 ``(N, 32, 32, 3)`` images."""
    import numpy as np
    images = np.asarray(images, dtype=np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(records.tobytes())
    return path


@pytest.fixture(scope="session", autouse=True)
def calibration_cache(tmp_path_factory) -> Path:
    """The tests' own compute-dtype calibration cache (``QG_CACHE_DIR``, inherited by the
    scripts they run), so that no test reads or writes the user's cache."""
    directory = tmp_path_factory.mktemp("qg_cache")
    previous = os.environ.get("QG_CACHE_DIR")
    os.environ["QG_CACHE_DIR"] = str(directory)
    yield directory
    if previous is None:
        os.environ.pop("QG_CACHE_DIR", None)
    else:
        os.environ["QG_CACHE_DIR"] = previous
