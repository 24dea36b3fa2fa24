"""Quantized-gradient first-order attacks: FGSM, PGD, PQGD, DAA-BLOB, BLOB_QG, APGD and
APGD-T, each with the sign or the quantized step (L-inf or L2).

Takes a Keras classifier and numpy arrays of any image shape and pixel range; knows no file
formats. The public seam an attack is made of (shapes ``(M, *S)`` float32 images,
``(M,)`` int64 labels, ``(M, C)`` float32 logits):

- step rules: :class:`LinfStep`, :class:`L2Step` (``step``, ``project``, ``random_perturb``);
- units: :func:`sign_unit`, :func:`quantized_unit` (``b``), :func:`raw_unit` (L2);
- directions: :func:`gradient_direction`, :func:`blob_direction_fn` (``(x, g) -> d``);
- losses: :func:`make_loss` (names of :data:`LOSSES`, targeted forms, or a callable);
- step rules with per-example state: :class:`APGDStep` (APGD's step-size schedule,
  momentum and best point around a ``LinfStep`` / ``L2Step`` and its unit; ``run(...,
  record={})`` returns its per-step losses, step sizes and restarts);
- the driver: :class:`StepRunner` (``run(x, x_nat, y, n)``), the one compiled step loop.

``AttackConfig`` names the compositions the paper uses; ``perturb`` / ``attack`` run them.
APGD (Croce & Hein 2020): ``perturb(model, x, y, method="apgd", epsilon=0.3, steps=100,
loss="dlr")`` (no ``step_size``: it starts at ``2 * epsilon``), its quantized form with
``b=...`` (``b = 1`` is APGD bit for bit), and APGD-T with ``method="apgd_t",
num_targets=9`` (``1 .. C - 1``), one targeted run per top wrong class of the clean logits.
APGD returns its best-loss point (``keep="final"``) or the first iterate that fools the model
(``keep="best"``); it spends ``steps`` forward+backward passes and one forward pass per
example and run (``AttackConfig.gradient_passes``).

``strongest(model, x, y, epsilon, budget=100)`` (``attacks.ensemble``): the members of
``DEFAULT_MEMBERS`` in order, each on the examples no earlier one broke, under one budget of
forward+backward passes per example; per member the examples it attacked and broke and the
passes it spent.
"""
from attacks.apgd import APGDStep, checkpoints, top_targets
from attacks.api import (RestartState, attack, attack_model, make_runner, model_input_shape,
                         perturb, predict, random_targets, run_restart)
from attacks.config import APGD_METHODS, KEEP, METHODS, NORMS, AttackConfig
from attacks.directions import DirectionFn, blob_direction, blob_direction_fn, gradient_direction
from attacks.ensemble import (DEFAULT_BUDGET, DEFAULT_MEMBERS, EnsembleState, Member,
                              MemberResult, member_steps, strongest)
from attacks.engine import BestIterate, StepRunner, resolve_xla
from attacks.losses import LOSSES, Loss, make_loss, per_example_loss
from attacks.quantize import quantize
from attacks.runs import RunsState, attack_runs
from attacks.steps import L2Step, LinfStep, StepRule, UnitFn, quantized_unit, raw_unit, sign_unit

__all__ = ["DEFAULT_BUDGET", "DEFAULT_MEMBERS", "EnsembleState", "Member", "MemberResult",
           "member_steps", "strongest", "APGDStep", "APGD_METHODS", "AttackConfig", "BestIterate", "DirectionFn", "KEEP", "L2Step", "LOSSES", "LinfStep",
           "Loss", "METHODS", "NORMS", "RestartState", "RunsState", "StepRule", "StepRunner",
           "UnitFn", "attack", "attack_model", "attack_runs", "blob_direction",
           "blob_direction_fn", "checkpoints", "gradient_direction", "make_loss", "make_runner",
           "model_input_shape", "per_example_loss", "perturb", "predict", "quantize",
           "quantized_unit", "random_targets", "raw_unit", "resolve_xla", "run_restart",
           "sign_unit", "top_targets"]
