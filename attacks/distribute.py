"""Running an attack's schedule on the replicas of a ``tf.distribute.Strategy``.

The unit a replica receives is one whole group of ``attacks.api.group_schedule``: a PGD-family
batch of ``batch_size`` consecutive examples or a BLOB group (whose kernel term couples the
group's examples, so it cannot be split). Groups are dealt in *waves*: up to one group per
replica, all of them disjoint, run at once with ``strategy.run``; each replica runs the one
compiled driver (``StepRunner.run``) on its group under its own device scope, and the wave's
results are written back in schedule order before the next wave starts. A group that shares
examples with a group of the current wave (the next BLOB round, which regroups the whole set)
waits for the next wave, so every group starts from exactly the images it starts from on one
device.

Why whole groups and not a share of every batch: a PGD batch split in two computes its
gradients with other matrix sizes, and the kernels' blocking (hence float summation order)
depends on them; measured on CPU, L2 PGD differs by up to 1.2e-7 after 12 steps of a batch
of 200 split in three. Dealing whole groups keeps each group's arithmetic that of one device,
so the images are identical bit for bit; the random starts and BLOB permutations are drawn on
the host from the same ``(seed, run, restart)`` generator in the same order as on one device.

Strategies accepted: ``MirroredStrategy`` (the devices of one host), ``OneDeviceStrategy`` and
the default strategy. A ``MultiWorkerMirroredStrategy`` (several hosts) is refused: results
would have to be gathered across hosts, which this module does not do.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf

Group = tuple[np.ndarray, int]  # (example indices, steps)


class _EagerRunNotice(logging.Filter):
    """Drops MirroredStrategy's "Using MirroredStrategy eagerly has significant overhead"
    warning, logged on every eager ``strategy.run``. The advice (wrap ``run`` in a
    ``tf.function``) is for per-step calls; here one call runs a whole group's compiled
    steps per replica, and ``launch`` needs numpy on the host. The cost is measured in
    ``bench/RESULTS.md``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "MirroredStrategy eagerly" not in record.getMessage()


_FILTER = _EagerRunNotice()


def check_strategy(strategy: Any) -> tf.distribute.Strategy | None:
    """``strategy`` if this module can run on it (None: one device, as without a strategy).

    Raises:
      ValueError: not a strategy, a multi-host strategy, or another kind (one line).
    """
    if strategy is None:
        return None
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be None or a tf.distribute.Strategy, got "
                         f"{type(strategy).__name__}")
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise ValueError("strategy: a MultiWorkerMirroredStrategy (several hosts) is not "
                         "supported by attacks; use a MirroredStrategy over one host's devices")
    default = type(tf.distribute.get_strategy()) if not tf.distribute.has_strategy() else None
    if not isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.OneDeviceStrategy)) \
            and not (default is not None and isinstance(strategy, default)):
        raise ValueError(f"strategy must be a MirroredStrategy, a OneDeviceStrategy or the "
                         f"default strategy, got {type(strategy).__name__}")
    return strategy


def replica_count(strategy: tf.distribute.Strategy | None) -> int:
    """Replicas a schedule is spread over (1 without a strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def check_groups(strategy: tf.distribute.Strategy | None, n_examples: int, batch_size: int) -> None:
    """Refuses more replicas than groups per round (``ceil(n_examples / batch_size)``): a
    replica would never get work.

    Raises:
      ValueError: one line naming the counts and what to change.
    """
    replicas = replica_count(strategy)
    groups = -(-n_examples // batch_size)
    if replicas > groups:
        raise ValueError(f"strategy has {replicas} replicas but {n_examples} example(s) at "
                         f"batch_size {batch_size} make only {groups} group(s); each replica "
                         f"takes whole groups: use fewer devices or a smaller batch_size")


def waves(schedule: Iterable[Group], width: int) -> Iterator[list[Group]]:
    """Splits ``schedule`` into consecutive waves of at most ``width`` pairwise disjoint groups.

    A wave ends early at the first group that shares an example with one already in it (the
    start of the next BLOB round), which then opens the next wave. Concatenating the waves
    gives ``schedule`` in its order, and the schedule's generator is advanced in the same
    order as a plain loop over it would (only earlier in time).
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    wave: list[Group] = []
    taken = np.zeros(0, dtype=np.int64)
    for idx, n in schedule:
        if wave and (len(wave) == width or np.isin(idx, taken).any()):
            yield wave
            wave, taken = [], np.zeros(0, dtype=np.int64)
        wave.append((idx, n))
        taken = np.concatenate([taken, idx])
    if wave:
        yield wave


def run_schedule(schedule: Iterable[Group], launch: Callable[[np.ndarray, int], Any],
                 commit: Callable[[np.ndarray, int, Any], None],
                 strategy: tf.distribute.Strategy | None = None) -> None:
    """Runs every group of ``schedule``: ``commit(idx, n, launch(idx, n))`` in schedule order.

    Without a strategy: one group after the other, on the default device. With one: waves of
    up to ``num_replicas_in_sync`` disjoint groups; replica ``i`` calls ``launch`` on the
    wave's ``i``-th group under its device (``strategy.run``, concurrently), then the wave's
    results are committed in order on the calling thread.

    Args:
      launch: ``(idx, n) -> result``; reads the current images of ``idx`` and runs ``n``
        steps. Must not write shared arrays (``commit`` does).
      commit: ``(idx, n, result)``: stores a group's result (and reports progress).
    """
    if strategy is None:
        for idx, n in schedule:
            commit(idx, n, launch(idx, n))
        return
    for wave in waves(schedule, replica_count(strategy)):
        results: list[Any] = [None] * len(wave)

        def on_replica(wave=wave, results=results) -> None:
            replica = int(tf.distribute.get_replica_context().replica_id_in_sync_group)
            if replica < len(wave):
                results[replica] = launch(*wave[replica])

        logger = tf.get_logger()
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        strategy.run(on_replica)
        for (idx, n), result in zip(wave, results):
            commit(idx, n, result)
