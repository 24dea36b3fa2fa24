"""Challenge submissions: loading an untrusted ``attack.npy``, the acceptance rules, outputs.

The acceptance rules are those of the MNIST Challenge's ``run_attack.py``:

* shape ``(num_eval_examples, 784)``, ``num_eval_examples`` = 10000;
* pixel range: ``max <= 1.0001`` and ``min >= -0.0001``, no NaN;
  (the CIFAR-10 challenge's: ``(10000, 32, 32, 3)`` on 0-255, ``image_shape`` / ``bounds``);
* L-inf distance to the natural test images ``<= epsilon + 0.0001``.

A submission is untrusted input: :func:`load_submission` reads only plain numeric ``.npy``
files and never unpickles anything. Outputs (predictions, configs, leaderboards) are written
atomically: a reader sees either the old file or the complete new one, never a partial file.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from typing import BinaryIO, Iterable

import numpy as np

from mnist_challenge_compat.atomic import write_file_atomic
from mnist_challenge_compat.errors import CompatError

__all__ = [
    "IMAGE_SIZE",
    "NUM_EVAL_EXAMPLES",
    "LEADERBOARD_HEADER",
    "SubmissionError",
    "check_submission",
    "leaderboard_row",
    "load_submission",
    "save_array_atomic",
    "write_file_atomic",
    "write_leaderboard",
]

NUM_EVAL_EXAMPLES = 10000  # the challenge's num_eval_examples
IMAGE_SIZE = 784  # 28 * 28, flattened
PIXEL_TOLERANCE = 0.0001  # the original's slack on [0, 1]
EPSILON_TOLERANCE = 0.0001  # the original's slack on the L-inf budget

LEADERBOARD_HEADER = ("| Attack | Submitted by | Accuracy | Submission Date |\n"
                      "| --- | --- | --- | --- |\n")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NUMERIC_KINDS = "iuf"  # signed/unsigned integers, floats (bool, complex, objects: refused)


class SubmissionError(CompatError):
    """A submission breaks a rule of the challenge; the message is one line."""


# ---------------------------------------------------------------------------------------------
# Atomic writes of arrays (``write_file_atomic`` lives in ``atomic.py``).
# ---------------------------------------------------------------------------------------------

def save_array_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Saves ``array`` in ``.npy`` format to exactly ``path``, atomically.

    Args:
        path: destination (``np.save`` would append ``.npy``; this does not).
        array: any non-object numpy array (e.g. int64 predictions of shape ``(N,)``).

    Raises:
        CompatError: the file cannot be written.
        ValueError: ``array`` holds Python objects (they would need pickling).
    """
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise ValueError("refusing to save an object array (it would need pickling)")
    write_file_atomic(path, lambda f: np.save(f, array, allow_pickle=False))


# ---------------------------------------------------------------------------------------------
# Loading an untrusted .npy.
# ---------------------------------------------------------------------------------------------

def _read_npy_header(f: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Parses a ``.npy`` header without reading data or unpickling; returns (shape, dtype)."""
    start = f.read(6)
    f.seek(0)
    if start.startswith(b"PK\x03\x04"):
        raise SubmissionError(f"attack file {name}: is a .npz/zip archive, expected a .npy array")
    if start[:1] == b"\x80":
        raise SubmissionError(f"attack file {name}: contains pickled data, expected a .npy "
                              f"array (refusing to unpickle)")
    try:
        version = np.lib.format.read_magic(f)
    except ValueError:
        raise SubmissionError(f"attack file {name}: not a .npy file") from None
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise SubmissionError(f"attack file {name}: unsupported .npy format version "
                              f"{version[0]}.{version[1]}")
    try:
        shape, _fortran_order, dtype = readers[version](f)
    except (ValueError, SyntaxError, TypeError, OSError):
        raise SubmissionError(f"attack file {name}: corrupt .npy header") from None
    return tuple(shape), np.dtype(dtype)


def _check_loadable_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.hasobject:
        raise SubmissionError(f"attack file {name}: contains Python objects (a pickled object "
                              f"array), expected numbers (refusing to unpickle)")
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
        raise SubmissionError(f"attack file {name}: expected a numeric array, "
                              f"found dtype {dtype}")


def _check_complete(f: BinaryIO, shape: tuple[int, ...], dtype: np.dtype, name: str) -> None:
    """The data after the header must be at least as long as the header announces."""
    needed = math.prod(shape) * dtype.itemsize
    here = f.tell()
    available = f.seek(0, os.SEEK_END) - here
    f.seek(here)
    if available < needed:
        raise SubmissionError(f"attack file {name}: truncated (shape {shape} of {dtype} needs "
                              f"{needed} bytes of data, found {available})")


def load_submission(path: str | os.PathLike) -> np.ndarray:
    """Loads an untrusted ``attack.npy`` safely.

    Only plain ``.npy`` files of a numeric dtype (signed/unsigned integers or floats) are
    read. The header is parsed first (with ``ast.literal_eval`` by numpy, no pickle); object
    arrays, raw pickles and ``.npz`` archives are refused before any data is read, so a
    pickle payload never runs. Rules of the challenge are not checked here (see
    :func:`check_submission`).

    Returns:
        The array as stored: any shape, its own numeric dtype (e.g. float32 ``(10000, 784)``).

    Raises:
        SubmissionError: file missing/unreadable, not a ``.npy`` file, corrupt or truncated,
            pickled/object data, non-numeric dtype.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            shape, dtype = _read_npy_header(f, name)
            _check_loadable_dtype(dtype, name)
            _check_complete(f, shape, dtype, name)
            f.seek(0)
            array = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise SubmissionError(f"attack file {name}: not found") from None
    except IsADirectoryError:
        raise SubmissionError(f"attack file {name}: is a directory, expected a .npy file") from None
    except OSError as err:
        raise SubmissionError(f"attack file {name}: cannot read ({err.strerror or err})") from None
    except ValueError:
        raise SubmissionError(f"attack file {name}: corrupt .npy file") from None
    return array


# ---------------------------------------------------------------------------------------------
# The acceptance rules.
# ---------------------------------------------------------------------------------------------

def _fmt(value: float, bound: float) -> str:
    """Formats ``value`` briefly (6 significant digits) yet on the same side of ``bound``.

    ``1.0001000001`` against bound ``1.0001`` prints ``1.0001000001``, not ``1.0001``.
    """
    value = float(value)
    side = (value > bound) - (value < bound)
    for digits in range(6, 18):
        text = f"{value:.{digits}g}"
        shown = float(text)
        if (shown > bound) - (shown < bound) == side:
            return text
    return repr(value)


def _check_shape(x_adv: np.ndarray, num_examples: int, image_shape: tuple[int, ...]) -> None:
    expected = (num_examples, *image_shape)
    if x_adv.shape != expected:
        raise SubmissionError(f"Invalid shape: expected {expected}, found {x_adv.shape}")


def _check_dtype(x_adv: np.ndarray) -> None:
    if x_adv.dtype.kind not in _NUMERIC_KINDS or x_adv.dtype.fields is not None:
        raise SubmissionError(f"Invalid dtype: expected a numeric array, found {x_adv.dtype}")


def _check_pixel_range(x_adv: np.ndarray, bounds: tuple[float, float]) -> None:
    if x_adv.dtype.kind == "f" and np.isnan(x_adv).any():
        raise SubmissionError("Invalid attack: contains NaN")
    lo, hi = float(np.min(x_adv)), float(np.max(x_adv))
    low, high = float(bounds[0]) - PIXEL_TOLERANCE, float(bounds[1]) + PIXEL_TOLERANCE
    if hi > high or lo < low:
        raise SubmissionError(f"Invalid pixel range. Expected [{bounds[0]:g}, {bounds[1]:g}], "
                              f"found [{_fmt(lo, low)}, {_fmt(hi, high)}]")


def _check_perturbation(x_adv: np.ndarray, x_nat: np.ndarray, epsilon: float) -> None:
    # float64 so that the distance itself adds no rounding to the comparison.
    l_inf = float(np.max(np.abs(x_adv.astype(np.float64) - x_nat.astype(np.float64))))
    allowed = epsilon + EPSILON_TOLERANCE
    if l_inf > allowed:
        raise SubmissionError(f"Maximum perturbation found: {_fmt(l_inf, allowed)} "
                              f"(allowed: {epsilon!r})")


def check_submission(x_adv: np.ndarray, x_nat: np.ndarray, epsilon: float,
                     num_examples: int = NUM_EVAL_EXAMPLES, *,
                     image_shape: tuple[int, ...] = (IMAGE_SIZE,),
                     bounds: tuple[float, float] = (0.0, 1.0)) -> None:
    """Applies the challenge's acceptance rules to a submission.

    Checks, in the original's order (the first failure is reported): shape, then pixel range
    (NaN reported on its own), then L-inf distance to the natural images.

    Args:
        x_adv: the submission, expected ``(num_examples, 784)``, numeric, in [0, 1].
        x_nat: the natural test images in canonical order, float ``(M, 784)`` in [0, 1] with
            ``M >= num_examples``; the first ``num_examples`` rows are compared.
        epsilon: the L-inf budget (0.3 for the challenge), finite and ``>= 0``.
        num_examples: the challenge's ``num_eval_examples``.
        image_shape: one image's shape: ``(784,)`` for MNIST, ``(32, 32, 3)`` for the CIFAR-10
            challenge (whose rules are the same with this shape and ``bounds``).
        bounds: the pixel range, ``(0, 1)`` for MNIST, ``(0, 255)`` for CIFAR-10 (the
            tolerance 0.0001 applies on either scale, as does ``epsilon``'s).

    Raises:
        SubmissionError: one line such as ``Invalid shape: expected (10000, 784), found
            (9999, 784)``, ``Invalid attack: contains NaN``, ``Invalid pixel range. Expected
            [0, 1], found [-0.2, 1.01]``, ``Maximum perturbation found: 0.301 (allowed: 0.3)``.
        CompatError: the natural set has fewer than ``num_examples`` images of ``image_shape``.
        ValueError: ``epsilon`` negative or not finite, ``num_examples < 1``.
    """
    epsilon = float(epsilon)
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon}")
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got {num_examples}")
    x_adv = np.asarray(x_adv)
    x_nat = np.asarray(x_nat)
    image_shape = tuple(int(d) for d in image_shape)
    if x_nat.shape[1:] != image_shape or x_nat.shape[0] < num_examples:
        raise CompatError(f"natural test set has shape {x_nat.shape}, need at least "
                          f"{(num_examples, *image_shape)}")
    _check_shape(x_adv, num_examples, image_shape)
    _check_dtype(x_adv)
    _check_pixel_range(x_adv, bounds)
    _check_perturbation(x_adv, x_nat[:num_examples], epsilon)


# ---------------------------------------------------------------------------------------------
# Leaderboard.
# ---------------------------------------------------------------------------------------------

def _cell(text: str, what: str) -> str:
    text = str(text).strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} must be one line, got {text!r}")
    return text.replace("|", "\\|")


def _format_date(date: _dt.date | str) -> str:
    if isinstance(date, _dt.date):  # datetime.datetime is a date too
        return f"{_MONTHS[date.month - 1]} {date.day}, {date.year}"
    return _cell(date, "date")


def leaderboard_row(attack_name: str, submitted_by: str, accuracy: float,
                    date: _dt.date | str) -> str:
    """One row of the challenge README's leaderboard table (no trailing newline).

    Args:
        attack_name: the attack's description.
        submitted_by: who submitted it.
        accuracy: the model's accuracy on the submission, a fraction in [0, 1]
            (0.9252 prints as ``92.52%``).
        date: a ``datetime.date`` (printed ``Nov 25, 2026``) or a preformatted string.

    Returns:
        e.g. ``| PGD | Madry Lab | 92.52% | Nov 25, 2026 |``; ``|`` inside cells is escaped.

    Raises:
        ValueError: empty or multi-line cell, accuracy outside [0, 1].
    """
    accuracy = float(accuracy)
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy}")
    cells = (_cell(attack_name, "attack_name"), _cell(submitted_by, "submitted_by"),
             f"{100.0 * accuracy:.2f}%", _format_date(date))
    return "| " + " | ".join(cells) + " |"


def write_leaderboard(path: str | os.PathLike, rows: Iterable[str],
                      notes: Iterable[str] = ()) -> None:
    """Writes a markdown leaderboard (header + ``rows``, then ``notes``) atomically.

    Args:
        path: the markdown file to (re)write.
        rows: lines from :func:`leaderboard_row`, in display order.
        notes: one-line remarks printed under the table (e.g. a partial evaluation).

    Raises:
        ValueError: a row is not a single markdown table line.
        CompatError: the file cannot be written.
    """
    lines = []
    for row in rows:
        row = row.rstrip("\n")
        if "\n" in row or not (row.startswith("|") and row.endswith("|")):
            raise ValueError(f"not a single markdown table row: {row!r}")
        lines.append(row + "\n")
    text = LEADERBOARD_HEADER + "".join(lines)
    notes = [" ".join(str(note).split()) for note in notes]
    if notes:
        text += "\n" + "".join(f"{note}\n" for note in notes if note)
    write_file_atomic(path, lambda f: f.write(text.encode("utf-8")))
