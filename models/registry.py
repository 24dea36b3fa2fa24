"""Architecture names -> builders, and the TF1 variable layout of each architecture."""
from typing import Callable

import keras

from models.daa_fashion import daa_fashion
from models.madry_cifar10 import madry_cifar10
from models.madry_mnist import madry_mnist

ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "madry_mnist": madry_mnist,
    "daa_fashion": daa_fashion,
    "madry_cifar10": madry_cifar10,
}


def build_model(arch: str, seed: int | None = None) -> keras.Model:
    """Builds architecture ``arch`` (a key of ``ARCHITECTURES``) with fresh weights."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](seed=seed)
