"""One interface for every photo-z estimator (the CNN and all baselines).

An estimator is fitted on the training folds of a cutout store and predicts redshift PDFs on a
fixed grid for any rows of a store; :meth:`predict_catalog` turns those into the photo-z
catalogue every evaluation reads, streaming rows in chunks so catalogue size never matters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator

from deepdip.zgrid import ZGrid

DEFAULT_CHUNK = 4096


def passthrough_columns(store) -> list[str]:
    """Store columns copied into every photo-z catalogue, so evaluation can bin by magnitude or
    position without reopening the store. One definition for the CNN and every baseline."""
    return [c for c in store.columns if c.startswith("mag_") or c in ("z_true", "ra", "dec")]


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
                        overwrite: bool = False):
        """Predict ``rows`` of ``store`` chunk by chunk into the photo-z catalogue at ``out``.

        ``out`` is never a directory or the store; an existing file is replaced only with ``overwrite``.
        """
        from tqdm.auto import tqdm

        from deepdip.catalog import CatalogWriter

        rows = np.asarray(rows, dtype=np.int64)
        extra_cols = passthrough_columns(store)
        with CatalogWriter(out, self.zgrid_, method=self.name, config=self.config(), overwrite=overwrite,
                           inputs=(store.path,)) as writer:
            bar = tqdm(total=len(rows), desc=f"predict {self.name}", unit="gal", disable=not progress)
            for start in range(0, len(rows), chunk_size):
                chunk = rows[start:start + chunk_size]
                cat = store.catalog(["id", "z_spec", "fold", *extra_cols], rows=chunk)
                writer.write(cat["id"], self.predict_pdf(store, chunk), z_spec=cat["z_spec"], fold=cat["fold"],
                             extra={c: cat[c] for c in extra_cols})
                bar.update(len(chunk))
            bar.close()
        return out
