"""``deepdip evaluate CAT [CAT ...] --out DIR``: a thin layer over :func:`deepdip.report.comparison.evaluate`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Writes DIR/metrics.json (method -> sigma_mad, outlier_frac, bias, n, PDF metrics and per-bin tables), "
        "DIR/index.html and PNG figures. Only galaxies with a finite z_spec are scored; several catalogues "
        "are scored on the ids common to all of them."
    )
    parser.add_argument("catalogs", nargs="+", metavar="CAT",
                        help="photo-z catalogues (Parquet); several are compared on the ids they share")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder: metrics.json, index.html, PNGs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a report already in DIR (its other files are never touched)")
    parser.add_argument("--names", nargs="+", metavar="NAME",
                        help="method names, one per catalogue (default: the method stored in each catalogue)")
    parser.add_argument("--outlier-threshold", type=float, default=0.05, metavar="T",
                        help="|dz| above which a galaxy is an outlier, dz = (z_phot - z_spec)/(1 + z_spec) "
                             "(default 0.05)")
    parser.add_argument("--point", choices=("z_mean", "z_median", "z_mode"), default="z_mean",
                        help="point estimate scored as z_phot (default z_mean)")
    parser.add_argument("--magnitude", metavar="COLUMN",
                        help="catalogue column for metrics in magnitude bins "
                             "(default: mag_r, else mag_i, else any mag_*)")
    parser.add_argument("--stream", action="store_true",
                        help="survey-size catalogues: score each CAT (a Parquet file or a folder of parts) apart "
                             "in one pass over its row groups, in bounded memory; writes DIR/metrics.json only "
                             "(medians from a fine histogram, error bounds in 'bounds'; no id matching, no figures)")
    parser.add_argument("--resolution", type=float, default=None, metavar="H",
                        help="with --stream: histogram bin width of dz and PIT (default 1e-6)")
    parser.add_argument("--z-bins", type=int, default=8, metavar="N", help="number of z_spec bins (default 8)")
    parser.add_argument("--mag-bins", type=int, default=8, metavar="N", help="number of magnitude bins (default 8)")


def run(args: argparse.Namespace) -> int:
    from deepdip.errors import DeepdipValueError, check_number

    # Checked before any catalogue is read or any report file written.
    check_number("--outlier-threshold", args.outlier_threshold, above=0)
    check_number("--z-bins", args.z_bins, minimum=1)
    check_number("--mag-bins", args.mag_bins, minimum=1)
    if args.names is not None and len(args.names) != len(args.catalogs):
        raise DeepdipValueError(f"--names gives {len(args.names)} name(s) for {len(args.catalogs)} catalogue(s): "
                                "give one name per catalogue")

    if args.resolution is not None and not args.stream:
        raise DeepdipValueError("--resolution applies to --stream only")
    if args.stream:
        from deepdip.report.streaming import RESOLUTION, evaluate_stream

        metrics = evaluate_stream(args.catalogs, args.out, args.names, point=args.point,
                                  outlier_threshold=args.outlier_threshold,
                                  resolution=RESOLUTION if args.resolution is None else args.resolution,
                                  overwrite=args.overwrite)
        for name, m in metrics.items():
            print(f"{name}: n={m['n']} sigma_mad={m['sigma_mad']:.5f} (+-{m['bounds']['sigma_mad']:.1e}) "
                  f"outlier_frac={m['outlier_frac']:.4f} bias={m['bias']:+.5f}")
        print(f"metrics: {args.out}/metrics.json")
        return 0

    from deepdip.report import evaluate

    metrics = evaluate(
        args.catalogs, args.out, args.names, outlier_threshold=args.outlier_threshold, point=args.point,
        magnitude=args.magnitude, z_bins=args.z_bins, mag_bins=args.mag_bins, overwrite=args.overwrite,
    )
    for name, m in metrics.items():
        print(f"{name}: n={m['n']} sigma_mad={m['sigma_mad']:.5f} outlier_frac={m['outlier_frac']:.4f} "
              f"bias={m['bias']:+.5f}")
    print(f"report: {args.out}/index.html")
    return 0
