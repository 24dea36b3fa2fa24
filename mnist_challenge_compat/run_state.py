"""The resumable-run state file: numpy arrays plus JSON metadata in one ``.npz``, atomically.

The metadata travels as a unicode array (not a pickled object), so the file loads with
``allow_pickle=False`` like any other untrusted input.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any, Mapping

import numpy as np

from mnist_challenge_compat.errors import CompatError
from mnist_challenge_compat.atomic import write_file_atomic

_META_KEY = "__meta__"


def save_state(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Writes ``arrays`` (numeric numpy arrays) and JSON-serialisable ``meta`` atomically."""
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved")
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[_META_KEY] = np.asarray(json.dumps(dict(meta), sort_keys=True))

    def write(f):
        buffer = io.BytesIO()
        np.savez(buffer, **payload)
        f.write(buffer.getvalue())
    write_file_atomic(path, write)


def load_state(path: str | os.PathLike, content: bytes | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reads a state file written by :func:`save_state`; CompatError if it is unreadable.

    ``content``: the file's bytes, already read (then ``path`` only names it in errors), so a
    caller that copies those bytes checks exactly what it copies, even while a running job
    replaces the file.
    """
    name = os.fspath(path)
    try:
        data = np.load(name if content is None else io.BytesIO(content), allow_pickle=False)
    except FileNotFoundError:
        raise CompatError(f"{name}: state file not found") from None
    except IsADirectoryError:
        raise CompatError(f"{name}: is a directory, not a state file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CompatError(f"{name}: corrupt state file ({err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a lone .npy array
        raise CompatError(f"{name}: not a run state file (a single .npy array, not an .npz)")
    try:
        with data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CompatError(f"{name}: corrupt state file ({err})") from None
    if _META_KEY not in arrays:
        raise CompatError(f"{name}: not a run state file (no metadata)")
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
    except json.JSONDecodeError as err:
        raise CompatError(f"{name}: corrupt state metadata ({err})") from None
    if not isinstance(meta, dict):
        raise CompatError(f"{name}: corrupt state metadata (not a JSON object)")
    return arrays, meta
