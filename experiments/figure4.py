"""Figure 4 analog: average accuracy vs number of steps (20-100) on MNIST, PGD vs PQGD (b = 100,
500, 1000).

Usage: python -m experiments.figure4 [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/figure4.md, <output_dir>/figure4.json and <output_dir>/figure4.png. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("figure4")


def main(argv):
    cli.main("figure4", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("figure4"))
