"""``deepdip select``: mark which galaxies of a store have a spec-z under a spectroscopic selection rule."""

from __future__ import annotations

import argparse

from deepdip.selection import __doc__ as RULES_DOC


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Apply a spectroscopic selection rule to a store's measured photometry and write which galaxies are "
        "labelled (a Parquet file of id, labelled) for deepdip train / baseline --labelled.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "Rules:\n" + RULES_DOC.split("Rules (:func:`select`), ", 1)[1].split("The selection file", 1)[0]
    parser.add_argument("store", help="cutout store (.h5 file or folder of shards)")
    parser.add_argument("--rule", required=True, help="e.g. 'mag:r<17.0', 'colour:lrg&max:3000', 'random:1000'")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parts of the rule [0]")
    parser.add_argument("--out", required=True, help="selection file to write (.parquet)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing selection file at --out")


def run(args) -> int:
    from deepdip.errors import check_number
    from deepdip.selection import select, write_selection
    from deepdip.store import CutoutStore

    check_number("--seed", args.seed, minimum=0, integer=True, allow_none=False)
    store = CutoutStore(args.store)
    labelled = select(store, args.rule, seed=args.seed)
    out = write_selection(store, labelled, args.out, rule=args.rule, seed=args.seed, overwrite=args.overwrite)
    folds = store.column("fold")
    per_fold = ", ".join(f"fold {k}: {int(labelled[folds == k].sum())}" for k in range(store.n_folds))
    print(f"wrote {out}: {int(labelled.sum())} of {len(labelled)} galaxies labelled ({per_fold})")
    return 0
