"""The scripts' ``--strategy`` and ``--devices``: which ``tf.distribute.Strategy`` a run uses.

- ``none``: no strategy, one device (TensorFlow's placement), as without the flags.
- ``mirrored``: a ``MirroredStrategy`` over ``--devices``: a count ``N`` (the first ``N``
  GPUs; on a machine without a GPU the CPU split into ``N`` logical devices), or a
  comma-separated list such as ``/gpu:0,/gpu:2`` or ``cpu:0,cpu:1`` (a CPU index above 0
  splits the CPU into that many logical devices plus one). Default: every visible GPU, else
  the CPU as one device.
- ``multi_worker``: a ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG`` as
  TensorFlow documents it (checked first, :func:`parse_tf_config`), each host's local devices
  (its GPUs, else its CPU) its replicas. Every worker runs the same command; construction
  waits for all of them to join, at most ``join_timeout`` seconds (then one line and exit 1,
  :func:`_join_watch`), and the same bound applies to each collective later (a worker that
  dies makes the others fail instead of hang).

Splitting the CPU only works before TensorFlow initialises its devices, so
:func:`make_strategy` must run before any model is built or tensor created.
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from typing import Any, Mapping, Sequence

STRATEGIES = ("none", "mirrored", "multi_worker")
_DEVICE = re.compile(r"^(?:/device:|/)?(cpu|gpu):(\d+)$", re.IGNORECASE)
_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:(\d+)$")
MULTI_WORKER_JOBS = ("chief", "worker")
DEFAULT_JOIN_TIMEOUT_S = 300.0


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


def define_strategy_flags(kinds: Sequence[str], strategy_help: str) -> None:
    """Defines a script's ``--strategy`` (one of ``kinds``, default none) and ``--devices``
    (:func:`parse_devices`'s forms, for mirrored only), and with ``multi_worker`` among
    ``kinds`` its ``--join_timeout``, with their validators."""
    from absl import flags

    def devices_ok(value) -> bool:
        try:
            parse_devices(value)
        except ValueError:
            return False
        return True

    flags.DEFINE_enum("strategy", "none", list(kinds), strategy_help)
    flags.DEFINE_string("devices", None, "--strategy=mirrored: a count N (the first N GPUs; "
                        "without a GPU the CPU split into N logical devices) or a list such as "
                        "/gpu:0,/gpu:1; default every GPU, else the CPU.")
    flags.register_validator("devices", devices_ok,
                             "--devices must be a count >= 1 or a comma-separated list such as "
                             "/gpu:0,/gpu:1 (each device once)")
    flags.register_multi_flags_validator(
        ["strategy", "devices"], lambda f: f["devices"] is None or f["strategy"] == "mirrored",
        "--devices applies to --strategy=mirrored only")
    if "multi_worker" in kinds:
        flags.DEFINE_float("join_timeout", DEFAULT_JOIN_TIMEOUT_S, "--strategy=multi_worker: "
                           "seconds to wait for every worker of TF_CONFIG to join, and for each "
                           "exchange between workers later (a worker that died).")
        flags.register_validator("join_timeout", lambda v: v > 0,
                                 "--join_timeout must be > 0 seconds")


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


def check_worker_groups(environ: Mapping[str, str], n_examples: int | None,
                        batch_size: int) -> None:
    """Before joining a cluster: refuses more workers in ``TF_CONFIG`` than groups per round
    (each worker has at least one replica, each replica takes whole groups; the exact replica
    count is checked again once joined).

    Raises:
      ValueError: a bad ``TF_CONFIG``, or too few groups (one line).
    """
    workers = parse_tf_config(environ.get("TF_CONFIG"))["workers"]
    if n_examples is None:
        return
    groups = -(-n_examples // batch_size)
    if workers > groups:
        raise ValueError(f"strategy has {workers} replicas (at least one per worker of TF_CONFIG) "
                         f"but {n_examples} example(s) at batch_size {batch_size} make only "
                         f"{groups} group(s); each replica takes whole groups: use fewer workers "
                         f"or a smaller batch_size")


def make_strategy(kind: str, devices: str | None = None,
                  environ: Mapping[str, str] | None = None,
                  join_timeout: float = DEFAULT_JOIN_TIMEOUT_S, program: str = "eval.py"):
    """The strategy ``--strategy=kind --devices=devices`` ask for (None for ``none``).

    Call before TensorFlow initialises its devices (a CPU split is configured here).

    Args:
      join_timeout: ``multi_worker``: seconds to wait for every worker to join (past it the
        process prints ``program: ...`` as one line and exits 1), and for any later collective.

    Raises:
      ValueError: an unknown kind, ``--devices`` without ``mirrored``, more GPUs than are
        visible, a CPU that can no longer be split, or a bad ``TF_CONFIG`` (one line).
    """
    if kind not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    parsed = parse_devices(devices)
    if kind != "mirrored" and parsed is not None:
        raise ValueError(f"--devices applies to --strategy=mirrored only (got --strategy={kind})")
    if kind == "none":
        return None
    environ = os.environ if environ is None else environ
    tf_config = None
    if kind == "multi_worker":
        tf_config = parse_tf_config(environ.get("TF_CONFIG"))
        if not join_timeout > 0:
            raise ValueError(f"--join_timeout must be > 0 seconds, got {join_timeout}")
    import tensorflow as tf
    from workflow.cli import VERBOSE_TF_ENV
    if environ.get(VERBOSE_TF_ENV, "") in ("", "0"):
        # TensorFlow's INFO lines ("Using MirroredStrategy with devices ...", and on Ctrl-C
        # the replica coordinator's traceback) stay hidden like its start-up log.
        tf.get_logger().setLevel(logging.WARNING)
    if tf_config is not None:
        return _multi_worker(tf, tf_config, join_timeout, program)
    names = _mirrored_devices(tf, parsed)
    return tf.distribute.MirroredStrategy(names)


_WATCHER = """
import sys
message = sys.argv[1]
data = sys.stdin.buffer.read()  # EOF: the cluster joined, or the process ended otherwise
if data.startswith(b"Timeout"):  # faulthandler's timer fired: the join timed out
    sys.stderr.write(message + "\\n")
"""


def _multi_worker(tf, tf_config: dict[str, Any], join_timeout: float, program: str):
    """A ``MultiWorkerMirroredStrategy`` for the checked ``tf_config``.

    Its construction blocks until every task of the cluster has joined, inside TensorFlow and
    holding the interpreter lock, so no Python thread or signal handler can interrupt it. A
    ``faulthandler`` timer (a C thread) ends the process with exit status 1 after
    ``join_timeout`` seconds; its dump goes to a small watcher process, which then prints the
    one-line message. Once joined, the timer is cancelled and the watcher told (EOF).
    """
    cluster = tf.train.ClusterSpec(tf_config["cluster"])
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        cluster, task_type=tf_config["task"]["type"], task_id=tf_config["task"]["index"],
        rpc_layer="grpc")
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=float(join_timeout))
    task = tf_config["task"]
    message = (f"{program}: --strategy=multi_worker: the cluster of {tf_config['workers']} "
               f"task(s) did not complete within --join_timeout={join_timeout:g} s (this task: "
               f"{task['type']} {task['index']}); start the same command with its own "
               f"TF_CONFIG on every host of TF_CONFIG's cluster")
    import faulthandler
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, message], stdin=subprocess.PIPE)
    try:
        faulthandler.dump_traceback_later(join_timeout, exit=True, file=watcher.stdin)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver, communication_options=options)
        finally:
            faulthandler.cancel_dump_traceback_later()
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(f"--strategy=multi_worker: TensorFlow could not start the cluster "
                         f"({type(err).__name__}: {first[:200]})") from None
    finally:
        watcher.stdin.close()
        watcher.wait()
    return strategy


def describe(strategy) -> str:
    """``MirroredStrategy, 2 replicas: /cpu:0, /cpu:1`` for the scripts' start line
    (a multi-worker strategy: its workers and this host's devices)."""
    devices = getattr(strategy.extended, "worker_devices", ())
    local = ", ".join(d.split("device:")[-1].lower() for d in devices)
    import tensorflow as tf
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from attacks import worker_count, worker_rank
        return (f"MultiWorkerMirroredStrategy, {strategy.num_replicas_in_sync} replica(s) on "
                f"{worker_count(strategy)} worker(s); this is worker {worker_rank(strategy)}"
                f"{' (chief)' if worker_rank(strategy) == 0 else ''}: {local}")
    return (f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s): " + local)


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
