"""The peer PGD implementations, each wrapped around the SAME Keras model's weights.

Every peer function has the signature ``(model, x, y, eps, a, steps, batch_size) -> x_adv``
(numpy float32 in, numpy float32 out), starts at ``x`` (no random start), maximises the
cross-entropy of the true label and steps with ``a * sign(gradient)`` inside the eps ball
and [0, 1]. Building the peer's wrapper (graph, session, estimator) is done once by
``make_peer`` and is not timed.
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

PeerFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
PEERS = ("tf1", "cleverhans", "art", "foolbox")


def _batches(n: int, bs: int):
    for start in range(0, n, bs):
        yield slice(start, min(start + bs, n))


# --------------------------------------------------------------------------- TF1 loop
class TF1Loop:
    """The challenge's ``pgd_attack.py`` execution model: a ``tf.compat.v1`` graph of the
    challenge CNN (rebuilt op for op as the challenge's ``model.py`` writes it: conv2d /
    max_pool / matmul, weights copied from the Keras model into ``tf.compat.v1`` variables),
    ``tf.gradients`` of the summed xent, ONE ``session.run`` of that gradient per step,
    ``np.sign`` / ``np.clip`` in numpy."""

    def __init__(self, model: keras.Model):
        v1 = tf.compat.v1
        w = [np.asarray(v) for v in model.get_weights()]
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.x = v1.placeholder(tf.float32, [None, 784])
            self.y = v1.placeholder(tf.int64, [None])
            var = [v1.Variable(v, dtype=tf.float32) for v in w]
            h = tf.reshape(self.x, [-1, 28, 28, 1])
            h = tf.nn.relu(tf.nn.conv2d(h, var[0], strides=[1, 1, 1, 1], padding="SAME") + var[1])
            h = tf.nn.max_pool2d(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
            h = tf.nn.relu(tf.nn.conv2d(h, var[2], strides=[1, 1, 1, 1], padding="SAME") + var[3])
            h = tf.nn.max_pool2d(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
            h = tf.reshape(h, [-1, 7 * 7 * 64])
            h = tf.nn.relu(tf.matmul(h, var[4]) + var[5])
            self.logits = tf.matmul(h, var[6]) + var[7]
            xent = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=self.y, logits=self.logits))
            self.grad = tf.gradients(xent, self.x)[0]
            init = v1.global_variables_initializer()
        self.sess = v1.Session(graph=self.graph)
        self.sess.run(init)

    def __call__(self, x, y, eps, a, steps, batch_size):
        out = np.empty_like(x)
        for s in _batches(len(x), batch_size):
            x_nat, labels = x[s], y[s]
            x_adv = np.copy(x_nat)
            for _ in range(steps):
                grad = self.sess.run(self.grad, feed_dict={self.x: x_adv, self.y: labels})
                x_adv += a * np.sign(grad)
                x_adv = np.clip(x_adv, x_nat - eps, x_nat + eps)
                x_adv = np.clip(x_adv, 0, 1)
            out[s] = x_adv
        return out


# --------------------------------------------------------------------------- cleverhans
def make_cleverhans(model: keras.Model) -> Callable:
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    def run(x, y, eps, a, steps, batch_size):
        out = np.empty_like(x)
        for s in _batches(len(x), batch_size):
            out[s] = projected_gradient_descent(
                model, tf.constant(x[s]), eps, a, steps, np.inf, clip_min=0.0, clip_max=1.0,
                y=tf.constant(y[s]), rand_init=False, sanity_checks=False).numpy()
        return out
    return run


# --------------------------------------------------------------------------- ART
def make_art_classifier(model: keras.Model):
    from art.estimators.classification import TensorFlowV2Classifier
    return TensorFlowV2Classifier(
        model=model, nb_classes=10, input_shape=(784,), clip_values=(0.0, 1.0),
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def make_art(model: keras.Model) -> Callable:
    from art.attacks.evasion import ProjectedGradientDescent
    classifier = make_art_classifier(model)

    def run(x, y, eps, a, steps, batch_size):
        attack = ProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=a, max_iter=steps, targeted=False,
            num_random_init=0, batch_size=batch_size, random_eps=False, verbose=False)
        return attack.generate(x=x, y=y.astype(np.int64)).astype(np.float32)
    return run


def make_art_apgd(model: keras.Model) -> Callable:
    """ART's AutoProjectedGradientDescent (APGD-CE), one random init, step 2 eps (Croce & Hein)."""
    from art.attacks.evasion import AutoProjectedGradientDescent
    classifier = make_art_classifier(model)

    def run(x, y, eps, a, steps, batch_size):
        attack = AutoProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=steps, targeted=False,
            nb_random_init=1, batch_size=batch_size, loss_type="cross_entropy", verbose=False)
        return attack.generate(x=x, y=y.astype(np.int64)).astype(np.float32)
    return run


# --------------------------------------------------------------------------- foolbox
def make_foolbox(model: keras.Model) -> Callable:
    import foolbox as fb
    fmodel = fb.TensorFlowModel(model, bounds=(0.0, 1.0))

    def run(x, y, eps, a, steps, batch_size):
        attack = fb.attacks.LinfPGD(abs_stepsize=a, steps=steps, random_start=False)
        out = np.empty_like(x)
        for s in _batches(len(x), batch_size):
            _, clipped, _ = attack(fmodel, tf.constant(x[s]), tf.constant(y[s].astype(np.int64)),
                                   epsilons=eps)
            out[s] = clipped.numpy()
        return out
    return run


def make_peer(name: str, model: keras.Model) -> Callable:
    if name == "tf1":
        return TF1Loop(model)
    if name == "cleverhans":
        return make_cleverhans(model)
    if name == "art":
        return make_art(model)
    if name == "art_apgd":
        return make_art_apgd(model)
    if name == "foolbox":
        return make_foolbox(model)
    raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS + ('art_apgd',))}")
