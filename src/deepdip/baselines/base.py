"""The shared frame of every catalogue baseline: store handling, parameters, subsetting, chunking.

A baseline has two faces. The store face (:meth:`fit`, :meth:`predict_pdf`, the inherited
:meth:`predict_catalog`) is the :class:`~deepdip.estimators.PhotozEstimator` contract the CNN also
follows. The array face (:meth:`fit_photometry`, :meth:`predict_pdf_photometry`) takes
:class:`~deepdip.baselines.photometry.Photometry` and spec-z arrays, so real catalogues without
images (the real-SDSS check) use the very same code. Subclasses implement ``_fit`` and ``_predict``.
"""

from __future__ import annotations

import time

import numpy as np

from deepdip.baselines.params import SHARED_PARAMS, Param, resolve
from deepdip.baselines.photometry import Photometry
from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.estimators import PhotozEstimator
from deepdip.store.checks import check_rows
from deepdip.zgrid import ZGrid

#: Measured (not truth) size columns that ``extra_columns="auto"`` picks up: the half-light radius
#: measured on the images by :mod:`deepdip.photometry`.
MEASURED_SIZE_COLUMNS = ("hlr_meas",)
PREDICT_CHUNK = 20000  # rows per internal prediction chunk: bounds memory of [chunk, k] vote arrays


class CatalogueBaseline(PhotozEstimator):
    """Base of kNN, random forest, boosted trees and BPZ.

    Parameters
    ----------
    zgrid : ZGrid, optional
        Redshift grid of the PDFs. Default: the store's survey preset grid (store face only).
    **params
        Values for the names in ``PARAMS`` (see ``deepdip baseline --help``); unknown names raise.
    """

    name = "baseline"
    PARAMS: dict[str, Param] = SHARED_PARAMS
    uses_training_redshifts = True  # False for template fitting: it fits without spec-z
    min_train = 1  # fewest training galaxies the method can fit on

    def __init__(self, zgrid: ZGrid | None = None, **params):
        self.zgrid = zgrid
        self.params = dict(params)
        self.settings = resolve(self.PARAMS, self.params)  # raises early on a misspelt name

    # ------------------------------------------------------------------ sklearn-style parameters
    def get_params(self) -> dict:
        return {"zgrid": self.zgrid, **self.params}

    def set_params(self, **params) -> "CatalogueBaseline":
        zgrid = params.pop("zgrid", self.zgrid)
        self.__init__(zgrid, **{**self.params, **params})
        return self

    def config(self) -> dict:
        """Everything needed to redo the fit, plus what the fit learnt (written into catalogues)."""
        # Timings are left out so that a rerun writes a byte-identical catalogue.
        learnt = {k: _plain(v) for k, v in vars(self).items()
                  if k.endswith("_") and k != "fit_seconds_" and _plain(v) is not None}
        return {"estimator": type(self).__name__, "method": self.name, **self.settings, "learnt": learnt}

    # ------------------------------------------------------------------ store face
    def fit(self, store, fold: int) -> "CatalogueBaseline":
        """Fit on the rows of ``store`` with ``fold != fold`` and a known ``z_spec``."""
        if self.zgrid is None:
            from deepdip.surveys import load_survey

            self.zgrid = load_survey(store.survey).zgrid
        self._check_bands(store)
        if self.settings["ref_band"] is None:
            self._store_ref_band = _survey_ref_band(store)
        rows = store.split_rows("train", fold=fold)
        z = store.column("z_spec", rows=rows).astype(np.float64)
        rows, z = rows[np.isfinite(z)], z[np.isfinite(z)]
        if self.uses_training_redshifts and len(rows) == 0:
            raise DeepdipError(f"no training galaxy with a known z_spec outside fold {fold}")
        # NaN or negative E(B-V) would deredden to NaN fluxes, silently read as unobserved bands.
        check_rows(store, rows, pixels=False, what="the training rows")
        self.fold_ = int(fold)
        phot = Photometry.from_store(store, rows, extra_columns=self._extra_columns(store))
        self.fit_photometry(phot, z)
        self.extra_columns_ = tuple(phot.extra_names)
        return self

    def predict_pdf(self, store, rows) -> np.ndarray:
        check_rows(store, rows, pixels=False, what="the rows to predict")
        return self.predict_pdf_photometry(self._store_photometry(store, rows))

    def _store_photometry(self, store, rows) -> Photometry:
        # Predict with exactly the columns the fit used, whatever "auto" finds in this store.
        extra = self.extra_columns_ if hasattr(self, "extra_columns_") else self._extra_columns(store)
        return Photometry.from_store(store, rows, extra_columns=extra)

    def _extra_columns(self, store) -> list[str]:
        spec = self.settings["extra_columns"]
        if spec == "auto":
            return [c for c in MEASURED_SIZE_COLUMNS if c in store.columns]
        columns = [c.strip() for c in spec.split(",") if c.strip()]
        refuse_truth_columns(store, columns)
        return columns

    def _check_bands(self, store) -> None:
        """Parameters declared as band names (``Param.band``) must name one of the store's bands."""
        for name, p in self.PARAMS.items():
            value = self.settings.get(name)
            if p.band and value is not None and value not in store.bands:
                raise DeepdipValueError(f"--{name.replace('_', '-')} {value!r} is not a band of the store "
                                        f"(bands: {','.join(store.bands)})")

    # ------------------------------------------------------------------ array face
    def fit_photometry(self, phot: Photometry, z_spec) -> "CatalogueBaseline":
        """Fit on measured photometry and spec-z of the training galaxies; return self."""
        if self.zgrid is None:
            raise ValueError("give a zgrid to the constructor to fit on arrays")
        z_spec = np.asarray(z_spec, dtype=np.float64)
        if len(z_spec) != len(phot):
            raise ValueError("one z_spec per galaxy is needed")
        n_max = self.settings["max_train"]
        if n_max and len(phot) > n_max:
            keep = np.sort(np.random.default_rng(self.settings["seed"]).choice(len(phot), n_max, replace=False))
            phot, z_spec = phot.subset(keep), z_spec[keep]
        if len(phot) < self.min_train:
            raise DeepdipValueError(f"the {self.name} baseline needs at least {self.min_train} training galaxies, "
                                    f"got {len(phot)}" + (" (--max-train)" if n_max and n_max < self.min_train else ""))
        self.ref_band_ = self.settings["ref_band"] or getattr(self, "_store_ref_band", None) or _default_ref_band(phot.bands)
        self.n_train_ = len(phot)
        t0 = time.perf_counter()
        self._fit(phot, z_spec)
        self.fit_seconds_ = round(time.perf_counter() - t0, 3)
        return self

    def predict_pdf_photometry(self, phot: Photometry) -> np.ndarray:
        """PDFs ``[n, nbins]`` (float32, rows sum to 1) for measured photometry."""
        if not hasattr(self, "n_train_"):
            raise DeepdipError(f"the {self.name} baseline must be fitted before it predicts")
        out = np.empty((len(phot), self.zgrid.nbins), dtype=np.float32)
        for start in range(0, len(phot), PREDICT_CHUNK):
            rows = slice(start, start + PREDICT_CHUNK)
            out[rows] = self._predict(phot.subset(rows))
        return out

    def _fit(self, phot: Photometry, z_spec: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, phot: Photometry) -> np.ndarray:
        raise NotImplementedError


def store_truth_columns(store) -> tuple[set[str], str]:
    """The truth columns of ``store`` and where that list comes from (for messages).

    A mock records its truths in ``provenance["truth_columns"]`` (:mod:`deepdip.simulate.truths`).
    Stores without that list (mocks written before it was recorded, ingested or hand-made stores)
    fall back to the simulator's known truth names; :class:`~deepdip.baselines.photometry.Photometry`
    refuses the name pattern of labels and truths (``z_*``, ``mag_*``, ``*true*``...) in any case.
    """
    from deepdip.simulate.truths import PROVENANCE_KEY, truth_columns

    provenance = getattr(store, "provenance", {}) or {}
    recorded = provenance.get(PROVENANCE_KEY)
    if isinstance(recorded, (list, tuple)):
        return {str(c) for c in recorded}, "listed as a truth in the store's provenance"
    return set(truth_columns(store.bands)), "a truth column of deepdip mocks"


def refuse_truth_columns(store, columns) -> None:
    """Raise :class:`DeepdipValueError` when a requested feature column holds a truth of the store."""
    truths, why = store_truth_columns(store)
    bad = [c for c in columns if c in truths]
    if bad:
        raise DeepdipValueError(f"--extra-columns {','.join(bad)}: {why}; baselines use measured columns only")


def _survey_ref_band(store) -> str | None:
    from deepdip.surveys import load_survey

    try:
        band = load_survey(store.survey).get("mag_limit_band")
    except DeepdipError:
        return None
    return band if band in store.bands else None


def _default_ref_band(bands) -> str:
    for b in ("r", "i"):
        if b in bands:
            return b
    return bands[len(bands) // 2]


def _plain(value):
    """JSON-friendly form of a learnt attribute, or None for big/opaque ones (models, arrays)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.size <= 16:
        return [float(x) for x in value]
    if isinstance(value, (list, tuple)) and len(value) <= 16:
        return [_plain(v) for v in value]
    if isinstance(value, dict) and len(value) <= 16:
        return {str(k): _plain(v) for k, v in value.items()}
    return None
