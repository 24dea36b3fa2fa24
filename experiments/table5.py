"""Table 5 analog: the Table 4 attacks at 200 steps with random restarts merged per example
(default 5 restarts, 1 run).

Usage: python -m experiments.table5 [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/table5.md, <output_dir>/table5.json. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("table5")


def main(argv):
    cli.main("table5", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("table5"))
