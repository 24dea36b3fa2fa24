"""Figure 5 analog: accuracy vs number of steps (10, 20, 30, 40, 100) on the CIFAR-10 challenge's
model at eps 8 and 16 (0-255), PGD vs PQGD (b = 100, 500, 1000); Table 6's attacks.

Usage: python -m experiments.figure5 --cifar10_model_dir=DIR [--cifar10_data_dir=DIR] [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--output_dir=runs/experiments]

Needs the released model and the CIFAR-10 test set, as experiments.table6 does.
Writes <output_dir>/figure5.md, <output_dir>/figure5.json and <output_dir>/figure5.png. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("figure5")


def main(argv):
    cli.main("figure5", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("figure5"))
