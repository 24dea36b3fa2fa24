"""Attack settings, their validation, and how a method name composes the step pieces."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from attacks.apgd import INITIAL_STEP, APGDStep
from attacks.directions import DEFAULT_C, DirectionFn, blob_direction_fn, gradient_direction
from attacks.losses import LOSSES, Loss, make_loss
from attacks.precision import COMPUTE_DTYPE_CHOICES
from attacks.steps import L2Step, LinfStep, StepRule, quantized_unit, raw_unit, sign_unit

# APGD (Croce & Hein 2020, attacks.apgd) and APGD-T, one APGD run per target class.
APGD_METHODS = ("apgd", "apgd_t")
METHODS = ("fgsm", "pgd", "pqgd", "blob", "blob_qg") + APGD_METHODS
NORMS = ("linf", "l2")
KEEP = ("final", "best")
# Methods whose direction couples the examples of a group (regrouped every round).
GROUPED_METHODS = ("blob", "blob_qg")
QUANTIZED_METHODS = ("pqgd", "blob_qg")
DEFAULT_NUM_TARGETS = 9  # APGD-T's targets in AutoAttack


@dataclass(frozen=True)
class AttackConfig:
    """Everything that defines one attack run (not the model or the data).

    Attributes:
      method: fgsm | pgd | pqgd | blob | blob_qg | apgd | apgd_t. ``apgd`` is APGD
        (``attacks.apgd``: its own step-size schedule from ``2 * epsilon``, momentum, best
        point); ``apgd_t`` runs APGD with the targeted form of ``loss`` once per target, the
        ``num_targets`` highest-scoring wrong classes of the clean logits (AutoAttack's
        APGD-T: ``loss="dlr"``), each only on the examples no earlier target broke.
      epsilon: radius of the ``norm`` ball, > 0, in pixel units of ``bounds`` (the
        CIFAR-10 challenge: 8 on 0-255 images).
      steps: iterations, >= 1 (FGSM: 1); APGD's schedule is laid out over them.
      step_size: ``a`` per step, > 0 (FGSM: ``epsilon``; APGD: none, its schedule starts
        at ``2 * epsilon``).
      b: quantization level >= 1; required by pqgd and blob_qg, optional for fgsm and
        apgd / apgd_t (their quantized forms: the step ``eta * zeta(b g / max|g|)``,
        ``b = 1`` the sign), not accepted by pgd and blob (whose step is the sign).
      num_targets: apgd_t only, targets per example, in ``1 .. C - 1`` (default 9).
      loss: xent | cw | dlr | logit_margin (``attacks.losses``; the targeted form when the
        attack is given ``y_target``), or a callable ``(logits, y) -> (M,)`` loss
        (``(logits, y, y_target)`` for a targeted attack).
      kappa: CW's margin, default 50 (the challenge's); cw only.
      norm: "linf" (sign / quantized steps, ``attacks.steps.LinfStep``) or "l2"
        (``a * d / ||d||_2``, or the quantized direction normalised the same way,
        ``attacks.steps.L2Step``). BLOB's direction works under both.
      bounds: ``(lo, hi)`` pixel range, ``lo < hi``; projection clips to the ball, then here.
      keep: "final" (the last iterate: the paper's and the challenge scripts' protocol;
        APGD: its best-loss point) or "best" (per example, the first iterate at which the
        attack succeeds, when one does, else what "final" gives; the success is read from
        the logits of the attacked model in ``compute_dtype``; for apgd_t success within a
        target's run means reaching that target, across targets being misclassified).
      random_start: start from a uniform point of the ball, clipped to ``bounds`` (L-inf:
        ``clip(x_nat + U(-eps, eps), lo, hi)``) (FGSM: never). The
        challenge's code clips the start the same way; the DAA authors' code does not clip
        it (the first projection does), which changes only where the first step lands.
      batch_size: images per compiled call; for BLOB the group size M of the kernel term.
      steps_per_group: BLOB steps between regroupings of the whole set.
      c: BLOB kernel weight (default 1.1 for xent, 10 for cw; required for other losses). The DAA authors' code, as it
        runs, uses 1.1 for the CW loss too: its ``c = 10.0`` is a local variable that its
        ``perturb`` never reads. 10 for cw is the value that code states; pass ``c=1.1`` to
        reproduce what it computes.
      compute_dtype: float32 | bfloat16 | auto for the model's forward and backward passes.
        "auto": bfloat16 where a short calibration on this machine, cached per CPU model,
        TensorFlow version and network (``attacks.calibration``), shows it faster than
        float32, else float32. An explicit bfloat16 that the calibration finds slower
        prints one warning line.
      xla: "auto" (on where a GPU is visible), "on" or "off".
      skip_broken: "auto", True or False. True: every restart after the first attacks only
        the examples no earlier restart broke (their merged result cannot change), and with
        ``keep="best"`` an example that succeeds leaves its batch at the next chunk boundary
        of the compiled loop (methods whose examples are independent; not APGD's stateful
        loop). The merged result per example is the attack-everything one's. False: every
        restart attacks the whole set (the DAA protocol). "auto": True for the PGD family
        (fgsm, pgd, pqgd, apgd, apgd_t), False for blob and blob_qg, whose kernel term
        depends on the group: opting in there regroups only the unbroken examples, which
        changes the groups and so the attack.
    """

    method: str
    epsilon: float
    steps: int | None = None
    step_size: float | None = None
    b: float | None = None
    loss: str | Callable = "xent"
    random_start: bool = True
    batch_size: int = 200
    steps_per_group: int = 10
    c: float | None = None
    compute_dtype: str = "float32"
    xla: str | bool = "auto"
    kappa: float | None = None
    norm: str = "linf"
    bounds: tuple[float, float] = (0.0, 1.0)
    keep: str = "final"
    num_targets: int | None = None
    skip_broken: str | bool = "auto"

    def __post_init__(self):
        _check(self.method in METHODS, f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        _check(callable(self.loss) or self.loss in LOSSES,
               f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}, or a callable")
        _check(self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        _check(self.keep in KEEP, f"keep must be one of {', '.join(KEEP)}, got {self.keep!r}")
        _check(_valid_bounds(self.bounds),
               f"bounds must be (lo, hi) with finite lo < hi, got {self.bounds!r}")
        if self.kappa is not None:
            _check(self.loss == "cw", f"kappa (the CW margin) applies to the cw loss only")
            _check(isinstance(self.kappa, (int, float)) and math.isfinite(self.kappa),
                   f"kappa must be a finite number, got {self.kappa}")
        _check(self.compute_dtype in COMPUTE_DTYPE_CHOICES,
               f"compute_dtype must be one of {', '.join(COMPUTE_DTYPE_CHOICES)}, got {self.compute_dtype!r}")
        _check(_positive(self.epsilon), f"epsilon must be a finite number > 0, got {self.epsilon}")
        _check(self.xla in ("auto", "on", "off", True, False), f"xla must be auto, on or off, got {self.xla!r}")
        _check(self.skip_broken == "auto" or isinstance(self.skip_broken, bool),
               f"skip_broken must be auto, True or False, got {self.skip_broken!r}")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1,
               f"batch_size must be an integer >= 1, got {self.batch_size}")
        _check(isinstance(self.steps_per_group, int) and self.steps_per_group >= 1,
               f"steps_per_group must be an integer >= 1, got {self.steps_per_group}")
        if self.num_targets is not None:
            _check(self.method == "apgd_t", "num_targets applies to apgd_t only")
            _check(isinstance(self.num_targets, int) and not isinstance(self.num_targets, bool)
                   and self.num_targets >= 1,
                   f"num_targets must be an integer in 1..C-1, got {self.num_targets}")
        if self.method in APGD_METHODS:
            _check(isinstance(self.steps, int) and self.steps >= 1,
                   f"steps must be an integer >= 1, got {self.steps}")
            _check(self.step_size is None, f"{self.method} sets its own step sizes (from 2 * "
                   f"epsilon, halved by its schedule): it takes no step_size")
        elif self.method == "fgsm":
            _check(self.steps in (None, 1), f"fgsm takes exactly one step, got steps={self.steps}")
            _check(self.step_size in (None, self.epsilon),
                   f"fgsm's step size is epsilon, got step_size={self.step_size}")
        else:
            _check(isinstance(self.steps, int) and self.steps >= 1,
                   f"steps must be an integer >= 1, got {self.steps}")
            _check(_positive(self.step_size), f"step_size must be a finite number > 0, got {self.step_size}")
        if self.method in QUANTIZED_METHODS:
            _check(self.b is not None, f"{self.method} needs the quantization level b (>= 1)")
        if self.method in ("pgd", "blob"):
            _check(self.b is None, f"{self.method} steps with the sign; use "
                   f"{'pqgd' if self.method == 'pgd' else 'blob_qg'} for a quantization level b")
        if self.b is not None:
            _check(_positive(self.b) and self.b >= 1, f"b must be >= 1, got {self.b}")
        if self.c is not None:
            _check(self.method in GROUPED_METHODS, f"c (the kernel weight) applies to blob and blob_qg only")
            _check(math.isfinite(self.c) and self.c >= 0, f"c must be a finite number >= 0, got {self.c}")

    def resolved(self) -> AttackConfig:
        """The same attack with FGSM's implied settings, BLOB's default c and ``skip_broken``
        filled in."""
        cfg = self
        if cfg.skip_broken == "auto":
            cfg = replace(cfg, skip_broken=cfg.method not in GROUPED_METHODS)
        if cfg.method == "fgsm":
            return replace(cfg, steps=1, step_size=cfg.epsilon, random_start=False)
        if cfg.method == "apgd_t" and cfg.num_targets is None:
            return replace(cfg, num_targets=DEFAULT_NUM_TARGETS)
        if cfg.method in GROUPED_METHODS and cfg.c is None:
            _check(not callable(cfg.loss) and cfg.loss in DEFAULT_C,
                   f"{cfg.method} with loss {getattr(cfg.loss, '__name__', cfg.loss)!r} needs "
                   f"c (the kernel weight); defaults exist for xent (1.1) and cw (10)")
            return replace(cfg, c=DEFAULT_C[cfg.loss])
        return cfg

    @property
    def compacts(self) -> bool:
        """Whether ``keep="best"`` drops succeeded examples from the batch at chunk
        boundaries: with ``skip_broken``, for a direction that does not couple the examples."""
        cfg = self.resolved()
        return bool(cfg.skip_broken) and cfg.keep == "best" and not cfg.grouped

    @property
    def grouped(self) -> bool:
        return self.method in GROUPED_METHODS

    def gradient_passes(self) -> int:
        """Forward+backward passes per example of one restart: ``steps`` (FGSM 1). APGD
        adds one forward pass per run (scoring its last iterate); apgd_t makes at most
        ``num_targets`` runs, fewer for examples an earlier target broke, plus one forward
        pass for the clean logits that choose the targets."""
        cfg = self.resolved()
        return cfg.steps * (cfg.num_targets if cfg.method == "apgd_t" else 1)

    def step_rule(self) -> StepRule | APGDStep:
        """Sign (L2: raw) or quantized unit step: the single piece that makes an attack
        'quantized'; L-inf or L2 ball within ``bounds``; for apgd / apgd_t that rule inside
        APGD's schedule (:class:`attacks.apgd.APGDStep`, initial step size ``2 * epsilon``)."""
        cfg = self.resolved()
        bounds = (float(cfg.bounds[0]), float(cfg.bounds[1]))
        apgd = cfg.method in APGD_METHODS
        step_size = INITIAL_STEP * cfg.epsilon if apgd else cfg.step_size
        if cfg.norm == "l2":
            unit = raw_unit() if cfg.b is None else quantized_unit(cfg.b)
            rule = L2Step(epsilon=cfg.epsilon, step_size=step_size, unit=unit, bounds=bounds)
        else:
            unit = sign_unit() if cfg.b is None else quantized_unit(cfg.b)
            rule = LinfStep(epsilon=cfg.epsilon, step_size=step_size, unit=unit, bounds=bounds)
        return APGDStep(rule) if apgd else rule

    def make_loss(self, targeted: bool = False) -> Loss:
        """The loss the driver maximises, in its targeted form for a targeted attack."""
        return make_loss(self.loss, targeted=targeted, kappa=self.kappa)

    def direction(self) -> DirectionFn:
        """Plain gradient, or the BLOB kernel-interaction direction."""
        cfg = self.resolved()
        return blob_direction_fn(cfg.c) if cfg.grouped else gradient_direction()


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def _valid_bounds(bounds) -> bool:
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        return False
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
    return numbers and math.isfinite(lo) and math.isfinite(hi) and lo < hi


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
