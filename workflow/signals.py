"""Turning SIGINT/SIGTERM into an exception, so a long run stops at a saved point."""
from __future__ import annotations

import signal


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; work up to the last saved point is kept."""


class raise_on_termination:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread."""

    def __enter__(self):
        self._old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._raise)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    @staticmethod
    def _raise(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False
