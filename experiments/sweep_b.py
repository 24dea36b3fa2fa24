"""Section 4.5 analog: PQGD on MNIST with b from 1 to 5000, at 20 and 100 steps.

Usage: python -m experiments.sweep_b [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/sweep_b.md, <output_dir>/sweep_b.json and <output_dir>/sweep_b.png. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("sweep_b")


def main(argv):
    cli.main("sweep_b", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("sweep_b"))
