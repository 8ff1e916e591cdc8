"""One interface for every photo-z estimator (the CNN and all baselines).

An estimator is fitted on the training folds of a cutout store and predicts redshift PDFs on a
fixed grid for any rows of a store; :meth:`predict_catalog` turns those into the photo-z
catalogue every evaluation reads, streaming rows in chunks so catalogue size never matters.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator

from deepdip.zgrid import ZGrid

DEFAULT_CHUNK = 4096


def passthrough_columns(store) -> list[str]:
    """Store columns copied into every photo-z catalogue, so evaluation can bin by magnitude or
    position without reopening the store. One definition for the CNN and every baseline."""
    return [c for c in store.columns if c.startswith("mag_") or c in ("z_true", "ra", "dec")]


def _catalog_chunk(estimator, store, rows, extra_cols) -> dict:
    """One chunk of a catalogue (the arguments of ``CatalogWriter.write``), in-process or on a Dask worker."""
    cat = store.catalog(["id", "z_spec", "fold", *extra_cols], rows=rows)
    return {"ids": cat["id"], "pdf": estimator.predict_pdf(store, rows), "z_spec": cat["z_spec"], "fold": cat["fold"],
            "extra": {c: cat[c] for c in extra_cols}}


class PhotozEstimator(BaseEstimator, ABC):
    """Base class: subclasses set ``name`` and implement :meth:`fit`, :meth:`predict_pdf` and :meth:`save`.

    scikit-learn's contract (``BaseEstimator``): the constructor takes keyword parameters and stores
    them unchanged under their own names, so ``get_params``/``set_params`` and ``sklearn.base.clone``
    work; ``fit`` leaves them alone and sets what it learns in names ending in ``_``, among them
    ``zgrid_``, the redshift grid of the PDFs.
    """

    name: str = "estimator"
    zgrid_: ZGrid

    @abstractmethod
    def fit(self, store, fold: int) -> PhotozEstimator:
        """Fit on the rows of ``store`` with ``fold != fold`` (never the test fold); return self."""

    @abstractmethod
    def predict_pdf(self, store, rows) -> np.ndarray:
        """PDFs ``[len(rows), zgrid.nbins]`` (rows sum to 1) for ``rows`` of ``store``."""

    def save(self, path, *, overwrite: bool = False):
        """Write the fitted estimator to ``path``, to be read back by the class's ``load(path)``."""
        from deepdip.errors import DeepdipError

        raise DeepdipError(f"{type(self).__name__} cannot be saved")

    def config(self) -> dict:
        """Settings recorded in the catalogue's metadata (override to add more)."""
        return {"estimator": type(self).__name__}

    def predict_catalog(self, store, rows, out, chunk_size: int = DEFAULT_CHUNK, progress: bool = True,
                        overwrite: bool = False, client=None, timeout: float = 30):
        """Predict ``rows`` of ``store`` chunk by chunk into the photo-z catalogue at ``out``.

        ``out`` is never a directory or the store; an existing file is replaced only with ``overwrite``.
        ``client``: run the chunks on a Dask cluster (a ``distributed.Client``, a scheduler address or
        ``"local:N"``, as ``deepdip predict --dask``): the fitted estimator and the store are sent once to
        every worker, the chunks come back in row order and the catalogue is the same as in-process.
        Workers must read the store at the same (absolute) path.
        """
        from tqdm.auto import tqdm

        from deepdip.atomic import check_output
        from deepdip.catalog import CatalogWriter

        if chunk_size < 1:
            from deepdip.errors import DeepdipError

            raise DeepdipError(f"chunk_size must be positive, got {chunk_size}")
        rows = np.asarray(rows, dtype=np.int64)
        extra_cols = passthrough_columns(store)
        starts = range(0, len(rows), chunk_size)
        with contextlib.ExitStack() as stack:
            if client is None:
                chunks = (_catalog_chunk(self, store, rows[s:s + chunk_size], extra_cols) for s in starts)
            else:
                from deepdip._dask import dask_client, ordered_results, wait_for_workers
                from deepdip.store import CutoutStore

                check_output(out, inputs=(store.path,), overwrite=overwrite)  # before starting a cluster
                if not store.path.is_absolute():  # workers may run in another directory
                    store = CutoutStore(store.path.absolute())
                dc = stack.enter_context(dask_client(client, timeout=timeout))
                wait_for_workers(dc, timeout)
                shared = dc.scatter([self, store], broadcast=True, hash=False)
                tasks = ((f"{s}..{s + chunk_size - 1}", (rows[s:s + chunk_size], extra_cols)) for s in starts)
                chunks = stack.enter_context(contextlib.closing(ordered_results(
                    dc, _catalog_chunk, tasks, shared=shared, in_flight=max(2, 2 * sum(dc.nthreads().values())),
                    key=f"deepdip-{self.name}", died="Dask workers died predicting catalogue rows {label} "
                                                     "(out of memory? try a smaller chunk size)")))
            writer = stack.enter_context(CatalogWriter(out, self.zgrid_, method=self.name, config=self.config(),
                                                       overwrite=overwrite, inputs=(store.path,)))
            bar = stack.enter_context(tqdm(total=len(rows), desc=f"predict {self.name}", unit="gal",
                                           disable=not progress))
            for chunk in chunks:
                writer.write(**chunk)
                bar.update(len(chunk["ids"]))
        return out
