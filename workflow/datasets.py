"""The evaluation protocol of each dataset, declared once: what ``eval.py``,
``workflow.evaluate`` and the experiments read for pixel range, image shape, default attack
settings, default model and where to get a missing model or data set.

No TensorFlow is imported here, so the scripts can refuse a missing model or data set in one
line before anything heavy loads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mnist_challenge_compat.errors import CompatError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODELS = PACKAGE_ROOT / "models" / "pretrained"
CHALLENGE_CONFIGS = PACKAGE_ROOT / "mnist_challenge_compat" / "data"


@dataclass(frozen=True)
class DatasetProtocol:
    """One dataset's challenge protocol.

    Attributes:
      name: the ``load_dataset`` name (``mnist``, ``fashion_mnist``, ``cifar10``).
      display: the name in prose and tables (``CIFAR-10``).
      arch: the architecture of ``models.ARCHITECTURES`` that a checkpoint for this dataset
        is expected to be (``--arch`` overrides).
      image_shape: one image as ``load_dataset`` returns it, e.g. ``(784,)`` or ``(32, 32, 3)``.
      bounds: pixel range ``(lo, hi)`` of those images; eps and step sizes are on this scale.
      epsilon, steps, step_size: the challenge's evaluation attack, used where neither the
        flags nor the model's ``config.json`` (epsilon only) give them.
      num_eval_examples: test images of a full challenge submission.
      default_model_dir: the model shipped with the project, or None (none ships).
      challenge_config: the challenge's ``config.json`` shipped in this package.
      model_hint: how to get a model when none is given or found (one sentence).
      data_hint: how to get the test set when it is not found (one sentence), or None when
        one ships (the MNIST test set) or a system package provides it.
    """

    name: str
    display: str
    arch: str
    image_shape: tuple[int, ...]
    bounds: tuple[float, float]
    epsilon: float
    steps: int
    step_size: float
    num_eval_examples: int
    default_model_dir: Path | None
    challenge_config: Path | None
    model_hint: str | None = None
    data_hint: str | None = None

    @property
    def scale(self) -> str:
        """``"0-1"`` or ``"0-255"``: the pixel scale eps is given on."""
        return f"{self.bounds[0]:g}-{self.bounds[1]:g}"


_CIFAR10_MODEL_HINT = (
    "get the CIFAR-10 challenge's adversarially trained model with `python -m "
    "mnist_challenge_compat.model_download cifar10_adv_trained` (it prints the folder to pass "
    "as --{flag}; offline, unzip adv_trained.zip of github.com/MadryProj/"
    "cifar10_challenge_models and pass its folder)")
_CIFAR10_DATA_HINT = (
    "put the CIFAR-10 binary test batch (test_batch.bin, from cifar-10-binary.tar.gz of "
    "www.cs.toronto.edu/~kriz/cifar.html, folder cifar-10-batches-bin) in a folder and pass "
    "--{flag}=<that folder>; or, with internet, fetch tfds cifar10 once: python -c \"import "
    "tensorflow_datasets as tfds; tfds.load('cifar10')\"")

PROTOCOLS: dict[str, DatasetProtocol] = {
    "mnist": DatasetProtocol(
        name="mnist", display="MNIST", arch="madry_mnist", image_shape=(784,),
        bounds=(0.0, 1.0), epsilon=0.3, steps=40, step_size=0.01, num_eval_examples=10000,
        default_model_dir=SHIPPED_MODELS / "madry_mnist",
        challenge_config=CHALLENGE_CONFIGS / "challenge" / "config.json"),
    "fashion_mnist": DatasetProtocol(
        name="fashion_mnist", display="Fashion-MNIST", arch="daa_fashion", image_shape=(784,),
        bounds=(0.0, 1.0), epsilon=0.3, steps=40, step_size=0.01, num_eval_examples=10000,
        default_model_dir=SHIPPED_MODELS / "daa_fashion", challenge_config=None),
    # The CIFAR-10 challenge's config.json: eps 8, 10 steps of 2 on the 0-255 scale.
    "cifar10": DatasetProtocol(
        name="cifar10", display="CIFAR-10", arch="madry_cifar10", image_shape=(32, 32, 3),
        bounds=(0.0, 255.0), epsilon=8.0, steps=10, step_size=2.0, num_eval_examples=10000,
        default_model_dir=None,
        challenge_config=CHALLENGE_CONFIGS / "cifar10_challenge" / "config.json",
        model_hint=_CIFAR10_MODEL_HINT, data_hint=_CIFAR10_DATA_HINT),
}

DATASET_NAMES = tuple(PROTOCOLS)
ARCH_DATASETS = {p.arch: p.name for p in PROTOCOLS.values()}


def protocol(dataset: str) -> DatasetProtocol:
    """The protocol of ``dataset``.

    Raises:
      ValueError: an unknown dataset name.
    """
    if dataset not in PROTOCOLS:
        raise ValueError(f"dataset must be one of {', '.join(PROTOCOLS)}, got {dataset!r}")
    return PROTOCOLS[dataset]


def _has_checkpoint(path: Path) -> bool:
    """A checkpoint prefix or a folder with a TF1 ``checkpoint`` state file or ``.index``."""
    if path.is_dir():
        return (path / "checkpoint").is_file() or any(path.glob("*.index"))
    return Path(f"{path}.index").is_file()


def require_model_dir(dataset: str, model_dir: str | os.PathLike | None,
                      flag: str = "model_dir") -> Path:
    """The model to attack: ``model_dir``, else the shipped model of ``dataset``.

    Raises:
      CompatError: one line when no model is given and none ships, or the given path holds no
        checkpoint, saying how to get one (for a dataset with a ``model_hint``).
    """
    spec = protocol(dataset)
    if model_dir is None:
        if spec.default_model_dir is not None:
            return spec.default_model_dir
        raise CompatError(f"no {spec.display} model given (none ships with the project): "
                          f"{spec.model_hint.format(flag=flag)}")
    path = Path(model_dir)
    if spec.model_hint is not None and not _has_checkpoint(path):
        raise CompatError(f"{path}: no {spec.display} checkpoint there; "
                          f"{spec.model_hint.format(flag=flag)}")
    return path


def require_data(dataset: str, data_dir: str | os.PathLike | None, flag: str = "data_dir") -> str:
    """Where the test split of ``dataset`` will be read from (``dataset_source``'s line),
    checked before anything is loaded.

    Raises:
      CompatError: one line when the data is not there (a dataset with a ``data_hint``: no
        ``data_dir`` and no prepared tensorflow-datasets copy, or a ``data_dir`` without the
        files), saying where to put it.
    """
    from mnist_challenge_compat.data import dataset_source
    spec = protocol(dataset)
    try:
        source = dataset_source(dataset, "test", data_dir)
    except CompatError as err:
        if spec.data_hint is None:
            raise
        raise CompatError(f"{err}; {spec.data_hint.format(flag=flag)}") from None
    if spec.data_hint is not None and "tensorflow_datasets" in source \
            and not _tfds_prepared(dataset):
        # tfds would try to download here (offline: minutes of retries): refuse at once.
        raise CompatError(f"no {spec.display} test set found (no data_dir, no prepared "
                          f"tensorflow-datasets copy): {spec.data_hint.format(flag=flag)}")
    return source


def _tfds_prepared(dataset: str) -> bool:
    """Whether tensorflow-datasets holds ``dataset`` on disk already (read from the file
    system: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``, ``<name>/<version>/``)."""
    root = Path(os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets")
    return any((root / dataset).glob("*/dataset_info.json"))
