"""Run CNN inference on a Dask cluster (``dask.distributed``, the engine of LSDB/HATS).

:func:`predict_store_dask` writes exactly the catalogue of :func:`deepdip.predict.predict_store`
(same rows in the same order, same columns and metadata): the driver checks the run against the
store and chooses the rows (:func:`~deepdip.predict.core.plan_prediction`), each worker task reads
one chunk of rows from the store and runs the same :class:`~deepdip.predict.core.RunPredictor`
step, and the driver appends the results to the catalogue in row order as they arrive, with a
bounded number of chunks in flight so memory stays flat however large the store.

Workers must be able to import deepdip and read the store and the model files at the same
(absolute) paths as the driver, e.g. on a shared file system. Each worker process loads the
networks once and keeps its own HDF5 handles.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from deepdip._dask import dask_client, ordered_results, wait_for_workers
from deepdip.errors import DeepdipError


def _predict_task(predictor, store, rows, folds, threads):
    """One chunk on a worker: the same step as :func:`deepdip.predict.predict_store`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormal activations are ~100x slower on x86 CPUs
    return predictor.catalog_chunk(store, rows, folds)


def predict_store_dask(run, store, out, rows="test", *, client=None, tta: bool = False, chunk_size: int = 2048,
                       batch_size: int = 512, precision: str = "auto", threads: int | None = None,
                       max_in_flight: int | None = None, progress: bool = True, timeout: float = 30,
                       overwrite: bool = False) -> Path:
    """:func:`deepdip.predict.predict_store` with the chunks run on Dask workers.

    Parameters
    ----------
    run, store, out, rows, tta, chunk_size, batch_size, precision, overwrite
        As for :func:`~deepdip.predict.predict_store`; the catalogue written is the same.
    client : distributed.Client, str or None
        See :func:`dask_client`: None uses the current default client (DeepdipError if none),
        ``"local:N"`` starts a LocalCluster of N worker processes, a string is a scheduler address
        or a ``scheduler.json`` file.
    threads : int, optional
        torch CPU threads per task (Dask's nannies start workers with ``OMP_NUM_THREADS=1``).
    max_in_flight : int, optional
        Chunks submitted but not yet written (default: twice the cluster's worker threads, at
        least 2); bounds the memory of the driver and the workers.
    timeout : float
        Seconds to wait for the scheduler and for a first worker.

    Returns
    -------
    Path of the catalogue, written atomically (nothing appears at ``out`` if a chunk fails).
    """
    from tqdm.auto import tqdm

    from deepdip.atomic import check_output
    from deepdip.catalog import CatalogWriter
    from deepdip.predict.core import plan_prediction
    from deepdip.store import CutoutStore

    if chunk_size < 1:
        raise DeepdipError(f"chunk_size must be positive, got {chunk_size}")
    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    check_output(out, inputs=(store.path, run), overwrite=overwrite)  # before starting a cluster
    if not store.path.is_absolute():  # workers may run in another directory
        store = CutoutStore(store.path.absolute())
    predictor, sel, row_folds, zgrid, config = plan_prediction(run, store, rows, tta=tta, batch_size=batch_size,
                                                               precision=precision)
    starts = list(range(0, len(sel), chunk_size))

    with dask_client(client, timeout=timeout) as dc:
        wait_for_workers(dc, timeout)
        if max_in_flight is None:
            max_in_flight = max(2, 2 * sum(dc.nthreads().values()))
        # One copy of the predictor and the store per worker: the networks load once per process
        # and the HDF5 handles stay open across tasks.
        shared = dc.scatter([predictor, store], broadcast=True, hash=False)
        tasks = ((f"{start}..{start + chunk_size - 1}",
                  (sel[start:start + chunk_size], None if row_folds is None else row_folds[start:start + chunk_size],
                   threads)) for start in starts)
        chunks = ordered_results(dc, _predict_task, tasks, shared=shared, in_flight=max_in_flight,
                                 key="deepdip-predict", died="Dask workers died predicting catalogue rows {label} "
                                                             "(out of memory? try a smaller --chunk-size)")
        with contextlib.closing(chunks), \
                CatalogWriter(out, zgrid, method="cnn", config=config, overwrite=overwrite,
                              inputs=(store.path, run)) as writer, \
                tqdm(total=len(sel), desc="predict cnn (dask)", unit="gal", disable=not progress) as bar:
            for chunk in chunks:
                writer.write(**chunk)
                bar.update(len(chunk["ids"]))
    return Path(out)

