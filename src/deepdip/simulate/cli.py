"""``deepdip simulate``: generate a mock survey of galaxy cutouts into a store."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from deepdip.surveys import available_surveys

    parser.add_argument("--survey", default="sdss",
                        help=f"survey preset ({', '.join(available_surveys())}) or a preset .json file (default: sdss)")
    parser.add_argument("--n", type=int, required=True, help="number of galaxies to simulate")
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same store (default: 1)")
    parser.add_argument("--out", required=True,
                        help="output store: a .h5 file, or a folder of shard files for any other name")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store at --out "
                        "(never a folder of other files)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes; the output does not depend on it (default: 1)")
    parser.add_argument("--dask", metavar="CLUSTER", default=None,
                        help="run the blocks on a Dask cluster instead of local workers: local:N (N worker "
                             "processes here), a scheduler address (tcp://host:8786) or a scheduler.json file; "
                             "the same store as --workers for the same seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from deepdip.errors import check_number
    from deepdip.surveys import check_simulatable, load_survey

    # Every option is checked before the (slow) import of the simulator and before any work.
    check_number("--n", args.n, minimum=1)
    # SeedSequence takes non-negative integers only: a negative seed would fail inside a worker.
    check_number("--seed", args.seed, minimum=0)
    check_number("--workers", args.workers, minimum=1)
    if args.dask is not None and args.workers > 1:
        from deepdip.errors import DeepdipValueError

        raise DeepdipValueError("--workers and --dask exclude each other: the Dask cluster's workers do the work")
    # A bad preset (name, JSON, keys, types) is named before the worker pool starts.
    check_simulatable(load_survey(args.survey))

    from deepdip.simulate import simulate_store

    info = simulate_store(args.survey, args.n, args.seed, args.out, workers=args.workers,
                          progress=not args.quiet, overwrite=args.overwrite, dask=args.dask)
    engine = f"Dask {args.dask}" if args.dask else f"{args.workers} worker(s)"
    print(f"wrote {info['n']} galaxies to {args.out} in {info['seconds']:.1f} s "
          f"({info['galaxies_per_s']:.0f} galaxies/s, {engine})")
    return 0
