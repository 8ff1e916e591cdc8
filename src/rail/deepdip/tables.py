"""RAIL's magnitude tables to deepdip's :class:`~deepdip.photometry.Photometry` (fluxes in nanomaggies).

RAIL catalogues hold AB magnitudes and their errors in the columns ``bands`` / ``err_bands``, with
two sentinels (RAIL's ``SHARED_PARAMS``):

- ``nondetect_val`` (99 by default; NaN means "NaN marks a non-detection"): the band was observed
  but the object not detected. RAIL's machine-learning stages put the band's ``mag_limits`` value
  in its place; BPZ gives it zero flux with the 1-sigma limiting flux as error. deepdip's
  catalogue methods work on fluxes, whose asinh magnitudes are defined at zero flux, so a
  non-detection becomes exactly that measurement: flux 0 with error ``flux(mag_limits[band])``.
- ``nonobserved_val`` (-99): the band was not observed; so is a non-finite magnitude (when NaN is
  not the non-detection sentinel) or a non-finite or non-positive error. deepdip marks it as
  unobserved (NaN flux), which every baseline handles.

Detected bands: ``flux = 10**(-0.4 (mag - 22.5))`` nanomaggies (:func:`deepdip.photometry.mag_to_flux`)
and ``flux_err = flux * ln(10) / 2.5 * mag_err`` (first-order propagation, the inverse of the
``1.0857 flux_err / flux`` that turns flux errors into magnitude errors).

Galactic extinction: RAIL tables are usually dereddened already (RAIL's ``Dereddener`` stage);
with ``ebv_col`` the table's E(B-V) becomes A_b through the Fitzpatrick 99 law at the filters.
"""

from __future__ import annotations

import math

import numpy as np

from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.photometry import Photometry, mag_to_flux

#: d flux / flux per unit magnitude error.
_LN10_OVER_2P5 = math.log(10.0) / 2.5


def _opt(config, key: str, default=None):
    """``config[key]`` or ``default``: for a plain dict or a ceci ``StageConfig`` (whose ``get`` returns the
    parameter object, not its value)."""
    try:
        return config[key]
    except KeyError:
        return default


def column(table, name: str) -> np.ndarray:
    """One column of a RAIL table (a dict of arrays, a pandas DataFrame, an astropy Table...) as float64."""
    try:
        values = table[name]
    except (KeyError, ValueError, IndexError):
        available = ", ".join(map(str, list(table.keys())[:20])) if hasattr(table, "keys") else "?"
        raise DeepdipValueError(f"the input table has no column {name!r} (it has: {available})") from None
    return np.asarray(values, dtype=np.float64).reshape(-1)


def resolve_filters(config) -> tuple:
    """Speclite filter names of the bands: ``filters``, else those of the deepdip ``survey`` preset.

    Without either, the band columns' names stand in: enough for kNN, random forest and boosted
    trees without E(B-V), which never look at a filter curve; BPZ and ``ebv_col`` need real ones.
    """
    bands = list(config["bands"])
    filters = list(_opt(config, "filters") or [])
    if not filters and _opt(config, "survey"):
        from deepdip.surveys import load_survey

        filters = list(load_survey(config["survey"]).filters)
        if len(filters) != len(bands):
            raise DeepdipValueError(f"survey {config['survey']!r} has {len(filters)} filters for {len(bands)} bands; "
                                    "give filters=[...] (speclite names or rail:<curve>, one per band)")
    if filters and len(filters) != len(bands):
        raise DeepdipValueError(f"filters has {len(filters)} names for {len(bands)} bands")
    return tuple(filters) if filters else ()


def table_photometry(table, config, *, need_filters: bool = False) -> Photometry:
    """The :class:`Photometry` of a RAIL magnitude table under the stage's ``config``.

    ``config`` keys: ``bands``, ``err_bands``, ``nondetect_val``, ``nonobserved_val``,
    ``mag_limits`` (per band column, needed for the bands that hold non-detections), and the
    optional ``filters`` / ``survey`` / ``ebv_col`` / ``extra_columns`` (more measured columns used
    as features, log10 of positive-only ones, as the store face scales them). The band names of the result are the band
    column names (so ``ref_band`` is a column name, as in RAIL).
    """
    bands, errs = list(config["bands"]), list(config["err_bands"])
    if len(bands) != len(errs):
        raise DeepdipValueError(f"{len(bands)} bands but {len(errs)} err_bands: one error column per band")
    nondetect, nonobserved = float(config["nondetect_val"]), float(_opt(config, "nonobserved_val", -99.0))
    limits = dict(_opt(config, "mag_limits") or {})
    mags = np.stack([column(table, b) for b in bands], axis=1)
    mag_errs = np.stack([column(table, e) for e in errs], axis=1)

    nondet = np.isnan(mags) if math.isnan(nondetect) else np.isclose(mags, nondetect)
    unobserved = np.isclose(mags, nonobserved) | (~np.isfinite(mags) & ~nondet)
    detected = ~nondet & ~unobserved
    unobserved |= detected & ~(np.isfinite(mag_errs) & (mag_errs > 0))
    detected &= ~unobserved

    flux = np.full(mags.shape, np.nan)
    flux_err = np.full(mags.shape, np.nan)
    flux[detected] = mag_to_flux(mags[detected])
    flux_err[detected] = flux[detected] * _LN10_OVER_2P5 * mag_errs[detected]
    for j, band in enumerate(bands):
        if nondet[:, j].any():
            if band not in limits:
                raise DeepdipValueError(f"{int(nondet[:, j].sum())} non-detections ({nondetect}) in {band!r} but no "
                                        f"mag_limits[{band!r}]: the limiting magnitude gives their flux error")
            flux[nondet[:, j], j] = 0.0
            flux_err[nondet[:, j], j] = float(mag_to_flux(float(limits[band])))

    filters = resolve_filters(config)
    ebv_col = _opt(config, "ebv_col") or ""
    if (need_filters or ebv_col) and not filters:
        why = "template fitting" if need_filters else f"dereddening with {ebv_col!r}"
        raise DeepdipValueError(f"{why} needs the bands' filter curves: give filters=[speclite names or "
                                "rail:<curve>, one per band] or survey=<deepdip preset>")
    names = filters or tuple(bands)
    extra_names = tuple(_opt(config, "extra_columns") or ())
    extra = None
    if extra_names:
        from deepdip.photometry.catalog import _feature_scale  # the store face's scaling of extra features

        extra = np.stack([_feature_scale(column(table, c)) for c in extra_names], axis=1)
    if ebv_col:
        ebv = column(table, ebv_col)
        if not np.all(np.isfinite(ebv) & (ebv >= 0)):
            raise DeepdipError(f"column {ebv_col!r} holds NaN or negative E(B-V)")
        return Photometry.from_ebv(flux, flux_err, ebv, tuple(bands), names, extra, extra_names)
    return Photometry(flux, flux_err, np.zeros(flux.shape), tuple(bands), names, extra, extra_names)


def magnitude_table(phot: Photometry, *, nondetect_val: float = 99.0, mag_err_col: str = "mag_err_{band}",
                    mag_col: str = "mag_{band}") -> dict:
    """The inverse: a RAIL-style magnitude table of measured fluxes (for tests and examples).

    A band with non-positive flux is a non-detection (``nondetect_val``; its error column holds
    the 1-sigma limiting magnitude of the flux error, BPZ's convention); an unobserved band gets
    ``-99``.
    """
    from deepdip.photometry import flux_to_mag

    out = {}
    for j, band in enumerate(phot.bands):
        f, e = phot.flux[:, j], phot.flux_err[:, j]
        ok = phot.observed[:, j]
        det = ok & (f > 0)
        mag = np.full(len(f), -99.0)
        err = np.full(len(f), -99.0)
        mag[det] = flux_to_mag(f[det])
        err[det] = e[det] / (f[det] * _LN10_OVER_2P5)
        mag[ok & ~det] = nondetect_val
        err[ok & ~det] = flux_to_mag(e[ok & ~det])
        out[mag_col.format(band=band)] = mag
        out[mag_err_col.format(band=band)] = err
    return out
