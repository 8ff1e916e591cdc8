"""scikit-learn estimators on plain arrays: the CNN on cutouts, the catalogue baselines on photometry.

::

    from deepdip.sklearn import CNNPhotoz, KNNPhotoz
    knn = KNNPhotoz(k=20).fit(X_phot, z, ebv=ebv)           # X_phot [N, 2B]: B fluxes, then B errors (nanomaggies)
    z_phot = knn.predict(X_test, ebv=ebv_test)               # PDF means (point="z_mean"); z_median, z_mode too
    pdf = knn.predict_pdf(X_test, ebv=ebv_test)              # [n, nbins] on knn.zgrid_ (rows sum to 1)
    cnn = CNNPhotoz(epochs=10).fit(cutouts, z, ebv=ebv)      # cutouts [N, B, H, W] float32, nanomaggies per pixel
    GridSearchCV(KNNPhotoz(), {"k": [10, 20, 40]}).fit(X_phot, z)   # score = -sigma_MAD

**The interface.** ``X`` is what the estimator reads per galaxy: for the CNN the cutouts
``[N, B, H, W]`` (raw fluxes in ``flux_unit``, band order = ``bands``), for a baseline the
photometry ``[N, 2B]``, the B fluxes and then their B 1-sigma errors (nanomaggies; NaN flux or a
non-positive error marks a band not observed: the baselines handle missing bands, so NaN is a
value here, not an error). ``y`` is the spectroscopic redshift. The Galactic reddening E(B-V)
is per-galaxy data, not a hyper-parameter, and not a pixel or flux: it is the keyword ``ebv``
of ``fit``, ``predict``, ``predict_pdf`` and ``score`` (as ``sample_weight`` is in scikit-learn;
absent = 0, i.e. fluxes already corrected for extinction). The CNN joins it to its dense layers;
the baselines turn it into A_b with the Fitzpatrick 99 law at the bands' filters
(:func:`deepdip.extinction.extinction_coefficients`). Keeping X one array is what lets
``clone``, ``cross_val_score``, ``GridSearchCV`` and pipelines treat these as ordinary
regressors (pass ``ebv`` through ``params={"ebv": ...}`` in scikit-learn's routing).

**Outputs.** ``predict`` gives one redshift per galaxy, the ``point`` estimate of the PDF
(``z_mean``, the default, as in Pasquet et al. 2019 and deepdip's catalogues; ``z_median``,
``z_mode``); ``predict_pdf`` the PDFs on ``zgrid_`` (a :class:`~deepdip.zgrid.ZGrid`: ``nbins``
bins over ``[zmin, zmax)``, by default the ``survey`` preset's). ``score`` is **minus** σ_MAD of
Δz = (z_phot − z_spec)/(1 + z_spec) (higher is better, as scikit-learn's scorers want; not R²).

**Bands.** ``bands=None`` takes the ``survey`` preset's bands (and filters) when X has that many,
else names them ``b0, b1, ...`` with no filter curves: enough for kNN, random forest and boosted
trees without E(B-V), not for BPZ or dereddening (give ``bands`` and ``filters``: speclite names or ``rail:<curve>``).

**The CNN** writes X into a temporary cutout store (in ``tempfile``'s folder, removed after the
fit), trains with :func:`deepdip.train.train` on every row (a tenth held out for validation, as in
``deepdip train``) and keeps the networks in memory; ``out=PATH`` keeps the run directory there
instead (resumable, readable by ``deepdip predict``). Large data sets belong in a store and
``deepdip train``: this facade holds X in memory.

**Photometry without errors.** ``error_fraction=0.05`` (any positive float) makes X the B fluxes alone,
``[N, B]``, each with an error of that fraction of its absolute value.

**scikit-learn's estimator checks** (``tests/test_sklearn.py``). ``KNNPhotoz``, ``RFPhotoz`` and
``BoostPhotoz`` run ``parametrize_with_checks`` with ``error_fraction`` set (the checks make X of 1
to 10 columns; an ``[N, 2B]`` layout has no 3-column form): of 51 checks each, 47 pass,
``check_array_api_input`` skips itself (``SCIPY_ARRAY_API`` unset) and ``check_regressors_train``
(3 variants) is an expected failure, :data:`EXPECTED_FAILED_CHECKS`: it asserts ``score > 0.5``,
an R² threshold, and ``score`` here is −σ_MAD (≤ 0). Because NaN marks an unobserved band the estimators declare
``allow_nan``, so the NaN/inf-refusal check does not run. The default ``[N, 2B]`` layout has its own
tests of what the data checks check (pickling, ``clone``, the refusal of other feature counts, the
library's PDFs exactly). ``BPZPhotoz`` needs real filter curves, i.e. the survey's B bands, and the
CNN 4-D cutouts, which none of the data checks can make: both run the checks of the parameter
contract (``check_get_params_invariance``, ``check_set_params``, ``check_no_attributes_set_in_init``,
``check_parameters_default_constructible``, ``check_do_not_raise_errors_in_init_or_set_params``,
``check_estimator_cloneable``, ``check_estimator_repr``, ``check_mixin_order``,
``check_valid_tag_types``), and a real fit and prediction (the CNN on a few tiny cutouts).
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from deepdip.baselines import baseline_class
from deepdip.errors import DeepdipValueError
from deepdip.photometry import Photometry
from deepdip.zgrid import ZGrid

POINTS = ("z_mean", "z_median", "z_mode")
#: Wrapper parameters every estimator here takes (besides its own method's).
_COMMON = {"survey": "sdss", "bands": None, "filters": None, "zmin": None, "zmax": None, "nbins": None,
           "point": "z_mean"}
#: The baselines' own wrapper parameter: None = X holds B fluxes then B errors; a float = X holds B fluxes only.
_BASELINE_COMMON = {"error_fraction": None}


class _PhotozRegressor(RegressorMixin, BaseEstimator):
    """Shared frame: the redshift grid, the bands, E(B-V), point estimates and the score."""

    def _zgrid(self) -> ZGrid:
        base = None
        if self.survey:
            from deepdip.surveys import load_survey

            base = load_survey(self.survey).zgrid
        zmin = self.zmin if self.zmin is not None else (base.zmin if base else 0.0)
        zmax = self.zmax if self.zmax is not None else (base.zmax if base else None)
        nbins = self.nbins if self.nbins is not None else (base.nbins if base else None)
        if zmax is None or nbins is None:
            raise DeepdipValueError("without a survey preset give zmax and nbins (the redshift grid)")
        try:
            return ZGrid(float(zmin), float(zmax), int(nbins))
        except ValueError as exc:
            raise DeepdipValueError(str(exc)) from None

    def _bands(self, n_bands: int) -> tuple[tuple, tuple, bool]:
        """Band names, filter names, and whether the filters are real (speclite) ones."""
        preset = None
        if self.survey:
            from deepdip.surveys import load_survey

            preset = load_survey(self.survey)
        bands = tuple(self.bands) if self.bands is not None else ()
        if not bands:
            bands = tuple(preset.bands) if preset and len(preset.bands) == n_bands else \
                tuple(f"b{j}" for j in range(n_bands))
        if len(bands) != n_bands:
            raise DeepdipValueError(f"X has {n_bands} bands but bands= names {len(bands)}")
        filters = tuple(self.filters) if self.filters is not None else ()
        if not filters and preset is not None:
            by_band = dict(zip(preset.bands, preset.filters))
            if all(b in by_band for b in bands):
                filters = tuple(by_band[b] for b in bands)
        if filters and len(filters) != n_bands:
            raise DeepdipValueError(f"filters= names {len(filters)} filters for {n_bands} bands")
        return bands, filters or bands, bool(filters)

    def _point(self, pdf: np.ndarray) -> np.ndarray:
        from deepdip.metrics import point_estimates

        if self.point not in POINTS:
            raise DeepdipValueError(f"point must be one of {', '.join(POINTS)}, got {self.point!r}")
        return point_estimates(pdf, self.zgrid_)[self.point]

    def predict(self, X, ebv=None) -> np.ndarray:
        """The ``point`` estimate (default the PDF mean) of each galaxy's redshift."""
        return self._point(self.predict_pdf(X, ebv=ebv))

    def predict_pdf(self, X, ebv=None) -> np.ndarray:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def score(self, X, y, sample_weight=None, ebv=None) -> float:
        """Minus σ_MAD of Δz = (z_phot − y)/(1 + y) (higher is better; ``sample_weight`` is not supported)."""
        from deepdip.metrics import sigma_mad

        if sample_weight is not None:
            raise DeepdipValueError("score takes no sample_weight (sigma_MAD is a median statistic)")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        return -float(sigma_mad(self.predict(X, ebv=ebv), y))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN flux = a band not observed, a value the estimators handle
        return tags


def _ebv(ebv, n: int) -> np.ndarray:
    if ebv is None:
        return np.zeros(n)
    ebv = np.asarray(ebv, dtype=np.float64).reshape(-1)
    if ebv.shape != (n,):
        raise DeepdipValueError(f"ebv must hold one E(B-V) per galaxy ({n}), got shape {list(ebv.shape)}")
    if not np.all(np.isfinite(ebv) & (ebv >= 0)):
        raise DeepdipValueError("ebv holds NaN or negative values")
    return ebv


# ------------------------------------------------------------------------------------------------ baselines
class _BaselinePhotoz(_PhotozRegressor):
    """A catalogue baseline (``method``) on photometry arrays ``[N, 2B]``: fluxes, then errors."""

    method = ""
    _PARAMS: dict = {}

    def _photometry(self, X, ebv, *, reset: bool) -> Photometry:
        """Photometry of validated ``X`` (``validate_data``: the check of ``n_features_in_`` included)."""
        if self.error_fraction is None:
            if X.shape[1] % 2:
                raise DeepdipValueError(f"X must be [n, 2B]: B fluxes then their B errors; it has {X.shape[1]} "
                                        "columns (fluxes only: give error_fraction=)")
            n_bands = X.shape[1] // 2
            flux, err = X[:, :n_bands], X[:, n_bands:]
        else:
            if not float(self.error_fraction) > 0:
                raise DeepdipValueError(f"error_fraction must be positive, got {self.error_fraction}")
            n_bands = X.shape[1]
            flux, err = X, float(self.error_fraction) * np.abs(X)
        if reset:
            self.bands_, self.filters_, self._real_filters = self._bands(n_bands)
        ebv = _ebv(ebv, len(X))
        a_b = np.zeros((len(X), n_bands))
        if np.any(ebv > 0):
            if not self._real_filters:
                raise DeepdipValueError("dereddening with ebv needs the bands' filters: give bands= and filters= "
                                        "(speclite names or rail:<curve>) or a survey preset with this many bands")
            from deepdip.extinction import extinction_coefficients

            a_b = ebv[:, None] * extinction_coefficients(tuple(self.filters_))[None, :]
        return Photometry(flux, err, a_b, self.bands_, self.filters_)

    def fit(self, X, y, ebv=None):
        """Fit on photometry ``X`` [N, 2B] and spec-z ``y`` (E(B-V) per galaxy in ``ebv``); return self."""
        from sklearn.utils.validation import validate_data

        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64, y_numeric=True)
        phot = self._photometry(X, ebv, reset=True)
        zgrid = self._zgrid()
        est = baseline_class(self.method)(zgrid, **{k: getattr(self, k) for k in self._PARAMS})
        if self.method == "bpz" and not self._real_filters:
            raise DeepdipValueError("template fitting needs the bands' filters: give bands= and filters= "
                                    "(speclite names or rail:<curve>) or a survey preset with this many bands")
        if len(phot) < est.min_train:
            raise ValueError(f"n_samples = {len(phot)}: the {self.method} baseline needs at least {est.min_train}")
        est.fit_photometry(phot, y)
        self.estimator_, self.zgrid_ = est, zgrid
        return self

    def predict_pdf(self, X, ebv=None) -> np.ndarray:
        """PDFs ``[n, nbins]`` on ``zgrid_`` (float32, rows sum to 1)."""
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return self.estimator_.predict_pdf_photometry(self._photometry(X, ebv, reset=False))


def _baseline_params(method: str) -> dict:
    """The method's parameters as the wrapper offers them: every ``PARAMS`` entry but store columns."""
    return {k: p for k, p in baseline_class(method).PARAMS.items() if k != "extra_columns"}


def _make_baseline_wrapper(name: str, method: str, doc: str) -> type:
    params = _baseline_params(method)
    defaults = {**_COMMON, **_BASELINE_COMMON, **{k: p.default for k, p in params.items()}}

    def __init__(self, **kwargs):
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise TypeError(f"{name}() got unexpected keyword argument(s) {', '.join(unknown)}")
        for key, default in defaults.items():
            setattr(self, key, kwargs.get(key, default))

    __init__.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *(inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items())])
    lines = "\n".join(f"    {k} : {p.type.__name__}, default {p.default!r}\n        {p.help}"
                      for k, p in params.items())
    cls = type(name, (_BaselinePhotoz,), {
        "__init__": __init__, "method": method, "_PARAMS": params, "__module__": __name__,
        "__doc__": f"{doc}\n\n    Parameters (besides survey, bands, filters, zmin, zmax, nbins, point and "
                   f"error_fraction: see the module docstring)\n    ----------\n{lines}\n"})
    return cls


KNNPhotoz = _make_baseline_wrapper("KNNPhotoz", "knn", "k-nearest neighbours in colour space (deepdip's knn).")
RFPhotoz = _make_baseline_wrapper("RFPhotoz", "rf", "Random forest on colours (deepdip's rf).")
BoostPhotoz = _make_baseline_wrapper("BoostPhotoz", "boost", "Boosted trees, LightGBM (deepdip's boost).")
BPZPhotoz = _make_baseline_wrapper("BPZPhotoz", "bpz", "Template fitting, desc-bpz (deepdip's bpz).")
BASELINES = {"knn": KNNPhotoz, "rf": RFPhotoz, "boost": BoostPhotoz, "bpz": BPZPhotoz}


# ------------------------------------------------------------------------------------------------ CNN
class CNNPhotoz(_PhotozRegressor):
    """deepdip's CNN on cutouts ``X`` [N, B, H, W] (square stamps, raw fluxes in ``flux_unit``).

    Parameters
    ----------
    model : str, default "compact"
        Registered network (``compact``, ``pasquet19``).
    epochs : int or None, default 30
        Maximum epochs per member (None: the model's default; see ``deepdip train --help``).
    max_minutes : float or None
        Wall-clock budget of the fit instead of (or on top of) ``epochs``.
    ensemble : int, default 1
        Members trained with different seeds; their PDFs are averaged.
    seed : int, default 0
        The one seed of the run (initialisation, augmentation, validation split).
    batch_size, lr : optional
        Training batch size and peak learning rate (the model's defaults when None).
    model_kwargs : dict, optional
        Keywords of the network, e.g. ``{"widths": [8, 16, 16, 32], "hidden": 32}`` (a tiny one).
    tta : bool, default False
        Average the PDFs over the 8 orientations of each stamp at prediction.
    pixel_scale : float, optional
        Arcsec per pixel of the cutouts (default: the survey preset's).
    flux_unit : str, default "nanomaggy"
        Unit of the pixel values.
    out : path, optional
        Keep the run directory there (default: a temporary one, removed after the fit).
    progress : bool, default False
        Training progress bars.
    train_kwargs : dict, optional
        Any other :class:`~deepdip.train.config.TrainConfig` field (``threads``, ``precision``, ...).
    survey, bands, filters, zmin, zmax, nbins, point
        As for every estimator of :mod:`deepdip.sklearn`.

    Attributes
    ----------
    nets_ : list of torch modules
        The trained members (eval mode). ``zgrid_``, ``bands_``, ``image_shape_`` describe them.
    """

    def __init__(self, model: str = "compact", epochs: int | None = 30, max_minutes: float | None = None,
                 ensemble: int = 1, seed: int = 0, batch_size: int | None = None, lr: float | None = None,
                 model_kwargs: dict | None = None, tta: bool = False, pixel_scale: float | None = None,
                 flux_unit: str = "nanomaggy", out=None, progress: bool = False, train_kwargs: dict | None = None,
                 survey: str | None = "sdss", bands=None, filters=None, zmin: float | None = None,
                 zmax: float | None = None, nbins: int | None = None, point: str = "z_mean"):
        self.model = model
        self.epochs = epochs
        self.max_minutes = max_minutes
        self.ensemble = ensemble
        self.seed = seed
        self.batch_size = batch_size
        self.lr = lr
        self.model_kwargs = model_kwargs
        self.tta = tta
        self.pixel_scale = pixel_scale
        self.flux_unit = flux_unit
        self.out = out
        self.progress = progress
        self.train_kwargs = train_kwargs
        self.survey = survey
        self.bands = bands
        self.filters = filters
        self.zmin = zmin
        self.zmax = zmax
        self.nbins = nbins
        self.point = point

    def _images(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 4 or X.shape[2] != X.shape[3]:
            raise DeepdipValueError(f"X must be square cutouts [N, B, H, H], got shape {list(X.shape)}")
        if not np.isfinite(X).all():
            raise DeepdipValueError("X holds NaN or inf pixels")
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.two_d_array = False  # cutouts are 4-D
        tags.input_tags.three_d_array = False
        return tags

    def fit(self, X, y, ebv=None) -> CNNPhotoz:
        """Train on cutouts ``X`` [N, B, H, H], spec-z ``y`` and E(B-V) ``ebv``; return self."""
        from deepdip.predict.core import find_model_files, load_members
        from deepdip.store import create_store
        from deepdip.train import train

        X = self._images(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) != len(X) or not np.all(np.isfinite(y)):
            raise DeepdipValueError(f"y must hold one finite redshift per cutout ({len(X)}), got {len(y)}")
        ebv = _ebv(ebv, len(X))
        n, n_bands, size, _ = X.shape
        bands, _, _ = self._bands(n_bands)
        zgrid = self._zgrid()
        pixel_scale = self.pixel_scale
        if pixel_scale is None:
            from deepdip.surveys import load_survey

            pixel_scale = load_survey(self.survey).pixel_scale if self.survey else 1.0
        settings: dict[str, Any] = dict(self.train_kwargs or {})
        for key in ("model", "epochs", "max_minutes", "ensemble", "seed", "batch_size", "lr", "model_kwargs",
                    "progress"):
            settings[key] = getattr(self, key)
        tmp = Path(tempfile.mkdtemp(prefix="deepdip-sklearn-"))
        try:
            # Every row in fold 1 of 2: "train on fold != 0" is every row (a tenth of it validates).
            catalog = {"id": np.arange(n, dtype=np.int64), "z_spec": y.astype(np.float32),
                       "ebv": ebv.astype(np.float32), "fold": np.ones(n, dtype=np.int8)}
            store = create_store(tmp / "train.h5", X, catalog, bands=bands, survey=self.survey or "custom",
                                 pixel_scale=float(pixel_scale), flux_unit=self.flux_unit, n_folds=2,
                                 seed=int(self.seed))
            run = train(store, fold=0, out=self.out if self.out is not None else tmp / "run", zgrid=zgrid, **settings)
            members = load_members(find_model_files(run)[0])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.nets_ = [m.net for m in members]
        self.zgrid_ = members[0].zgrid
        self.bands_ = tuple(bands)
        self.image_shape_ = (n_bands, size, size)
        return self

    def predict_pdf(self, X, ebv=None, chunk_size: int = 1024) -> np.ndarray:
        """PDFs ``[n, nbins]`` on ``zgrid_``, averaged over the members (and orientations with ``tta``)."""
        from sklearn.utils.validation import check_is_fitted

        from deepdip.predict.core import predict_chunk

        check_is_fitted(self, "nets_")
        X = self._images(X)
        if tuple(X.shape[1:]) != tuple(self.image_shape_):
            raise DeepdipValueError(f"X has cutouts of shape {list(X.shape[1:])}; the network was fitted on "
                                    f"{list(self.image_shape_)}")
        extra = _ebv(ebv, len(X)).astype(np.float32)[:, None]
        out = np.empty((len(X), self.zgrid_.nbins), dtype=np.float32)
        for start in range(0, len(X), chunk_size):
            rows = slice(start, start + chunk_size)
            out[rows] = predict_chunk(self.nets_, X[rows], extra[rows], tta=self.tta)
        return out


#: Checks of ``sklearn.utils.estimator_checks`` the baseline wrappers are expected to fail, and why
#: (``parametrize_with_checks(..., expected_failed_checks=...)`` in tests/test_sklearn.py).
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_regressors_train": "asserts score > 0.5, an R2 threshold; score is -sigma_MAD of dz (<= 0, higher is "
                              "better), the photo-z figure of merit",
}
#: The checks of the parameter contract, for estimators whose input no data check can make (CNN, BPZ).
PARAMETER_CHECKS = ("check_get_params_invariance", "check_set_params", "check_no_attributes_set_in_init",
                    "check_parameters_default_constructible", "check_do_not_raise_errors_in_init_or_set_params",
                    "check_estimator_cloneable", "check_estimator_repr", "check_mixin_order", "check_valid_tag_types")

__all__ = ["BASELINES", "BPZPhotoz", "BoostPhotoz", "CNNPhotoz", "EXPECTED_FAILED_CHECKS", "KNNPhotoz",
           "PARAMETER_CHECKS", "POINTS", "RFPhotoz"]
