"""The scripts' ``--strategy`` and ``--devices``: which ``tf.distribute.Strategy`` a run uses.

- ``none``: no strategy, one device (TensorFlow's placement), as without the flags.
- ``mirrored``: a ``MirroredStrategy`` over ``--devices``: a count ``N`` (the first ``N``
  GPUs; on a machine without a GPU the CPU split into ``N`` logical devices), or a
  comma-separated list such as ``/gpu:0,/gpu:2`` or ``cpu:0,cpu:1`` (a CPU index above 0
  splits the CPU into that many logical devices plus one). Default: every visible GPU, else
  the CPU as one device.
- ``multi_worker``: a ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``. Its
  ``TF_CONFIG`` is checked (:func:`parse_tf_config`), then the run is refused: the attacks
  run on the replicas of one host (``attacks.distribute``); gathering the groups of several
  hosts is not implemented.

Splitting the CPU only works before TensorFlow initialises its devices, so
:func:`make_strategy` must run before any model is built or tensor created.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Mapping

STRATEGIES = ("none", "mirrored", "multi_worker")
_DEVICE = re.compile(r"^(?:/device:|/)?(cpu|gpu):(\d+)$", re.IGNORECASE)
_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:(\d+)$")
MULTI_WORKER_JOBS = ("chief", "worker")


def parse_devices(text: str | None) -> int | list[tuple[str, int]] | None:
    """``--devices``: None (not given), a count ``N >= 1``, or ``[(kind, index), ...]`` with
    kind ``"CPU"`` or ``"GPU"`` (no TensorFlow needed).

    Raises:
      ValueError: one line naming ``--devices`` and what is wrong.
    """
    if text is None:
        return None
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        count = int(text)
        if count < 1:
            raise ValueError(f"--devices must be a count >= 1 or a list of devices, got {text!r}")
        return count
    entries = [part.strip() for part in text.split(",")]
    found = []
    for entry in entries:
        match = _DEVICE.match(entry)
        if match is None:
            raise ValueError(f"--devices: {entry!r} is not a device; give a count (2) or a "
                             f"comma-separated list such as /gpu:0,/gpu:1 or cpu:0,cpu:1")
        found.append((match.group(1).upper(), int(match.group(2))))
    if len(set(found)) != len(found):
        raise ValueError(f"--devices names a device twice: {text!r}")
    return found


def parse_tf_config(text: str | None) -> dict[str, Any]:
    """The ``TF_CONFIG`` of a multi-worker run, checked as TensorFlow documents it.

    Args:
      text: the variable's value, e.g. ``{"cluster": {"worker": ["host1:12345",
        "host2:12345"]}, "task": {"type": "worker", "index": 0}}``.

    Returns:
      ``{"cluster": {job: [address, ...]}, "task": {"type": job, "index": i},
      "workers": total, "chief": bool}`` (the chief: task ``chief``, or worker 0 where the
      cluster has no ``chief`` job).

    Raises:
      ValueError: missing, not JSON, or not a cluster this task belongs to (one line).
    """
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if text is None or not text.strip():
        raise ValueError(f"--strategy=multi_worker needs TF_CONFIG, e.g. TF_CONFIG='{example}'")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object like {example}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError("TF_CONFIG has no \"cluster\" object mapping jobs to address lists")
    seen = set()
    for job, addresses in cluster.items():
        if job not in MULTI_WORKER_JOBS:
            raise ValueError(f"TF_CONFIG cluster job {job!r} is not one of "
                             f"{', '.join(MULTI_WORKER_JOBS)} (MultiWorkerMirroredStrategy)")
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG cluster job {job!r} must list its \"host:port\" addresses")
        for address in addresses:
            match = _ADDRESS.match(address) if isinstance(address, str) else None
            if match is None or not 1 <= int(match.group(1)) <= 65535:
                raise ValueError(f"TF_CONFIG cluster job {job!r}: {address!r} is not host:port")
            if address in seen:
                raise ValueError(f"TF_CONFIG cluster lists {address} twice")
            seen.add(address)
    if "chief" in cluster and len(cluster["chief"]) != 1:
        raise ValueError("TF_CONFIG cluster job 'chief' must have exactly one address")
    if not isinstance(task, dict):
        raise ValueError("TF_CONFIG has no \"task\" object ({\"type\": ..., \"index\": ...})")
    job, index = task.get("type"), task.get("index")
    if job not in cluster:
        raise ValueError(f"TF_CONFIG task type {job!r} is not a job of the cluster "
                         f"({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[job]):
        raise ValueError(f"TF_CONFIG task index must be an integer in [0, {len(cluster[job])}) "
                         f"for job {job!r}, got {index!r}")
    chief = job == "chief" or ("chief" not in cluster and index == 0)
    return {"cluster": cluster, "task": {"type": job, "index": index},
            "workers": sum(len(a) for a in cluster.values()), "chief": chief}


def make_strategy(kind: str, devices: str | None = None,
                  environ: Mapping[str, str] | None = None):
    """The strategy ``--strategy=kind --devices=devices`` ask for (None for ``none``).

    Call before TensorFlow initialises its devices (a CPU split is configured here).

    Raises:
      ValueError: an unknown kind, ``--devices`` without ``mirrored``, more GPUs than are
        visible, a CPU that can no longer be split, a bad ``TF_CONFIG``, or ``multi_worker``
        (not supported by the attacks; one line saying so).
    """
    if kind not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    parsed = parse_devices(devices)
    if kind != "mirrored" and parsed is not None:
        raise ValueError(f"--devices applies to --strategy=mirrored only (got --strategy={kind})")
    if kind == "none":
        return None
    if kind == "multi_worker":
        tf_config = parse_tf_config((os.environ if environ is None else environ).get("TF_CONFIG"))
        raise ValueError(f"--strategy=multi_worker: TF_CONFIG is valid ({tf_config['workers']} "
                         f"task(s)), but the attacks do not run across hosts yet (the chief "
                         f"would have to gather every host's groups); use --strategy=mirrored "
                         f"over one host's devices")
    import tensorflow as tf
    from workflow.cli import VERBOSE_TF_ENV
    if (os.environ if environ is None else environ).get(VERBOSE_TF_ENV, "") in ("", "0"):
        # TensorFlow's INFO lines ("Using MirroredStrategy with devices ...", and on Ctrl-C
        # the replica coordinator's traceback) stay hidden like its start-up log.
        tf.get_logger().setLevel(logging.WARNING)
    names = _mirrored_devices(tf, parsed)
    return tf.distribute.MirroredStrategy(names)


def describe(strategy) -> str:
    """``MirroredStrategy, 2 replicas: /cpu:0, /cpu:1`` for the scripts' start line."""
    devices = getattr(strategy.extended, "worker_devices", ())
    return (f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s): "
            + ", ".join(d.split("device:")[-1].lower() for d in devices))


def _mirrored_devices(tf, parsed) -> list[str]:
    gpus = tf.config.list_physical_devices("GPU")
    if parsed is None:
        return [f"/gpu:{i}" for i in range(len(gpus))] if gpus else ["/cpu:0"]
    if isinstance(parsed, int):
        if gpus:
            if parsed > len(gpus):
                raise ValueError(f"--devices={parsed} asks for {parsed} GPUs, {len(gpus)} visible")
            return [f"/gpu:{i}" for i in range(parsed)]
        _split_cpu(tf, parsed)
        return [f"/cpu:{i}" for i in range(parsed)]
    for kind, index in parsed:
        if kind == "GPU" and index >= len(gpus):
            raise ValueError(f"--devices: /gpu:{index} is not visible ({len(gpus)} GPU(s))")
    cpu_indices = [index for kind, index in parsed if kind == "CPU"]
    if cpu_indices and max(cpu_indices) > 0:
        _split_cpu(tf, max(cpu_indices) + 1)
    return [f"/{kind.lower()}:{index}" for kind, index in parsed]


def _split_cpu(tf, count: int) -> None:
    """The CPU as ``count`` logical devices (they share its cores and thread pools)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != count:
            raise ValueError(f"--devices: the CPU cannot be split into {count} devices after "
                             f"TensorFlow initialised it ({existing} device(s))") from None
