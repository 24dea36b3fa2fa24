"""Progress lines with throughput and ETA for long attack runs."""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def format_duration(seconds: float) -> str:
    """``3725.2`` -> ``"1:02:05"``."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressPrinter:
    """Prints one line per finished restart and, within a restart, at most every ``interval`` s.

    Args:
      total_example_steps: example-steps (examples x steps) still to do in this process.
      runs, restarts: totals, for the ``run k/K restart r/R`` labels (1-based).
      steps: attack steps per example, to report examples/s next to example-steps/s.
      out: where lines go (stdout by default, flushed per line).
      clock: injectable for tests.
    """

    def __init__(self, total_example_steps: int, runs: int, restarts: int, steps: int, *,
                 interval: float = 10.0, out: TextIO | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self._total = max(1, total_example_steps)
        self._runs, self._restarts, self._steps = runs, restarts, max(1, steps)
        self._interval = interval
        self._out = out or sys.stdout
        self._clock = clock
        self._start = clock()
        self._last_print = self._start
        self._done_before_restart = 0
        self.example_steps = 0

    def rate(self) -> float:
        """Example-steps per second so far in this process."""
        elapsed = self._clock() - self._start
        return self.example_steps / elapsed if elapsed > 0 else 0.0

    def _eta(self) -> str:
        rate = self.rate()
        return format_duration((self._total - self.example_steps) / rate) if rate > 0 else "?"

    def within_restart(self, run: int, restart: int, done_in_restart: int) -> None:
        """Called after each group; prints when ``interval`` seconds have passed."""
        self.example_steps = self._done_before_restart + done_in_restart
        now = self._clock()
        if now - self._last_print >= self._interval:
            self._last_print = now
            self._print(f"run {run + 1}/{self._runs} restart {restart + 1}/{self._restarts} "
                        f"in progress: {100.0 * self.example_steps / self._total:.1f}%")

    def restart_finished(self, run: int, restart: int, restart_accuracy: float | None,
                         merged_accuracy: float, example_steps: int, *,
                         attacked: int | None = None, total: int | None = None) -> None:
        """The line that marks a saved, resumable point.

        ``restart_accuracy`` is of the ``attacked`` examples (of ``total``); when these
        differ the line says so, and a restart with none left to attack says that.
        """
        self._done_before_restart += example_steps
        self.example_steps = self._done_before_restart
        self._last_print = self._clock()
        if attacked == 0:
            alone = "nothing left to attack"
        elif attacked is not None and total is not None and attacked != total:
            alone = f"accuracy {100 * restart_accuracy:.2f}% of the {attacked:,} unbroken attacked"
        else:
            alone = f"accuracy {100 * restart_accuracy:.2f}%"
        self._print(f"run {run + 1}/{self._runs} restart {restart + 1}/{self._restarts} done: "
                    f"{alone}, merged {100 * merged_accuracy:.2f}%")

    def _print(self, head: str) -> None:
        rate = self.rate()
        print(f"{head} | {rate:,.0f} example-steps/s, {rate / self._steps:,.1f} examples/s "
              f"| ETA {self._eta()}", file=self._out, flush=True)
