"""Workers of a multi-worker run simulated by threads in one process, for the exchanges of
``attacks.distribute.gather_bytes`` and ``workflow.cluster`` without TensorFlow's cluster.

The all-reduce a real cluster runs (``MultiWorkerMirroredStrategy``) becomes
:meth:`SimulatedWorkers.sum_over_workers`: every thread deposits its int32 array, waits for
the others at a barrier, and gets the element-wise sum of all of them (computed here with
numpy, independently of the code under test).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from attacks.distribute import gather_bytes


class SimulatedWorkers:
    """``count`` workers; :meth:`run` calls ``work(rank, gather)`` on one thread each."""

    def __init__(self, count: int, timeout_s: float = 30.0):
        self.count = count
        self.timeout_s = timeout_s
        self._barrier = threading.Barrier(count, timeout=timeout_s)
        self._slots: list[np.ndarray | None] = [None] * count
        self.reductions = 0  # all-reduces run (counted once per collective)
        self.sizes: list[int] = []  # the length of each all-reduce's arrays

    def sum_over_workers(self, rank: int) -> Callable[[np.ndarray], np.ndarray]:
        def reduce(values: np.ndarray) -> np.ndarray:
            values = np.asarray(values)
            assert values.dtype == np.int32 and values.ndim == 1, values.dtype
            self._slots[rank] = values.copy()
            self._barrier.wait()
            shapes = {slot.shape for slot in self._slots}
            assert len(shapes) == 1, f"workers reduced arrays of other shapes: {shapes}"
            total = np.sum(np.stack(self._slots).astype(np.int64), axis=0)
            # int32 all-reduces wrap around like TensorFlow's integer sums.
            total = ((total + 2**31) % 2**32 - 2**31).astype(np.int32)
            if rank == 0:
                self.reductions += 1
                self.sizes.append(int(values.size))
            self._barrier.wait()
            return total
        return reduce

    def gather(self, rank: int) -> Callable[[bytes], list[bytes]]:
        """The ``gather`` of ``workflow.cluster`` for worker ``rank``: the real packing
        (``gather_bytes``) over the simulated all-reduce."""
        return lambda data: gather_bytes(data, rank, self.count, self.sum_over_workers(rank))

    def run(self, work: Callable[[int, Callable[[bytes], list[bytes]]], Any]) -> list[Any]:
        """``work(rank, gather)`` on every worker at once; each worker's return value, or the
        exception it raised, in rank order."""
        results: list[Any] = [None] * self.count

        def target(rank: int) -> None:
            try:
                results[rank] = work(rank, self.gather(rank))
            except BaseException as err:  # noqa: BLE001 - returned to the test
                results[rank] = err  # a worker left waiting breaks its barrier's timeout

        threads = [threading.Thread(target=target, args=(rank,)) for rank in range(self.count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout_s)
            assert not thread.is_alive(), "a simulated worker hung"
        return results
