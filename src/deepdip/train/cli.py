"""``deepdip train``: train the CNN (folds x ensemble) on a cutout store.

Every option is a field of :class:`deepdip.train.config.TrainConfig` (its help text, flag, group
and valid range are declared there once).
"""

from __future__ import annotations

import argparse

from deepdip import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepdip.train.config import TrainConfig

    parser.description = (
        "Train the CNN on a cutout store: for each test fold K, train on the rows with fold != K (a "
        "validation set is carved from them), an ensemble of --ensemble members with seeds derived "
        "from --seed. Re-running the same command after an interruption resumes where it stopped. "
        "With --init-model, fine-tune a trained model instead of starting from random weights.")
    parser.add_argument("store", help="cutout store (.h5 file or folder of shards)")
    parser.add_argument("--out", required=True, help="run directory (models, checkpoints, logs)")
    options.add_arguments(parser, TrainConfig)


def run(args) -> int:
    from deepdip.train.config import TrainConfig
    from deepdip.train.run import train

    run_dir = train(args.store, options.from_namespace(TrainConfig, args), out=args.out)
    print(f"trained models in {run_dir}")
    return 0
