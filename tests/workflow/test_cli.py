"""The scripts' shared command-line behaviour: which arguments ask for absl's help, and
quiet_tensorflow (TensorFlow's start-up lines hidden by default, shown with QG_TF_LOG=1; those
tests import TensorFlow in a fresh interpreter, so they are slow)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflow.cli import asks_for_help

REPO = Path(__file__).resolve().parents[2]
PROBE = ("import os, sys; sys.path.insert(0, sys.argv[1]); from workflow.cli import quiet_tensorflow;"
         "quiet_tensorflow(); import tensorflow as tf; tf.constant(1.0) * 2;"
         "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'tensorflow' in sys.modules)")


def _probe(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "QG_TF_LOG")}
    return subprocess.run([sys.executable, "-c", PROBE, str(REPO)], env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_default_import_prints_nothing_on_stderr():
    res = _probe()
    assert res.returncode == 0 and res.stdout.split() == ["3", "True"]
    assert res.stderr == ""


@pytest.mark.slow
def test_qg_tf_log_leaves_tensorflow_alone():
    res = _probe(QG_TF_LOG="1")
    assert res.returncode == 0 and res.stdout.split() == ["None", "True"]


@pytest.mark.slow
def test_an_explicit_log_level_is_kept():
    res = _probe(TF_CPP_MIN_LOG_LEVEL="1")
    assert res.returncode == 0 and res.stdout.split()[0] == "1"



@pytest.mark.parametrize("argv,expected", [
    (["prog", "--help"], True),
    (["prog", "--steps=3", "-helpfull"], True),
    (["prog", "--helpshort"], True),
    (["prog", "-?"], True),
    (["prog", "--helpxml"], True),
    (["prog"], False),
    (["prog", "--steps=3", "table2"], False),
    (["prog", "--", "--help"], False),        # after "--" it is an argument, not a flag
    (["prog", "help"], False),                # a positional word
    (["prog", "--helper=1"], False),          # another flag that starts with "help"
    (["--help"], False),                      # argv[0] is the program itself
])
def test_asks_for_help_recognises_absls_help_flags_only(argv, expected):
    assert asks_for_help(argv) is expected
