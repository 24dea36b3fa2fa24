"""StopSignals: the one SIGINT/SIGTERM mechanism, raising (evaluation) or polled (training)."""
import os
import signal

import pytest

from workflow.signals import Interrupted, StopSignals, raise_on_termination


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_raising_mode_raises_interrupted_with_the_signal(sig):
    with pytest.raises(Interrupted, match=signal.Signals(sig).name) as err:
        with raise_on_termination():
            os.kill(os.getpid(), sig)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    assert err.value.signum == sig


def test_polled_mode_records_the_signal_and_lets_the_work_go_on():
    steps = 0
    with StopSignals(raising=False) as stop:
        while not stop.requested:
            steps += 1
            if steps == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        steps_after = steps
    assert stop.signum == signal.SIGTERM and steps_after >= 3


def test_previous_handlers_come_back_after_the_block():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopSignals(raising=False):
        assert signal.getsignal(signal.SIGINT) != before[0]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_with_message_keeps_the_signal():
    explained = Interrupted(signal.SIGINT).with_message("nothing was saved")
    assert explained.signum == signal.SIGINT and str(explained) == "nothing was saved"
