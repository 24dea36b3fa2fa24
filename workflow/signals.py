"""SIGINT/SIGTERM handling shared by every script: ONE mechanism, two ways to stop.

:class:`StopSignals` records the signal; with ``raising=True`` it also raises
:class:`Interrupted` at once (an evaluation stops mid-restart, its last finished restart is on
disk), with ``raising=False`` the caller polls :attr:`StopSignals.signum` and stops at a point
of its choosing (training finishes the current step, then checkpoints).
"""
from __future__ import annotations

import signal
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived.

    Attributes:
      signum: the signal number.
      message: one line saying what was kept (empty until a caller that knows says it).
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or signal_name(signum))
        self.signum = signum
        self.message = message

    def with_message(self, message: str) -> Interrupted:
        """The same interruption, explained: ``message`` says what was saved."""
        return Interrupted(self.signum, message)


def signal_name(signum: int) -> str:
    """``SIGINT`` for 2, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """Within the block (or between :meth:`install` and :meth:`restore`), SIGINT and SIGTERM
    are recorded in :attr:`signum`; with ``raising`` they also raise :class:`Interrupted`.

    Outside the main thread signals cannot be caught; the handlers are then left alone.
    """

    def __init__(self, raising: bool = True):
        self.raising = raising
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    def install(self) -> StopSignals:
        for sig in HANDLED:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:  # noqa: ARG002
        self.signum = signum
        if self.raising:
            raise Interrupted(signum)

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc) -> bool:
        self.restore()
        return False


def raise_on_termination() -> StopSignals:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread."""
    return StopSignals(raising=True)
