"""Catalogue photometry: the measured fluxes a catalogue method sees, from a cutout store or from arrays.

Baselines see only what a survey measures: fluxes with errors (nanomaggies), Galactic reddening,
and optionally a measured size. Truth columns of mocks (``z_true``, ``mag_<band>``...) are refused
so that a baseline can never be better than the photometry allows. A store's ``ebv`` becomes A_b
with the coefficients the store records (:func:`deepdip.extinction.store_extinction_coefficients`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.extinction import extinction_coefficients, store_extinction_coefficients

# Columns that hold the answer (or the noiseless inputs) in a mock and must never be features.
_TRUTH = re.compile(r"^(id|fold|z_spec|z_true|z|redshift|mag_.*|.*true.*|ebv)$", re.IGNORECASE)


@dataclass
class Photometry:
    """Measured fluxes of ``n`` galaxies in ``B`` bands.

    Attributes
    ----------
    flux, flux_err : float64 [n, B]
        Observed (not dereddened) fluxes and 1-sigma errors in nanomaggies (mag = 22.5 - 2.5 log10 flux,
        :func:`deepdip.photometry.flux_to_mag`). NaN flux or non-positive/NaN error = band not observed.
    extinction : float64 [n, B]
        Galactic extinction A_b in magnitudes.
    bands, filters : tuple of str
        Band names and their speclite filter names.
    extra : float64 [n, E] or None
        Extra measured features (e.g. a size), already in the scale they should be used in.
    """

    flux: np.ndarray
    flux_err: np.ndarray
    extinction: np.ndarray
    bands: tuple
    filters: tuple
    extra: np.ndarray | None = None
    extra_names: tuple = field(default_factory=tuple)

    def __post_init__(self):
        self.flux = np.asarray(self.flux, dtype=np.float64)
        self.flux_err = np.asarray(self.flux_err, dtype=np.float64)
        self.extinction = np.broadcast_to(np.asarray(self.extinction, dtype=np.float64), self.flux.shape)
        if self.flux.ndim != 2 or self.flux.shape != self.flux_err.shape or self.flux.shape[1] != len(self.bands):
            raise ValueError("flux and flux_err must be [n, n_bands] with one column per band")
        if len(self.filters) != len(self.bands):
            raise ValueError("one speclite filter name per band is needed")

    def __len__(self) -> int:
        return self.flux.shape[0]

    @property
    def observed(self) -> np.ndarray:
        """bool [n, B]: the band has a usable measurement (finite flux, positive finite error)."""
        return np.isfinite(self.flux) & np.isfinite(self.flux_err) & (self.flux_err > 0)

    def dereddened(self) -> tuple[np.ndarray, np.ndarray]:
        """Extinction-corrected flux and error; unobserved bands come back as NaN."""
        factor = 10 ** (0.4 * self.extinction)
        ok = self.observed
        return np.where(ok, self.flux * factor, np.nan), np.where(ok, self.flux_err * factor, np.nan)

    def subset(self, rows) -> Photometry:
        return Photometry(self.flux[rows], self.flux_err[rows], self.extinction[rows], self.bands,
                          self.filters, None if self.extra is None else self.extra[rows], self.extra_names)

    def concat(self, other: Photometry) -> Photometry:
        """These galaxies followed by ``other``'s (same bands and extra columns)."""
        if tuple(other.bands) != tuple(self.bands) or tuple(other.extra_names) != tuple(self.extra_names):
            raise ValueError("photometry of other bands or extra columns cannot be concatenated")
        extra = None if self.extra is None else np.concatenate([self.extra, other.extra])
        return Photometry(np.concatenate([self.flux, other.flux]), np.concatenate([self.flux_err, other.flux_err]),
                          np.concatenate([self.extinction, other.extinction]), self.bands, self.filters, extra,
                          self.extra_names)

    def without(self, missing) -> Photometry:
        """The same galaxies with the bands ``missing`` (bool [n, B], or [B] for every galaxy) unobserved:
        NaN flux and error, the one way a band is marked not observed."""
        missing = np.broadcast_to(np.asarray(missing, dtype=bool), self.flux.shape)
        flux, err = self.flux.copy(), self.flux_err.copy()
        flux[missing], err[missing] = np.nan, np.nan
        return dataclasses.replace(self, flux=flux, flux_err=err)

    def select_bands(self, keep) -> Photometry:
        """Only the bands where ``keep`` (bool per band) is true."""
        cols = np.flatnonzero(np.asarray(keep, dtype=bool))
        return Photometry(self.flux[:, cols], self.flux_err[:, cols], self.extinction[:, cols],
                          tuple(self.bands[j] for j in cols), tuple(self.filters[j] for j in cols),
                          self.extra, self.extra_names)

    @classmethod
    def from_ebv(cls, flux, flux_err, ebv, bands, filters, extra=None, extra_names=()) -> Photometry:
        """Build from E(B-V) per galaxy, converted with :func:`extinction_coefficients`."""
        a_b = np.asarray(ebv, dtype=np.float64)[:, None] * extinction_coefficients(tuple(filters))[None, :]
        return cls(flux, flux_err, a_b, tuple(bands), tuple(filters), extra, tuple(extra_names))

    @classmethod
    def from_store(cls, store, rows=None, extra_columns=()) -> Photometry:
        """Read ``flux_<band>``, ``flux_err_<band>``, ``ebv`` (and ``extra_columns``) of a store's rows."""
        bands = tuple(store.bands)
        filters = store_filters(store)
        extra_columns = tuple(c for c in extra_columns if c)
        for c in extra_columns:
            if _TRUTH.match(c):
                raise DeepdipError(f"column {c!r} is a label or truth column; baselines use measured columns only")
        needed = [f"flux_{b}" for b in bands] + [f"flux_err_{b}" for b in bands] + ["ebv", *extra_columns]
        missing = [c for c in needed if c not in store.columns]
        if missing:
            raise DeepdipError(
                f"store {getattr(store, 'path', '')} lacks the measured photometry column(s) {', '.join(missing)} "
                "that catalogue baselines need"
            )
        cat = store.catalog(needed, rows=rows)
        flux = np.stack([cat[f"flux_{b}"] for b in bands], axis=1).astype(np.float64)
        err = np.stack([cat[f"flux_err_{b}"] for b in bands], axis=1).astype(np.float64)
        extra = None
        if extra_columns:
            extra = np.stack([_feature_scale(np.asarray(cat[c], dtype=np.float64)) for c in extra_columns], axis=1)
        coeffs = store_extinction_coefficients(store, filters)
        a_b = np.asarray(cat["ebv"], dtype=np.float64)[:, None] * coeffs[None, :]
        phot = cls(flux, err, a_b, bands, filters, extra, extra_columns)
        if getattr(store, "has_band_mask", False):  # a band the store says is missing is never a measurement
            phot = phot.without(~store.band_mask(rows))
        return phot


def _feature_scale(values: np.ndarray) -> np.ndarray:
    # Sizes and other positive quantities span decades: their log is the useful feature.
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite > 0):
        return np.log10(values)
    return values


def store_filters(store) -> tuple:
    """Speclite filter names of a store's bands: from its attrs, else from its survey preset."""
    attrs = getattr(store, "attrs", {}) or {}
    if "filters" in attrs:
        filters = attrs["filters"]
        return tuple(filters.split(",")) if isinstance(filters, str) else tuple(str(f) for f in filters)
    # A mock records the whole preset it was drawn from (custom preset files included).
    preset = getattr(store, "provenance", {}).get("survey_preset") or {}
    if preset.get("filters") and preset.get("bands"):
        by_band = dict(zip(preset["bands"], preset["filters"]))
        if all(b in by_band for b in store.bands):
            return tuple(by_band[b] for b in store.bands)
    from deepdip.surveys import load_survey

    survey = load_survey(store.survey)
    by_band = dict(zip(survey.bands, survey.filters))
    try:
        return tuple(by_band[b] for b in store.bands)
    except KeyError as exc:
        raise DeepdipError(f"band {exc.args[0]!r} of the store is not in the {survey.name!r} preset") from None
