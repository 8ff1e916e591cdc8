"""``deepdip predict``: redshift PDFs from trained CNN models into a photo-z catalogue.

Every option is a field of :class:`deepdip.predict.config.PredictConfig`. Three executors write
the same catalogue: in-process (default), a Dask cluster (``--dask``), Lightning's predict loop on
GPUs or several processes (``--accelerator``/``--devices``/``--strategy``/``--num-nodes``).
"""

from __future__ import annotations

import argparse

from deepdip import options
from deepdip.predict.config import PredictConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Predict redshift PDFs for the galaxies of a store with the models of a training run (or one "
        "model file) and write the photo-z catalogue (Parquet: PDFs + point estimates), streaming in chunks.")
    parser.add_argument("run", help="run directory written by the train command (or a single model.pt)")
    parser.add_argument("store", help="cutout store (.h5 file or folder of shards)")
    parser.add_argument("--out", required=True, help="output catalogue (.parquet)")
    options.add_arguments(parser, PredictConfig)


def run(args) -> int:
    # Checked here for every executor, before a Dask cluster is contacted or a model loaded.
    cfg = options.from_namespace(PredictConfig, args).check()
    common = dict(rows=cfg.rows, tta=cfg.tta, chunk_size=cfg.chunk_size, batch_size=cfg.batch_size,
                  precision=cfg.precision,
                  progress=cfg.progress, overwrite=cfg.overwrite)
    if cfg.dask:
        from deepdip.predict.dask_adapter import predict_store_dask

        out = predict_store_dask(args.run, args.store, args.out, client=cfg.dask, threads=cfg.threads, **common)
    elif cfg.lightning:
        from deepdip.predict.lightning_adapter import predict_store_lightning

        out = predict_store_lightning(args.run, args.store, args.out, accelerator=cfg.accelerator or "auto",
                                      devices=cfg.devices or "auto", num_nodes=cfg.num_nodes or 1,
                                      strategy=cfg.strategy or "auto",
                                      num_workers=1 if cfg.num_workers is None else cfg.num_workers,
                                      threads=cfg.threads, **common)
    else:
        from deepdip.predict.core import predict_store

        out = predict_store(args.run, args.store, args.out, threads=cfg.threads, **common)
    from deepdip._lightning import is_launcher

    if is_launcher():   # not once per DDP process
        print(f"wrote {out}")
    return 0
