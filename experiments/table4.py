"""Table 4 analog: Fashion-MNIST at its training eps 0.1, 100 steps, no restarts; PGD, PQGD, BLOB,
BLOB_QG with b in 100, 200, 500, 1000.

Usage: python -m experiments.table4 [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/table4.md, <output_dir>/table4.json. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("table4")


def main(argv):
    cli.main("table4", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("table4"))
