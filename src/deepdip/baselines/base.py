"""The shared frame of every catalogue baseline: store handling, parameters, subsetting, chunking.

A baseline has two faces. The store face (:meth:`fit`, :meth:`predict_pdf`, the inherited
:meth:`predict_catalog`) is the :class:`~deepdip.estimators.PhotozEstimator` contract the CNN also
follows. The array face (:meth:`fit_photometry`, :meth:`predict_pdf_photometry`) takes
:class:`~deepdip.photometry.Photometry` and spec-z arrays, so real catalogues without
images (the real-SDSS check) use the very same code. Subclasses implement ``_fit`` and ``_predict``.

The machine-learning baselines (knn, rf, boost) derive from :class:`ColourBaseline`, which turns
photometry into colour features and decides what a galaxy lacking bands becomes
(``missing_bands``); they implement ``_fit_features`` and ``_predict_features`` on the feature matrix.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np

from deepdip.baselines import pdf as pdftools
from deepdip.baselines.features import ColourFeatures
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
IMPUTE_K = 10  # training galaxies whose mean fills a missing luptitude (missing_bands="impute")


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
        self._check_settings(resolve(self.PARAMS, params))  # refuse a misspelt name or a bad value before any fitting
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
        self._check_settings(resolve(self.PARAMS, {**{name: getattr(self, name) for name in self.PARAMS},
                                                   **{k: v for k, v in params.items() if k != "zgrid"}}))
        return super().set_params(**params)

    def _check_settings(self, settings: dict) -> None:
        """Refuse a combination of valid values the method cannot use (:class:`DeepdipValueError`)."""

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
        target_rows = rows                       # the photometric sample of the training folds
        z = store.column("z_spec", rows=rows).astype(np.float64)
        rows, z = rows[np.isfinite(z)], z[np.isfinite(z)]
        if self.settings.get("labelled"):
            from deepdip.selection import read_selection

            keep = read_selection(self.settings["labelled"], store)[rows]
            rows, z = rows[keep], z[keep]
        if self.uses_training_redshifts and len(rows) == 0:
            raise DeepdipError(f"no training galaxy with a known z_spec outside fold {fold}")
        weights = None
        if self.settings.get("reweight", "none") != "none":
            if not self.uses_training_redshifts:
                raise DeepdipValueError(f"--reweight: the {self.name} baseline fits no training set")
            from deepdip.selection import training_weights

            weights = training_weights(self.settings["reweight"], store, rows, target_rows, z, zgrid)
        # NaN or negative E(B-V) would deredden to NaN fluxes, silently read as unobserved bands.
        check_rows(store, rows, pixels=False, what="the training rows")
        self.fold_ = int(fold)
        phot = Photometry.from_store(store, rows, extra_columns=self._extra_columns(store))
        if self.settings.get("augment_store"):
            phot, z, weights = self._augmented(store, phot, z, weights)
        self._fit_photometry(phot, z, zgrid, weights=weights)
        self.extra_columns_ = tuple(phot.extra_names)
        return self

    def _augmented(self, store, phot: Photometry, z: np.ndarray, weights):
        """``phot`` and ``z`` followed by the galaxies of the ``augment_store`` (those with a z_spec, and
        labelled by ``augment_labelled`` if given), each of weight 1 (the mean weight)."""
        from deepdip.selection import augment_rows

        other, rows = augment_rows(store, self.settings["augment_store"], self.settings.get("augment_labelled"))
        check_rows(other, rows, pixels=False, what="the --augment-store rows")
        extra = Photometry.from_store(other, rows, extra_columns=list(phot.extra_names))
        both = phot.concat(extra)
        w = None if weights is None else np.concatenate([weights, np.ones(len(rows))])
        self.n_augmented_ = int(len(rows))
        return both, np.concatenate([z, other.column("z_spec", rows).astype(np.float64)]), w

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

    def _fit_photometry(self, phot: Photometry, z_spec, zgrid: ZGrid, weights=None) -> CatalogueBaseline:
        """Fit on ``phot`` and ``z_spec``; ``weights`` (positive, one per galaxy, or None) weight the
        training galaxies (``--reweight``): kept as ``train_weights_`` for the model's own fit."""
        z_spec = np.asarray(z_spec, dtype=np.float64)
        if len(z_spec) != len(phot):
            raise DeepdipValueError("one z_spec per galaxy is needed")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != z_spec.shape or not (np.isfinite(weights).all() and (weights > 0).all()):
                raise DeepdipValueError("training weights must be finite, positive and one per galaxy")
        self.zgrid_ = zgrid
        n_max = self.settings["max_train"]
        if n_max and len(phot) > n_max:
            keep = np.sort(np.random.default_rng(self.settings["seed"]).choice(len(phot), n_max, replace=False))
            phot, z_spec = phot.subset(keep), z_spec[keep]
            weights = None if weights is None else weights[keep]
        self.train_weights_ = weights
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


class ColourBaseline(CatalogueBaseline):
    """Base of the ML baselines (knn, rf, boost): colour features, and what a missing band becomes.

    The features are :class:`~deepdip.baselines.features.ColourFeatures` (reference luptitude,
    colours of adjacent bands, extras). The models are trained on galaxies with all their bands, so
    the ``missing_bands`` parameter says how a galaxy lacking some (NaN flux, or the store's band
    mask) is predicted:

    - ``pattern``: for each availability pattern met at prediction, a model of the same method and
      parameters trained on the training galaxies that have those bands, with those bands only
      (colours of consecutive *available* bands; the reference band, or the nearest available band
      when it is missing, redder on a tie). It is exactly the model one would train on the reduced
      band set; models are fitted when their pattern is first met and cached. A saved model keeps
      the training photometry and refits them at load (deterministic: the same PDFs).
    - ``impute``: each missing luptitude is the mean over the :data:`IMPUTE_K` nearest training
      galaxies in the present bands' luptitudes (scikit-learn's ``KNNImputer``, NaN-Euclidean
      distance); the training luptitudes are saved and the imputer refitted at load.
    - ``nan`` (boost only): every feature touching a missing band is NaN and LightGBM's missing-value
      handling routes it; a training set without missing bands is augmented with one copy of each
      galaxy lacking 1 to B - 2 random bands (seeded; :func:`band_dropout`), each copy in its
      original's inner fold so the out-of-fold residuals stay honest.
    - ``zero``: the luptitude of zero flux, as before the parameter existed: a missing band reads
      as a dropout, far outside the training colours.

    A galaxy with no band at all gets the training redshift distribution (all modes but ``zero``).
    Galaxies with all bands are predicted the same way by every mode except ``nan``, whose trees are
    also trained on the dropout copies.
    """

    native_nan = False  # LightGBM routes NaN features itself: boost sets it

    def _check_settings(self, settings):
        if settings.get("missing_bands") == "nan" and not self.native_nan:
            raise DeepdipValueError(f"--missing-bands nan is LightGBM's missing-value handling (--method boost); "
                                    f"{self.name} takes pattern, impute or zero")

    def _fit(self, phot, z_spec):
        mode = self.settings["missing_bands"]
        self.nz_ = pdftools.histogram(self.zgrid_, z_spec[None, :])[0]
        groups = np.arange(len(phot))
        w = getattr(self, "train_weights_", None)
        if mode == "pattern":
            self._pattern_models = {}
            self.train_phot_, self.train_z_ = phot, z_spec
            # A band no training galaxy has (a survey without u, a dead detector) is no pattern's: every model
            # sees it as never observed, so the full pattern is that of the bands the training set has.
            full = phot.observed[:, phot.observed.any(axis=0)].all(axis=1)
            if not full.all():  # the full pattern's model, like every other, sees only galaxies with its bands
                phot, z_spec, groups = phot.subset(full), z_spec[full], groups[: full.sum()]
                w = None if w is None else w[full]
                self._check_pattern_train(len(phot), phot.bands)
        self.features_ = ColourFeatures(self.ref_band_).fit(phot)
        if mode == "nan" and phot.observed.all():
            phot, z_spec, groups = band_dropout(phot, z_spec, self.settings["seed"])
            w = None if w is None else w[groups]
        if mode == "impute":
            self._fit_imputer(self.features_.magnitudes(phot, "nan"))
        self.fit_weights_ = w          # one per row of the features: read by each model's _fit_features
        self._fit_features(self._features(phot), z_spec, groups)

    def _fit_imputer(self, mags: np.ndarray) -> None:
        from sklearn.impute import KNNImputer

        self.impute_mags_ = mags  # the imputer's whole state: saved, and refitted at load
        self.imputer_ = KNNImputer(n_neighbors=min(IMPUTE_K, len(mags)), keep_empty_features=True).fit(mags)

    def _features(self, phot: Photometry) -> np.ndarray:
        mode = self.settings["missing_bands"]
        if mode in ("zero", "pattern"):  # pattern: only galaxies with every band reach here
            return self.features_.transform(phot)
        self.features_._check(phot)
        mag = self.features_.magnitudes(phot, "nan")
        if mode == "impute":
            bad = np.isnan(mag).any(axis=1)
            if bad.any():
                mag[bad] = self.imputer_.transform(mag[bad])
        return self.features_.from_magnitudes(mag, phot.extra)

    def _predict(self, phot):
        mode = self.settings["missing_bands"]
        observed = phot.observed
        if mode != "pattern":
            out = self._predict_features(self._features(phot))
            if mode != "zero":
                out[~observed.any(axis=1)] = self.nz_
            return out
        out = np.empty((len(phot), self.zgrid_.nbins))
        trained = self.train_phot_.observed.any(axis=0)   # bands some training galaxy has (see _fit)
        if not trained.all():  # seen as never observed, as in training
            phot = phot.without(~trained)
        patterns, inverse = np.unique(observed & trained, axis=0, return_inverse=True)
        for k, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse.ravel() == k)
            sub = phot.subset(rows)
            if (pattern | ~trained).all():
                out[rows] = self._predict_features(self._features(sub))
            elif not pattern.any():
                out[rows] = self.nz_
            else:
                out[rows] = self.pattern_model(pattern).predict_pdf_photometry(select_bands(sub, pattern))
        return out

    def pattern_model(self, pattern) -> ColourBaseline:
        """The fitted model of the bands where ``pattern`` (bool per band) is true (``missing_bands="pattern"``)."""
        key = tuple(bool(b) for b in pattern)
        models = self.__dict__.setdefault("_pattern_models", {})
        if key not in models:
            bands = [b for b, keep in zip(self.features_.bands_, key) if keep]
            train = self.train_phot_
            have = train.observed[:, np.array(key)].all(axis=1)
            self._check_pattern_train(int(have.sum()), bands)
            sub = type(self)(self.zgrid_, **{**self.settings, "missing_bands": "zero",
                                             "ref_band": nearest_band(self.ref_band_, self.features_.bands_, key)})
            w = getattr(self, "train_weights_", None)
            models[key] = sub._fit_photometry(select_bands(train.subset(have), key), self.train_z_[have], self.zgrid_,
                                              weights=None if w is None else w[have])
        return models[key]

    def _check_pattern_train(self, n: int, bands) -> None:
        if n < self.min_train:
            raise DeepdipError(f"--missing-bands pattern: {n} training galaxies have all of the bands "
                               f"{','.join(bands)}; the {self.name} baseline needs {self.min_train}")

    def _state(self):
        state = {**super()._state(), "nz_": self.nz_}
        if hasattr(self, "impute_mags_"):
            state["impute.mags"] = self.impute_mags_
        if hasattr(self, "train_phot_"):
            t = self.train_phot_
            state.update({"train.flux": t.flux, "train.flux_err": t.flux_err, "train.extinction": t.extinction,
                          "train.bands": list(t.bands), "train.filters": list(t.filters),
                          "train.extra_names": list(t.extra_names), "train.z": self.train_z_})
            if t.extra is not None:
                state["train.extra"] = t.extra
            if getattr(self, "train_weights_", None) is not None:
                state["train.weights"] = self.train_weights_
        return state

    def _set_state(self, state):
        super()._set_state(state)
        self.nz_ = np.asarray(state["nz_"], dtype=np.float64)
        if "impute.mags" in state:
            self._fit_imputer(np.asarray(state["impute.mags"], dtype=np.float64))
        if "train.flux" in state:
            extra = state.get("train.extra")
            self.train_phot_ = Photometry(
                state["train.flux"], state["train.flux_err"], state["train.extinction"],
                tuple(str(b) for b in state["train.bands"]), tuple(str(f) for f in state["train.filters"]),
                None if extra is None else np.asarray(extra, dtype=np.float64),
                tuple(str(c) for c in state["train.extra_names"]))
            self.train_z_ = np.asarray(state["train.z"], dtype=np.float64)
            if self.train_z_.shape != (len(self.train_phot_),):
                raise ValueError("the saved training photometry and redshifts do not match")
            if "train.weights" in state:
                self.train_weights_ = np.asarray(state["train.weights"], dtype=np.float64)
                if self.train_weights_.shape != self.train_z_.shape:
                    raise ValueError("the saved training weights and redshifts do not match")
        if self.settings["missing_bands"] in ("pattern", "impute") and not (
                hasattr(self, "train_phot_") or hasattr(self, "imputer_")):
            raise ValueError(f"missing_bands={self.settings['missing_bands']!r} but the file lacks its training data")

    def _fit_features(self, x: np.ndarray, z_spec: np.ndarray, groups: np.ndarray) -> None:
        """Fit the model on features ``x``; ``groups`` numbers the original galaxy of each row."""
        raise NotImplementedError

    def _predict_features(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def select_bands(phot: Photometry, keep) -> Photometry:
    """``phot`` with only the bands where ``keep`` (bool per band) is true (:meth:`Photometry.select_bands`)."""
    return phot.select_bands(keep)


def nearest_band(band: str, bands, keep) -> str:
    """``band`` if kept, else the kept band nearest in band order (the redder one on a tie)."""
    j = list(bands).index(band)
    kept = np.flatnonzero(np.asarray(keep, dtype=bool))
    return bands[int(kept[np.lexsort((-kept, np.abs(kept - j)))[0]])]


def band_dropout(phot: Photometry, z_spec: np.ndarray, seed: int) -> tuple[Photometry, np.ndarray, np.ndarray]:
    """The galaxies plus one copy of each lacking 1 to B - 2 random bands (1 when B <= 3); also the
    number of each row's original galaxy. Seeded: the same copies for the same ``seed``."""
    n, n_bands = phot.flux.shape
    groups = np.arange(n)
    if n_bands < 2:
        return phot, z_spec, groups
    rng = np.random.default_rng([seed, 0x6d62])  # its own stream: the models' seed use is unchanged
    n_drop = rng.integers(1, max(1, n_bands - 2) + 1, size=n)
    drop = np.argsort(rng.random((n, n_bands)), axis=1).argsort(axis=1) < n_drop[:, None]
    return phot.concat(phot.without(drop)), np.concatenate([z_spec, z_spec]), np.concatenate([groups, groups])
