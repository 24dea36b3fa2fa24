"""Quantized-gradient first-order attacks: FGSM, PGD, PQGD, DAA-BLOB, BLOB_QG (L-inf or L2).

Takes a Keras classifier and numpy arrays of any image shape and pixel range; knows no file
formats. The public seam an attack is made of (shapes ``(M, *S)`` float32 images,
``(M,)`` int64 labels, ``(M, C)`` float32 logits):

- step rules: :class:`LinfStep`, :class:`L2Step` (``step``, ``project``, ``random_perturb``);
- units: :func:`sign_unit`, :func:`quantized_unit` (``b``), :func:`raw_unit` (L2);
- directions: :func:`gradient_direction`, :func:`blob_direction_fn` (``(x, g) -> d``);
- losses: :func:`make_loss` (names of :data:`LOSSES`, targeted forms, or a callable);
- the driver: :class:`StepRunner` (``run(x, x_nat, y, n)``), the one compiled step loop.

``AttackConfig`` names the compositions the paper uses; ``perturb`` / ``attack`` run them.
"""
from attacks.api import (RestartState, attack, attack_model, make_runner, model_input_shape,
                         perturb, predict, random_targets, run_restart)
from attacks.config import KEEP, METHODS, NORMS, AttackConfig
from attacks.directions import DirectionFn, blob_direction, blob_direction_fn, gradient_direction
from attacks.engine import BestIterate, StepRunner, resolve_xla
from attacks.losses import LOSSES, Loss, make_loss, per_example_loss
from attacks.quantize import quantize
from attacks.runs import RunsState, attack_runs
from attacks.steps import L2Step, LinfStep, StepRule, UnitFn, quantized_unit, raw_unit, sign_unit

__all__ = ["AttackConfig", "BestIterate", "DirectionFn", "KEEP", "L2Step", "LOSSES", "LinfStep",
           "Loss", "METHODS", "NORMS", "RestartState", "RunsState", "StepRule", "StepRunner",
           "UnitFn", "attack", "attack_model", "attack_runs", "blob_direction",
           "blob_direction_fn", "gradient_direction", "make_loss", "make_runner",
           "model_input_shape", "per_example_loss", "perturb", "predict", "quantize",
           "quantized_unit", "random_targets", "raw_unit", "resolve_xla", "run_restart",
           "sign_unit"]
