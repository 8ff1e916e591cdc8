"""The shared frame of every catalogue baseline: store handling, parameters, subsetting, chunking.

A baseline has two faces. The store face (:meth:`fit`, :meth:`predict_pdf`, the inherited
:meth:`predict_catalog`) is the :class:`~deepdip.estimators.PhotozEstimator` contract the CNN also
follows. The array face (:meth:`fit_photometry`, :meth:`predict_pdf_photometry`) takes
:class:`~deepdip.photometry.Photometry` and spec-z arrays, so real catalogues without
images (the real-SDSS check) use the very same code. Subclasses implement ``_fit`` and ``_predict``.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np

from deepdip.baselines.params import SHARED_PARAMS, Param, resolve
from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.estimators import PhotozEstimator
from deepdip.photometry import Photometry
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
        Redshift grid of the PDFs. Default: the store's survey preset grid (store face only); the
        grid used is ``zgrid_`` after ``fit``.
    **params
        Keywords named after ``PARAMS`` (see ``deepdip baseline --help``), defaulting to the declared
        defaults; a misspelt name or a bad value raises :class:`DeepdipValueError` at once. Each
        subclass's constructor signature lists them (generated from ``PARAMS``, the one declaration),
        and each is stored unchanged under its name, so scikit-learn's ``get_params``, ``set_params``
        and ``clone`` work; ``settings`` is the resolved, typed view the methods read.

    A fitted baseline is saved with :meth:`save` and read back with :meth:`load` or
    :func:`deepdip.baselines.load_baseline` (:mod:`deepdip.baselines.modelfile`: npz + JSON, no pickle).
    """

    name = "baseline"
    PARAMS: dict[str, Param] = SHARED_PARAMS
    uses_training_redshifts = True  # False for template fitting: it fits without spec-z
    min_train = 1  # fewest training galaxies the method can fit on

    def __init__(self, zgrid: ZGrid | None = None, **params: Any):
        resolve(self.PARAMS, params)  # refuse a misspelt name or a bad value before any fitting
        self.zgrid = zgrid
        for name, p in self.PARAMS.items():
            setattr(self, name, params.get(name, p.default))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The signature scikit-learn's get_params/clone read: zgrid, then every name of PARAMS with
        # its declared default (PARAMS stays the one declaration; help(cls) shows the same).
        if "__init__" not in cls.__dict__:
            def init(self, zgrid: ZGrid | None = None, **params: Any):
                CatalogueBaseline.__init__(self, zgrid, **params)

            init.__signature__ = _signature(cls.PARAMS)  # type: ignore[attr-defined]
            cls.__init__ = init  # type: ignore[method-assign]

    # ------------------------------------------------------------------ parameters (sklearn's contract)
    @property
    def settings(self) -> dict:
        """Every parameter resolved: declared defaults overlaid with the given values, checked and typed."""
        return resolve(self.PARAMS, {name: getattr(self, name) for name in self.PARAMS})

    def set_params(self, **params) -> CatalogueBaseline:
        """scikit-learn's ``set_params``, refusing a bad value before it is stored."""
        resolve(self.PARAMS, {**{name: getattr(self, name) for name in self.PARAMS},
                              **{k: v for k, v in params.items() if k != "zgrid"}})
        return super().set_params(**params)

    def config(self) -> dict:
        """Everything needed to redo the fit, plus what the fit learnt (written into catalogues)."""
        # Timings are left out so that a rerun writes a byte-identical catalogue.
        learnt = {k: _plain(v) for k, v in vars(self).items()
                  if k.endswith("_") and k != "fit_seconds_" and _plain(v) is not None}
        return {"estimator": type(self).__name__, "method": self.name, **self.settings, "learnt": learnt}

    # ------------------------------------------------------------------ saved models
    def save(self, path, *, overwrite: bool = False):
        """Write the fitted model to ``path`` (an ``.npz`` archive, see :mod:`deepdip.baselines.modelfile`)."""
        from deepdip.baselines.modelfile import save_baseline

        return save_baseline(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> CatalogueBaseline:
        """The fitted baseline saved at ``path`` (never unpickled); it must be of this class."""
        from deepdip.baselines.modelfile import load_baseline

        est = load_baseline(path)
        if not isinstance(est, cls):
            raise DeepdipError(f"{path} holds a {type(est).__name__}, not a {cls.__name__}")
        return est

    def _state(self) -> dict:
        """What the fit learnt, as JSON values, numpy arrays and bytes (``modelfile`` writes them)."""
        state = {k: getattr(self, k) for k in ("fold_", "ref_band_", "n_train_", "fit_seconds_") if hasattr(self, k)}
        if hasattr(self, "extra_columns_"):
            state["extra_columns_"] = list(self.extra_columns_)
        return state

    def _set_state(self, state: dict) -> None:
        """Restore what :meth:`_state` returned (subclasses restore their models from it)."""
        for k in ("fold_", "ref_band_", "n_train_", "fit_seconds_"):
            if k in state:
                setattr(self, k, state[k])
        if "extra_columns_" in state:
            self.extra_columns_ = tuple(state["extra_columns_"])

    # ------------------------------------------------------------------ store face
    def fit(self, store, fold: int) -> CatalogueBaseline:
        """Fit on the rows of ``store`` with ``fold != fold`` and a known ``z_spec``."""
        zgrid = self.zgrid
        if zgrid is None:
            from deepdip.surveys import load_survey

            zgrid = load_survey(store.survey).zgrid
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
        self._fit_photometry(phot, z, zgrid)
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
    def fit_photometry(self, phot: Photometry, z_spec) -> CatalogueBaseline:
        """Fit on measured photometry and spec-z of the training galaxies; return self."""
        if self.zgrid is None:
            raise DeepdipValueError("give a zgrid to the constructor to fit on arrays")
        return self._fit_photometry(phot, z_spec, self.zgrid)

    def _fit_photometry(self, phot: Photometry, z_spec, zgrid: ZGrid) -> CatalogueBaseline:
        z_spec = np.asarray(z_spec, dtype=np.float64)
        if len(z_spec) != len(phot):
            raise DeepdipValueError("one z_spec per galaxy is needed")
        self.zgrid_ = zgrid
        n_max = self.settings["max_train"]
        if n_max and len(phot) > n_max:
            keep = np.sort(np.random.default_rng(self.settings["seed"]).choice(len(phot), n_max, replace=False))
            phot, z_spec = phot.subset(keep), z_spec[keep]
        if len(phot) < self.min_train:
            raise DeepdipValueError(f"the {self.name} baseline needs at least {self.min_train} training galaxies, "
                                    f"got {len(phot)}" + (" (--max-train)" if n_max and n_max < self.min_train else ""))
        self.ref_band_ = (self.settings["ref_band"] or getattr(self, "_store_ref_band", None)
                          or _default_ref_band(phot.bands))
        self.n_train_ = len(phot)
        t0 = time.perf_counter()
        self._fit(phot, z_spec)
        self.fit_seconds_ = round(time.perf_counter() - t0, 3)
        return self

    def predict_pdf_photometry(self, phot: Photometry) -> np.ndarray:
        """PDFs ``[n, nbins]`` (float32, rows sum to 1) for measured photometry."""
        if not hasattr(self, "n_train_"):
            raise DeepdipError(f"the {self.name} baseline must be fitted before it predicts")
        out = np.empty((len(phot), self.zgrid_.nbins), dtype=np.float32)
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
    fall back to the simulator's known truth names; :class:`~deepdip.photometry.Photometry`
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


def _signature(params: dict[str, Param]) -> inspect.Signature:
    """``(self, zgrid=None, *, <name>=<declared default>, ...)``: the constructor as scikit-learn reads it."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature([
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("zgrid", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation="ZGrid | None"),
        *(inspect.Parameter(name, keyword, default=p.default,
                            annotation=p.type.__name__ + (" | None" if p.default is None else ""))
          for name, p in params.items()),
    ])


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


CatalogueBaseline.__init__.__signature__ = _signature(SHARED_PARAMS)  # type: ignore[attr-defined]
