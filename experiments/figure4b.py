"""Figure 4b analog: average accuracy vs number of steps (20-100) on Fashion-MNIST, PGD vs PQGD
(b = 100, 500, 1000), at the preset's Fashion-MNIST eps (quick: 0.1, the shipped model's;
paper: 0.2, the paper's, reading Table 4's attacks).

Usage: python -m experiments.figure4b [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/figure4b.md, <output_dir>/figure4b.json and <output_dir>/figure4b.png. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("figure4b")


def main(argv):
    cli.main("figure4b", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("figure4b"))
