"""An exclusive lock on a folder, so two commands never write into the same one.

``<folder>/.lock`` is locked with ``fcntl.flock`` and holds the holder's pid (for the
message of whoever finds it taken). The kernel drops the lock when the holder's file is
closed or the process dies, so a lock file left behind by a killed process is free again
without any cleanup; the file itself stays (removing it could let two processes lock two
different files of the same name).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mnist_challenge_compat import CompatError

LOCK_FILE = ".lock"


class FolderBusy(CompatError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder):`` holds ``folder/.lock`` exclusively, or raises FolderBusy.

    Attributes:
      path: the lock file.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Takes the lock without waiting.

        Raises:
          FolderBusy: another process holds it (the message names its pid).
          CompatError: the lock file cannot be created.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise CompatError(f"cannot create the lock file {self.path}: "
                              f"{err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise FolderBusy(f"{self.path.parent} is in use by {who} (lock {self.path}); wait "
                             f"for it to finish or use another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Gives the lock back (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
