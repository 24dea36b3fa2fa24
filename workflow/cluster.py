"""What the workers of a ``--strategy=multi_worker`` run tell each other, for eval.py and train.py.

Every function here is a collective: every worker must call it, in the same order. Each one
takes ``gather``, a function ``bytes -> list[bytes]`` that sends this worker's bytes to all
and returns every worker's, in rank order, the chief (rank 0) first: on a cluster
:func:`gatherer` (``attacks.all_gather_bytes``); in tests any function with that contract.

- :func:`agree_on_the_job`: at start-up each worker sends its job's fingerprint (what
  determines the result, without paths that may differ between hosts), or the one-line error
  that stopped it before it had one (a missing data folder, a bad setting); a worker that
  differs, or failed, stops every worker at once with one line, before anything is written.
- :func:`from_the_chief`: the chief's bytes (its resumable state) or its error, on every
  worker.
- :func:`any_stopped`: whether any worker was asked to stop (a signal), so that all stop at
  the same step.
- :func:`lost_contact`: the line of a failed exchange (a worker died or stopped answering).
"""
from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

Gather = Callable[[bytes], "list[bytes]"]
T = TypeVar("T")
_FINGERPRINT, _ERROR, _STATE, _NOTHING = b"F", b"E", b"S", b"N"


class ClusterError(ValueError):
    """Workers that cannot run the job together (one line)."""


def gatherer(strategy) -> Gather:
    """``gather`` over the workers of ``strategy`` (``attacks.all_gather_bytes``)."""
    import attacks
    return lambda data: attacks.all_gather_bytes(strategy, data)


def one_line(err: BaseException) -> str:
    """An exception as the one line the scripts print (its first line)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def differences(expected: Any, stored: Any, where: str = "", limit: int = 4) -> list[str]:
    """What differs between two fingerprints (JSON values), as short phrases:
    ``key: <stored> there, <expected> here``, ``key differs`` for digests and containers,
    ``key not recorded`` / ``key unknown here`` for keys on one side only; at most ``limit``
    phrases per level (then ``N more``)."""
    if isinstance(expected, dict) and isinstance(stored, dict):
        found = []
        for key in sorted(set(expected) | set(stored)):
            name = f"{where}.{key}" if where else key
            if key not in stored:
                found.append(f"{name} not recorded")
            elif key not in expected:
                found.append(f"{name} unknown here")
            else:
                found += differences(expected[key], stored[key], name, limit)
        return found[:limit] + ([f"{len(found) - limit} more"] if len(found) > limit else [])
    if expected == stored:
        return []
    if isinstance(expected, (dict, list)) or "sha256" in where or isinstance(stored, (dict, list)):
        return [f"{where or 'fingerprint'} differs"]
    return [f"{where}: {stored} there, {expected} here"]


def agree_on_the_job(gather: Gather, prepare: Callable[[], tuple[T, dict]],
                     json_default: Callable[[Any], Any] | None = None) -> T:
    """Runs ``prepare`` (-> ``(value, fingerprint)``) on every worker and checks that all
    fingerprints equal the chief's; returns ``value``.

    An exception ``prepare`` raises here is re-raised here after the exchange, and its first
    line is sent instead of a fingerprint, so that the other workers stop at once too.

    Raises:
      ClusterError: on the other workers, where a worker failed (naming it and its line) or
        was started with other settings than the chief (naming what differs).
    """
    mine: BaseException | None = None
    value = None
    try:
        value, fingerprint = prepare()
        message = _FINGERPRINT + json.dumps(fingerprint, sort_keys=True,
                                            default=json_default).encode()
    except Exception as err:  # sent to the others first, then raised here
        mine, message = err, _ERROR + one_line(err).encode()
    found = gather(message)
    if mine is not None:
        raise mine
    for rank, data in enumerate(found):
        if data[:1] == _ERROR:
            raise ClusterError(f"--strategy=multi_worker: worker {rank} stopped before the job "
                               f"started ({data[1:].decode(errors='replace')}); fix it and run "
                               f"the same command on every worker")
    prints = [json.loads(data[1:]) for data in found]
    for rank, other in enumerate(prints[1:], start=1):
        differs = differences(prints[0], other)
        if differs:
            raise ClusterError(f"--strategy=multi_worker: worker {rank} was started with other "
                               f"settings than the chief ({'; '.join(differs)}); run the same "
                               f"command on every worker")
    return value


def from_the_chief(gather: Gather, chief: bool, payload: bytes | None = None,
                   error: str | None = None,
                   raise_as: type[Exception] = ClusterError) -> bytes | None:
    """The chief's ``payload`` (None: it has none) on every worker; an ``error`` line of the
    chief's instead is raised on every worker as ``raise_as`` (``" (on the chief)"`` added on
    the others). The other workers' arguments are ignored."""
    if chief:
        message = (_ERROR + error.encode() if error is not None
                   else _NOTHING if payload is None else _STATE + payload)
    else:
        message = b""
    received = gather(message)[0]
    if received[:1] == _ERROR:
        raise raise_as(received[1:].decode(errors="replace") + ("" if chief else " (on the chief)"))
    return received[1:] if received[:1] == _STATE else None


def any_stopped(gather: Gather, signum: int | None) -> tuple[int, int] | None:
    """``(rank, signum)`` of the first worker that received a signal (``signum``: this
    worker's, or None), or None where no worker did."""
    found = gather(b"" if signum is None else str(int(signum)).encode())
    for rank, data in enumerate(found):
        if data:
            return rank, int(data)
    return None


def lost_contact(err: BaseException, saved: str) -> str:
    """The one line of a multi-worker exchange that failed with ``err`` (TensorFlow's
    ``OpError`` of a collective past its time-out, or of a peer gone); ``saved`` says what
    the chief has saved and how to resume."""
    return (f"--strategy=multi_worker: lost contact with another worker "
            f"({type(err).__name__}: {one_line(err)[:200]}); {saved}")


def is_lost_contact(err: BaseException) -> bool:
    """True for the errors a failed collective raises (``tf.errors.OpError``)."""
    import tensorflow as tf
    return isinstance(err, tf.errors.OpError)
