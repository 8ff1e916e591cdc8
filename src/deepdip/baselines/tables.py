"""Catalogue-only use: a photometric table (FITS, Parquet, CSV) fits and predicts the baselines, no images.

A user with only a catalogue of fluxes or magnitudes runs the very code a cutout store runs (the
baselines' array face, :meth:`~deepdip.baselines.base.CatalogueBaseline.fit_photometry`) and gets
the same photo-z catalogue (``deepdip evaluate`` reads it as any other)::

    from deepdip.baselines import make_baseline
    from deepdip.baselines.tables import read_photometry_table, fit_table, predict_table_catalog
    table = read_photometry_table("gst_tests_small.fits", survey="sdss", flux_columns="MODELFLUX",
                                  err_columns="MODELFLUX_IVAR", extinction_columns="EXTINCTION",
                                  columns={"z_spec": "Z"})
    knn = fit_table(make_baseline("knn", ZGrid(0.0, 0.6, 270)), table, fold=0)
    predict_table_catalog(knn, table, table.split_rows("test", fold=0), "knn.parquet")

or ``deepdip baseline --table gst_tests_small.fits --survey sdss --flux-columns MODELFLUX ...``.

How the table is read (every choice is a keyword of :func:`read_photometry_table` and a flag of
``deepdip baseline --table``):

- **Bands**: ``flux_columns`` *or* ``mag_columns``, and ``err_columns``, are column patterns: with
  ``{band}`` one column per band (``MODELFLUX_{band}``, ``mag_{band}_lsst``; names match in any
  case), without it one 2-D column of one value per band in band order (SDSS's ``MODELFLUX[5]``;
  Parquet list columns too). Errors are 1-sigma errors, or inverse variances (``err_kind="ivar"``,
  chosen by ``"auto"`` when the error pattern contains ``ivar``), in the unit of the values.
- **Fluxes** are in ``flux_unit`` (nanomaggy by default; any astropy flux density, as ``ingest``).
  NaN or ``nonobserved_val`` flux, or an error that is not positive and finite (an inverse
  variance of 0), is an unobserved band. ``nondetect_val`` (NaN allowed) marks a non-detection:
  flux 0 with the row's error when it has one, else unobserved.
- **Magnitudes** are AB, converted as RAIL's tables are (:mod:`rail.deepdip.tables`, the same rules):
  ``flux = 10**(-0.4 (mag - 22.5))`` nanomaggies, ``flux_err = flux ln(10)/2.5 mag_err``;
  ``nondetect_val`` (99 by default; NaN means NaN marks non-detections) is flux 0 with the flux
  of ``mag_limits[band]`` as its error (or, without a limit, the row's error column when it holds
  a limiting magnitude, > 5, BPZ's convention); ``nonobserved_val`` (-99), another non-finite
  magnitude or a bad error is unobserved.
- **Other columns** as in ``ingest`` (``columns``, store name -> table name, else the usual
  spellings, :data:`deepdip.ingest.options.STANDARD_COLUMNS`): ``z_spec`` (required; NaN = unknown,
  such rows are predicted but never fitted on), ``id`` (else row numbers), ``ebv``, ``ra``/``dec``
  (copied into the photo-z catalogue), ``fold`` (else :func:`deepdip.store.assign_folds` on the ids
  with ``fold_seed``, as a store's folds are).
- **Galactic extinction**: ``extinction_columns`` (A_b in magnitudes per band, e.g. SDSS's
  ``EXTINCTION``), else an ``ebv`` column times ``extinction_coeffs`` (band -> A_b/E(B-V)) or the
  Fitzpatrick 99 law at the filters (:func:`deepdip.extinction.extinction_coefficients`), else none
  (a :class:`TableWarning`: the fluxes are taken as already dereddened).

Refused with one line (:class:`~deepdip.errors.DeepdipValueError`): a missing column, flux columns
that hold magnitudes or magnitude columns that hold fluxes, a band with no usable value in any row,
NaN or negative extinction, duplicate ids, folds out of range.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.photometry import Photometry, flux_factors, flux_to_mag, mag_to_flux

#: d flux / flux per unit magnitude error (RAIL's tables use the same first-order propagation).
_LN10_OVER_2P5 = math.log(10.0) / 2.5
#: Store column names a table may map with ``columns`` (``--column NAME=COLUMN``).
MAPPABLE = ("id", "z_spec", "ebv", "ra", "dec", "fold")
#: RAIL's sentinels: a magnitude of 99 is a non-detection, -99 a band not observed.
MAG_NONDETECT, NONOBSERVED = 99.0, -99.0
#: AB magnitudes of real sources lie in [-5, 50]; magnitude columns whose values mostly lie outside hold fluxes.
_MAG_RANGE = (-5.0, 50.0)


class TableWarning(UserWarning):
    """Something about a photometric table the user should know (no id column, no extinction column)."""


@dataclass
class PhotometryTable:
    """A photometric catalogue read for the baselines: what a store's catalogue gives them, without images.

    Attributes
    ----------
    photometry : Photometry
        Observed fluxes, errors (nanomaggies) and A_b of every row.
    ids, z_spec, fold : arrays of length n
        int64 unique ids, float64 spec-z (NaN = unknown), int8 folds in ``0..n_folds-1``.
    columns : dict
        Columns copied into the photo-z catalogue: ``ra``/``dec`` when the table has them, and
        ``mag_<band>``, the measured AB magnitude corrected for extinction (NaN when not positive).
    source : str
        The file read (empty for an in-memory table).
    record : dict
        How the table was read (columns, units, sentinels, folds): written into the catalogue metadata.
    """

    photometry: Photometry
    ids: np.ndarray
    z_spec: np.ndarray
    fold: np.ndarray
    n_folds: int
    columns: dict = field(default_factory=dict)
    source: str = ""
    record: dict = field(default_factory=dict)
    survey: str | None = None
    has_filters: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def bands(self) -> tuple:
        return tuple(self.photometry.bands)

    def split_rows(self, split: str, fold: int | None = None) -> np.ndarray:
        """Row indices of ``split``: ``train`` (fold != K), ``test`` (fold == K) or ``all``, as a store's."""
        if split == "all":
            return np.arange(len(self), dtype=np.int64)
        if split not in ("train", "test"):
            raise DeepdipValueError(f"unknown split {split!r}: use train, test or all")
        if fold is None or not 0 <= int(fold) < self.n_folds:
            raise DeepdipValueError(f"--fold must be in 0..{self.n_folds - 1} for this table, got {fold}")
        mask = self.fold == int(fold) if split == "test" else self.fold != int(fold)
        return np.flatnonzero(mask).astype(np.int64)


# ---------------------------------------------------------------------------------------------- reading
def _as_columns(source) -> tuple[dict, str]:
    """``source`` (a path, a dict of arrays, a pandas DataFrame, an astropy Table) as a dict of numpy arrays."""
    if isinstance(source, (str, Path)):
        from deepdip.ingest.catalog import read_table

        return read_table(source), str(source)
    if hasattr(source, "colnames"):  # astropy Table
        return {c: np.asarray(source[c]) for c in source.colnames}, ""
    if hasattr(source, "columns") and hasattr(source, "to_numpy"):  # pandas DataFrame
        from deepdip.ingest.catalog import _stack_lists

        return {str(c): _stack_lists(source[c].to_numpy()) for c in source.columns}, ""
    if isinstance(source, dict):
        return {str(k): np.asarray(v) for k, v in source.items()}, ""
    raise DeepdipValueError(f"a photometric table is a path, a dict of arrays, a DataFrame or an astropy Table, "
                            f"not {type(source).__name__}")


def _lookup(table: dict, name: str, what: str) -> np.ndarray:
    lower = {c.lower(): c for c in table}
    if name.lower() not in lower:
        shown = ", ".join(list(table)[:20]) + (", ..." if len(table) > 20 else "")
        raise DeepdipValueError(f"the table has no column {name!r} ({what}); it has: {shown}")
    return np.asarray(table[lower[name.lower()]])


def _per_band(table: dict, pattern: str, bands, what: str) -> np.ndarray:
    """``[n, B]`` float64: columns ``pattern.format(band=b)``, or one 2-D column ``pattern``."""
    if "{band}" in pattern:
        return np.stack([_float(_lookup(table, pattern.format(band=b), what), pattern.format(band=b))
                         for b in bands], axis=1)
    values = _lookup(table, pattern, what)
    if values.ndim != 2 or values.shape[1] != len(bands):
        raise DeepdipValueError(f"column {pattern!r} ({what}) must hold one value per band ({len(bands)}: "
                                f"{','.join(bands)}), got shape {list(values.shape)}; for one column per band "
                                "use a pattern with {band}")
    return _float(values, pattern)


def _float(values: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepdipValueError(f"column {name!r} is not numeric") from None


def _resolve_bands(survey, bands, filters) -> tuple[tuple, tuple, bool]:
    """Band names, speclite filter names, and whether those are real filters (not the band names)."""
    preset = None
    if survey:
        from deepdip.surveys import load_survey

        preset = load_survey(survey)
    bands = tuple(_split(bands)) or (tuple(preset.bands) if preset else ())
    if not bands:
        raise DeepdipValueError("give the bands of the table (--bands u,g,r,i,z) or a survey preset (--survey sdss)")
    filters = tuple(_split(filters))
    if not filters and preset is not None:
        by_band = dict(zip(preset.bands, preset.filters))
        if all(b in by_band for b in bands):
            filters = tuple(by_band[b] for b in bands)
    if filters and len(filters) != len(bands):
        raise DeepdipValueError(f"--filters has {len(filters)} names for {len(bands)} bands")
    return bands, filters or bands, bool(filters)


def _split(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(s) for s in value]


def _is_sentinel(values: np.ndarray, sentinel) -> np.ndarray:
    if sentinel is None:
        return np.zeros(values.shape, dtype=bool)
    if math.isnan(float(sentinel)):
        return np.isnan(values)
    return np.isclose(values, float(sentinel), rtol=0.0, atol=1e-6)


def _fluxes(values, sigma, bands, flux_pattern, flux_unit, nondetect, nonobserved):
    """Fluxes in nanomaggies from flux columns (see the module docstring for the sentinels)."""
    factor = flux_factors(bands, flux_unit)[None, :]
    nondet = _is_sentinel(values, nondetect)
    unobserved = _is_sentinel(values, nonobserved) | (~np.isfinite(values) & ~nondet)
    good_err = np.isfinite(sigma) & (sigma > 0)
    flux = np.where(nondet, 0.0, values) * factor
    err = sigma * factor
    bad = unobserved | ~good_err
    flux[bad], err[bad] = np.nan, np.nan
    _refuse_magnitudes_as_fluxes(flux, bands, flux_pattern)
    return flux, err


def _refuse_magnitudes_as_fluxes(flux, bands, pattern) -> None:
    """Real fluxes span decades; AB magnitudes read as fluxes span a factor < 2 inside [5, 40]."""
    for j, band in enumerate(bands):
        v = flux[:, j][np.isfinite(flux[:, j])]
        if len(v) < 10:
            continue
        lo, hi = np.percentile(v, [1, 99])
        if 5.0 <= lo and hi <= 40.0 and hi / lo < 2.0:
            raise DeepdipValueError(f"flux column {pattern.format(band=band)!r} holds values {lo:.1f}-{hi:.1f} "
                                    f"({band}): those look like AB magnitudes; give them with --mag-columns")


def _magnitudes(mags, mag_errs, bands, mag_pattern, err_pattern, nondetect, nonobserved, limits):
    """Fluxes in nanomaggies from AB magnitudes, with RAIL's sentinel rules (module docstring)."""
    nondetect = MAG_NONDETECT if nondetect is None else nondetect
    nondet = _is_sentinel(mags, nondetect)
    unobserved = _is_sentinel(mags, nonobserved) | (~np.isfinite(mags) & ~nondet)
    detected = ~nondet & ~unobserved
    unobserved |= detected & ~(np.isfinite(mag_errs) & (mag_errs > 0))
    detected &= ~unobserved
    for j, band in enumerate(bands):
        v = mags[detected[:, j], j]
        outside = (v < _MAG_RANGE[0]) | (v > _MAG_RANGE[1])
        if len(v) and outside.mean() > 0.05:
            raise DeepdipValueError(
                f"magnitude column {mag_pattern.format(band=band)!r} has {100 * outside.mean():.0f} % of its values "
                f"outside [{_MAG_RANGE[0]:g}, {_MAG_RANGE[1]:g}] ({band}): fluxes? give them with --flux-columns")
    flux = np.full(mags.shape, np.nan)
    err = np.full(mags.shape, np.nan)
    flux[detected] = mag_to_flux(mags[detected])
    err[detected] = flux[detected] * _LN10_OVER_2P5 * mag_errs[detected]
    for j, band in enumerate(bands):
        rows = nondet[:, j]
        if not rows.any():
            continue
        flux[rows, j] = 0.0
        if band in limits:
            err[rows, j] = float(mag_to_flux(float(limits[band])))
            continue
        in_err = mag_errs[rows, j]
        if not np.all(np.isfinite(in_err) & (in_err > 5.0)):
            raise DeepdipValueError(
                f"{int(rows.sum())} non-detections ({nondetect}) in {mag_pattern.format(band=band)!r} but no "
                f"--mag-limit {band}=MAG, and {err_pattern.format(band=band)!r} does not hold limiting magnitudes "
                "there: the limiting magnitude gives their flux error")
        err[rows, j] = mag_to_flux(in_err)
    return flux, err


def _extinction(table, bands, filters, has_filters, ext_pattern, ebv_name, coeffs, n):
    """A_b [n, B] in magnitudes, and a note of where it comes from."""
    if ext_pattern:
        a_b = _per_band(table, ext_pattern, bands, "extinction A_b, mag")
        source = f"A_b from {ext_pattern}"
        what = f"extinction column {ext_pattern!r}"
    elif ebv_name is not None:
        ebv = _float(np.asarray(table[ebv_name]), ebv_name)
        coeffs = dict(coeffs or {})
        if all(b in coeffs for b in bands):
            r = np.array([float(coeffs[b]) for b in bands])
            law = "given by the user (extinction_coeffs)"
        elif has_filters:
            from deepdip.extinction import EXTINCTION_LAW, extinction_coefficients

            r, law = extinction_coefficients(tuple(filters)), EXTINCTION_LAW
        else:
            raise DeepdipValueError(f"dereddening with the E(B-V) column {ebv_name!r} needs the bands' filters "
                                    "(--filters or --survey) or --extinction-coeff BAND=R for every band")
        if ebv.ndim != 1:
            raise DeepdipValueError(f"E(B-V) column {ebv_name!r} must be 1-D")
        a_b = ebv[:, None] * r[None, :]
        source = f"E(B-V) from {ebv_name} x A_b/E(B-V) {law}"
        what = f"E(B-V) column {ebv_name!r}"
    else:
        warnings.warn("the table has no E(B-V) (--column ebv=NAME) or A_b (--extinction-columns) column: its fluxes "
                      "are used as they are (already dereddened)", TableWarning, stacklevel=3)
        return np.zeros((n, len(bands))), "none"
    bad = ~np.isfinite(a_b) | (a_b < 0)
    if bad.any():
        raise DeepdipValueError(f"{what} is NaN or negative in {int(bad.any(axis=1).sum())} rows")
    return a_b, source


def read_photometry_table(source, *, survey: str | None = None, bands=None, filters=None,
                          flux_columns: str | None = None, mag_columns: str | None = None,
                          err_columns: str | None = None, err_kind: str = "auto", flux_unit: str = "nanomaggy",
                          nondetect_val: float | None = None, nonobserved_val: float | None = NONOBSERVED,
                          mag_limits: dict | None = None, columns: dict | None = None,
                          extinction_columns: str | None = None, extinction_coeffs: dict | None = None,
                          extra_columns=(), n_folds: int = 5, fold_seed: int = 0) -> PhotometryTable:
    """Read a photometric table (a FITS/Parquet/CSV path, a dict of arrays, a DataFrame, an astropy Table).

    See the module docstring for every rule. ``survey`` (a deepdip preset) gives the default bands
    and their filters; ``extra_columns`` are further measured features (log10 of positive-only ones,
    as the store face scales them).
    """
    from deepdip.ingest.catalog import _find, _ids
    from deepdip.ingest.options import IngestOptions
    from deepdip.store import assign_folds

    if (flux_columns is None) == (mag_columns is None):
        raise DeepdipValueError("give the band columns as fluxes (--flux-columns PATTERN) or as magnitudes "
                                "(--mag-columns PATTERN), one of the two")
    if not err_columns:
        raise DeepdipValueError("give the error columns (--err-columns PATTERN, e.g. MODELFLUX_IVAR or magerr_{band})")
    if err_kind not in ("auto", "sigma", "ivar"):
        raise DeepdipValueError(f"--err-kind must be auto, sigma or ivar, got {err_kind!r}")
    if not 1 <= int(n_folds) <= 127:
        raise DeepdipValueError(f"--folds must be in 1..127, got {n_folds}")
    if int(fold_seed) < 0:
        raise DeepdipValueError(f"--fold-seed must be a non-negative integer, got {fold_seed}")
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(MAPPABLE))
    if unknown:
        raise DeepdipValueError(f"--column {unknown[0]}=...: a table maps only {', '.join(MAPPABLE)}")
    bands, filters, has_filters = _resolve_bands(survey, bands, filters)
    table, path = _as_columns(source)
    if not table:
        raise DeepdipValueError(f"the table {path} has no columns")
    n = len(next(iter(table.values())))
    if n == 0:
        raise DeepdipValueError(f"the table {path} has no rows")

    pattern = flux_columns if flux_columns is not None else mag_columns
    assert pattern is not None
    values = _per_band(table, pattern, bands, "fluxes" if flux_columns is not None else "magnitudes")
    errors = _per_band(table, err_columns, bands, "errors")
    ivar = err_kind == "ivar" or (err_kind == "auto" and "ivar" in err_columns.lower())
    if ivar:
        with np.errstate(divide="ignore", invalid="ignore"):
            errors = np.where(errors > 0, 1.0 / np.sqrt(errors), np.nan)  # ivar 0 = not measured
    if flux_columns is not None:
        flux, flux_err = _fluxes(values, errors, bands, flux_columns, flux_unit, nondetect_val, nonobserved_val)
    else:
        assert mag_columns is not None
        flux, flux_err = _magnitudes(values, errors, bands, mag_columns, err_columns, nondetect_val,
                                     nonobserved_val, dict(mag_limits or {}))
    observed = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
    for j, band in enumerate(bands):
        if not observed[:, j].any():
            raise DeepdipValueError(f"band {band} ({pattern.format(band=band)}) has no usable value in any of the "
                                    f"{n} rows (NaN, sentinel or bad error everywhere)")

    options = IngestOptions(columns=columns)
    try:
        ebv_name = _find(table, "ebv", options, required=False)
        z_name = _find(table, "z_spec", options, required=True, why=" (the spec-z the baselines fit on)")
        with warnings.catch_warnings(record=True) as caught:  # ingest's rules for ids, in a table's words
            warnings.simplefilter("always")
            ids, _, kept = _ids(table, options, need_keys=False)
    except DeepdipError as exc:
        raise DeepdipValueError(str(exc).replace("catalogue", "table")) from None
    for w in caught:
        warnings.warn(str(w.message).replace("catalogue", "the table"), TableWarning, stacklevel=2)
    assert z_name is not None
    z_spec = _float(np.asarray(table[z_name]), z_name).reshape(-1)
    if z_spec.shape != (n,):
        raise DeepdipValueError(f"z_spec column {z_name!r} must be 1-D")

    if extinction_columns and "ebv" in columns:
        raise DeepdipValueError("give Galactic extinction once: --extinction-columns (A_b) or --column ebv=NAME")
    a_b, ext_source = _extinction(table, bands, filters, has_filters, extinction_columns,
                                  None if extinction_columns else ebv_name, extinction_coeffs, n)

    fold_name = _find(table, "fold", options, required=False) if "fold" in columns else None
    if fold_name is not None:
        raw = _float(np.asarray(table[fold_name]), fold_name)
        if not np.all(np.isfinite(raw) & (raw == np.round(raw)) & (raw >= 0) & (raw < int(n_folds))):
            raise DeepdipValueError(f"fold column {fold_name!r} must hold integers in 0..{int(n_folds) - 1} "
                                    "(--folds K)")
        fold = raw.astype(np.int8)
    else:
        fold = assign_folds(ids, n_folds=int(n_folds), seed=int(fold_seed))

    extra_names = tuple(_split(extra_columns))
    extra = None
    if extra_names:
        from deepdip.photometry.catalog import _TRUTH, _feature_scale

        for c in extra_names:
            if _TRUTH.match(c) or c.lower() == z_name.lower():
                raise DeepdipValueError(f"--extra-columns {c}: a label or truth column; baselines use measured "
                                        "columns only")
        extra = np.stack([_feature_scale(_float(_lookup(table, c, "extra feature"), c)) for c in extra_names], axis=1)
    phot = Photometry(flux, flux_err, a_b, bands, filters, extra, extra_names)

    passthrough = dict(kept)  # the original ids when they are not integers ('source_id')
    for name in ("ra", "dec"):
        found = _find(table, name, options, required=False)
        if found is not None:
            passthrough[name] = _float(np.asarray(table[found]), found)
    dered, _ = phot.dereddened()
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, band in enumerate(bands):
            passthrough[f"mag_{band}"] = np.where(dered[:, j] > 0, flux_to_mag(dered[:, j]), np.nan)

    record = {"table": path, "n_rows": int(n), "bands": list(bands), "filters": list(filters) if has_filters else [],
              "flux_columns" if flux_columns is not None else "mag_columns": pattern, "err_columns": err_columns,
              "err_kind": "ivar" if ivar else "sigma", "z_spec": z_name, "extinction": ext_source,
              "n_folds": int(n_folds), "fold": fold_name or f"assign_folds(id, seed={int(fold_seed)})"}
    if flux_columns is not None:
        record["flux_unit"] = flux_unit
    record["nondetect_val"] = None if nondetect_val is None else float(nondetect_val)
    record["nonobserved_val"] = None if nonobserved_val is None else float(nonobserved_val)
    if mag_limits:
        record["mag_limits"] = {str(k): float(v) for k, v in mag_limits.items()}
    if extra_names:
        record["extra_columns"] = list(extra_names)
    return PhotometryTable(phot, ids.astype(np.int64), z_spec, fold, int(n_folds), passthrough, path, record,
                           survey=survey, has_filters=has_filters)


# ---------------------------------------------------------------------------------------------- fit / predict
def check_table_fit(estimator, table: PhotometryTable) -> None:
    """Refuse, before any fitting, a baseline that cannot fit on ``table`` (no grid, BPZ without filters, bad band)."""
    if estimator.zgrid is None:
        raise DeepdipValueError("a table has no survey grid of its own: give the baseline a zgrid "
                                "(--survey, or --zmax/--nbins)")
    if estimator.name == "bpz" and not table.has_filters:
        raise DeepdipValueError("template fitting needs the bands' filter curves: --filters (speclite names or "
                                "rail:<curve>, one per band) or --survey")
    estimator._check_bands(table)  # ref_band/prior_band must name one of the table's bands


def fit_table(estimator, table: PhotometryTable, fold: int):
    """Fit a baseline on the rows of ``table`` with ``fold != fold`` and a known z_spec (the store face's rule).

    The estimator needs a ``zgrid`` (its constructor's). Returns the estimator.
    """
    check_table_fit(estimator, table)
    if estimator.settings["ref_band"] is None and table.survey:
        from deepdip.surveys import load_survey

        band = load_survey(table.survey).get("mag_limit_band")
        estimator._store_ref_band = band if band in table.bands else None  # as the store face chooses it
    rows = table.split_rows("train", fold=fold)
    z = table.z_spec[rows]
    rows, z = rows[np.isfinite(z)], z[np.isfinite(z)]
    if estimator.uses_training_redshifts and len(rows) == 0:
        raise DeepdipValueError(f"no training galaxy with a known z_spec outside fold {fold}")
    estimator.fit_photometry(table.photometry.subset(rows), z)
    estimator.fold_ = int(fold)
    estimator.extra_columns_ = tuple(table.photometry.extra_names)
    return estimator


def predict_table_catalog(estimator, table: PhotometryTable, rows, out, *, overwrite: bool = False,
                          chunk_size: int = 20000, progress: bool = True):
    """Predict ``rows`` of ``table`` into the photo-z catalogue ``out`` (the format every estimator writes).

    The catalogue's metadata holds the estimator's config plus ``"table"``, how the table was read.
    """
    from tqdm.auto import tqdm

    from deepdip.catalog import CatalogWriter

    rows = np.asarray(rows, dtype=np.int64)
    inputs = (table.source,) if table.source else ()
    config = {**estimator.config(), "table": table.record}
    with CatalogWriter(out, estimator.zgrid_, method=estimator.name, config=config, overwrite=overwrite,
                       inputs=inputs) as writer:
        bar = tqdm(total=len(rows), desc=f"predict {estimator.name}", unit="gal", disable=not progress)
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start:start + chunk_size]
            pdf = estimator.predict_pdf_photometry(table.photometry.subset(chunk))
            writer.write(table.ids[chunk], pdf, z_spec=table.z_spec[chunk], fold=table.fold[chunk],
                         extra={c: v[chunk] for c, v in table.columns.items()})
            bar.update(len(chunk))
        bar.close()
    return out


__all__ = ["MAPPABLE", "PhotometryTable", "TableWarning", "check_table_fit", "fit_table", "predict_table_catalog",
           "read_photometry_table"]
