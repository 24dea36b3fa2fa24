"""Keras models of the MNIST and CIFAR-10 Challenges and the DAA paper.

Every model returns ``(N, 10)`` float32 logits. The MNIST / Fashion-MNIST models take flat
``(N, 784)`` float32 images in [0, 1]; the CIFAR-10 model ``(N, 32, 32, 3)`` float32 images on
the 0-255 scale.
This package knows only Keras layers: checkpoint formats live in ``mnist_challenge_compat``.
"""
from models.registry import ARCHITECTURES, build_model
from models.madry_mnist import madry_mnist
from models.daa_fashion import daa_fashion
from models.madry_cifar10 import madry_cifar10
from models.layers import (ChannelZeroPadding, InferenceBatchNormalization,
                           PerImageStandardization)
from models.predict import predict_labels

__all__ = ["ARCHITECTURES", "build_model", "madry_mnist", "daa_fashion", "madry_cifar10",
           "InferenceBatchNormalization", "PerImageStandardization", "ChannelZeroPadding",
           "predict_labels"]
