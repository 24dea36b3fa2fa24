"""The challenge's verifier: checks an ``attack.npy`` and reports the model's accuracy on it.

Usage::

    python -m mnist_challenge_compat.run_attack --attack_path=attack.npy \\
        --model_dir=models/secret [--data_dir=MNIST_data] [--epsilon=0.3] \\
        [--pred_path=pred.npy] [--batch_size=200] [--allow_partial]

Like the original ``run_attack.py``: the submission (untrusted) is loaded and checked against
the natural MNIST test set BEFORE the model is loaded; a valid submission is evaluated in
batches, ``Accuracy: XX.XX%`` is printed and the int64 predictions ``(10000,)`` are saved (here
atomically) to ``--pred_path``, followed by one line saying whether the file is a valid
challenge submission. ``--allow_partial`` also scores the first-``N``-images files that
``eval.py --num_examples=N`` writes, and says they are partial evaluations. An invalid
submission or flag prints exactly one line to stderr, prefixed ``run_attack: ``, and exits
with status 1 (no traceback).
"""
from __future__ import annotations

import os
import sys
from typing import Any, NoReturn, Sequence

import numpy as np

from mnist_challenge_compat.data import load_dataset
from mnist_challenge_compat.errors import CompatError
from mnist_challenge_compat.submission import (
    IMAGE_SIZE,
    NUM_EVAL_EXAMPLES,
    SubmissionError,
    check_submission,
    load_submission,
    save_array_atomic,
)

__all__ = ["evaluate_submission", "verify_attack", "main", "run"]

PROGRAM = "run_attack"
EXIT_INVALID = 1


def evaluate_submission(x_adv: np.ndarray, model: Any, y: np.ndarray,
                        batch_size: int = 200) -> tuple[float, np.ndarray]:
    """Classifies ``x_adv`` in batches and scores it against ``y``.

    Args:
        x_adv: images, ``(N, 784)``, numeric (cast to float32), nominally in [0, 1].
        model: a callable (e.g. ``keras.Model``) mapping float32 ``(B, 784)`` to ``(B, 10)``
            logits; called with ``training=False``.
        y: true labels, integer ``(N,)`` in [0, 9].
        batch_size: images per call, ``>= 1`` (the last batch may be smaller).

    Returns:
        ``(accuracy, predictions)``: the fraction in [0, 1] of ``argmax(logits) == y`` and the
        predicted labels, int64 ``(N,)``.

    Raises:
        ValueError: ``x_adv`` not 2-D, ``N == 0``, ``y`` of another length, ``batch_size < 1``,
            or the model's output not ``(B, C)``.
    """
    x_adv = np.asarray(x_adv, dtype=np.float32)
    y = np.asarray(y).reshape(-1)
    if x_adv.ndim != 2 or x_adv.shape[0] == 0:
        raise ValueError(f"x_adv must be a non-empty (N, 784) array, got shape {x_adv.shape}")
    if y.shape[0] != x_adv.shape[0]:
        raise ValueError(f"{x_adv.shape[0]} images but {y.shape[0]} labels")
    from models.predict import predict_labels  # imports Keras: only once a file is valid

    predictions = predict_labels(model, x_adv, batch_size)
    accuracy = float(np.mean(predictions == y))
    return accuracy, predictions


def partial_rows(x_adv: np.ndarray) -> int | None:
    """``N`` if ``x_adv`` has the shape of a partial evaluation ``(N, 784)``, ``0 < N < 10000``;
    ``None`` otherwise (a full submission, or a shape the submission checks reject)."""
    if x_adv.ndim == 2 and x_adv.shape[1] == IMAGE_SIZE and 0 < x_adv.shape[0] < NUM_EVAL_EXAMPLES:
        return int(x_adv.shape[0])
    return None


def verdict(num_rows: int) -> str:
    """The line that says whether a checked file of ``num_rows`` images is a submission."""
    if num_rows == NUM_EVAL_EXAMPLES:
        return f"Valid challenge submission: all {NUM_EVAL_EXAMPLES:,} test images."
    return (f"Partial evaluation: the first {num_rows:,} of {NUM_EVAL_EXAMPLES:,} test images; "
            f"NOT a valid challenge submission (it needs all {NUM_EVAL_EXAMPLES:,}).")


def verify_attack(attack_path: str | os.PathLike, model_dir: str | os.PathLike, *,
                  epsilon: float = 0.3, data_dir: str | os.PathLike | None = None,
                  pred_path: str | os.PathLike | None = "pred.npy",
                  batch_size: int = 200, allow_partial: bool = False) -> tuple[float, np.ndarray]:
    """The whole verification: load, check, then (only if valid) load model and evaluate.

    Args:
        attack_path: the untrusted submission, a ``.npy`` of ``(10000, 784)`` in [0, 1]
            (``(N, 784)`` for the first ``N`` test images with ``allow_partial``).
        model_dir: challenge model directory or checkpoint prefix (see ``load_model``).
        epsilon: the L-inf budget.
        data_dir: the ``MNIST_data`` directory; ``None`` = the test set shipped in the package.
        pred_path: where to save the int64 ``(10000,)`` predictions; ``None`` = don't save.
        batch_size: evaluation batch size.
        allow_partial: also score a partial evaluation: ``N < 10000`` rows, checked against
            the first ``N`` test images. Such a file is NOT a challenge submission; without
            this flag it is rejected with a message that says so.

    Returns:
        ``(accuracy, predictions)`` as :func:`evaluate_submission`.

    Raises:
        CompatError (``SubmissionError`` for a rejected submission): one line.
    """
    x_adv = load_submission(attack_path)
    rows = partial_rows(x_adv)
    if rows is not None and not allow_partial:
        raise SubmissionError(
            f"Invalid shape: expected ({NUM_EVAL_EXAMPLES}, {IMAGE_SIZE}), found {x_adv.shape}: "
            f"a partial evaluation of the first {rows:,} test images, not a challenge "
            f"submission (make one with: python eval.py --num_examples={NUM_EVAL_EXAMPLES}); "
            f"pass --allow_partial to score it anyway")
    num_examples = rows or NUM_EVAL_EXAMPLES
    x_nat, y = load_dataset("mnist", "test", data_dir)
    check_submission(x_adv, x_nat, epsilon, num_examples)

    # Only a valid submission gets this far; TensorFlow is imported here.
    from mnist_challenge_compat.checkpoint import load_model

    model = load_model(model_dir)
    accuracy, predictions = evaluate_submission(x_adv, model, y[:num_examples], batch_size)
    if pred_path is not None:
        save_array_atomic(pred_path, predictions)
    return accuracy, predictions


# ---------------------------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------------------------

def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str) -> NoReturn:
    print(f"{PROGRAM}: {_one_line(message)}", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(EXIT_INVALID)


def _define_flags() -> None:
    """Defines the flags on absl's global FLAGS (only when run as a program)."""
    from absl import flags

    flags.DEFINE_string("attack_path", None, "The submission: a .npy of (10000, 784) in [0, 1].")
    flags.DEFINE_string("model_dir", None, "Challenge model directory or checkpoint prefix.")
    flags.DEFINE_string("data_dir", None,
                        "MNIST_data directory (IDX gzip); default: the copy in this package.")
    flags.DEFINE_float("epsilon", 0.3, "L-inf budget of the attack (> 0).")
    flags.DEFINE_string("pred_path", "pred.npy", "Where to save the int64 predictions.")
    flags.DEFINE_integer("batch_size", 200, "Evaluation batch size (>= 1).")
    flags.DEFINE_bool("allow_partial", False, "Also score a partial evaluation (N < 10000 "
                      "rows, checked against the first N test images); it is reported as "
                      "not a challenge submission.")
    flags.mark_flags_as_required(["attack_path", "model_dir"])
    flags.register_validator("epsilon", lambda eps: eps > 0 and np.isfinite(eps),
                             message="--epsilon must be a finite number > 0")
    flags.register_validator("batch_size", lambda b: b >= 1,
                             message="--batch_size must be >= 1")


def main(argv: Sequence[str]) -> int:
    """absl main: runs :func:`verify_attack` with the flags; returns the exit status."""
    from absl import flags

    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    values = flags.FLAGS
    try:
        accuracy, predictions = verify_attack(
            values.attack_path, values.model_dir, epsilon=values.epsilon,
            data_dir=values.data_dir, pred_path=values.pred_path,
            batch_size=values.batch_size, allow_partial=values.allow_partial)
    except CompatError as err:
        _fail(str(err))
    print(f"Accuracy: {100.0 * accuracy:.2f}%")
    print(verdict(len(predictions)))
    print(f"Output saved at {values.pred_path}")
    return 0


def run() -> None:
    """``python -m mnist_challenge_compat.run_attack`` and the ``qg-verify`` console script."""
    from absl import app

    # The command line only: the library functions above need neither absl nor workflow.
    from workflow.cli import one_line_flags_parser, quiet_tensorflow

    quiet_tensorflow()
    _define_flags()
    app.run(main, flags_parser=one_line_flags_parser(PROGRAM, modules=(__name__,),
                                                     usage=__doc__))


if __name__ == "__main__":
    run()
