"""The one driver loop: gradient -> direction -> step -> project, compiled in TensorFlow.

Every method (FGSM, PGD, PQGD, DAA-BLOB, BLOB_QG) runs through :class:`StepRunner`; methods
differ only in the ``LinfStep`` (sign or quantized unit) and the direction function.
"""
from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from attacks.directions import DirectionFn
from attacks.losses import per_example_loss
from attacks.steps import LinfStep

# Steps unrolled into one compiled call. Measured on a 2-core CPU: a Python-unrolled chunk is
# faster than a tf.while_loop over tf.range (which blocks some graph optimisations), and a
# chunk of 10 keeps the graph small while the Python overhead per call is amortised.
DEFAULT_CHUNK = 10

# Compiled step loops shared by every StepRunner on the same model object and the same
# (loss, step rule, direction, xla, chunk, n): ``attacks.perturb`` builds a new runner per
# call, and retracing + re-optimising the unrolled graph cost ~0.6 s per call (~8% of a
# 1,000-image PGD-20 run at batch 200 on 2 cores). Weakly keyed: a model that is garbage
# collected takes its compiled loops with it.
_SHARED = weakref.WeakKeyDictionary()


def _fn_key(fn):
    """Identity of a step piece: its code and closure values (a fresh ``lambda`` built from
    the same settings gives the same key), or the object itself (``tf.sign``)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return fn
    cells = tuple(c.cell_contents for c in (fn.__closure__ or ()))
    return (code, cells, getattr(fn, "__defaults__", None))


def gpu_available() -> bool:
    """True when TensorFlow sees a GPU (XLA then defaults on)."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_xla(xla: str | bool) -> bool:
    """``"auto"`` -> on only where a GPU is visible (XLA on CPU is ~5x slower here)."""
    if isinstance(xla, bool):
        return xla
    if xla == "auto":
        return gpu_available()
    if xla in ("on", "off"):
        return xla == "on"
    raise ValueError(f"xla must be auto, on or off, got {xla!r}")


class StepRunner:
    """Runs ``n`` attack steps on one group of images in a single compiled call.

    Args:
      model: Keras model, ``(M, 784)`` float32 in [0, 1] -> ``(M, C)`` logits. For
        ``compute_dtype="bfloat16"`` pass a bfloat16 copy (``attacks.precision``); images,
        gradients' normalisation and projection stay float32.
      loss: ``"xent"`` or ``"cw"``.
      rule: the step rule (epsilon, step size, sign or quantized unit).
      direction: ``(x, g) -> d``; the plain gradient or the BLOB direction of the group.
      xla: compile with XLA (``jit_compile``).
      chunk: steps unrolled per compiled call.
    """

    def __init__(self, model: keras.Model, loss: str, rule: LinfStep, direction: DirectionFn,
                 xla: bool = False, chunk: int = DEFAULT_CHUNK):
        self._model = model
        self._loss = loss
        self._rule = rule
        self._direction = direction
        self._chunk = chunk
        self._xla = xla
        self._compiled = self._shared_cache(model)

    def _shared_cache(self, model) -> dict:
        """The cache of compiled loops for this model and configuration (private if unhashable)."""
        key = (self._loss, self._rule.epsilon, self._rule.step_size, _fn_key(self._rule.unit),
               _fn_key(self._direction), self._xla, self._chunk)
        try:
            hash(key)
            per_model = _SHARED.setdefault(model, {})
        except TypeError:  # unhashable closure value or model: no sharing
            return {}
        return per_model.setdefault(key, {})

    def gradient(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Each example's input gradient of its own loss, ``(M, d)`` float32."""
        return _gradient(self._model, self._loss, x, y)

    def _one_step(self, x, x_nat, y):
        return _one_step(self._model, self._loss, self._rule, self._direction, x, x_nat, y)

    def _compiled_steps(self, n: int):
        if n not in self._compiled:
            # The shared cache must not keep the model alive: a weak reference (only
            # dereferenced while tracing; the cache entry dies with the model).
            model_ref = weakref.ref(self._model)
            loss, rule, direction = self._loss, self._rule, self._direction

            def steps(x, x_nat, y):
                model = model_ref()
                for _ in range(n):
                    x = _one_step(model, loss, rule, direction, x, x_nat, y)
                return x
            spec = tf.TensorSpec([None, None], tf.float32)
            self._compiled[n] = tf.function(
                steps, jit_compile=self._xla, reduce_retracing=True,
                input_signature=[spec, spec, tf.TensorSpec([None], tf.int64)])
        return self._compiled[n]

    def run(self, x: np.ndarray, x_nat: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
        """``n >= 0`` steps from ``x``; all arrays ``(M, d)`` float32 / ``(M,)`` int64."""
        x_t = tf.convert_to_tensor(x, tf.float32)
        x_nat_t = tf.convert_to_tensor(x_nat, tf.float32)
        y_t = tf.convert_to_tensor(y, tf.int64)
        full, rest = divmod(n, self._chunk)
        for _ in range(full):
            x_t = self._compiled_steps(self._chunk)(x_t, x_nat_t, y_t)
        if rest:
            x_t = self._compiled_steps(rest)(x_t, x_nat_t, y_t)
        return x_t.numpy()


def _gradient(model, loss: str, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    with tf.GradientTape() as tape:
        tape.watch(x)
        # A bfloat16 model casts its float32 input itself (Keras autocast).
        logits = model(x, training=False)
        losses = per_example_loss(tf.cast(logits, tf.float32), y, loss)
        total = tf.reduce_sum(losses)
    return tf.cast(tape.gradient(total, x), tf.float32)


def _one_step(model, loss: str, rule: LinfStep, direction: DirectionFn, x, x_nat, y):
    g = _gradient(model, loss, x, y)
    d = direction(x, g)
    return rule.project(rule.step(x, d), x_nat)
