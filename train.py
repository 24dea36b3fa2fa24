"""Madry et al. adversarial training in TF2 that writes MNIST Challenge checkpoints.

Every step: PGD-``k`` adversarial examples of the batch (the attack engine's compiled step
loop, the challenge's random start, loss ``loss_func``, the model's current weights), then
ONE Adam step on the SUMMED cross-entropy of the adversarial batch, as the challenge's
``train.py``. Checkpoints are TF1 challenge checkpoints with Adam slots
(``mnist_challenge_compat.save_checkpoint``); re-running the same command resumes from the
newest one and continues the exact same sequence of batches and random starts, because all
per-step randomness derives from ``(random_seed, step)``. A resume with other settings that
change that trajectory (learning rate, attack, seed, batch size, the training data, ...) is
refused; ``--allow_setting_changes`` accepts it and records the change in ``config.json``.

Example (the shipped MNIST model, see ``models/pretrained/madry_mnist/MODEL_CARD.md``)::

    python train.py --dataset mnist --data_dir ../shared/data/mnist --model_dir runs/mnist \\
        --max_num_training_steps 6000 --k 10 --a 0.05 --learning_rate 1e-3 \\
        --epsilon_warmup_steps 1200

Flags are named like the training keys of the challenge's ``config.json``; ``--config``
reads such a file and flags given explicitly on the command line win over it.

``--strategy=mirrored --devices=N`` trains synchronously data-parallel on a ``MirroredStrategy``
(``workflow.strategy``): the batch is cut into N contiguous shards, each replica crafts the PGD
examples of its shard from the random start drawn for the whole batch, computes the summed
cross-entropy of its shard, and the gradients are summed across replicas (Keras' optimizer
all-reduce) before the one Adam update: the update of one device up to float summation order.
``--strategy`` is not a trajectory setting (it changes no result beyond that order): a run may
be resumed under another strategy. ``--strategy=multi_worker`` does the same over the hosts of
``TF_CONFIG`` (a ``MultiWorkerMirroredStrategy``, every host running the same command): the
workers first agree on the job (``workflow.cluster``: the settings, paths aside, and the
training data's sha256), the chief alone reads and writes ``model_dir`` and sends its newest
checkpoint to the others, and all stop at the same step on a signal.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # TensorFlow and numpy are imported lazily: flag errors stay fast.
    import numpy as np

from absl import app, flags  # noqa: E402

from workflow.cli import fail, one_line_flags_parser, quiet_tensorflow  # noqa: E402
from workflow.signals import StopSignals  # noqa: E402
from workflow.strategy import STRATEGIES, define_strategy_flags  # noqa: E402

FLAGS = flags.FLAGS
DATASETS = ("mnist", "fashion_mnist")
DEFAULT_ARCH = {"mnist": "madry_mnist", "fashion_mnist": "daa_fashion"}
ARCHS = ("madry_mnist", "daa_fashion")

# --- flags named like the challenge config.json training keys --------------------------------
flags.DEFINE_integer("random_seed", 4557077, "Seed of the initial weights, the data order and "
                     "the random starts (all per-step randomness derives from (seed, step)).",
                     lower_bound=0)
flags.DEFINE_integer("max_num_training_steps", 100000, "Total training steps (Adam updates).",
                     lower_bound=0)
flags.DEFINE_integer("num_output_steps", 100, "Print a progress line every this many steps.",
                     lower_bound=1)
flags.DEFINE_integer("num_summary_steps", 100, "Write TensorBoard summaries every this many "
                     "steps.", lower_bound=1)
flags.DEFINE_integer("num_checkpoint_steps", 300, "Write a checkpoint every this many steps "
                     "(and always at the end).", lower_bound=1)
flags.DEFINE_integer("training_batch_size", 50, "Examples per training step.", lower_bound=1)
flags.DEFINE_float("epsilon", 0.3, "L-inf radius of the training attack (pixels in [0, 1]); "
                   "0 = natural training.", lower_bound=0.0)
flags.DEFINE_integer("k", 40, "PGD steps per training batch; 0 = natural training.",
                     lower_bound=0)
flags.DEFINE_float("a", 0.01, "PGD step size.", lower_bound=0.0)
flags.DEFINE_boolean("random_start", True, "Start PGD at clip(x + U(-eps, eps), 0, 1).")
flags.DEFINE_enum("loss_func", "xent", ["xent", "cw"], "Loss the training attack maximises "
                  "(the model always minimises cross-entropy).")
flags.DEFINE_string("model_dir", None, "Checkpoints, summaries and config.json go here "
                    "(default: runs/<dataset>_adv_train).")
# --- flags of this script only -----------------------------------------------------------------
flags.DEFINE_enum("dataset", "mnist", list(DATASETS), "Training set.")
flags.DEFINE_string("data_dir", None, "Folder with the IDX files of the training split "
                    "(default: Debian's Fashion-MNIST, else tensorflow_datasets).")
flags.DEFINE_enum("arch", None, list(ARCHS), "Architecture (default: madry_mnist for mnist, "
                  "daa_fashion for fashion_mnist).")
flags.DEFINE_string("config", None, "A challenge config.json; its training keys set the flags "
                    "of the same names unless given on the command line.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_integer("epsilon_warmup_steps", 0, "Raise the training epsilon linearly over "
                     "this many steps: eps * min(1, (step + 1) / warmup); 0 = off.",
                     lower_bound=0)
flags.DEFINE_enum("attack_dtype", "float32", ["float32", "bfloat16"], "Precision of the "
                  "training attack's forward and backward passes (the weight update is always "
                  "float32); bfloat16 roughly doubles the PGD rate on CPUs with AVX512_BF16 and "
                  "changes the examples by bfloat16 rounding only.")
define_strategy_flags(STRATEGIES, "tf.distribute strategy: none (one device), mirrored "
                      "(MirroredStrategy over --devices) or multi_worker "
                      "(MultiWorkerMirroredStrategy from TF_CONFIG: the same command on every "
                      "host; the chief writes the checkpoints). Each replica attacks and "
                      "differentiates its shard of the batch, gradients summed. Not a "
                      "trajectory setting.")
flags.DEFINE_integer("num_train_examples", None, "Use only the first this many training "
                     "examples (default: all).", lower_bound=1)
flags.DEFINE_boolean("allow_setting_changes", False, "Resume a checkpoint even though a setting "
                     "that changes the training trajectory (learning rate, attack, seed, data, "
                     "...) differs from model_dir/config.json; the change is recorded there "
                     "under 'setting_changes'.")

flags.register_validator("learning_rate", lambda lr: lr is not None and 0 < lr < math.inf,
                         message="--learning_rate must be a finite number > 0")
flags.register_validator("epsilon", lambda eps: eps is not None and eps < math.inf,
                         message="--epsilon must be finite")
flags.register_multi_flags_validator(
    ["k", "epsilon", "a"], lambda v: v["k"] == 0 or v["epsilon"] == 0 or 0 < v["a"] < math.inf,
    message="--a must be a finite number > 0 for adversarial training (k > 0, epsilon > 0)")



# Config keys that --config sets (challenge training keys plus this script's extras, which
# train.py itself writes into model_dir/config.json so that a run can be repeated from it).
EXTRA_CONFIG_KEYS = ("dataset", "data_dir", "arch", "learning_rate", "epsilon_warmup_steps",
                     "num_train_examples", "attack_dtype")
# config.json keys whose change alters the training trajectory (the steps after a resume differ
# from an uninterrupted run's). Resuming with another value is refused unless
# --allow_setting_changes. Step counts and reporting intervals (max_num_training_steps,
# num_*_steps) may change freely: extending a run is legitimate.
DATA_DIGEST_KEY = "train_data_sha256"
SETTING_CHANGES_KEY = "setting_changes"
TRAJECTORY_KEYS = ("random_seed", "training_batch_size", "epsilon", "k", "a", "random_start",
                   "loss_func", "dataset", "arch", "learning_rate", "epsilon_warmup_steps",
                   "num_train_examples", "attack_dtype", DATA_DIGEST_KEY)
# Keys train.py leaves out of config.json when unset, so absence means this value.
ABSENT_MEANS = {"num_train_examples": None, "attack_dtype": "float32"}
ADAM_EPSILON = 1e-8  # tf.compat.v1.train.AdamOptimizer's default (Keras' default is 1e-7)


class UsageError(Exception):
    """A problem with the settings or the data; printed as one line, exit status 1."""


@dataclass(frozen=True)
class Settings:
    """The effective training settings (flags merged with ``--config``)."""

    random_seed: int
    max_num_training_steps: int
    num_output_steps: int
    num_summary_steps: int
    num_checkpoint_steps: int
    training_batch_size: int
    epsilon: float
    k: int
    a: float
    random_start: bool
    loss_func: str
    model_dir: str
    dataset: str
    data_dir: str | None
    arch: str
    learning_rate: float
    epsilon_warmup_steps: int
    num_train_examples: int | None
    attack_dtype: str = "float32"

    @property
    def adversarial(self) -> bool:
        """False for natural training (``k == 0`` or ``epsilon == 0``)."""
        return self.k > 0 and self.epsilon > 0

    def config_values(self) -> dict[str, Any]:
        """The settings as ``config.json`` keys (None values left out)."""
        return {key: value for key, value in dataclasses.asdict(self).items()
                if value is not None}


# --------------------------------------------------------------------------- settings

def apply_config_file(path: str) -> list[str]:
    """Sets every flag named by a key of the challenge ``config.json`` at ``path`` that was not
    given on the command line (``FLAGS[name].present``); returns the names set.

    Raises:
        CompatError: the file is missing or malformed.
        UsageError: a value the flag rejects.
    """
    from mnist_challenge_compat.config import (TRAIN_CONFIG_TO_FLAGS, config_to_flag_values,
                                                read_challenge_config)
    config = read_challenge_config(path)
    mapping = dict(TRAIN_CONFIG_TO_FLAGS, **{key: key for key in EXTRA_CONFIG_KEYS})
    applied = []
    for name, value in config_to_flag_values(config, mapping).items():
        if FLAGS[name].present:
            continue
        try:
            parsed = value if value is None else FLAGS[name].parser.parse(value)
            setattr(FLAGS, name, parsed)  # runs the flag's validators
        except (flags.Error, ValueError, TypeError) as err:
            raise UsageError(f"config {path}: key '{name}': {err}") from None
        applied.append(name)
    return applied


def settings_from_flags() -> Settings:
    """Builds :class:`Settings` from the (config-merged) flags and checks their combination."""
    dataset = FLAGS.dataset
    values = {field.name: getattr(FLAGS, field.name) for field in dataclasses.fields(Settings)}
    values["arch"] = FLAGS.arch or DEFAULT_ARCH[dataset]
    values["model_dir"] = FLAGS.model_dir or os.path.join("runs", f"{dataset}_adv_train")
    settings = Settings(**values)
    if settings.adversarial and not settings.a > 0:
        raise UsageError(f"--a must be > 0 for adversarial training (k={settings.k}, "
                         f"epsilon={settings.epsilon})")
    if not math.isfinite(settings.epsilon) or not math.isfinite(settings.a):
        raise UsageError("--epsilon and --a must be finite")
    if not (math.isfinite(settings.learning_rate) and settings.learning_rate > 0):
        raise UsageError(f"--learning_rate must be > 0, got {settings.learning_rate}")
    return settings


# --------------------------------------------------------------------------- data and randomness

def load_training_data(settings: Settings) -> tuple["np.ndarray", "np.ndarray"]:
    """Training images ``(N, 784)`` float32 in [0, 1] and labels ``(N,)`` int64, file order,
    capped to ``num_train_examples``; at least one full batch.

    Raises:
        CompatError: missing or malformed data files.
        UsageError: fewer examples than one batch.
    """
    from mnist_challenge_compat import load_dataset
    x, y = load_dataset(settings.dataset, "train", settings.data_dir)
    if settings.num_train_examples is not None:
        x, y = x[:settings.num_train_examples], y[:settings.num_train_examples]
    if len(x) < settings.training_batch_size:
        raise UsageError(f"{settings.dataset}/train: {len(x)} examples, fewer than one batch "
                         f"of {settings.training_batch_size}")
    return x, y


def batch_indices(step: int, n_examples: int, batch_size: int, seed: int) -> "np.ndarray":
    """Example indices ``(batch_size,)`` int64 of training step ``step`` (0-based).

    Like the challenge's ``DataSubset.get_next_batch``: each epoch is a fresh permutation
    (here ``default_rng([seed, epoch])``), cut into ``n_examples // batch_size`` batches; the
    remainder of an epoch is dropped. A pure function of its arguments, so a resumed run
    sees exactly the batches an uninterrupted one sees.
    """
    import numpy as np
    per_epoch = n_examples // batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_examples)
    return order[position * batch_size:(position + 1) * batch_size]


def step_rng(seed: int, step: int) -> "np.random.Generator":
    """The random generator of training step ``step``'s random start (independent of the
    data order's generators, which use 2-word seeds)."""
    import numpy as np
    return np.random.default_rng([seed, step, 1])


def epsilon_at(settings: Settings, step: int) -> float:
    """Training epsilon at step ``step``: ``eps * min(1, (step + 1) / warmup)``; > 0."""
    if settings.epsilon_warmup_steps <= 0:
        return settings.epsilon
    return settings.epsilon * min(1.0, (step + 1) / settings.epsilon_warmup_steps)


# --------------------------------------------------------------------------- compiled pieces

class AdversarialTrainer:
    """The model, its Adam optimizer, the attack's compiled step loop and the compiled update.

    The attack's epsilon lives in a ``tf.Variable`` so that the warm-up changes it without
    retracing the compiled PGD chunks.
    """

    def __init__(self, model, settings: Settings, strategy=None):
        """``strategy``: None (one device) or the ``MirroredStrategy`` under whose scope
        ``model`` was built; the optimizer and the attack's variables are made under it too."""
        import contextlib

        import keras
        import tensorflow as tf
        self.model = model
        self.settings = settings
        self.strategy = strategy
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate,
                                                   epsilon=ADAM_EPSILON)
            self.optimizer.build(model.trainable_variables)
            self.epsilon = tf.Variable(max(settings.epsilon, 1e-12), dtype=tf.float32,
                                       trainable=False, name="train_epsilon")
            self.runner = self._make_runner() if settings.adversarial else None
        self._update = tf.function(self._update_fn, reduce_retracing=True)
        self._replica_update = tf.function(self._replica_update_fn, reduce_retracing=True)
        self._evaluate = tf.function(self._evaluate_fn, reduce_retracing=True)

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    def shards(self, n: int) -> list["np.ndarray"]:
        """Contiguous index shards ``(n_i,)`` of a batch of ``n``, one per replica (sizes
        differ by at most one)."""
        import numpy as np
        return np.array_split(np.arange(n), self.replicas)

    def _attack_config(self, epsilon: float):
        from attacks import AttackConfig
        s = self.settings
        return AttackConfig(method="pgd", epsilon=epsilon, steps=s.k, step_size=s.a,
                            loss=s.loss_func, random_start=s.random_start,
                            batch_size=s.training_batch_size, compute_dtype=s.attack_dtype)

    def _make_runner(self):
        """``attacks.make_runner`` with the step rule's epsilon replaced by the variable."""
        from attacks import make_runner
        cfg = self._attack_config(self.settings.epsilon).resolved()
        return make_runner(self.model, cfg,
                           rule=dataclasses.replace(cfg.step_rule(), epsilon=self.epsilon))

    def adversarial_batch(self, x: "np.ndarray", y: "np.ndarray", step: int) -> "np.ndarray":
        """PGD-k examples ``(B, 784)`` float32 in [0, 1] of the clean batch ``x`` at ``step``
        (with a strategy: each replica those of its shard, from the same random start)."""
        import numpy as np

        from attacks import model_in_dtype
        if self.runner is None:
            return x
        eps = epsilon_at(self.settings, step)
        self.epsilon.assign(eps)
        if self.settings.random_start:
            x_start = self._attack_config(eps).step_rule().random_perturb(
                x, step_rng(self.settings.random_seed, step))
        else:
            x_start = x
        # The runner attacks a bfloat16 copy of the model made once; bring its weights up to
        # date with the weights trained since the last batch (float32: the model itself).
        model_in_dtype(self.model, self.settings.attack_dtype)
        if self.strategy is None:
            return self.runner.run(x_start, x, y, self.settings.k)
        from attacks import run_schedule
        x_adv = np.empty_like(x_start)

        def launch(idx, n):
            return self.runner.run(x_start[idx], x[idx], y[idx], n)

        def commit(idx, n, result):
            x_adv[idx] = result

        run_schedule(((idx, self.settings.k) for idx in self.shards(len(x))), launch, commit,
                     self.strategy, pack=lambda shard: {"x": shard},
                     unpack=lambda arrays: arrays["x"])
        return x_adv

    def _update_fn(self, x, y):
        import tensorflow as tf
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            xent = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=logits))
        variables = self.model.trainable_variables
        grads = tape.gradient(xent, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
        return xent, correct

    def _replica_update_fn(self, xs, ys):
        """One replica's part of the update: the summed xent of its shard; the optimizer sums
        the replicas' gradients (so the update is that of the summed loss of the batch)."""
        import tensorflow as tf

        def on_replica(x, y):
            return self._update_fn(x, y)

        xent, correct = self.strategy.run(on_replica, args=(xs, ys))
        total = tf.distribute.ReduceOp.SUM
        return (self.strategy.reduce(total, xent, axis=None),
                self.strategy.reduce(total, correct, axis=None))

    def _evaluate_fn(self, x, y):
        import tensorflow as tf
        logits = self.model(x, training=False)
        xent = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
        return xent, correct

    def update(self, x_adv: "np.ndarray", y: "np.ndarray") -> tuple[float, float]:
        """One Adam step on the summed xent of ``x_adv``; returns the batch's mean xent and
        accuracy BEFORE the step."""
        if self.strategy is None:
            xent, correct = self._update(x_adv, y)
        else:
            shards = self.shards(len(y))
            xs, ys = (self.strategy.experimental_distribute_values_from_function(
                lambda context, a=a: a[shards[context.replica_id_in_sync_group]])
                for a in (x_adv, y))
            xent, correct = self._replica_update(xs, ys)
        return float(xent) / len(y), float(correct) / len(y)

    def evaluate(self, x: "np.ndarray", y: "np.ndarray") -> tuple[float, float]:
        """Mean xent and accuracy of the current model on a batch."""
        xent, correct = self._evaluate(x, y)
        return float(xent) / len(y), float(correct) / len(y)


# --------------------------------------------------------------------------- checkpoints

def restore_or_build(settings: Settings, prefix: str | None, strategy=None):
    """``(model, step)``: the checkpoint ``prefix`` (weights; Adam slots are restored by
    ``restore_optimizer``), or a fresh model at step 0 when ``prefix`` is None; built under
    ``strategy``'s scope where one is given (its variables mirrored on every replica)."""
    import contextlib

    import models
    from mnist_challenge_compat import load_model
    from mnist_challenge_compat.checkpoint import read_global_step
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if prefix is None:
            return models.build_model(settings.arch, seed=settings.random_seed), 0
        return load_model(prefix, arch=settings.arch), read_global_step(prefix)


def save(trainer: AdversarialTrainer, settings: Settings, step: int) -> str:
    """Writes ``checkpoint-<step>`` with Adam slots into ``model_dir``; returns the prefix."""
    from mnist_challenge_compat import save_checkpoint
    return save_checkpoint(trainer.model, settings.model_dir, step, optimizer=trainer.optimizer)


def run_config(settings: Settings, data_digest: str) -> dict[str, Any]:
    """The ``config.json`` values of a run: the settings and the training data's digest."""
    return {**settings.config_values(), DATA_DIGEST_KEY: data_digest}


def setting_changes(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for the trajectory keys whose values differ between the stored
    ``config.json`` and this run. A key the stored file lacks (a file written before the key
    existed, or the challenge's own config) is not compared, except keys train.py omits when
    unset (``ABSENT_MEANS``)."""
    changes = {}
    for key in TRAJECTORY_KEYS:
        if key in stored:
            old = stored[key]
        elif key in ABSENT_MEANS:
            old = ABSENT_MEANS[key]
        else:
            continue
        value = new.get(key, ABSENT_MEANS.get(key))
        if old != value:
            changes[key] = (old, value)
    return changes


def config_for_resume(settings: Settings, data_digest: str, step: int,
                      allow_changes: bool) -> dict[str, Any]:
    """The ``config.json`` to write when training continues at ``step``.

    At step 0 it is the run's own settings. On a resume it is checked against the stored
    ``model_dir/config.json``: trajectory settings that differ are refused, or with
    ``allow_changes`` appended to its ``setting_changes`` list as
    ``{"setting", "step", "old", "new"}``; earlier recorded changes are kept.

    Raises:
        UsageError: a trajectory setting differs and ``allow_changes`` is False.
        CompatError: the stored config.json is malformed.
    """
    from mnist_challenge_compat.config import read_challenge_config
    config = run_config(settings, data_digest)
    path = os.path.join(settings.model_dir, "config.json")
    if step == 0 or not os.path.exists(path):
        return config
    stored = read_challenge_config(path)
    changes = setting_changes(stored, config)
    if changes and not allow_changes:
        listed = ", ".join(f"{key} {_show(old)} -> {_show(new)}"
                           for key, (old, new) in changes.items())
        raise UsageError(f"{settings.model_dir} was trained to step {step} with other settings "
                         f"({listed}); rerun with the stored settings, use another --model_dir, "
                         f"or pass --allow_setting_changes to change them from here on")
    history = list(stored.get(SETTING_CHANGES_KEY, []))
    history += [{"setting": key, "step": step, "old": old, "new": new}
                for key, (old, new) in changes.items()]
    if history:
        config[SETTING_CHANGES_KEY] = history
    return config


def _show(value: Any) -> str:
    """A setting's value in the refusal message (digests shortened)."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "..."
    return "unset" if value is None else str(value)


def write_run_config(model_dir: str, config: dict[str, Any]) -> None:
    """``model_dir/config.json`` (atomic), as the challenge copies its config next to its
    checkpoints; readable back with ``--config``."""
    from mnist_challenge_compat.config import write_challenge_config
    os.makedirs(model_dir, exist_ok=True)
    write_challenge_config(os.path.join(model_dir, "config.json"), config)


# --------------------------------------------------------------------------- the loop

def progress_line(step: int, settings: Settings, nat_acc: float, adv_acc: float,
                  examples_per_s: float, seconds_per_step: float) -> str:
    """One progress line: step, batch accuracies (%), throughput, ETA."""
    from workflow.progress import format_duration
    eta = format_duration((settings.max_num_training_steps - step) * seconds_per_step)
    return (f"step {step}/{settings.max_num_training_steps}  nat acc {100 * nat_acc:.1f}%  "
            f"adv acc {100 * adv_acc:.1f}%  eps {epsilon_at(settings, step):.4f}  "
            f"{examples_per_s:.0f} ex/s  ETA {eta}")


def train(settings: Settings, log: Callable[[str], None] = print,
          allow_setting_changes: bool = False, strategy=None) -> int:
    """Runs (or resumes) training to ``max_num_training_steps``; returns the exit status
    (0, or 128 + signal number when stopped by SIGINT / SIGTERM after checkpointing).

    A resume whose trajectory settings differ from ``model_dir/config.json`` is refused
    (:class:`UsageError`) before anything is computed, unless ``allow_setting_changes``.
    ``strategy``: None, a ``MirroredStrategy`` or a ``MultiWorkerMirroredStrategy``
    (``workflow.strategy.make_strategy``), whose replicas share each batch. Under the
    multi-worker strategy every worker first sends its job's fingerprint (:func:`job_print`)
    to all (:class:`workflow.cluster.ClusterError` where one differs or failed); the chief
    alone reads and writes ``model_dir`` and sends its latest checkpoint (or its error) to the
    others, which restore from that copy; all stop at the same step when any is signalled.
    """
    import attacks
    from workflow import cluster
    multi = attacks.is_multi_worker(strategy)
    if not multi:
        return _train(settings, log, allow_setting_changes, strategy, None)
    try:
        return _train(settings, log, allow_setting_changes, strategy, cluster.gatherer(strategy))
    except Exception as err:
        if not cluster.is_lost_contact(err):
            raise
        raise UsageError(cluster.lost_contact(
            err, _saved_text(settings, attacks.is_chief(strategy)))) from None


def job_print(settings: Settings, data_digest: str) -> dict[str, Any]:
    """What every worker of a multi-worker run must share: :func:`run_config` without the
    paths, which may differ between hosts (the data enters as its digest)."""
    return {key: value for key, value in run_config(settings, data_digest).items()
            if key not in ("model_dir", "data_dir")}


def _prepared(settings: Settings, strategy) -> tuple[tuple, dict[str, Any]]:
    """``((x_train, y_train, digest), job_print)``; refuses more replicas than a batch has
    examples."""
    from workflow.fingerprint import data_sha256
    x_train, y_train = load_training_data(settings)
    if strategy is not None and strategy.num_replicas_in_sync > settings.training_batch_size:
        raise UsageError(f"--strategy has {strategy.num_replicas_in_sync} replicas but a batch "
                         f"of {settings.training_batch_size}: each replica needs an example")
    digest = data_sha256(x_train, y_train)
    return (x_train, y_train, digest), job_print(settings, digest)


def _checkpoint_bytes(prefix: str) -> bytes:
    """A checkpoint's ``.index`` and data files as ``.npz`` bytes (file name -> uint8)."""
    import glob

    import numpy as np

    from attacks import pack_arrays
    files = {}
    for name in sorted(glob.glob(glob.escape(prefix) + ".*")):
        if not name.endswith(".meta") and os.path.isfile(name):
            with open(name, "rb") as f:
                files[os.path.basename(name)] = np.frombuffer(f.read(), np.uint8)
    return pack_arrays(files)


def _checkpoint_copy(data: bytes, folder: str) -> str:
    """Writes :func:`_checkpoint_bytes` into ``folder``; returns the copy's prefix."""
    from attacks import unpack_arrays
    prefix = None
    for name, array in unpack_arrays(data).items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(array.tobytes())
        if name.endswith(".index"):
            prefix = os.path.join(folder, name[:-len(".index")])
    if prefix is None:
        raise UsageError("the chief's checkpoint arrived without its .index file")
    return prefix


def _saved_text(settings: Settings, chief: bool) -> str:
    """What a multi-worker run that lost a worker has saved (the chief's newest checkpoint)."""
    from mnist_challenge_compat import latest_checkpoint
    if not chief:
        return ("the chief's --model_dir holds its newest checkpoint: rerun the same command on "
                "every worker to resume from it")
    try:
        prefix = latest_checkpoint(settings.model_dir)
    except Exception:  # noqa: BLE001 - only for the message
        prefix = None
    if prefix is None:
        return "no checkpoint is saved yet; rerunning the same command on every worker starts over"
    return (f"{prefix} is the newest checkpoint: rerun the same command on every worker "
            f"to resume from the chief's")


def _train(settings: Settings, log: Callable[[str], None], allow_setting_changes: bool,
           strategy, gather) -> int:
    import tempfile

    import tensorflow as tf

    import attacks
    from mnist_challenge_compat import CompatError, latest_checkpoint, restore_optimizer
    from mnist_challenge_compat.checkpoint import read_global_step
    from workflow import cluster
    multi, chief = gather is not None, attacks.is_chief(strategy)
    if multi:
        x_train, y_train, digest = cluster.agree_on_the_job(
            gather, lambda: _prepared(settings, strategy))
    else:
        x_train, y_train, digest = _prepared(settings, strategy)[0]
    prefix = config = payload = error = None
    if chief:
        try:  # multi-worker: an error of the chief's is sent to the others, then raised
            prefix = latest_checkpoint(settings.model_dir)
            config = config_for_resume(settings, digest,
                                       0 if prefix is None else read_global_step(prefix),
                                       allow_setting_changes)
            if multi and prefix is not None:
                payload = _checkpoint_bytes(prefix)
        except (CompatError, UsageError, OSError) as err:
            if not multi:
                raise
            error = str(err)
    with tempfile.TemporaryDirectory() as copy:  # a worker's copy of the chief's checkpoint
        if multi:
            received = cluster.from_the_chief(gather, chief, payload, error, raise_as=UsageError)
            if not chief and received is not None:
                prefix = _checkpoint_copy(received, copy)
        model, step = restore_or_build(settings, prefix, strategy)
        trainer = AdversarialTrainer(model, settings, strategy)
        if strategy is not None:
            from workflow.strategy import describe
            log(f"on {describe(strategy)}")
        if prefix is not None:
            restore_optimizer(trainer.optimizer, model, prefix)
            log(f"resuming from {prefix if chief else 'the chief' + chr(39) + 's checkpoint'} "
                f"at step {step}")
    if chief:
        write_run_config(settings.model_dir, config)
        writer = tf.summary.create_file_writer(settings.model_dir)
    else:  # only the chief writes: no folder, no summaries, no checkpoints
        writer = tf.summary.create_noop_writer()
    stop = StopSignals(raising=False)  # polled: the current step finishes, then a checkpoint
    stop.install()
    first = step
    try:
        step, stopped = run_steps(trainer, settings, x_train, y_train, step, writer, stop, log,
                                  gather=gather, chief=chief)
    finally:
        stop.restore()
        writer.close()
    if chief and (prefix is None or step > first):
        log(f"saved {save(trainer, settings, step)}")
    elif not chief:
        log(f"worker {attacks.worker_rank(strategy)} of {attacks.worker_count(strategy)}: "
            f"trained to step {step}; the chief writes the checkpoints")
    if stopped is not None:
        rank, signum = stopped
        log(f"stopped by signal {signum} at step {step}"
            + (f" (received by worker {rank})" if multi and stop.signum is None else ""))
        return 128 + signum
    return 0


def write_scalars(writer, step: int, values: dict[str, float]) -> None:
    """TensorBoard scalar summaries at ``step``.

    Written with the core ``tf.summary.write`` and the scalars plugin's metadata (what
    ``tf.summary.scalar`` writes), so no ``tensorboard`` package is needed to write them.
    """
    import tensorflow as tf
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))
    with writer.as_default(step=step):
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)


def run_steps(trainer: AdversarialTrainer, settings: Settings, x_train, y_train, step: int,
              writer, stop: StopSignals, log: Callable[[str], None], gather=None,
              chief: bool = True) -> tuple[int, tuple[int, int] | None]:
    """Training steps from ``step`` until the end or a stop request; returns the step count
    reached (number of Adam updates done) and ``(rank, signum)`` of the stop request (None:
    ran to the end). ``gather`` (multi-worker, ``workflow.cluster``): the workers agree
    before each step whether any was signalled; ``chief``: whether this process writes
    the intermediate checkpoints."""
    from workflow import cluster
    n, bs = len(x_train), settings.training_batch_size
    started, interval_start, interval_steps = time.time(), time.time(), 0
    first = step

    def stop_request() -> tuple[int, int] | None:
        if gather is not None:
            return cluster.any_stopped(gather, stop.signum)
        return None if stop.signum is None else (0, stop.signum)

    stopped = None
    while step < settings.max_num_training_steps:
        stopped = stop_request()
        if stopped is not None:
            break
        idx = batch_indices(step, n, bs, settings.random_seed)
        x, y = x_train[idx], y_train[idx]
        x_adv = trainer.adversarial_batch(x, y, step)
        report = step % settings.num_output_steps == 0
        summarise = step % settings.num_summary_steps == 0
        if report or summarise:
            xent_nat, acc_nat = trainer.evaluate(x, y)
        xent_adv, acc_adv = trainer.update(x_adv, y)
        if summarise:
            write_scalars(writer, step, {"accuracy_adv_train": acc_adv,
                                         "accuracy_nat_train": acc_nat,
                                         "xent_adv_train": xent_adv,
                                         "xent_nat_train": xent_nat})
        if report:
            elapsed = time.time() - interval_start
            per_step = (time.time() - started) / max(1, step + 1 - first)
            rate = interval_steps * bs / elapsed if interval_steps else (bs / max(elapsed, 1e-9))
            log(progress_line(step, settings, acc_nat, acc_adv, rate, per_step))
            interval_start, interval_steps = time.time(), 0
        step += 1
        interval_steps += 1
        if chief and step % settings.num_checkpoint_steps == 0 \
                and step < settings.max_num_training_steps:
            save(trainer, settings, step)
    return step, stopped


def main(argv: list[str]) -> int:
    """Entry point: merge flags and ``--config``, train, one-line errors."""
    if len(argv) > 1:
        fail("train.py", f"unexpected arguments: {' '.join(argv[1:])}")
    quiet_tensorflow()
    from mnist_challenge_compat import CompatError
    from workflow.cluster import ClusterError
    from workflow.strategy import make_strategy, parse_tf_config
    try:
        if FLAGS.config:
            apply_config_file(FLAGS.config)
        settings = settings_from_flags()
    except (CompatError, UsageError) as err:
        fail("train.py", err)
    try:
        if FLAGS.strategy == "multi_worker":  # before waiting for the other workers
            workers = parse_tf_config(os.environ.get("TF_CONFIG"))["workers"]
            if workers > settings.training_batch_size:
                raise ValueError(f"TF_CONFIG has {workers} workers (at least one replica each) "
                                 f"but a batch has {settings.training_batch_size} example(s): "
                                 f"each replica needs an example")
        # Before anything initialises TensorFlow's devices: it may split the CPU.
        strategy = make_strategy(FLAGS.strategy, FLAGS.devices, program="train.py",
                                 join_timeout=FLAGS.join_timeout)
    except ValueError as err:
        fail("train.py", str(err))
    try:
        return train(settings, log=lambda line: print(line, flush=True),
                     allow_setting_changes=FLAGS.allow_setting_changes, strategy=strategy)
    except (CompatError, UsageError, ClusterError) as err:
        fail("train.py", err)


def run() -> None:
    """``python train.py`` and the ``qg-train`` console script: parse the flags, run :func:`main`."""
    app.run(main, flags_parser=one_line_flags_parser("train.py", modules=(__name__,),
                                                     usage=__doc__))


if __name__ == "__main__":
    run()
