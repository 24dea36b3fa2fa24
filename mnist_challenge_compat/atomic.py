"""Atomic file writes: every output of the project goes through :func:`write_file_atomic`.

A reader sees either the old file or the complete new one, never a partial file; a failed
write leaves no temp file behind. A write killed outright (SIGKILL, power loss) leaves its
temp file ``.<name>.<pid>.<random>.tmp``; :func:`remove_stale_temporaries` removes those whose
writer is gone.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
from typing import BinaryIO, Callable

from mnist_challenge_compat.errors import CompatError

__all__ = ["write_file_atomic", "remove_stale_temporaries"]

# ``.<base>.<writer pid>.<12 hex>.tmp``; before the pid was recorded: ``.<base>.<12 hex>.tmp``.
_TEMP_NAME = re.compile(r"^\.(?P<base>.+?)\.(?:(?P<pid>[0-9]+)\.)?[0-9a-f]{12}\.tmp$")


def _open_temp_beside(path: str) -> tuple[int, str]:
    """Creates a new hidden temp file in ``path``'s directory; returns ``(fd, temp_path)``.

    Created with mode 0o666 so that the process umask applies as for a normal ``open``.
    """
    directory, base = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _fsync_directory(directory: str) -> None:
    """Makes a rename durable (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Writes a file atomically: temp file in the same directory, fsync, ``os.replace``.

    Args:
        path: the final file name (used exactly, no extension added).
        write: called once with the temp file opened in binary mode; writes the content.

    If ``write`` (or anything else) fails, the temp file is removed and an existing file at
    ``path`` is left untouched; nothing partial ever appears under ``path``.

    Raises:
        CompatError: the file cannot be created, written or renamed (``OSError``).
        Whatever ``write`` raises, other than ``OSError``, propagates unchanged.
    """
    name = os.fspath(path)
    try:
        fd, tmp = _open_temp_beside(name)
    except OSError as err:
        raise CompatError(f"cannot write {name}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise CompatError(f"cannot write {name}: {err.strerror or err}") from None
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(name)))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike, *, exclusive: bool = False) -> list[str]:
    """Removes the temp files of interrupted :func:`write_file_atomic` calls in ``directory``.

    Only names of this module's pattern are touched: those whose writer pid is no longer
    running, and, when ``exclusive`` (the caller holds the directory's lock, so no writer of
    an older version that did not record its pid can be at work), those without a pid.

    Returns:
        The removed paths. Files that vanish meanwhile or cannot be removed are skipped.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None:
            continue
        pid = match.group("pid")
        stale = (not _process_alive(int(pid)) and int(pid) != os.getpid()) if pid else exclusive
        path = os.path.join(os.fspath(directory), name)
        if stale and os.path.isfile(path) and not os.path.islink(path):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
    return removed
