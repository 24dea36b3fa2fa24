"""Table 2 analog: MNIST (eps 0.3, a 0.01), 200 steps, no restarts; Worst/Avg over runs of PGD,
PQGD_100, PQGD_200, BLOB, BLOB_QG_100, BLOB_QG_200.

Usage: python -m experiments.table2 [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/table2.md, <output_dir>/table2.json. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("table2")


def main(argv):
    cli.main("table2", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("table2"))
