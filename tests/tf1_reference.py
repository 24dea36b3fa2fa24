"""Test helper: the REAL published TF1 graphs (``.meta`` files), run in graph mode.

Everything happens in a private ``tf.Graph`` with its own ``tf.compat.v1.Session``, so eager
mode (used by the rest of the project) is untouched. Used to make genuine TF1 checkpoints
(``make_tf1_checkpoint``), to compute reference logits / input gradients (``TF1Model``) and
to prove that checkpoints written by ``mnist_challenge_compat`` restore in the real graph
(``restore_model_vars`` and ``TF1Model`` with the graph's full Saver).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow as tf

# (images, labels, logits) of the DAA graph, the MNIST challenge graph, the CIFAR-10 one
GRAPH_TENSORS = (("Placeholder:0", "Placeholder_1:0", "add_5:0"),
                 ("Placeholder:0", "Placeholder_1:0", "add_3:0"),
                 ("input/Placeholder:0", "input/Placeholder_1:0", "logit/xw_plus_b:0"))
SLOT_SUFFIXES = ("/Adam", "/Adam_1", "/Momentum")
OPTIMIZER_SCALARS = ("beta1_power", "beta2_power")
ADAM_BETAS = {"beta1_power": 0.9, "beta2_power": 0.999}
# The CIFAR-10 ResNet's random kernels: N(0, (RESNET_KERNEL_SCALE / sqrt(fan_in))^2). At 1 (a
# variance-preserving branch) the random 30-layer network is so rough that a 1e-6 relative
# change of an input moves its input gradient by up to 1e-2 (float32 rounding flips leaky-ReLU
# kinks that matter), so no two implementations could agree to 1e-5. At 1/8 each residual
# branch still adds about 2% to its unit's output (far above any tested tolerance) and the
# gradient moves by 1e-6.
RESNET_KERNEL_SCALE = 0.125

v1 = tf.compat.v1


def _op_name(var) -> str:
    return var.name.split(":")[0]


def is_model_variable(name: str) -> bool:
    """Model weights and BN moving statistics (not slots, beta powers or global_step)."""
    return not (name.endswith(SLOT_SUFFIXES) or name in OPTIMIZER_SCALARS
                or name == "global_step")


def _truncated_normal(rng: np.random.Generator, shape, std: float) -> np.ndarray:
    values = rng.normal(0.0, std, size=shape)
    bad = np.abs(values) > 2 * std
    while bad.any():
        values[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(values) > 2 * std
    return values


def _random_value(name: str, shape: tuple, step: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible random value for each kind of TF1 variable (see make_tf1_checkpoint)."""
    if name == "global_step":
        return np.asarray(step, dtype=np.int64)
    if name in ADAM_BETAS:
        return np.asarray(ADAM_BETAS[name] ** (step + 1), dtype=np.float32)
    if name.endswith("/Momentum"):  # float32 draws: the CIFAR-10 network has 46M of them
        return rng.standard_normal(size=shape, dtype=np.float32) * np.float32(1e-3)
    if name.endswith("/Adam"):
        values = rng.normal(0.0, 1e-3, size=shape)
    elif name.endswith("/Adam_1"):
        values = rng.uniform(0.0, 1e-5, size=shape)
    elif name.endswith("/gamma"):
        values = 1.0 + rng.normal(0.0, 0.1, size=shape)
    elif name.endswith("/beta"):
        values = rng.normal(0.0, 0.1, size=shape)
    elif name.endswith("/moving_mean"):
        values = rng.normal(0.0, 0.1, size=shape)
    elif name.endswith("/moving_variance"):
        values = rng.uniform(0.5, 1.5, size=shape)
    elif len(shape) == 1:  # bias
        values = 0.1 + rng.normal(0.0, 0.02, size=shape)
    elif name.endswith("/DW"):  # the CIFAR-10 ResNet, see make_tf1_checkpoint
        fan_in = int(np.prod(shape[:-1]))
        scale = np.float32(RESNET_KERNEL_SCALE / np.sqrt(fan_in))
        return rng.standard_normal(size=shape, dtype=np.float32) * scale
    else:  # conv or dense kernel, as tf.truncated_normal(stddev=0.1)
        values = _truncated_normal(rng, shape, 0.1)
    return np.asarray(values, dtype=np.float32)


def make_tf1_checkpoint(meta_path: str | os.PathLike, out_dir: str | os.PathLike,
                        seed: int, step: int = 99900) -> str:
    """Writes a genuine TF1 checkpoint of the real graph ``meta_path`` with random values.

    EVERY variable gets a value from ``numpy.random.default_rng(seed)``: kernels truncated
    N(0, 0.1) (the CIFAR-10 ResNet's ``.../DW``: N(0, (RESNET_KERNEL_SCALE / sqrt(fan_in))^2)),
    biases 0.1 + N(0, 0.02),
    BN gamma 1 + N(0, 0.1), beta N(0, 0.1), moving_mean N(0, 0.1), moving_variance
    U(0.5, 1.5), Adam m and Momentum accumulators N(0, 1e-3), Adam v U(0, 1e-5),
    ``beta{1,2}_power = beta ** (step + 1)``, ``global_step = step`` (int64).
    Saved by the graph's own ``tf.compat.v1.train.Saver`` as ``out_dir/checkpoint-<step>``
    plus the ``checkpoint`` state file (absolute paths, as TF1 writes for an absolute dir).

    Returns:
        The checkpoint prefix.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        saver = v1.train.import_meta_graph(os.fspath(meta_path), clear_devices=True)
        with v1.Session(graph=graph) as sess:
            variables = v1.global_variables()
            # what Variable.load does, without its deprecation warning; one run for all (each
            # run with new feeds prunes the whole graph again: 80 ms for the CIFAR-10 one)
            feeds = {var.initializer.inputs[1]: _random_value(_op_name(var),
                                                              tuple(var.shape.as_list()),
                                                              step, rng)
                     for var in variables}
            sess.run([var.initializer for var in variables], feeds)
            return saver.save(sess, os.path.join(out_dir, "checkpoint"), global_step=step,
                              write_meta_graph=False)


@contextlib.contextmanager
def _v1_control_flow() -> Iterator[None]:
    """TF1 control flow while building gradients: the CIFAR-10 graph's ``tf.map_fn`` is a v1
    while loop over v1 TensorArrays, whose gradient TF2's default (v2) TensorArray cannot
    build. The process-wide switch is restored afterwards."""
    was_v2 = v1.control_flow_v2_enabled()
    v1.disable_control_flow_v2()
    try:
        yield
    finally:
        if was_v2:
            v1.enable_control_flow_v2()


def _graph_tensors(graph: tf.Graph) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(images, labels, logits) of the first ``GRAPH_TENSORS`` entry whose logits tensor
    exists with shape (None, 10)."""
    for names in GRAPH_TENSORS:
        try:
            tensors = tuple(graph.get_tensor_by_name(name) for name in names)
        except KeyError:
            continue
        if tensors[2].shape.as_list() == [None, 10]:
            return tensors
    raise ValueError("no (None, 10) logits tensor among "
                     + ", ".join(names[2] for names in GRAPH_TENSORS))


class TF1Model:
    """A real TF1 graph (imported from ``.meta``) restored from a checkpoint.

    Args:
        meta_path: the published ``checkpoint-99900.meta``.
        checkpoint_prefix: checkpoint to restore.
        model_vars_only: restore only model weights and BN moving statistics with
            ``Saver(var_list=...)`` (no optimizer slots, beta powers or global_step, which are
            then left uninitialised); otherwise the graph's own full Saver restores everything.
    """

    def __init__(self, meta_path: str | os.PathLike, checkpoint_prefix: str | os.PathLike,
                 model_vars_only: bool = False) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            full_saver = v1.train.import_meta_graph(os.fspath(meta_path), clear_devices=True)
            self.x, self.y, self.logits_t = _graph_tensors(self.graph)
            self.variables = {_op_name(v): v for v in v1.global_variables()}
            if model_vars_only:
                saver = v1.train.Saver(var_list={n: v for n, v in self.variables.items()
                                                 if is_model_variable(n)})
            else:
                saver = full_saver
            self._gradients: dict[str, tf.Tensor] = {}
            self.sess = v1.Session(graph=self.graph)
            saver.restore(self.sess, os.fspath(checkpoint_prefix))

    def __enter__(self) -> "TF1Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Closes the session."""
        self.sess.close()

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 10)`` logits of float32 images (``(N, 784)`` in [0, 1] for the MNIST
        graphs, ``(N, 32, 32, 3)`` on the 0-255 scale for the CIFAR-10 one)."""
        return self.sess.run(self.logits_t, {self.x: np.asarray(x, np.float32)})

    def _gradient_tensor(self, loss: str) -> tf.Tensor:
        if loss not in self._gradients:
            with self.graph.as_default():
                z = self.logits_t
                if loss == "xent":
                    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=self.y, logits=z)
                elif loss == "cw":  # the challenge's LinfPGDAttack 'cw' loss
                    mask = tf.one_hot(self.y, 10, on_value=1.0, off_value=0.0,
                                      dtype=tf.float32)
                    correct = tf.reduce_sum(mask * z, axis=1)
                    wrong = tf.reduce_max((1 - mask) * z - 1e4 * mask, axis=1)
                    per_example = -tf.nn.relu(correct - wrong + 50)
                else:
                    raise ValueError(f"unknown loss {loss!r}; use 'xent' or 'cw'")
                with _v1_control_flow():
                    self._gradients[loss] = tf.gradients(tf.reduce_sum(per_example),
                                                         self.x)[0]
        return self._gradients[loss]

    def input_gradient(self, x: np.ndarray, y: np.ndarray, loss: str = "xent") -> np.ndarray:
        """float32 gradient (the images' shape) of the SUMMED per-example loss w.r.t. the input.

        ``loss``: "xent" (sparse softmax cross-entropy) or "cw" (the challenge's
        ``-relu(correct - max_wrong + 50)``); ``y`` int64 ``(N,)`` labels.
        """
        grad = self._gradient_tensor(loss)
        return self.sess.run(grad, {self.x: np.asarray(x, np.float32),
                                    self.y: np.asarray(y, np.int64)})

    def variable_value(self, name: str) -> np.ndarray:
        """Current value of the TF1 variable ``name`` (e.g. ``"Variable_2/Adam"``)."""
        return self.sess.run(self.variables[name])

    def restore_with_model_vars_only(self, prefix: str | os.PathLike) -> None:
        """Restores only model weights + BN moving statistics from ``prefix``."""
        with self.graph.as_default():
            saver = v1.train.Saver(var_list={n: v for n, v in self.variables.items()
                                             if is_model_variable(n)})
        saver.restore(self.sess, os.fspath(prefix))


def restore_model_vars(meta_path: str | os.PathLike, prefix: str | os.PathLike) -> TF1Model:
    """The real graph with ONLY its model variables restored from ``prefix`` (see TF1Model)."""
    return TF1Model(meta_path, prefix, model_vars_only=True)


def meta_for(arch: str, shared_data: Path) -> Path:
    """The published ``.meta`` of an architecture name of ``models``."""
    return {
        "madry_mnist": shared_data / "mnist_challenge" / "secret" / "checkpoint-99900.meta",
        "daa_fashion": (shared_data / "daa_fashion_mnist" / "a_very_robust_model"
                        / "checkpoint-99900.meta"),
        "madry_cifar10": (shared_data / "cifar10_challenge" / "adv_trained_graph"
                          / "checkpoint-70000.meta"),
    }[arch]
