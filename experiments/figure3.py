"""Figure 3 analog: average accuracy vs maximum perturbation (MNIST 0.1-0.3, Fashion-MNIST
0.1-0.2), 100-step PGD vs PQGD.

Usage: python -m experiments.figure3 [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/figure3.md, <output_dir>/figure3.json and <output_dir>/figure3.png. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("figure3")


def main(argv):
    cli.main("figure3", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("figure3"))
