"""Attack a challenge checkpoint and write the MNIST Challenge's files.

    python eval.py                                   # the shipped robust MNIST model, first
                                                     # 1,000 test images, PGD-40 (a 0.01) at
                                                     # the eps of the model's config.json
    python eval.py --attack=pqgd --b=100 --steps=200 --restarts=50 --num_examples=10000 \\
        --model_dir=models/secret --output_dir=runs/secret_pqgd
    python eval.py --attack=strongest --budget=100   # the ensemble, 100 passes per image
    python eval.py --config=config.json              # a challenge config.json; flags win
    python eval.py --dataset=cifar10 --model_dir=models/downloaded/<model> \\
        --data_dir=<folder with cifar-10-batches-bin>  # the CIFAR-10 challenge: eps 8, 10
                                                     # steps of 2 on 0-255 images
    python eval.py --strategy=mirrored --devices=2   # groups spread over 2 GPUs (no GPU: the
                                                     # CPU split in 2); same outputs
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type":
        "worker", "index": 0}}' python eval.py --strategy=multi_worker ...  # on each host,
                                                     # its own index; the chief writes

Writes ``attack.npy``, ``pred.npy``, ``results.json``, ``leaderboard.md`` and ``examples.png``
(``restarts.png`` too for several restarts or runs; ``--noplots`` skips the pictures) to
``--output_dir``; rerunning an interrupted command resumes it from the last finished restart.
The attack's --epsilon, if not given, comes from the model's ``config.json`` (the radius it was
trained at), else the dataset's challenge (MNIST 0.3, CIFAR-10 8 on the 0-255 scale); the start
line says which. No CIFAR-10 model ships: get one with
``python -m mnist_challenge_compat.model_download cifar10_adv_trained``.
"""
import os

from absl import app, flags

from workflow.cli import fail, interrupted, one_line_flags_parser, quiet_tensorflow
from workflow.datasets import ARCH_DATASETS, DATASET_NAMES
from workflow.signals import Interrupted, raise_on_termination, signal_name
from workflow.strategy import STRATEGIES, define_strategy_flags

PROGRAM = "eval.py"
FLAGS = flags.FLAGS

flags.DEFINE_enum("attack", "pgd", ["fgsm", "pgd", "pqgd", "blob", "blob_qg", "apgd", "apgd_t",
                                     "multitargeted", "interval", "strongest"],
                  "Attack method (apgd: APGD, its step size from 2 eps; apgd_t: APGD-T, one "
                  "targeted run per top wrong class; multitargeted: PGD on the targeted logit "
                  "margin, one run per top wrong class; interval: interval steps on logit "
                  "bounds, then PGD; strongest: the ensemble of attacks.ensemble under --budget).")
flags.DEFINE_integer("budget", None, "strongest: forward+backward passes per image for the "
                     "whole ensemble (default 100).")
flags.DEFINE_float("b", None, "Quantization level (>= 1) for pqgd, blob_qg and quantized fgsm, "
                   "apgd, apgd_t, multitargeted and interval.")
flags.DEFINE_integer("num_targets", None, "apgd_t and multitargeted: targets per image, "
                     "1..classes-1 (default 9).")
flags.DEFINE_enum("start", None, ["random", "clean", "odi"],
                  "Start point: random (in the eps-ball), clean, or odi (Output Diversified "
                  "Initialization: --odi_steps steps from the random point); default: "
                  "random, clean with --norandom_start.")
flags.DEFINE_integer("odi_steps", None, "--start=odi: ODI steps of size eps (default 2).")
flags.DEFINE_integer("interval_rounds", None, "--attack=interval: rounds of (PGD phase, "
                     "interval phase) before the last PGD phase (default 1: interval first; the "
                     "reference alternates 3, measured weaker on the shipped model).")
flags.DEFINE_integer("interval_steps", None, "--attack=interval: steps of each interval phase "
                     "(default 1).")
flags.DEFINE_integer("interval_pgd_steps", None, "--attack=interval: steps of each PGD phase "
                     "before an interval phase; the last PGD phase takes the rest of --steps "
                     "(default: 0 for one round, else --steps // (--interval_rounds + 1)).")
flags.DEFINE_float("interval_step_size", None, "--attack=interval: size of an interval step "
                   "(default 2 eps: the ball's vertex).")
flags.DEFINE_float("interval_width", None, "--attack=interval: box half-width (default: the "
                   "first unverified of 0.01, 0.03, 0.09, ... up to eps/2).")
flags.DEFINE_enum("interval_loss", None, ["margin", "xent"], "--attack=interval: loss on the "
                  "logit bounds (default margin).")
flags.DEFINE_float("epsilon", None, "Radius of the --norm ball on the dataset's pixel scale "
                   "([0, 1]; cifar10: 0-255); default: the model's config.json, else 0.3 "
                   "(cifar10: 8).")
flags.DEFINE_integer("steps", None, "Attack iterations (the challenge's k, num_steps); default 40 "
                     "(cifar10: 10). Not for fgsm.")
flags.DEFINE_float("step_size", None, "Step size a; default 0.01 (cifar10: 2). Not for fgsm, "
                   "apgd, apgd_t.")
flags.DEFINE_enum("loss", None, ["xent", "cw", "dlr", "logit_margin"],
                  "Attack loss (its targeted form with --target); default logit_margin for "
                  "multitargeted, else xent.")
flags.DEFINE_float("kappa", None, "CW loss margin (default 50, the challenge's); --loss=cw only.")
flags.DEFINE_enum("norm", "linf", ["linf", "l2"], "Threat model: L-inf or L2 ball of --epsilon.")
flags.DEFINE_enum("keep", "best", ["best", "final"],
                  "Per example, the first iterate that fools the model (best) or the last one "
                  "(final: the paper's and the challenge scripts' protocol).")
flags.DEFINE_enum("target", "none", ["none", "next", "random"],
                  "Targeted attack towards (y + 1) mod C (next) or a random other class per "
                  "image drawn from --seed (random); none: untargeted.")
flags.DEFINE_bool("random_start", True, "Start from a uniform random point of the eps-ball.")
flags.DEFINE_integer("restarts", 1, "Restarts, merged per example.")
flags.DEFINE_integer("runs", 1, "Independent runs (reports worst and average accuracy).")
flags.DEFINE_integer("batch_size", 200, "Images per compiled call; the BLOB group size.")
flags.DEFINE_integer("steps_per_group", 10, "BLOB steps between regroupings.")
flags.DEFINE_float("c", None, "BLOB kernel weight (default 1.1 for xent, 10 for cw).")
flags.DEFINE_integer("num_examples", 1000, "Attack the first N test images.")
flags.DEFINE_string("model_dir", None, "Challenge model directory or checkpoint prefix "
                    "(default: the shipped robust model of --dataset; none ships for cifar10).")
flags.DEFINE_enum("arch", None, list(ARCH_DATASETS), "Architecture (default: inferred).")
flags.DEFINE_enum("dataset", "mnist", list(DATASET_NAMES), "Test set.")
flags.DEFINE_string("data_dir", None, "Folder with the IDX files (MNIST_data layout); cifar10: "
                    "the binary test_batch.bin (in it or in its cifar-10-batches-bin).")
flags.DEFINE_string("output_dir", "runs/eval", "Where outputs and the resumable state go.")
flags.DEFINE_string("attack_path", "attack.npy", "Adversarial images file (relative: in output_dir).")
flags.DEFINE_integer("seed", 0, "Random seed; same seed, same images.")
flags.DEFINE_enum("xla", "auto", ["auto", "on", "off"], "XLA compilation (auto: on with a GPU).")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16", "auto"],
                  "Attack forward/backward dtype; auto: bfloat16 only where a cached "
                  "calibration on this machine shows it faster.")
flags.DEFINE_string("submitted_by", "qg-attacks", "The leaderboard row's 'Submitted by'.")
flags.DEFINE_string("config", None, "A challenge config.json; its keys set flags not given explicitly.")
flags.DEFINE_bool("plots", True, "Write examples.png (and restarts.png for several restarts or "
                  "runs); needs matplotlib.")
define_strategy_flags(STRATEGIES, "tf.distribute strategy: none (one device), mirrored "
                      "(MirroredStrategy over --devices) or multi_worker "
                      "(MultiWorkerMirroredStrategy from TF_CONFIG: the same command on every "
                      "host; the chief writes the outputs). The images are the same as with none.")
flags.DEFINE_integer("plot_examples", 8, "Examples shown in examples.png and recorded in results.json.")

flags.register_validator("epsilon", lambda v: v is None or v > 0, "--epsilon must be > 0")
flags.register_validator("steps", lambda v: v is None or v >= 1, "--steps must be >= 1")
flags.register_validator("step_size", lambda v: v is None or v > 0, "--step_size must be > 0")
flags.register_validator("seed", lambda v: v >= 0, "--seed must be >= 0")
flags.register_validator("submitted_by", lambda v: bool(v.strip()) and not set(v) & set("\r\n"),
                         "--submitted_by must be one non-empty line")
flags.register_validator("attack_path", lambda v: bool(v.strip()),
                         "--attack_path must name a file")
flags.register_validator("budget", lambda v: v is None or v >= 1, "--budget must be >= 1")
flags.register_multi_flags_validator(
    ["attack", "budget"], lambda f: f["budget"] is None or f["attack"] == "strongest",
    "--budget applies to --attack=strongest only")
flags.register_validator("b", lambda v: v is None or v >= 1, "--b must be >= 1")
flags.register_validator("restarts", lambda v: v >= 1, "--restarts must be >= 1")
flags.register_validator("runs", lambda v: v >= 1, "--runs must be >= 1")
flags.register_validator("batch_size", lambda v: v >= 1, "--batch_size must be >= 1")
flags.register_validator("steps_per_group", lambda v: v >= 1, "--steps_per_group must be >= 1")
flags.register_validator("num_examples", lambda v: v is None or v >= 1, "--num_examples must be >= 1")
flags.register_validator("c", lambda v: v is None or v >= 0, "--c must be >= 0")
flags.register_validator("plot_examples", lambda v: v >= 1, "--plot_examples must be >= 1")
flags.register_multi_flags_validator(
    ["loss", "kappa"], lambda f: f["kappa"] is None or f["loss"] == "cw",
    "--kappa applies to --loss=cw only")
flags.register_multi_flags_validator(
    ["attack", "b"], lambda f: f["attack"] not in ("pqgd", "blob_qg") or f["b"] is not None,
    "--attack=pqgd and --attack=blob_qg need --b (the quantization level, >= 1)")
flags.register_validator("num_targets", lambda v: v is None or v >= 1,
                         "--num_targets must be >= 1 (and at most the classes minus 1)")
flags.register_validator("odi_steps", lambda v: v is None or v >= 1, "--odi_steps must be >= 1")
for _name in ("interval_rounds", "interval_steps", "interval_pgd_steps"):
    flags.register_validator(_name, lambda v: v is None or v >= 0, f"--{_name} must be >= 0")
flags.register_validator("interval_step_size", lambda v: v is None or v > 0,
                         "--interval_step_size must be > 0")
flags.register_validator("interval_width", lambda v: v is None or v > 0,
                         "--interval_width must be > 0")
flags.register_multi_flags_validator(
    ["attack", "num_targets"],
    lambda f: f["num_targets"] is None or f["attack"] in ("apgd_t", "multitargeted"),
    "--num_targets applies to --attack=apgd_t and --attack=multitargeted only")
flags.register_multi_flags_validator(
    ["start", "odi_steps"], lambda f: f["odi_steps"] is None or f["start"] == "odi",
    "--odi_steps applies to --start=odi only")
flags.register_multi_flags_validator(
    ["start", "random_start"], lambda f: not (f["start"] == "random" and not f["random_start"]),
    "--start=random contradicts --norandom_start")
flags.register_multi_flags_validator(
    ["attack", "interval_rounds", "interval_steps", "interval_pgd_steps", "interval_step_size",
     "interval_width", "interval_loss"],
    lambda f: f["attack"] == "interval" or all(f[k] is None for k in f if k != "attack"),
    "--interval_rounds, --interval_steps, --interval_pgd_steps, --interval_step_size, "
    "--interval_width and --interval_loss apply to --attack=interval only")
flags.register_multi_flags_validator(
    ["attack", "step_size"], lambda f: f["attack"] not in ("apgd", "apgd_t") or f["step_size"] is None,
    "--attack=apgd and apgd_t set their own step sizes (from 2 eps): they take no --step_size")
flags.register_multi_flags_validator(
    ["attack", "target"],
    lambda f: f["attack"] not in ("apgd_t", "multitargeted", "interval") or f["target"] == "none",
    "--attack=apgd_t and multitargeted choose their own targets and interval is untargeted: "
    "they take no --target")
flags.register_multi_flags_validator(
    ["attack", "steps", "step_size"],
    lambda f: f["attack"] != "fgsm" or (f["steps"] is None and f["step_size"] is None),
    "--attack=fgsm takes one step of size --epsilon: it has no --steps or --step_size")




def settings_from_flags():
    """EvalSettings from the flags, a --config file filling the flags not given explicitly."""
    from mnist_challenge_compat.config import (EVAL_CONFIG_TO_FLAGS, config_to_flag_values,
                                               read_challenge_config)
    from workflow import EvalSettings
    values = {name: FLAGS[name].value for name in EvalSettings.__dataclass_fields__}
    if FLAGS.config:
        from_config = config_to_flag_values(read_challenge_config(FLAGS.config), EVAL_CONFIG_TO_FLAGS)
        if FLAGS.attack in ("fgsm", "strongest"):  # a challenge config's k and a are for the iterative attack
            from_config = {k: v for k, v in from_config.items() if k not in ("steps", "step_size")}
        if FLAGS.attack in ("apgd", "apgd_t"):  # APGD's schedule sets the step sizes
            from_config.pop("step_size", None)
        values.update({k: v for k, v in from_config.items() if not FLAGS[k].present})
    return EvalSettings(**values)


def main(argv):
    if len(argv) > 1:
        fail(PROGRAM, f"unexpected arguments: {' '.join(argv[1:])}")
    # Installed before TensorFlow loads: a signal at any point ends in one line and exit 130.
    with raise_on_termination():
        try:
            quiet_tensorflow()
            from workflow.strategy import check_worker_groups, make_strategy
            try:
                if FLAGS.strategy == "multi_worker":  # before waiting for the other workers
                    check_worker_groups(os.environ, FLAGS.num_examples, FLAGS.batch_size)
                # Before anything initialises TensorFlow's devices: it may split the CPU.
                strategy = make_strategy(FLAGS.strategy, FLAGS.devices,
                                         join_timeout=FLAGS.join_timeout, program=PROGRAM)
            except ValueError as err:
                fail(PROGRAM, str(err))
            from mnist_challenge_compat import CompatError
            from workflow import run_evaluation
            try:
                run_evaluation(settings_from_flags(), strategy=strategy)
            except (CompatError, ValueError) as err:
                fail(PROGRAM, str(err))
        except Interrupted as stop:
            interrupted(PROGRAM, stop.message or f"interrupted by {signal_name(stop.signum)} "
                                                 f"during start-up; nothing was computed or saved")


def run() -> None:
    """``python eval.py`` and the ``qg-eval`` console script: parse the flags, run :func:`main`."""
    app.run(main, flags_parser=one_line_flags_parser(PROGRAM, modules=(__name__,), usage=__doc__))


if __name__ == "__main__":
    run()
