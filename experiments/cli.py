"""The absl wiring shared by the experiment commands (each is ``python -m experiments.<name>``)."""
from __future__ import annotations

import sys
from typing import Sequence

from absl import flags

from experiments import common, plan
from experiments.artifacts import ARTIFACTS, describe_plan, produce
from experiments.plan import Sizes
from workflow.cli import fail, one_line_flags_parser

FLAGS = flags.FLAGS


def define(name: str) -> None:
    """Defines the common flags (``name``'s sizes come from ``--preset``)."""
    del name  # every command takes the same flags
    common.define_flags()


def sizes_from_flags(name: str) -> Sizes:
    """Artifact ``name``'s sizes: the preset's, with the size flags given overriding them."""
    return plan.sizes_for(name, FLAGS.preset, num_examples=FLAGS.num_examples, runs=FLAGS.runs,
                          restarts=FLAGS.restarts, seed=FLAGS.seed, batch_size=FLAGS.batch_size,
                          table3_baselines=FLAGS.table3_baselines)


def produce_or_plan(name: str) -> None:
    """Produces artifact ``name``, or with ``--dry_run`` prints the cells it would read."""
    sizes = sizes_from_flags(name)
    if FLAGS.dry_run:
        print("\n".join(describe_plan(ARTIFACTS[name], sizes)), flush=True)
    else:
        produce(ARTIFACTS[name], sizes, FLAGS.output_dir, stored_only=FLAGS.stored_only)


def main(name: str, argv: Sequence[str]) -> None:
    """Produces artifact ``name`` from the parsed flags; one-line errors, exit 130 if stopped."""
    if len(argv) > 1:
        fail(name, f"unexpected arguments: {' '.join(argv[1:])}")
    common.run_command(name, lambda: produce_or_plan(name))


def flags_parser(name: str):
    """absl flags parser of ``experiments.<name>``: a bad flag is one ``name: ...`` line and
    exit 1; ``--help`` (exit 0) lists the shared flags and the module's own."""
    module = f"experiments.{name}"
    loaded = sys.modules.get(module)  # None when it runs as __main__ (python -m)
    return one_line_flags_parser(name, modules=(common.__name__, module),
                                 usage=loaded.__doc__ if loaded else None)
