"""``deepdip predict``: redshift PDFs from trained CNN models into a photo-z catalogue."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Predict redshift PDFs for the galaxies of a store with the models of a training run (or one "
        "model file) and write the photo-z catalogue (Parquet: PDFs + point estimates), streaming in chunks.")
    parser.add_argument("run", help="run directory from `deepdip train` (or a single model.pt)")
    parser.add_argument("store", help="cutout store (.h5 file or folder of shards)")
    parser.add_argument("--out", required=True, help="output catalogue (.parquet)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing catalogue at --out (never a folder or an input)")
    parser.add_argument("--rows", choices=("test", "all"), default="test",
                        help="test: each trained fold's held-out rows, by that fold's models (cross-validated); "
                             "all: every row, by all models [test]")
    parser.add_argument("--tta", action="store_true", help="average over the 8 rotations/flips (8x slower)")
    parser.add_argument("--chunk-size", type=int, default=2048, help="galaxies read per chunk [2048]")
    parser.add_argument("--batch-size", type=int, default=512, help="galaxies per forward pass [512]")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (per Dask task with --dask)")
    parser.add_argument("--dask", metavar="SCHEDULER", default=None,
                        help="run the chunks on a Dask cluster: a scheduler address (tcp://host:8786), a "
                             "scheduler.json file, or local:N for N worker processes on this machine; the "
                             "catalogue is the same as without --dask. Workers must read STORE and RUN at the "
                             "same paths (shared file system)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from deepdip.errors import check_number

    # Checked here for both executors, before a Dask cluster is contacted or a model loaded.
    check_number("--chunk-size", args.chunk_size, minimum=1)
    check_number("--batch-size", args.batch_size, minimum=1)
    check_number("--threads", args.threads, minimum=1)
    if args.dask:
        from deepdip.predict.dask_adapter import predict_store_dask

        out = predict_store_dask(args.run, args.store, args.out, rows=args.rows, client=args.dask, tta=args.tta,
                                 chunk_size=args.chunk_size, batch_size=args.batch_size, bf16=args.bf16,
                                 threads=args.threads, progress=not args.no_progress, overwrite=args.overwrite)
        print(f"wrote {out}")
        return 0
    from deepdip.predict.core import predict_store

    out = predict_store(args.run, args.store, args.out, rows=args.rows, tta=args.tta, chunk_size=args.chunk_size,
                        batch_size=args.batch_size, bf16=args.bf16, progress=not args.no_progress,
                        threads=args.threads, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
