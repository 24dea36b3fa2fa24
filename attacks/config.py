"""Attack settings, their validation, and how a method name composes the step pieces."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from attacks.apgd import INITIAL_STEP, APGDStep
from attacks.directions import DEFAULT_C, DirectionFn, blob_direction_fn, gradient_direction
from attacks.intervals import INTERVAL_LOSSES, reference_widths
from attacks.losses import LOSSES, Loss, make_loss
from attacks.odi import DEFAULT_ODI_STEPS
from attacks.precision import COMPUTE_DTYPE_CHOICES
from attacks.steps import L2Step, LinfStep, StepRule, quantized_unit, raw_unit, sign_unit

# APGD (Croce & Hein 2020, attacks.apgd) and APGD-T, one APGD run per target class.
APGD_METHODS = ("apgd", "apgd_t")
# Untargeted attacks made of one targeted run per top wrong class of the clean logits.
TARGET_SWEEP_METHODS = ("apgd_t", "multitargeted")
METHODS = ("fgsm", "pgd", "pqgd", "blob", "blob_qg") + APGD_METHODS + ("multitargeted",
                                                                       "interval")
STARTS = ("random", "clean", "odi")
# Loss of a method when none is given.
DEFAULT_LOSS = {"multitargeted": "logit_margin"}
# The Interval Attack's defaults (attacks.intervals): the reference's margin-bound step and
# widths search; the step of 2 eps lands on the ball's vertex from any point, as the
# reference's step of ed >= 1 does. One round with the interval step first, then all PGD
# steps: the reference's three alternating rounds (interval_rounds=3) were measured weaker
# on the shipped MNIST model (200 test images from 1000, eps 0.3, 40 steps of 0.01: 90.5%
# against 84.0% for interval-first and PGD-40, 90.0% FGSM), because after each vertex step
# the short PGD phase left cannot climb back.
DEFAULT_INTERVAL_ROUNDS = 1
DEFAULT_INTERVAL_STEPS = 1
DEFAULT_INTERVAL_LOSS = "margin"
INTERVAL_STEP = 2.0  # times epsilon
NORMS = ("linf", "l2")
KEEP = ("final", "best")
# Methods whose direction couples the examples of a group (regrouped every round).
GROUPED_METHODS = ("blob", "blob_qg")
QUANTIZED_METHODS = ("pqgd", "blob_qg")
DEFAULT_NUM_TARGETS = 9  # APGD-T's targets in AutoAttack, MultiTargeted's in Gowal et al.
INTERVAL_FIELDS = ("interval_rounds", "interval_steps", "interval_pgd_steps",
                   "interval_step_size", "interval_width", "interval_loss")


@dataclass(frozen=True)
class AttackConfig:
    """Everything that defines one attack run (not the model or the data).

    Attributes:
      method: fgsm | pgd | pqgd | blob | blob_qg | apgd | apgd_t | multitargeted | interval.
        ``apgd`` is APGD (``attacks.apgd``: its own step-size schedule from ``2 * epsilon``,
        momentum, best point); ``apgd_t`` runs APGD with the targeted form of ``loss`` once
        per target, the ``num_targets`` highest-scoring wrong classes of the clean logits
        (AutoAttack's APGD-T: ``loss="dlr"``), each only on the examples no earlier target
        broke. ``multitargeted`` (Gowal et al. 2019) does the same with PGD steps (sign or
        quantized, ``step_size``) on the targeted logit margin ``z_t - max_{j != t} z_j``
        (its default loss): each target's run is its own restart of ``steps`` steps with its
        own start point; an example is broken when a run misclassifies it. ``interval``
        (Wang et al. 2019, ``attacks.intervals``): as the reference, ``interval_rounds``
        rounds of (a PGD phase of ``interval_pgd_steps`` steps, then an interval phase of
        ``interval_steps`` steps along the gradient of the interval loss on the logit bounds
        over a box around the point), then a last PGD phase of the remaining PGD steps, each
        phase going on from the point the previous one reached (:meth:`interval_phases`);
        ``steps`` counts the PGD steps of all phases.
      epsilon: radius of the ``norm`` ball, > 0, in pixel units of ``bounds`` (the
        CIFAR-10 challenge: 8 on 0-255 images).
      steps: iterations, >= 1 (FGSM: 1); APGD's schedule is laid out over them.
      step_size: ``a`` per step, > 0 (FGSM: ``epsilon``; APGD: none, its schedule starts
        at ``2 * epsilon``).
      b: quantization level >= 1; required by pqgd and blob_qg, optional for fgsm and
        apgd / apgd_t (their quantized forms: the step ``eta * zeta(b g / max|g|)``,
        ``b = 1`` the sign), not accepted by pgd and blob (whose step is the sign).
      num_targets: apgd_t and multitargeted only, targets per example, in ``1 .. C - 1``
        (default 9).
      loss: xent | cw | dlr | logit_margin (``attacks.losses``; the targeted form when the
        attack is given ``y_target``), or a callable ``(logits, y) -> (M,)`` loss
        (``(logits, y, y_target)`` for a targeted attack). None: the method's default
        (logit_margin for multitargeted, xent for the others).
      kappa: CW's margin, default 50 (the challenge's); cw only.
      norm: "linf" (sign / quantized steps, ``attacks.steps.LinfStep``) or "l2"
        (``a * d / ||d||_2``, or the quantized direction normalised the same way,
        ``attacks.steps.L2Step``). BLOB's direction works under both.
      bounds: ``(lo, hi)`` pixel range, ``lo < hi``; projection clips to the ball, then here.
      keep: "final" (the last iterate: the paper's and the challenge scripts' protocol;
        APGD: its best-loss point) or "best" (per example, the first iterate at which the
        attack succeeds, when one does, else what "final" gives; the success is read from
        the logits of the attacked model in ``compute_dtype``, and in bfloat16 confirmed
        by the float32 model the result is judged on; for apgd_t success within a
        target's run means reaching that target, across targets being misclassified).
      start: "random" (a uniform point of the ball), "clean" (the clean images) or "odi"
        (``attacks.odi``: ``odi_steps`` sign steps of size ``epsilon`` maximising ``w .
        logits``, ``w ~ U(-1, 1)^C`` per example, from the random point, or from the clean
        images when ``random_start`` is False); None: "random" if ``random_start`` else
        "clean". Every method takes any start (FGSM: clean unless "odi").
      odi_steps: start "odi" only, its steps, >= 1 (default 2, the paper's).
      interval_rounds: interval only, rounds of (PGD phase, interval phase) before the last
        PGD phase, >= 0 (default 1: the interval phase first; the reference's
        ``interval_iters`` is 3, measured weaker here, see ``DEFAULT_INTERVAL_ROUNDS``).
      interval_steps: interval only, steps of each interval phase, >= 0 (default 1, the
        reference's one interval step per round).
      interval_pgd_steps: interval only, steps of each PGD phase before an interval phase,
        >= 0 with ``interval_rounds * interval_pgd_steps <= steps``; the last PGD phase takes
        the rest of ``steps``. None: 0 for one round (interval first), else ``steps //
        (interval_rounds + 1)``, PGD phases of (about) equal length as the reference's
        (``--iters`` each). ``interval_rounds=1,
        interval_pgd_steps=0``: all interval steps first, then PGD.
      interval_step_size: interval only, size of an interval step, > 0 (default ``2 *
        epsilon``: from any point of the ball it lands on the vertex, as the reference's
        step does; smaller sizes let the quantized unit differ from the sign there).
      interval_width: interval only, the box half-width, > 0; None: per example and step the
        first of the reference's widths (``attacks.intervals.reference_widths(epsilon)``:
        0.01, 0.03, 0.09, 0.15 for eps 0.3) whose box is not verified. A verified box, or a
        misclassified point, takes no interval step.
      interval_loss: interval only, "margin" (``max_{j != y} hi_j - lo_y``, the bound the
        reference's step follows; default) or "xent" (``attacks.intervals.interval_loss``).
      random_start: start from a uniform point of the ball, clipped to ``bounds`` (L-inf:
        ``clip(x_nat + U(-eps, eps), lo, hi)``) (FGSM: never); ``start`` says more. The
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
        of the compiled loop (methods whose examples are independent, APGD's stateful loop
        included: its per-example state leaves with the example). The merged result per
        example is the attack-everything one's. False: every
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
    loss: str | Callable | None = None
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
    start: str | None = None
    odi_steps: int | None = None
    interval_rounds: int | None = None
    interval_steps: int | None = None
    interval_pgd_steps: int | None = None
    interval_step_size: float | None = None
    interval_width: float | None = None
    interval_loss: str | None = None
    skip_broken: str | bool = "auto"

    def __post_init__(self):
        _check(self.method in METHODS, f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        _check(self.loss is None or callable(self.loss) or self.loss in LOSSES,
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
        _check(self.start is None or self.start in STARTS,
               f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        _check(not (self.start == "random" and not self.random_start),
               "start='random' contradicts random_start=False")
        if self.odi_steps is not None:
            _check(self.start == "odi", "odi_steps applies to start='odi' only")
            _check(_count(self.odi_steps) and self.odi_steps >= 1,
                   f"odi_steps must be an integer >= 1, got {self.odi_steps}")
        if self.method != "interval":
            given = [name for name in INTERVAL_FIELDS if getattr(self, name) is not None]
            _check(not given, f"{', '.join(given)} applies to method interval only")
        else:
            _check(self.norm == "linf", "interval needs norm='linf' (its boxes are L-inf boxes)")
            for name in ("interval_rounds", "interval_steps", "interval_pgd_steps"):
                value = getattr(self, name)
                _check(value is None or (_count(value) and value >= 0),
                       f"{name} must be an integer >= 0, got {value}")
            if self.interval_pgd_steps is not None and _count(self.steps):
                rounds = (DEFAULT_INTERVAL_ROUNDS if self.interval_rounds is None
                          else self.interval_rounds)
                _check(rounds * self.interval_pgd_steps <= self.steps,
                       f"interval_rounds * interval_pgd_steps ({rounds} * "
                       f"{self.interval_pgd_steps}) exceeds the PGD steps ({self.steps})")
            _check(self.interval_step_size is None or _positive(self.interval_step_size),
                   f"interval_step_size must be a finite number > 0, got {self.interval_step_size}")
            _check(self.interval_width is None or _positive(self.interval_width),
                   f"interval_width must be a finite number > 0, got {self.interval_width}")
            _check(self.interval_loss is None or self.interval_loss in INTERVAL_LOSSES,
                   f"interval_loss must be one of {', '.join(INTERVAL_LOSSES)}, got "
                   f"{self.interval_loss!r}")
        if self.num_targets is not None:
            _check(self.method in TARGET_SWEEP_METHODS,
                   "num_targets applies to apgd_t and multitargeted only")
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
        """The same attack with every default filled in: the loss, the start (and ODI's
        steps), FGSM's implied settings, the targets, BLOB's c, the interval settings,
        ``skip_broken``."""
        fill = {}
        if self.skip_broken == "auto":
            fill["skip_broken"] = self.method not in GROUPED_METHODS
        if self.loss is None:
            fill["loss"] = DEFAULT_LOSS.get(self.method, "xent")
        loss = fill.get("loss", self.loss)
        random_start = self.random_start and self.method != "fgsm"
        start = self.start
        if start is None or (self.method == "fgsm" and start == "random"):
            start = "random" if random_start else "clean"
        fill["start"] = start
        fill["random_start"] = start == "random" or (start == "odi" and random_start)
        if start == "odi" and self.odi_steps is None:
            fill["odi_steps"] = DEFAULT_ODI_STEPS
        if self.method == "fgsm":
            fill.update(steps=1, step_size=self.epsilon)
        if self.method in TARGET_SWEEP_METHODS and self.num_targets is None:
            fill["num_targets"] = DEFAULT_NUM_TARGETS
        if self.method in GROUPED_METHODS and self.c is None:
            _check(not callable(loss) and loss in DEFAULT_C,
                   f"{self.method} with loss {getattr(loss, '__name__', loss)!r} needs "
                   f"c (the kernel weight); defaults exist for xent (1.1) and cw (10)")
            fill["c"] = DEFAULT_C[loss]
        if self.method == "interval":
            if self.interval_rounds is None:
                fill["interval_rounds"] = DEFAULT_INTERVAL_ROUNDS
            if self.interval_steps is None:
                fill["interval_steps"] = DEFAULT_INTERVAL_STEPS
            if self.interval_pgd_steps is None:
                rounds = fill.get("interval_rounds", self.interval_rounds)
                fill["interval_pgd_steps"] = 0 if rounds == 1 else self.steps // (rounds + 1)
            if self.interval_step_size is None:
                fill["interval_step_size"] = INTERVAL_STEP * self.epsilon
            if self.interval_loss is None:
                fill["interval_loss"] = DEFAULT_INTERVAL_LOSS
        changed = {k: v for k, v in fill.items() if getattr(self, k) != v}
        return replace(self, **changed) if changed else self

    @property
    def compacts(self) -> bool:
        """Whether ``keep="best"`` drops succeeded examples from the batch at chunk
        boundaries: with ``skip_broken``, for a direction that does not couple the examples."""
        cfg = self.resolved()
        return bool(cfg.skip_broken) and cfg.keep == "best" and not cfg.grouped

    @property
    def grouped(self) -> bool:
        return self.method in GROUPED_METHODS

    @property
    def target_sweep(self) -> bool:
        """Whether the method runs once per top wrong class (apgd_t, multitargeted)."""
        return self.method in TARGET_SWEEP_METHODS

    def run_passes(self) -> int:
        """Forward+backward passes per example of one run from one start point: ODI's
        ``odi_steps``, the interval phases' ``interval_rounds * interval_steps`` (each one
        bound pass with its backward pass; :meth:`bound_passes` counts the rest) and ``steps``
        (FGSM 1)."""
        cfg = self.resolved()
        odi = cfg.odi_steps if cfg.start == "odi" else 0
        return odi + cfg.interval_step_count() + cfg.steps

    def interval_step_count(self) -> int:
        """Interval steps of one run: ``interval_rounds * interval_steps`` (0 for other methods)."""
        cfg = self.resolved()
        return cfg.interval_rounds * cfg.interval_steps if cfg.method == "interval" else 0

    def interval_phases(self) -> tuple[tuple[str, int], ...]:
        """The interval method's run, in order: ``("pgd", n)`` and ``("interval", n)`` phases
        of ``n >= 1`` steps, ``interval_rounds`` times (PGD ``interval_pgd_steps``, interval
        ``interval_steps``), then ``("pgd", steps - interval_rounds * interval_pgd_steps)``;
        phases of 0 steps are left out. Other methods: ``(("pgd", steps),)``."""
        cfg = self.resolved()
        if cfg.method != "interval":
            return (("pgd", cfg.steps),)
        phases = [("pgd", cfg.interval_pgd_steps), ("interval", cfg.interval_steps)]
        phases = phases * cfg.interval_rounds
        phases.append(("pgd", cfg.steps - cfg.interval_rounds * cfg.interval_pgd_steps))
        return tuple((kind, n) for kind, n in phases if n > 0)

    def gradient_passes(self) -> int:
        """Forward+backward passes per example of one restart: :meth:`run_passes`, times
        ``num_targets`` for apgd_t and multitargeted (one run per target; an upper bound,
        examples an earlier target broke take no more runs). Forward passes not counted:
        APGD's one per run (scoring its last iterate), the one of the clean logits that
        choose the targets, keep="best"'s one per run, and the interval width search
        (:meth:`bound_passes`)."""
        cfg = self.resolved()
        return cfg.run_passes() * (cfg.num_targets if cfg.target_sweep else 1)

    def interval_widths(self) -> tuple[float, ...]:
        """The box half-widths the interval phase searches, increasing (interval only)."""
        cfg = self.resolved()
        if cfg.interval_width is not None:
            return (float(cfg.interval_width),)
        return reference_widths(cfg.epsilon)

    def bound_passes(self) -> int:
        """Interval-bound forward passes per example of one restart, besides those of
        :meth:`gradient_passes`: the width search's ``len(interval_widths())`` per interval
        step (each about two model forward passes, centre and radius); 0 for other methods."""
        cfg = self.resolved()
        return cfg.interval_step_count() * len(cfg.interval_widths()) if cfg.method == "interval" else 0

    def step_rule(self) -> StepRule | APGDStep:
        """Sign (L2: raw) or quantized unit step: the single piece that makes an attack
        'quantized'; L-inf or L2 ball within ``bounds``; for apgd / apgd_t that rule inside
        APGD's schedule (:class:`attacks.apgd.APGDStep`, initial step size ``2 * epsilon``)."""
        cfg = self.resolved()
        apgd = cfg.method in APGD_METHODS
        rule = self._rule(INITIAL_STEP * cfg.epsilon if apgd else cfg.step_size)
        return APGDStep(rule) if apgd else rule

    def interval_rule(self) -> StepRule:
        """The interval phase's step: the method's unit and ball, ``interval_step_size``."""
        cfg = self.resolved()
        _check(cfg.method == "interval", "interval_rule is the interval method's")
        return self._rule(cfg.interval_step_size)

    def odi_rule(self) -> StepRule:
        """ODI's step: the sign (L2: raw) unit, step size ``epsilon``, the method's ball."""
        return self._rule(self.epsilon, quantized=False)

    def _rule(self, step_size: float, quantized: bool = True) -> StepRule:
        cfg = self.resolved()
        bounds = (float(cfg.bounds[0]), float(cfg.bounds[1]))
        b = cfg.b if quantized else None
        if cfg.norm == "l2":
            unit = raw_unit() if b is None else quantized_unit(b)
            return L2Step(epsilon=cfg.epsilon, step_size=step_size, unit=unit, bounds=bounds)
        unit = sign_unit() if b is None else quantized_unit(b)
        return LinfStep(epsilon=cfg.epsilon, step_size=step_size, unit=unit, bounds=bounds)

    def make_loss(self, targeted: bool = False) -> Loss:
        """The loss the driver maximises, in its targeted form for a targeted attack."""
        cfg = self.resolved()
        return make_loss(cfg.loss, targeted=targeted, kappa=cfg.kappa)

    def direction(self) -> DirectionFn:
        """Plain gradient, or the BLOB kernel-interaction direction."""
        cfg = self.resolved()
        return blob_direction_fn(cfg.c) if cfg.grouped else gradient_direction()


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
