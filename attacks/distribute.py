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

Strategies accepted: ``MirroredStrategy`` (the devices of one host), ``OneDeviceStrategy``,
the default strategy and ``MultiWorkerMirroredStrategy`` (several hosts, each with its local
devices). Under the multi-worker strategy every worker walks the same schedule (the host-side
draws are the same on every worker); a wave is as wide as the replicas of all workers, each
worker runs the wave's groups of its own replicas, and the results are then exchanged
(:func:`all_gather_bytes`: every worker's serialised results, as int32 words, summed across
workers with zeros elsewhere, which is exact), so that every worker commits every group in
schedule order and holds the same images as one device would.
"""
from __future__ import annotations

import io
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
        return "Strategy eagerly has significant overhead" not in record.getMessage()


_FILTER = _EagerRunNotice()


def check_strategy(strategy: Any) -> tf.distribute.Strategy | None:
    """``strategy`` if this module can run on it (None: one device, as without a strategy).

    Raises:
      ValueError: not a strategy, or another kind (one line).
    """
    if strategy is None:
        return None
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be None or a tf.distribute.Strategy, got "
                         f"{type(strategy).__name__}")
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return strategy
    default = type(tf.distribute.get_strategy()) if not tf.distribute.has_strategy() else None
    if not isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.OneDeviceStrategy)) \
            and not (default is not None and isinstance(strategy, default)):
        raise ValueError(f"strategy must be a MirroredStrategy, a OneDeviceStrategy or the "
                         f"default strategy, got {type(strategy).__name__}")
    return strategy


def replica_count(strategy: tf.distribute.Strategy | None) -> int:
    """Replicas a schedule is spread over (1 without a strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """True for a ``MultiWorkerMirroredStrategy`` (whose results are exchanged across hosts)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_count(strategy: tf.distribute.Strategy | None) -> int:
    """Processes taking part (the chief and the workers of the cluster; 1 on one host)."""
    if not is_multi_worker(strategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, ())) for job in ("chief", "worker"))


def worker_rank(strategy: tf.distribute.Strategy | None) -> int:
    """This process's place among :func:`worker_count`: the chief (or, without a ``chief``
    job, worker 0) is 0."""
    if not is_multi_worker(strategy):
        return 0
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return 0
    return int(resolver.task_id) + (1 if has_chief else 0)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """True where outputs are written: one host, or the multi-worker cluster's chief."""
    return worker_rank(strategy) == 0


def all_gather_bytes(strategy: tf.distribute.Strategy, data: bytes) -> list[bytes]:
    """Every worker's ``data``, in rank order, on every worker (a collective: all must call).

    :func:`gather_bytes` over the multi-worker strategy's all-reduce; on one host it returns
    ``[data]``.
    """
    count, rank = worker_count(strategy), worker_rank(strategy)
    if count == 1:
        return [data]
    return gather_bytes(data, rank, count, lambda values: _sum_over_workers(strategy, values))


def gather_bytes(data: bytes, rank: int, count: int,
                 sum_over_workers: Callable[[np.ndarray], np.ndarray]) -> list[bytes]:
    """Every worker's ``data`` from two sums over the ``count`` workers (this one is ``rank``).

    ``sum_over_workers``: int32 ``(K,)`` -> the element-wise sum of every worker's array of
    the same ``K`` (an all-reduce). First the lengths (each worker fills its own slot), then
    the payloads packed in little-endian int32 words, each worker filling its own span and
    zeros elsewhere: integer sums with zeros are exact, so the bytes arrive unchanged. Where
    every worker sends nothing the second sum is skipped (TensorFlow's collective all-reduce
    of an empty tensor crashes the process).
    """
    lengths = np.zeros(count, np.int32)
    lengths[rank] = len(data)
    lengths = np.asarray(sum_over_workers(lengths), np.int64)
    words = -(-lengths // 4)
    starts = np.concatenate([[0], np.cumsum(words)])
    payload = np.zeros(int(starts[-1]), np.int32)
    padded = data + b"\0" * (int(words[rank]) * 4 - len(data))
    payload[starts[rank]:starts[rank + 1]] = np.frombuffer(padded, "<i4")
    if payload.size:  # every worker knows the lengths; an all-reduce of nothing crashes
        payload = np.asarray(sum_over_workers(payload), np.int32)
    raw = payload.astype("<i4").tobytes()
    return [raw[4 * int(starts[i]):4 * int(starts[i]) + int(lengths[i])] for i in range(count)]


def _sum_over_workers(strategy: tf.distribute.Strategy, values: np.ndarray) -> np.ndarray:
    """``values`` summed over the workers (each worker's first local replica contributes it,
    its other replicas zeros); int32 ``(K,)``."""
    first = [True]

    def per_replica(_context) -> tf.Tensor:
        mine, first[0] = first[0], False
        return tf.constant(values if mine else np.zeros_like(values))

    distributed = strategy.experimental_distribute_values_from_function(per_replica)
    logger = tf.get_logger()
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, distributed, axis=None).numpy()


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as ``.npz`` bytes (no pickle), for :func:`all_gather_bytes`."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unpack_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`pack_arrays` (``allow_pickle=False``)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as found:
        return {key: found[key] for key in found.files}


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
                 strategy: tf.distribute.Strategy | None = None,
                 pack: Callable[[Any], dict[str, np.ndarray]] | None = None,
                 unpack: Callable[[dict[str, np.ndarray]], Any] | None = None) -> None:
    """Runs every group of ``schedule``: ``commit(idx, n, launch(idx, n))`` in schedule order.

    Without a strategy: one group after the other, on the default device. With one: waves of
    up to ``num_replicas_in_sync`` disjoint groups; replica ``i`` calls ``launch`` on the
    wave's ``i``-th group under its device (``strategy.run``, concurrently), then the wave's
    results are committed in order on the calling thread.

    Args:
      launch: ``(idx, n) -> result``; reads the current images of ``idx`` and runs ``n``
        steps. Must not write shared arrays (``commit`` does).
      commit: ``(idx, n, result)``: stores a group's result (and reports progress).
      pack, unpack: a result as named arrays and back; needed under a multi-worker strategy,
        where each worker's results are sent to all the others (:func:`all_gather_bytes`).
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
        if is_multi_worker(strategy):
            results = _exchange(strategy, results, pack, unpack)
        for (idx, n), result in zip(wave, results):
            commit(idx, n, result)


def _exchange(strategy: tf.distribute.Strategy, results: list[Any],
              pack: Callable[[Any], dict[str, np.ndarray]] | None,
              unpack: Callable[[dict[str, np.ndarray]], Any] | None) -> list[Any]:
    """A wave's results of every worker's replicas (``None`` where another worker ran the
    group) -> all of them, on every worker."""
    if pack is None or unpack is None:
        raise ValueError("run_schedule under a MultiWorkerMirroredStrategy needs pack and "
                         "unpack (results are sent between workers)")
    mine = {}
    for slot, result in enumerate(results):
        if result is not None:
            mine.update({f"{slot}/{key}": value for key, value in pack(result).items()})
    merged: list[dict[str, np.ndarray]] = [{} for _ in results]
    for data in all_gather_bytes(strategy, pack_arrays(mine)):
        for name, value in unpack_arrays(data).items():
            slot, key = name.split("/", 1)
            merged[int(slot)][key] = value
    missing = [slot for slot, found in enumerate(merged) if not found]
    if missing:
        raise RuntimeError(f"no worker returned the wave's group(s) {missing}")
    return [unpack(found) for found in merged]
