"""``deepdip prior-shift``: move a photo-z catalogue's PDFs to its own sample's redshift prior.

The remedy for a training set whose n(z) differs from the photometric sample's (issue 13): the
label-shift EM of :func:`deepdip.selection.prior_shift`, against the estimator's implied prior, its
stacked PDF over held-out labelled galaxies (``--reference``: a catalogue of them predicted by the same
estimator, or ``--reference`` the target catalogue itself with ``--reference-labelled`` the selection
file that says which of its galaxies have spectra). No redshift of the target is read.
"""

from __future__ import annotations

import argparse

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1].replace("\n", " ")
    parser.add_argument("catalog", help="photo-z catalogue of the target sample (.parquet)")
    parser.add_argument("--reference", required=True,
                        help="catalogue of held-out labelled galaxies, same estimator and grid (may be CATALOG)")
    parser.add_argument("--reference-labelled", default=None, metavar="SELECTION",
                        help="selection file (deepdip select): only its labelled galaxies of --reference count")
    parser.add_argument("--smooth-bins", type=float, default=2.0,
                        help="Gaussian smoothing of both priors, in bins [2]")
    parser.add_argument("--out", required=True, help="catalogue to write (.parquet)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")


def run(args) -> int:
    from deepdip.atomic import check_output
    from deepdip.catalog import read_catalog
    from deepdip.errors import DeepdipValueError, check_number
    from deepdip.selection import prior_shift_catalog, selection_table

    check_number("--smooth-bins", args.smooth_bins, minimum=0.0, allow_none=False)
    check_output(args.out, inputs=(args.catalog, args.reference), overwrite=args.overwrite)
    cat = read_catalog(args.catalog)
    ref = cat if args.reference == args.catalog else read_catalog(args.reference)
    if ref.zgrid != cat.zgrid:
        raise DeepdipValueError(f"--reference {args.reference}: its redshift grid differs from {args.catalog}'s")
    keep = np.ones(len(ref.ids), dtype=bool)
    if args.reference_labelled:
        ids, labelled = selection_table(args.reference_labelled)
        keep = np.isin(ref.ids, ids[labelled])
    if not keep.any():
        raise DeepdipValueError(f"--reference {args.reference}: no galaxy of it is labelled in "
                                f"{args.reference_labelled}")
    _, target_prior, reference_prior = prior_shift_catalog(
        cat, args.out, ref.pdf[keep], smooth_bins=args.smooth_bins, overwrite=args.overwrite,
        inputs=(args.catalog, args.reference),
        provenance={"reference": str(args.reference), "reference_labelled": args.reference_labelled})
    centres = cat.zgrid.centres
    print(f"wrote {args.out}: {len(cat.ids)} PDFs moved to the sample's prior (mean z {target_prior @ centres:.4f}; "
          f"the estimator's, from {int(keep.sum())} reference galaxies: "
          f"{reference_prior @ centres:.4f})")
    return 0
