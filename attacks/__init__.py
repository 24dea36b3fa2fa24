"""Quantized-gradient first-order attacks: FGSM, PGD, PQGD, DAA-BLOB, BLOB_QG, APGD, APGD-T,
MultiTargeted and the Interval Attack, each with the sign or the quantized step (L-inf or L2),
each from a random, clean or ODI start.

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
- objectives (what the driver differentiates instead of ``loss(model(x))``, ``(model, x, y,
  t, aux) -> ((M,) values, (M, C) logits)``): ``attacks.intervals.interval_objective`` (the
  interval loss on logit bounds over a box around ``x``) and ``attacks.odi.odi_objective``
  (``w . logits``, ``w = aux``);
- the driver: :class:`StepRunner` (``run(x, x_nat, y, n)``), the one compiled step loop;
- compute dtype: ``compute_dtype="auto"`` picks bfloat16 only where a cached calibration
  on this machine shows it faster (:func:`resolve_compute_dtype`, ``attacks.calibration``;
  the machine is named by :func:`cpu_model`, which experiment reports record too);
  :func:`model_in_dtype` is the reduced-precision copy the loop attacks (weights refreshed
  from the float32 model on every call, so a model trained in between is attacked as it is);
- restarts: ``skip_broken`` (``AttackConfig``) attacks only the unbroken examples after the
  first restart (PGD family by default), same merged result;
  :func:`make_runners` builds all of an attack's loops (its interval phase, its ODI steps);
- devices: ``strategy=`` (a ``tf.distribute.Strategy``) on ``perturb`` / ``attack`` /
  ``attack_runs`` deals whole groups to its replicas (:func:`run_schedule`), same images; a
  ``MultiWorkerMirroredStrategy`` too (every worker calls the same attack; results are
  exchanged with :func:`all_gather_bytes`, named arrays as bytes with :func:`pack_arrays` /
  :func:`unpack_arrays`; :func:`is_chief` says which worker writes).

``AttackConfig`` names the compositions the paper uses; ``perturb`` / ``attack`` run them.
APGD (Croce & Hein 2020): ``perturb(model, x, y, method="apgd", epsilon=0.3, steps=100,
loss="dlr")`` (no ``step_size``: it starts at ``2 * epsilon``), its quantized form with
``b=...`` (``b = 1`` is APGD bit for bit), and APGD-T with ``method="apgd_t",
num_targets=9`` (``1 .. C - 1``), one targeted run per top wrong class of the clean logits.
APGD returns its best-loss point (``keep="final"``) or the first iterate that fools the model
(``keep="best"``); it spends ``steps`` forward+backward passes and one forward pass per
example and run (``AttackConfig.gradient_passes``).

MultiTargeted (Gowal et al. 2019): ``method="multitargeted"``, PGD steps (``step_size``,
``b`` for the quantized step) on the targeted logit margin ``z_t - max_{j != t} z_j``, one
run of ``steps`` per target, the ``num_targets`` (default 9) top wrong classes; an example is
broken when a run misclassifies it. Budget ``num_targets * steps`` per restart (an upper
bound: later targets skip broken examples). The Interval Attack (Wang et al. 2019):
``method="interval"``: ``interval_rounds`` (default 1; the reference's alternation is 3, measured weaker here) rounds of (a PGD
phase, then ``interval_steps`` (default 1) steps along the gradient of the interval loss on
sound logit bounds (``attacks.intervals``) with respect to the box centre), then a last PGD
phase; ``steps`` PGD steps in all (``interval_pgd_steps`` per phase before an interval
phase, default 0 for one round, else equal phases; ``AttackConfig.interval_phases``); models with layers without interval rules are refused before any
step. ODI (Tashiro et al. 2020): ``start="odi"``, ``odi_steps`` (default 2) sign steps of
size ``epsilon`` maximising ``w . logits``, ``w ~ U(-1, 1)^C`` per example, before any method;
counted in ``gradient_passes``.

``strongest(model, x, y, epsilon, budget=100)`` (``attacks.ensemble``): the members
``default_members(budget)`` (``DEFAULT_PLAN``, chosen per budget) in order, each on the examples no earlier one broke, under one budget of
forward+backward passes per example; per member the examples it attacked and broke and the
passes it spent.
"""
from attacks.apgd import APGDStep, checkpoints, top_targets
from attacks.api import (RestartState, Runners, attack, attack_model, make_runner, make_runners,
                         model_input_shape, perturb, predict, random_targets, run_restart)
from attacks.calibration import cpu_model, resolve_compute_dtype
from attacks.config import APGD_METHODS, KEEP, METHODS, NORMS, STARTS, AttackConfig
from attacks.distribute import (all_gather_bytes, check_groups, check_strategy, is_chief,
                                is_multi_worker, pack_arrays, run_schedule, unpack_arrays,
                                worker_count, worker_rank)
from attacks.directions import DirectionFn, blob_direction, blob_direction_fn, gradient_direction
from attacks.ensemble import (DEFAULT_BUDGET, DEFAULT_PLAN, EnsembleState, Member,
                              MemberResult, default_members, member_steps, strongest)
from attacks.engine import BestIterate, Objective, StepRunner, resolve_xla
from attacks.losses import LOSSES, Loss, make_loss, per_example_loss
from attacks.precision import COMPUTE_DTYPES, model_in_dtype
from attacks.quantize import quantize
from attacks.runs import RunsState, attack_runs
from attacks.steps import L2Step, LinfStep, StepRule, UnitFn, quantized_unit, raw_unit, sign_unit

__all__ = ["DEFAULT_BUDGET", "DEFAULT_PLAN", "EnsembleState", "Member",
           "MemberResult", "default_members", "member_steps", "strongest", "APGDStep", "APGD_METHODS", "AttackConfig", "COMPUTE_DTYPES", "BestIterate", "DirectionFn", "KEEP", "L2Step", "LOSSES", "LinfStep",
           "Loss", "METHODS", "NORMS", "Objective", "RestartState", "Runners", "RunsState",
           "STARTS", "StepRule", "StepRunner",
           "UnitFn", "attack", "attack_model", "attack_runs", "blob_direction",
           "all_gather_bytes", "blob_direction_fn", "check_groups", "check_strategy", "checkpoints", "cpu_model", "is_chief", "is_multi_worker", "pack_arrays", "unpack_arrays",
           "gradient_direction", "make_loss", "make_runner", "make_runners",
           "model_in_dtype", "model_input_shape", "per_example_loss", "perturb", "predict", "quantize",
           "quantized_unit", "random_targets", "raw_unit", "resolve_compute_dtype", "resolve_xla", "run_restart", "run_schedule", "worker_count", "worker_rank",
           "sign_unit", "top_targets"]
