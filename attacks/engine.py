"""The one driver loop: gradient -> direction -> step -> project, compiled in TensorFlow.

Every method (FGSM, PGD, PQGD, DAA-BLOB, BLOB_QG, APGD, under either norm) runs through
:class:`StepRunner`; methods differ only in the step rule (``LinfStep`` / ``L2Step`` with a
sign, raw or quantized unit, or a rule with per-example state such as
:class:`attacks.apgd.APGDStep`), the direction function and the loss.

A rule with state (``rule.stateful`` True) carries a tuple of tensors through the compiled
loop and is asked, each step, ``observe(x, g, loss, state) -> (x, g, state)`` (before the
direction: bookkeeping that may move the point) and ``advance(x, x_nat, d, state) ->
(x_next, state)``, and once after the last step ``finish(x, loss, state) -> (x_out, state)``
(one forward pass); it declares ``state_signature(image_shape)`` and
``initial_state(x, n)``. A stateless rule's loop is the plain one, unchanged.

An ``objective`` replaces what is differentiated: by default the loss of the model's logits;
an objective ``(model, x, y, t, aux) -> (per-example values (M,), logits (M, C))`` may
compute anything differentiable in ``x`` (the Interval Attack's loss on logit bounds over a
box around ``x``, ODI's ``w . logits`` with per-example weights ``aux``), still maximised by
the same step rule, direction and loop. ``aux`` is a per-example float32 array ``(M, K)``
handed to :meth:`StepRunner.run`.
"""
from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from dataclasses import dataclass
from typing import Callable

from attacks.directions import DirectionFn
from attacks.losses import Loss, make_loss
from attacks.steps import StepRule

# (model, x (M, *S), y (M,), t (M,), aux (M, K)) -> (values to maximise (M,), logits (M, C)).
Objective = Callable[[keras.Model, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor],
                     tuple[tf.Tensor, tf.Tensor]]

# Steps unrolled into one compiled call. Measured on a 2-core CPU: a Python-unrolled chunk is
# faster than a tf.while_loop over tf.range (which blocks some graph optimisations), and a
# chunk of 10 keeps the graph small while the Python overhead per call is amortised.
DEFAULT_CHUNK = 10

# Compiled step loops shared by every StepRunner on the same model object and the same
# (loss, step rule, direction, objective, xla, chunk, n, image shape, tracking):
# ``attacks.perturb`` builds a new runner per
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


@dataclass
class BestIterate:
    """Per example, the first iterate at which the attack succeeded (``keep="best"``).

    Attributes:
      x: ``(M, *S)`` float32, the kept iterate where ``found``, unspecified elsewhere.
      found: ``(M,)`` bool, True once some iterate succeeded.
    """

    x: np.ndarray
    found: np.ndarray

    @classmethod
    def empty(cls, like: np.ndarray) -> BestIterate:
        return cls(x=np.zeros_like(like, dtype=np.float32), found=np.zeros(len(like), dtype=bool))

    def take(self, idx: np.ndarray) -> BestIterate:
        return BestIterate(self.x[idx], self.found[idx])

    def put(self, idx: np.ndarray, part: BestIterate) -> None:
        self.x[idx] = part.x
        self.found[idx] = part.found

    def select(self, final: np.ndarray) -> np.ndarray:
        """The kept iterate where one succeeded, else ``final``."""
        mask = self.found.reshape((-1,) + (1,) * (final.ndim - 1))
        return np.where(mask, self.x, final).astype(np.float32, copy=False)


class StepRunner:
    """Runs ``n`` attack steps on one group of images in a single compiled call: the driver.

    Each step: ``g`` = input gradient of each example's own loss (the loss SUM is
    differentiated), ``d = direction(x, g)``, ``x = rule.project(rule.step(x, d), x_nat)``.

    Args:
      model: Keras model, ``(M, *S)`` float32 images -> ``(M, C)`` logits. For
        ``compute_dtype="bfloat16"`` pass a bfloat16 copy (``attacks.precision``); images,
        gradients' normalisation and projection stay float32.
      loss: a loss name of ``attacks.losses.LOSSES`` (untargeted), a callable
        ``(logits, y) -> (M,)`` (untargeted), or a :class:`attacks.losses.Loss` from
        ``make_loss`` (targeted or not).
      rule: the step rule (``LinfStep`` or ``L2Step``: epsilon, step size, unit, bounds).
      direction: ``(x, g) -> d``; the plain gradient or the BLOB direction of the group.
      xla: compile with XLA (``jit_compile``).
      chunk: steps unrolled per compiled call.
      objective: what is differentiated instead of ``loss(model(x), y, t)`` (module
        docstring); ``loss`` then only says whether success means reaching ``t``
        (``keep="best"``). Not with a stateful rule.
      success_model: the model whose prediction decides success for ``keep="best"``,
        ``(M, *S)`` float32 -> ``(M, C)`` logits; None: ``model``'s own logits. Pass the
        float32 model when ``model`` is its reduced-precision copy: an iterate that only the
        bfloat16 logits call misclassified is then not kept (bfloat16 rounding flips the
        prediction of iterates near the boundary, and the result is judged in float32).
        Only the iterates that ``model`` calls a new success are re-checked, one extra
        forward pass of those rows.
    """

    def __init__(self, model: keras.Model, loss: str | Callable | Loss, rule: StepRule,
                 direction: DirectionFn, xla: bool = False, chunk: int = DEFAULT_CHUNK,
                 objective: Objective | None = None, success_model: keras.Model | None = None):
        self._model = model
        self._success_model = success_model
        self._loss = make_loss(loss)
        self._rule = rule
        self._direction = direction
        self._chunk = chunk
        self._xla = xla
        self._objective = objective
        if objective is not None and self.stateful:
            raise ValueError("an objective is for stateless step rules only (a stateful rule "
                             "scores the loss of the logits)")
        self._compiled = self._shared_cache(model)

    @property
    def targeted(self) -> bool:
        return self._loss.targeted

    @property
    def stateful(self) -> bool:
        """Whether the rule carries state through the loop (then :meth:`run` is one whole
        run of its schedule, not a segment that a later call continues)."""
        return bool(getattr(self._rule, "stateful", False))

    def _shared_cache(self, model) -> dict:
        """The cache of compiled loops for this model and configuration (private if unhashable)."""
        key = (type(self._rule), self._loss.targeted, _fn_key(self._loss.fn), self._rule.epsilon,
               self._rule.step_size, self._rule.bounds, _fn_key(self._rule.unit),
               _fn_key(self._direction), self._xla, self._chunk,
               getattr(self._rule, "settings_key", ()), _fn_key(self._objective),
               None if self._success_model is None else id(self._success_model))
        try:
            hash(key)
            per_model = _SHARED.setdefault(model, {})
        except TypeError:  # unhashable closure value or model: no sharing
            return {}
        return per_model.setdefault(key, {})

    def gradient(self, x: tf.Tensor, y: tf.Tensor, y_target: tf.Tensor | None = None) -> tf.Tensor:
        """Each example's input gradient of its own loss, ``(M, *S)`` float32."""
        y = tf.convert_to_tensor(y, tf.int64)
        t = y if y_target is None else tf.convert_to_tensor(y_target, tf.int64)
        return _gradient(self._model, self._loss, tf.convert_to_tensor(x, tf.float32), y, t)[0]

    def _aux_tensor(self, aux: np.ndarray | None, m: int) -> tuple:
        """``(aux,)`` for a runner with an objective (``(M, 0)`` when none is given), else ``()``."""
        if self._objective is None:
            if aux is not None:
                raise ValueError("aux is passed to an objective; this runner has none")
            return ()
        value = np.zeros((m, 0), np.float32) if aux is None else np.asarray(aux, np.float32)
        if value.ndim != 2 or value.shape[0] != m:
            raise ValueError(f"aux must have shape ({m}, K), got {value.shape}")
        return (tf.convert_to_tensor(value),)

    def _confirmer(self) -> Callable | None:
        """``(x (M, *S), rows (M,) bool) -> float32 logits (M, C)`` of ``success_model``,
        valid where ``rows`` (None without a success model). Without XLA only those rows go
        through the model; XLA needs static shapes, so there the whole batch does."""
        if self._success_model is None:
            return None
        success_ref = weakref.ref(self._success_model)
        xla = self._xla

        def confirm(x, rows):
            model = success_ref()
            if xla:
                return tf.cast(model(x, training=False), tf.float32)
            idx = tf.where(rows)
            logits = tf.cast(model(tf.gather_nd(x, idx), training=False), tf.float32)
            return tf.scatter_nd(idx, logits, tf.stack([tf.shape(x, tf.int64)[0],
                                                        tf.shape(logits, tf.int64)[1]]))
        return confirm

    def _compiled_steps(self, n: int, image_shape: tuple, track: bool):
        """``n`` steps unrolled; with ``track``, also the first successful iterate (the
        success of iterate ``k`` is read from the logits of step ``k``'s own forward pass;
        ``n = 0`` with ``track`` only checks the current point)."""
        key = (n, image_shape, track)
        if key not in self._compiled:
            # The shared cache must not keep the model alive: a weak reference (only
            # dereferenced while tracing; the cache entry dies with the model).
            model_ref = weakref.ref(self._model)
            loss, rule, direction = self._loss, self._rule, self._direction
            objective = self._objective
            confirm = self._confirmer()

            def steps(x, x_nat, y, t, *rest):
                model = model_ref()
                aux, best = (rest[0], rest[1:]) if objective is not None else (None, rest)
                for _ in range(n):
                    x_next, logits = _one_step(model, loss, rule, direction, x, x_nat, y, t,
                                               objective, aux)
                    if track:
                        best = _keep_first_success(best, x, logits, y, t, loss.targeted,
                                                   confirm)
                    x = x_next
                if not track:
                    return x
                if n == 0:
                    logits = tf.cast(model(x, training=False), tf.float32)
                    best = _keep_first_success(best, x, logits, y, t, loss.targeted, confirm)
                return (x, *best)
            images = tf.TensorSpec([None, *image_shape], tf.float32)
            labels = tf.TensorSpec([None], tf.int64)
            signature = [images, images, labels, labels]
            if objective is not None:
                signature.append(tf.TensorSpec([None, None], tf.float32))
            if track:
                signature += [images, tf.TensorSpec([None], tf.bool)]
            self._compiled[key] = tf.function(steps, jit_compile=self._xla,
                                              reduce_retracing=True, input_signature=signature)
        return self._compiled[key]

    def _compiled_stateful(self, n: int, image_shape: tuple, track: bool, finish: bool):
        """``n`` steps of a rule with state; with ``finish`` (``n = 0``), the one forward
        pass at the last iterate that hands the rule's result back."""
        key = ("stateful", n, image_shape, track, finish)
        if key not in self._compiled:
            model_ref = weakref.ref(self._model)
            loss, rule, direction = self._loss, self._rule, self._direction
            n_state = len(rule.state_signature(image_shape))
            confirm = self._confirmer()

            def steps(x, x_nat, y, t, *carried):
                model = model_ref()
                state, best = carried[:n_state], carried[n_state:]
                for _ in range(n):
                    g, logits = _gradient(model, loss, x, y, t)
                    if track:
                        best = _keep_first_success(best, x, logits, y, t, loss.targeted,
                                                   confirm)
                    x, g, state = rule.observe(x, g, loss(logits, y, t), state)
                    x, state = rule.advance(x, x_nat, direction(x, g), state)
                if finish:
                    logits = tf.cast(model(x, training=False), tf.float32)
                    if track:
                        best = _keep_first_success(best, x, logits, y, t, loss.targeted,
                                                   confirm)
                    x, state = rule.finish(x, loss(logits, y, t), state)
                return (x, *state, *best)
            images = tf.TensorSpec([None, *image_shape], tf.float32)
            labels = tf.TensorSpec([None], tf.int64)
            signature = [images, images, labels, labels, *rule.state_signature(image_shape)]
            if track:
                signature += [images, tf.TensorSpec([None], tf.bool)]
            self._compiled[key] = tf.function(steps, jit_compile=self._xla,
                                              reduce_retracing=True, input_signature=signature)
        return self._compiled[key]

    def _run_stateful(self, x_t, x_nat_t, y_t, t_t, n: int, best_state: tuple,
                      record: dict | None, compact: bool = False) -> tuple:
        """One whole run of a stateful rule: chunks of steps, then its ``finish``."""
        shape = tuple(x_t.shape[1:])
        state = tuple(tf.convert_to_tensor(v) for v in self._rule.initial_state(x_t.numpy(), n))
        n_state = len(state)
        track = bool(best_state)
        full, rest = divmod(n, self._chunk)
        calls = [(self._chunk, False)] * full + ([(rest, False)] if rest else []) + [(0, True)]
        axes = getattr(self._rule, "state_example_axes", None)
        if compact and track and axes is not None:
            return self._run_stateful_compacting(x_t, x_nat_t, y_t, t_t, state, best_state,
                                                 calls, axes, shape, record)
        for m, finish in calls:
            out = self._compiled_stateful(m, shape, track, finish)(x_t, x_nat_t, y_t, t_t,
                                                                   *state, *best_state)
            x_t, state, best_state = out[0], tuple(out[1:1 + n_state]), tuple(out[1 + n_state:])
        self._record(record, [value.numpy() for value in state])
        return x_t, best_state

    def _record(self, record: dict | None, state: list[np.ndarray]) -> None:
        if record is not None:
            names = getattr(self._rule, "state_names", None) or [f"state_{i}" for i in
                                                                 range(len(state))]
            record.update(dict(zip(names, state)))

    def _run_stateful_compacting(self, x_t, x_nat_t, y_t, t_t, state: tuple, best_state: tuple,
                                 calls: list[tuple[int, bool]], axes: tuple, shape: tuple,
                                 record: dict | None) -> tuple:
        """:meth:`_run_stateful` keeping in the batch only the examples that have not
        succeeded yet (checked after every chunk; ``axes``: the rule's
        ``state_example_axes``). An example that leaves returns its iterate at that boundary
        and its state there (in ``record``); the others run the whole schedule as without
        compaction. Returns full-batch ``(x, best_state)`` as tensors."""
        m_all = int(x_t.shape[0])
        x_out = np.zeros((m_all, *shape), np.float32)
        best_x, found = np.zeros((m_all, *shape), np.float32), np.zeros(m_all, bool)
        kept: list[np.ndarray | None] = [None] * len(state)
        active = np.arange(m_all)  # positions in the caller's batch still attacked
        for m, finish in calls:
            out = self._compiled_stateful(m, shape, True, finish)(x_t, x_nat_t, y_t, t_t,
                                                                  *state, *best_state)
            x_t, state, best_state = out[0], tuple(out[1:1 + len(state)]), tuple(out[1 + len(state):])
            done = best_state[1].numpy()
            leaving = np.ones_like(done) if finish else done
            if leaving.any():  # write back the rows that leave (all of them at the end)
                rows = active[leaving]
                x_out[rows] = x_t.numpy()[leaving]
                best_x[rows], found[rows] = best_state[0].numpy()[leaving], done[leaving]
                for j, (value, axis) in enumerate(zip(state, axes)):
                    value = value.numpy()
                    if axis is None:
                        kept[j] = value
                        continue
                    if kept[j] is None:
                        full_shape = list(value.shape)
                        full_shape[axis] = m_all
                        kept[j] = np.zeros(full_shape, value.dtype)
                    index = [slice(None)] * value.ndim
                    index[axis] = rows
                    part = [slice(None)] * value.ndim
                    part[axis] = np.flatnonzero(leaving)
                    kept[j][tuple(index)] = value[tuple(part)]
            if finish or leaving.all():
                break
            if leaving.any():
                stay = np.flatnonzero(~leaving)
                x_t, x_nat_t, y_t, t_t = (tf.gather(v, stay) for v in (x_t, x_nat_t, y_t, t_t))
                best_state = tuple(tf.gather(v, stay) for v in best_state)
                state = tuple(v if axis is None else tf.gather(v, stay, axis=axis)
                              for v, axis in zip(state, axes))
                active = active[stay]
        self._record(record, kept)
        return tf.convert_to_tensor(x_out), (tf.convert_to_tensor(best_x),
                                             tf.convert_to_tensor(found))

    def run(self, x: np.ndarray, x_nat: np.ndarray, y: np.ndarray, n: int, *,
            y_target: np.ndarray | None = None, best: BestIterate | None = None,
            record: dict | None = None, aux: np.ndarray | None = None,
            compact: bool = False) -> np.ndarray:
        """``n >= 0`` steps from ``x``; returns the final iterate (a stateful rule: what its
        ``finish`` returns, e.g. APGD's best-loss point, after one whole run of ``n`` steps).

        Args:
          x, x_nat: ``(M, *S)`` float32 current and clean images.
          y: ``(M,)`` int64 labels.
          y_target: ``(M,)`` int64 targets; required by a targeted loss, else ignored.
          best: when given, updated in place with the first iterate of ``x, x_1, ..., x_n``
            that succeeds (checked in the compiled loop on the logits of each step's forward
            pass, plus one forward pass at ``x_n``).
          record: a stateful rule only: filled with its final state as numpy arrays, by the
            names of ``rule.state_names`` (APGD's per-step record of losses, step sizes,
            restarts and best points).
          aux: ``(M, K)`` float32 per-example values for the runner's ``objective``.
          compact: with ``best``, an example that has succeeded leaves the batch at the next
            chunk boundary (the compiled chunks take any batch size: no retracing); its
            returned iterate is the one at that boundary, its ``best`` entry is unchanged.
            Only for a direction that treats the examples independently (not BLOB's); a
            stateful rule compacts when it declares ``state_example_axes`` (APGD: each
            leaving example's ``record`` rows hold its state at its boundary), else this
            is ignored. The other examples' iterates are the same.
        """
        if self._loss.targeted and y_target is None:
            raise ValueError("a targeted loss needs y_target")
        x_t = tf.convert_to_tensor(x, tf.float32)
        x_nat_t = tf.convert_to_tensor(x_nat, tf.float32)
        y_t = tf.convert_to_tensor(y, tf.int64)
        # Untargeted losses ignore the targets: the labels fill their place in the signature.
        t_t = tf.convert_to_tensor(y_target, tf.int64) if self._loss.targeted else y_t
        shape = tuple(x_t.shape[1:])
        track = best is not None
        aux_t = self._aux_tensor(aux, int(x_t.shape[0]))
        state = ((tf.convert_to_tensor(best.x, tf.float32), tf.convert_to_tensor(best.found))
                 if track else ())
        if self.stateful:
            x_t, state = self._run_stateful(x_t, x_nat_t, y_t, t_t, n, state, record,
                                            compact=compact)
            if track:
                best.x, best.found = state[0].numpy(), state[1].numpy()
            return x_t.numpy()
        full, rest = divmod(n, self._chunk)
        # With tracking, a last 0-step call checks the final iterate x_n.
        calls = [self._chunk] * full + ([rest] if rest else []) + ([0] if track else [])
        if track and compact:
            return self._run_compacting(x_t, x_nat_t, y_t, t_t, aux_t, calls, shape, best)
        for m in calls:
            out = self._compiled_steps(m, shape, track)(x_t, x_nat_t, y_t, t_t, *aux_t, *state)
            x_t, state = (out[0], tuple(out[1:])) if track else (out, ())
        if track:
            best.x, best.found = state[0].numpy(), state[1].numpy()
        return x_t.numpy()

    def _run_compacting(self, x_t, x_nat_t, y_t, t_t, aux_t: tuple, calls: list[int],
                        shape: tuple, best: BestIterate) -> np.ndarray:
        """The chunks of :meth:`run` with ``best`` tracked, keeping in the batch only the
        examples that have not succeeded yet (checked after every chunk)."""
        x_out = x_t.numpy()
        best_x, found = best.x.copy(), best.found.copy()
        active = np.arange(len(x_out))  # positions in the caller's batch still attacked
        state = (tf.convert_to_tensor(best_x, tf.float32), tf.convert_to_tensor(found))
        for i, m in enumerate(calls):
            x_t, *state = self._compiled_steps(m, shape, True)(x_t, x_nat_t, y_t, t_t, *aux_t,
                                                                *state)
            done = state[1].numpy()
            if i == len(calls) - 1 or done.any():  # write back before any example leaves
                x_out[active] = x_t.numpy()
                best_x[active], found[active] = state[0].numpy(), done
            if done.all():
                break
            if done.any():
                stay = np.flatnonzero(~done)
                x_t, x_nat_t, y_t, t_t, *rest = (tf.gather(v, stay) for v in
                                                 (x_t, x_nat_t, y_t, t_t, *aux_t, *state))
                aux_t, state = tuple(rest[:len(aux_t)]), rest[len(aux_t):]
                active = active[stay]
        best.x, best.found = best_x, found
        return x_out


def _gradient(model, loss: Loss, x: tf.Tensor, y: tf.Tensor, t: tf.Tensor,
              objective: Objective | None = None, aux: tf.Tensor | None = None):
    """``(input gradient, float32 logits)`` at ``x``: one forward and one backward pass (of
    the ``objective`` where there is one)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        if objective is None:
            # A bfloat16 model casts its float32 input itself (Keras autocast).
            logits = tf.cast(model(x, training=False), tf.float32)
            total = tf.reduce_sum(loss(logits, y, t))
        else:
            values, logits = objective(model, x, y, t, aux)
            total = tf.reduce_sum(values)
    return tf.cast(tape.gradient(total, x), tf.float32), logits


def _one_step(model, loss: Loss, rule: StepRule, direction: DirectionFn, x, x_nat, y, t,
              objective: Objective | None = None, aux: tf.Tensor | None = None):
    """``(next iterate, logits at x)``."""
    g, logits = _gradient(model, loss, x, y, t, objective, aux)
    d = direction(x, g)
    return rule.project(rule.step(x, d), x_nat), logits


def _success(logits, y, t, targeted: bool):
    pred = tf.argmax(logits, axis=1, output_type=tf.int64)
    return tf.equal(pred, t) if targeted else tf.not_equal(pred, y)


def _keep_first_success(best, x, logits, y, t, targeted: bool, confirm: Callable | None = None):
    """Where the prediction on ``x`` is a success not seen before, keep ``x``; with
    ``confirm`` (:meth:`StepRunner._confirmer`), only where its logits agree."""
    x_best, found = best
    new = tf.logical_and(_success(logits, y, t, targeted), tf.logical_not(found))
    if confirm is not None:
        new = tf.cond(tf.reduce_any(new),
                      lambda: tf.logical_and(new, _success(confirm(x, new), y, t, targeted)),
                      lambda: new)
    new_b = tf.reshape(new, [-1] + [1] * (x.shape.rank - 1))
    return tf.where(new_b, x, x_best), tf.logical_or(found, new)
