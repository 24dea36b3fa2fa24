"""``compute_dtype="auto"``: bfloat16 only where a short measurement shows it faster.

Whether bfloat16 speeds up the attack's forward and backward passes depends on the CPU (its
bfloat16 instructions and which oneDNN kernels TensorFlow picks for them), the TensorFlow
build and the network: on a CPU without native bfloat16 arithmetic the casts can make it
slower than float32. So "auto" times a few gradient steps of the real step loop in both
dtypes, at the attack's batch size, and keeps the faster one. The result is cached per
machine (CPU model, GPUs, TensorFlow version) and per network (its architecture, not its
weights) and batch size, in ``$QG_CACHE_DIR`` or ``$XDG_CACHE_HOME/qg-attacks`` (default
``~/.cache/qg-attacks``), file ``compute_dtype_calibration.json``, written atomically. A
corrupt cache file, or one written on another machine, TensorFlow version or cache format, is
ignored with a one-line note and replaced.

An explicit ``compute_dtype="bfloat16"`` is honoured, with one warning line on stderr when the
calibration (cached, else measured once) says it is slower than float32 here.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import keras
import numpy as np
import tensorflow as tf

CACHE_FORMAT = 1
CACHE_FILE = "compute_dtype_calibration.json"
# Timed rounds per dtype (interleaved, median) and steps per round, after one untimed round
# that traces the compiled loop: 40 steps per dtype, once per machine and network.
ROUNDS = 3
STEPS_PER_ROUND = 10
# bfloat16 must be at least this much faster to be chosen: within it the measurement cannot
# tell, and float32 is the exact one.
MIN_SPEEDUP = 1.05

# Measures seconds per step of the step loop in a dtype: (dtype) -> seconds.
Measure = Callable[[str], float]

_WARNED: set[str] = set()  # one warning per (machine, network) and process


@dataclass(frozen=True)
class Calibration:
    """Seconds per attack step (batch of ``batch_size``) in each compute dtype."""

    float32_s: float
    bfloat16_s: float

    @property
    def speedup(self) -> float:
        """bfloat16's speed relative to float32 (> 1: bfloat16 is faster)."""
        return self.float32_s / self.bfloat16_s

    @property
    def faster_dtype(self) -> str:
        return "bfloat16" if self.speedup >= MIN_SPEEDUP else "float32"


def cache_dir() -> Path:
    """``$QG_CACHE_DIR``, else ``$XDG_CACHE_HOME/qg-attacks``, else ``~/.cache/qg-attacks``."""
    if os.environ.get("QG_CACHE_DIR"):
        return Path(os.environ["QG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qg-attacks"


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU as ``lscpu`` names it, with its family and model numbers where the system gives
    them (``"AMD EPYC, family 26 model 2"``): a virtual machine's model name can be as generic
    as "AMD EPYC", and generations under one name differ in speed several-fold. Else what
    Python knows."""
    fields: dict[str, str] = {}
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if fields.get("cpu family") and fields.get("model"):
        name += f", family {fields['cpu family']} model {fields['model']}"
    return name


def machine() -> dict[str, object]:
    """What a calibration is valid for: CPU model, visible GPUs, TensorFlow version."""
    gpus = [tf.config.experimental.get_device_details(d).get("device_name", d.name)
            for d in tf.config.list_physical_devices("GPU")]
    return {"cpu": cpu_model(), "gpus": gpus, "tensorflow": tf.__version__}


def network_key(model: keras.Model, batch_size: int) -> str:
    """A digest of the network's architecture (layer types and weight shapes, input shape)
    and the batch size: what the speed depends on, not the weight values."""
    layers = [(type(layer).__name__, [list(w.shape) for w in layer.weights])
              for layer in model.layers]
    inputs = [list(t.shape[1:]) for t in (getattr(model, "inputs", None) or [])]
    text = json.dumps({"model": type(model).__name__, "inputs": inputs, "layers": layers,
                       "batch_size": batch_size})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def calibrate(model: keras.Model, batch_size: int, *, measure: Measure | None = None,
              directory: str | os.PathLike | None = None, out: TextIO | None = None
              ) -> Calibration:
    """The cached calibration of ``model`` at ``batch_size`` on this machine, or a new one.

    Args:
      model: the float32 Keras model to be attacked, ``(M, *S)`` -> ``(M, C)``.
      batch_size: images per step of the attack.
      measure: ``(dtype) -> seconds per step``; default: times the step loop
        (:func:`step_loop_timer`). Injected by tests.
      directory: cache folder (default :func:`cache_dir`).
      out: where the one-line notes go (stderr by default).

    Returns:
      The calibration; a new one is written to the cache (a cache that cannot be written
      is noted and left alone).
    """
    out = out or sys.stderr
    path = Path(directory if directory is not None else cache_dir()) / CACHE_FILE
    here = machine()
    key = network_key(model, batch_size)
    entries = _read_cache(path, here, out)
    found = entries.get(key)
    if found is not None:
        return Calibration(float32_s=found["float32_s"], bfloat16_s=found["bfloat16_s"])
    measure = measure or step_loop_timer(model, batch_size)
    times = {"float32": [], "bfloat16": []}
    for _ in range(ROUNDS):  # interleaved, so a load change hits both dtypes alike
        for dtype in times:
            times[dtype].append(float(measure(dtype)))
    result = Calibration(float32_s=statistics.median(times["float32"]),
                         bfloat16_s=statistics.median(times["bfloat16"]))
    entries[key] = {"float32_s": result.float32_s, "bfloat16_s": result.bfloat16_s,
                    "model": model.name, "batch_size": batch_size,
                    "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        _write_atomic(path, json.dumps({"format": CACHE_FORMAT, "machine": here,
                                        "entries": entries}, indent=1) + "\n")
    except OSError as error:
        print(f"note: compute_dtype calibration not cached ({path}: {error.strerror or error})",
              file=out)
    return result


def resolve_compute_dtype(model: keras.Model, compute_dtype: str, batch_size: int, *,
                          measure: Measure | None = None,
                          directory: str | os.PathLike | None = None,
                          out: TextIO | None = None) -> str:
    """``"auto"`` -> the faster of float32 and bfloat16 here (:func:`calibrate`); float32 as
    given; bfloat16 as given, with one warning line (once per process and network) when
    the calibration says it is slower than float32 on this machine."""
    if compute_dtype == "float32":
        return compute_dtype
    calibration = calibrate(model, batch_size, measure=measure, directory=directory, out=out)
    if compute_dtype == "auto":
        return calibration.faster_dtype
    warn_key = network_key(model, batch_size) + json.dumps(machine())
    if calibration.speedup < 1 and warn_key not in _WARNED:
        _WARNED.add(warn_key)
        print(f"warning: compute_dtype=bfloat16 is slower than float32 on this machine "
              f"({cpu_model()}, TensorFlow {tf.__version__}: {calibration.speedup:.2f}x float32's "
              f"speed at batch {batch_size}); compute_dtype='auto' picks the faster one",
              file=out or sys.stderr)
    return compute_dtype


def step_loop_timer(model: keras.Model, batch_size: int) -> Measure:
    """``(dtype) -> seconds per step`` of the attack's compiled loop (PGD, xent) on ``model``
    in that dtype, at ``batch_size``; the first call per dtype also traces (untimed)."""
    from attacks.api import model_for_dtype, model_input_shape
    from attacks.directions import gradient_direction
    from attacks.engine import StepRunner
    from attacks.steps import LinfStep, sign_unit

    shape = tuple(d or 1 for d in (model_input_shape(model) or ()))
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, *shape), dtype=np.float32)
    y = np.zeros(batch_size, np.int64)
    rule = LinfStep(epsilon=0.1, step_size=0.01, unit=sign_unit())
    runners: dict[str, StepRunner] = {}

    def measure(dtype: str) -> float:
        if dtype not in runners:
            runners[dtype] = StepRunner(model_for_dtype(model, dtype), "xent", rule,
                                        gradient_direction())
            runners[dtype].run(x, x, y, STEPS_PER_ROUND)  # trace, untimed
        start = time.perf_counter()
        runners[dtype].run(x, x, y, STEPS_PER_ROUND)
        return (time.perf_counter() - start) / STEPS_PER_ROUND

    return measure


def _read_cache(path: Path, here: dict, out: TextIO) -> dict:
    """The cache's entries for this machine; {} (with a note) for a corrupt or stale file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        print(f"note: compute_dtype calibration cache {path} unreadable "
              f"({error.strerror or error}): ignored, measuring again", file=out)
        return {}
    try:
        data = json.loads(text)
        entries = data["entries"]
        fmt, written_on = data["format"], data["machine"]
        valid = isinstance(entries, dict) and all(
            isinstance(e, dict) and all(_positive(e.get(k)) for k in ("float32_s", "bfloat16_s"))
            for e in entries.values())
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        print(f"note: compute_dtype calibration cache {path} is corrupt: ignored, measuring "
              f"again", file=out)
        return {}
    if fmt != CACHE_FORMAT or written_on != here:
        print(f"note: compute_dtype calibration cache {path} is stale (written for "
              f"{_describe(written_on)}, cache format {fmt}; this is {_describe(here)}, format "
              f"{CACHE_FORMAT}): ignored, measuring again", file=out)
        return {}
    return entries


def _describe(machine_info) -> str:
    if not isinstance(machine_info, dict):
        return repr(machine_info)
    gpus = machine_info.get("gpus") or []
    return (f"{machine_info.get('cpu')}" + (f" + {', '.join(map(str, gpus))}" if gpus else "")
            + f", TensorFlow {machine_info.get('tensorflow')}")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and np.isfinite(value) and value > 0


def _write_atomic(path: Path, text: str) -> None:
    """Temp file beside ``path``, fsync, rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
