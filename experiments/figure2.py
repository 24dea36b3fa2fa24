"""Figure 2 analog: histograms of sign, raw and quantized (b = 10, 100, 200, 1000) gradients of
the MNIST model, with +-eps/a marked.

Usage: python -m experiments.figure2 [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--restarts=K] [--output_dir=runs/experiments]

Writes <output_dir>/figure2.md, <output_dir>/figure2.json and <output_dir>/figure2.png. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("figure2")


def main(argv):
    cli.main("figure2", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("figure2"))
