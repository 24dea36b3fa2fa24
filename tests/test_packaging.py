"""setup.cfg's installed commands: each console script's target runs like ``python eval.py``.

The scripts are not installed here; each test writes the wrapper pip generates for an entry
point (import the target, call it) and runs it, so the target and its ``--help`` are checked
exactly as an installed ``qg-*`` command runs them.
"""
from __future__ import annotations

import ast
import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# command -> a flag its --help must list
EXPECTED_COMMANDS = {"qg-eval": "attack", "qg-train": "max_num_training_steps",
                     "qg-verify": "attack_path", "qg-experiments": "only"}


def console_scripts() -> dict[str, tuple[str, str]]:
    """``name -> (module, function)`` from setup.cfg's ``[options.entry_points]``."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg", encoding="utf-8")
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("=", 1))
        module, function = target.split(":")
        scripts[name] = (module, function)
    return scripts


def run_console_script(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    """Runs entry point ``name`` through a wrapper like the one pip installs."""
    module, function = console_scripts()[name]
    script = tmp_path / name
    script.write_text(f"import sys\nfrom {module} import {function}\n"
                      f"if __name__ == '__main__':\n    sys.exit({function}())\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_setup_cfg_declares_the_four_commands():
    assert set(console_scripts()) == set(EXPECTED_COMMANDS)


@pytest.mark.parametrize("name", sorted(EXPECTED_COMMANDS))
def test_each_command_runs_its_target_and_help_exits_0_listing_its_flags(tmp_path, name):
    proc = run_console_script(tmp_path, name, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"--{EXPECTED_COMMANDS[name]}:" in proc.stdout
    # The module's own usage text, not absl's bare "USAGE: qg-..." line. The docstring is read,
    # not imported: importing the module would define its absl flags in this process.
    source = REPO_ROOT / (console_scripts()[name][0].replace(".", "/") + ".py")
    doc = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")))
    assert doc.splitlines()[0] in proc.stdout
