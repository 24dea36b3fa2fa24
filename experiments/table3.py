"""Table 3 analog: the Table 2 attacks with random restarts merged per example (default 5
restarts, 1 run).

Usage: python -m experiments.table3 [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/table3.md, <output_dir>/table3.json. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("table3")


def main(argv):
    cli.main("table3", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("table3"))
