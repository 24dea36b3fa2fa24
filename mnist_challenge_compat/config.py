"""The MNIST (and CIFAR-10) Challenge's ``config.json``: reading, validating, writing,
mapping to our flags (the CIFAR-10 challenge names ``k`` and ``a`` ``num_steps`` and
``step_size``).

The official file repeats the key ``"_comment"`` once per section, which plain ``json.load``
silently collapses. Here every key starting with ``_comment`` is dropped, while any other
duplicated key is an error (two different values for, say, ``epsilon`` are ambiguous).

Value types follow the official file: ``epsilon`` and ``a`` are numbers (returned as
``float``), step counts and sizes are ``int`` (``true`` is not an int here), ``random_start``
and ``eval_on_cpu`` are ``bool``, paths and ``loss_func`` are strings. Keys we do not know are
kept unchanged so that newer configs still load.
"""
from __future__ import annotations

import json
import math
import os
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from mnist_challenge_compat.errors import CompatError
from mnist_challenge_compat.atomic import write_file_atomic

__all__ = [
    "CONFIG_TO_FLAGS",
    "EVAL_CONFIG_TO_FLAGS",
    "TRAIN_CONFIG_TO_FLAGS",
    "config_to_flag_values",
    "read_challenge_config",
    "write_challenge_config",
]

_COMMENT_PREFIX = "_comment"

# Config key -> eval.py flag name.
EVAL_CONFIG_TO_FLAGS: Mapping[str, str] = MappingProxyType({
    "epsilon": "epsilon",
    "k": "steps",
    "a": "step_size",
    # The CIFAR-10 challenge's names for k and a.
    "num_steps": "steps",
    "step_size": "step_size",
    "random_start": "random_start",
    "loss_func": "loss",
    "store_adv_path": "attack_path",
    "model_dir": "model_dir",
    "eval_batch_size": "batch_size",
    "num_eval_examples": "num_examples",
})

# Config key -> train.py flag name (train.py's flags are named like the keys).
TRAIN_CONFIG_TO_FLAGS: Mapping[str, str] = MappingProxyType({
    key: key for key in (
        "random_seed", "max_num_training_steps", "num_output_steps", "num_summary_steps",
        "num_checkpoint_steps", "training_batch_size", "epsilon", "k", "a", "random_start",
        "loss_func", "model_dir",
    )
})

# Both mappings, by script: ``CONFIG_TO_FLAGS["eval"]``, ``CONFIG_TO_FLAGS["train"]``.
CONFIG_TO_FLAGS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "eval": EVAL_CONFIG_TO_FLAGS,
    "train": TRAIN_CONFIG_TO_FLAGS,
})


# ---------------------------------------------------------------------------------------------
# Per-key validation. Each checker returns the normalised value or an error text (str).
# ---------------------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(minimum: int | None) -> Callable[[Any], tuple[bool, Any]]:
    def check(value: Any) -> tuple[bool, Any]:
        if not _is_int(value):
            return False, f"expected an integer, found {_describe(value)}"
        if minimum is not None and value < minimum:
            return False, f"expected an integer >= {minimum}, found {value}"
        return True, value
    return check


def _non_negative_number(value: Any) -> tuple[bool, Any]:
    if not (_is_int(value) or isinstance(value, float)):
        return False, f"expected a number, found {_describe(value)}"
    if not math.isfinite(value) or value < 0:
        return False, f"expected a finite number >= 0, found {value}"
    return True, float(value)


def _boolean(value: Any) -> tuple[bool, Any]:
    if not isinstance(value, bool):
        return False, f"expected true or false, found {_describe(value)}"
    return True, value


def _non_empty_string(value: Any) -> tuple[bool, Any]:
    if not isinstance(value, str) or not value:
        return False, f"expected a non-empty string, found {_describe(value)}"
    return True, value


_CHECKS: Mapping[str, Callable[[Any], tuple[bool, Any]]] = MappingProxyType({
    "model_dir": _non_empty_string,
    "random_seed": _int_at_least(None),
    "max_num_training_steps": _int_at_least(0),
    "num_output_steps": _int_at_least(1),
    "num_summary_steps": _int_at_least(1),
    "num_checkpoint_steps": _int_at_least(1),
    "training_batch_size": _int_at_least(1),
    "num_eval_examples": _int_at_least(1),
    "eval_batch_size": _int_at_least(1),
    "eval_on_cpu": _boolean,
    "epsilon": _non_negative_number,
    "k": _int_at_least(0),
    "a": _non_negative_number,
    "num_steps": _int_at_least(0),
    "step_size": _non_negative_number,
    "random_start": _boolean,
    "loss_func": _non_empty_string,
    "store_adv_path": _non_empty_string,
})


def _describe(value: Any) -> str:
    """A short JSON-ish description of a wrongly typed value, for error messages."""
    text = json.dumps(value) if _json_serialisable(value) else repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)
    return f"{kind} {text}"


def _json_serialisable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _validate(values: Mapping[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """Checks every known key's type/range; returns a new dict with normalised values."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise CompatError(f"config {os.fspath(path)}: key {key!r} is not a string")
        check = _CHECKS.get(key)
        if check is None:
            out[key] = value
            continue
        ok, result = check(value)
        if not ok:
            raise CompatError(f"config {os.fspath(path)}: key '{key}': {result}")
        out[key] = result
    return out


# ---------------------------------------------------------------------------------------------
# Reading and writing.
# ---------------------------------------------------------------------------------------------

class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _object_without_comments(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: drops ``_comment*`` keys, refuses other duplicated keys."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key.startswith(_COMMENT_PREFIX):
            continue
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_challenge_config(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and validates a challenge ``config.json``.

    Args:
        path: the JSON file (e.g. the challenge's ``config.json``).

    Returns:
        A new dict of the file's keys (``_comment*`` keys dropped) with validated values:
        ``epsilon``/``a`` as ``float``, counts as ``int``, flags as ``bool``, paths as ``str``.
        Unknown keys are passed through untouched; missing keys are simply absent.

    Raises:
        CompatError: one line naming the file (and key): file missing or unreadable, not
            UTF-8, invalid JSON, top level not an object, a key duplicated, a value of the
            wrong type or out of range.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CompatError(f"config {name}: file not found") from None
    except IsADirectoryError:
        raise CompatError(f"config {name}: is a directory, expected a JSON file") from None
    except OSError as err:
        raise CompatError(f"config {name}: cannot read ({err.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CompatError(f"config {name}: not UTF-8 text") from None
    try:
        data = json.loads(text, object_pairs_hook=_object_without_comments)
    except _DuplicateKey as dup:
        raise CompatError(f"config {name}: key '{dup.key}' appears more than once") from None
    except json.JSONDecodeError as err:
        raise CompatError(
            f"config {name}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(data, dict):
        raise CompatError(f"config {name}: expected a JSON object at top level, "
                          f"found {type(data).__name__}")
    return _validate(data, name)


def config_to_flag_values(config: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """Renames config keys to flag names.

    Args:
        config: as returned by :func:`read_challenge_config`.
        mapping: config key -> flag name, e.g. ``EVAL_CONFIG_TO_FLAGS`` or
            ``CONFIG_TO_FLAGS["train"]``.

    Returns:
        ``{flag_name: value}`` for the mapping's keys present in ``config`` only (in the
        mapping's order); keys of ``config`` not in the mapping are ignored.

    Raises:
        CompatError: two keys of one flag (the MNIST challenge's ``k`` and the CIFAR-10
            challenge's ``num_steps``) with different values.
    """
    values: dict[str, Any] = {}
    for key, flag in mapping.items():
        if key not in config:
            continue
        if flag in values and values[flag] != config[key]:
            other = next(k for k, f in mapping.items() if f == flag and k in config)
            raise CompatError(f"config: keys '{other}' and '{key}' both set {flag} and differ "
                              f"({values[flag]!r} vs {config[key]!r})")
        values[flag] = config[key]
    return values


def write_challenge_config(path: str | os.PathLike, values: Mapping[str, Any]) -> None:
    """Writes ``values`` as a ``config.json`` atomically (temp file, fsync, ``os.replace``).

    Values are validated exactly as :func:`read_challenge_config` validates them, so whatever
    is written reads back equal. ``_comment*`` keys are dropped. The file is UTF-8 JSON with
    two-space indentation and a trailing newline; an existing file is replaced only once the
    new content is completely on disk.

    Raises:
        CompatError: a value of the wrong type, a value JSON cannot represent, or the file
            cannot be written.
    """
    name = os.fspath(path)
    clean = _validate({k: v for k, v in values.items()
                       if not (isinstance(k, str) and k.startswith(_COMMENT_PREFIX))}, name)
    try:
        text = json.dumps(clean, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise CompatError(f"config {name}: cannot be written as JSON ({err})") from None
    write_file_atomic(name, lambda f: f.write(text.encode("utf-8")))
