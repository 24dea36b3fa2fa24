"""Table 6 analog: the CIFAR-10 challenge's adversarially trained model, 100 steps of 2 (0-255),
eps 8 and 16, one run, no restarts: PGD vs PQGD_100, PQGD_200, PQGD_500, PQGD_1000.

Usage: python -m experiments.table6 --cifar10_model_dir=DIR [--cifar10_data_dir=DIR] [--preset=quick|paper] [--dry_run] [--num_examples=N] [--runs=R] [--output_dir=runs/experiments]

Needs the released model (python -m mnist_challenge_compat.model_download cifar10_adv_trained)
and the CIFAR-10 test set (test_batch.bin of cifar-10-binary.tar.gz, or a prepared tfds copy);
without them it stops in one line saying what is missing. A GPU is practically required.
Writes <output_dir>/table6.md, <output_dir>/table6.json. Finished attacks are kept in <output_dir>/cells/: an interrupted
run resumes where it stopped, and commands that share a setting share the work.
"""
from absl import app

from experiments import cli

cli.define("table6")


def main(argv):
    cli.main("table6", argv)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("table6"))
