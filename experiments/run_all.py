"""Every table and figure (quick preset: 77 min measured on a 2-core CPU).

Usage: python -m experiments.run_all [--preset=quick|paper] [--dry_run] [--output_dir=runs/experiments] [--num_examples=N] [--runs=R] [--restarts=K] [--only=table2,figure4]

Runs the artifacts in an order that computes shared cells once: the MNIST tables, then the
figures that reuse their cells, then Fashion-MNIST. --runs/--restarts, when given, apply to
every artifact; otherwise each uses its preset's (Tables 3 and 5: 1 run x 5 or 10 restarts).
--dry_run prints the cells each artifact would read and computes nothing.
"""
from absl import app, flags

from experiments import cli, common
from workflow.cli import fail

ORDER = ("table2", "table3", "figure4", "sweep_b", "figure2", "table4", "table5", "figure3")

common.define_flags()
flags.DEFINE_list("only", None, f"Subset of artifacts to produce: {', '.join(ORDER)}.")
flags.register_validator("only", lambda names: names is None or set(names) <= set(ORDER),
                         message=f"--only takes names from: {', '.join(ORDER)}")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        fail("run_all", f"unexpected arguments: {' '.join(argv[1:])}")
    names = [n for n in ORDER if FLAGS.only is None or n in FLAGS.only]

    def body():
        for name in names:
            cli.produce_or_plan(name)
    common.run_command("run_all", body)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("run_all"))
