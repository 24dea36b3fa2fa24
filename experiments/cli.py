"""The absl wiring shared by the experiment commands (each is ``python -m experiments.<name>``)."""
from __future__ import annotations

import sys
from typing import Sequence

from absl import flags

from experiments import common
from experiments.artifacts import ARTIFACTS, Sizes, produce
from workflow.cli import fail, one_line_flags_parser

FLAGS = flags.FLAGS


def define(name: str) -> None:
    """Defines the common flags with ``name``'s default runs and restarts."""
    artifact = ARTIFACTS[name]
    common.define_flags(runs=artifact.default_runs, restarts=artifact.default_restarts)


def sizes_from_flags(name: str | None = None) -> Sizes:
    """The sizes the flags ask for; for ``run_all`` (name given) unset runs/restarts take the
    artifact's own defaults."""
    runs, restarts = FLAGS.runs, FLAGS.restarts
    if name is not None:
        artifact = ARTIFACTS[name]
        runs = FLAGS.runs if FLAGS["runs"].present else artifact.default_runs
        restarts = FLAGS.restarts if FLAGS["restarts"].present else artifact.default_restarts
    return Sizes(num_examples=FLAGS.num_examples, runs=runs, restarts=restarts, seed=FLAGS.seed,
                 batch_size=FLAGS.batch_size)


def main(name: str, argv: Sequence[str]) -> None:
    """Produces artifact ``name`` from the parsed flags; one-line errors, exit 130 if stopped."""
    if len(argv) > 1:
        fail(name, f"unexpected arguments: {' '.join(argv[1:])}")
    common.run_command(name, lambda: produce(ARTIFACTS[name], sizes_from_flags(),
                                             FLAGS.output_dir))


def flags_parser(name: str):
    """absl flags parser of ``experiments.<name>``: a bad flag is one ``name: ...`` line and
    exit 1; ``--help`` (exit 0) lists the shared flags and the module's own."""
    module = f"experiments.{name}"
    loaded = sys.modules.get(module)  # None when it runs as __main__ (python -m)
    return one_line_flags_parser(name, modules=(common.__name__, module),
                                 usage=loaded.__doc__ if loaded else None)
