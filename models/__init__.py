"""Keras models of the MNIST Challenge and DAA papers.

Every model takes flat ``(N, 784)`` float32 images in [0, 1] and returns ``(N, 10)`` logits.
This package knows only Keras layers: checkpoint formats live in ``mnist_challenge_compat``.
"""
from models.registry import ARCHITECTURES, build_model
from models.madry_mnist import madry_mnist
from models.daa_fashion import daa_fashion
from models.layers import InferenceBatchNormalization
from models.predict import predict_labels

__all__ = ["ARCHITECTURES", "build_model", "madry_mnist", "daa_fashion",
           "InferenceBatchNormalization", "predict_labels"]
