"""Quantized-gradient first-order L-inf attacks: FGSM, PGD, PQGD, DAA-BLOB, BLOB_QG.

Takes a Keras model and numpy arrays; knows no file formats. The step rule (sign or
quantized, ``attacks.steps``) and the direction (gradient or BLOB, ``attacks.directions``)
are the two swappable pieces; ``attacks.engine.StepRunner`` is the one compiled loop.
"""
from attacks.api import RestartState, attack, attack_model, make_runner, perturb, predict, run_restart
from attacks.runs import RunsState, attack_runs
from attacks.config import METHODS, AttackConfig
from attacks.directions import blob_direction
from attacks.losses import LOSSES, per_example_loss
from attacks.quantize import quantize

__all__ = ["AttackConfig", "LOSSES", "METHODS", "RestartState", "RunsState", "attack", "attack_model", "attack_runs", "blob_direction", "make_runner",
           "per_example_loss", "perturb", "predict", "quantize", "run_restart"]
