"""Galactic extinction per band: deepdip's one A_band / E(B-V) law, and what a store records.

Fitzpatrick (1999) with R_V = 3.1 (``extinction`` package) at each filter's effective wavelength.
The simulator reddens mocks with it; catalogue baselines and the catalogue ingest use it whenever
a store or the user gives no coefficients.

For ``sdss2010-ugriz`` it gives 4.78, 3.73, 2.56, 1.90, 1.42: Schlafly & Finkbeiner (2011) Table 6
(R_V = 3.1) divided by its A_V / E(B-V) of 2.742 / 3.1, i.e. per unit E(B-V) rather than per unit
SFD E(B-V) (their Table 6 as printed, 4.239, 3.303, 2.285, 1.698, 1.263, is 0.885 times these).

A store's ``ebv`` column means nothing without the coefficients that turn it into A_b, so every
writer records them in the store's provenance (``attrs["provenance"]``, JSON):

- ``"extinction_coeffs"``: list of float, A_b / E(B-V), one per band in the store's band order;
- ``"extinction_law"``: text saying where they come from.

``simulate`` records the law it reddened the mock with (:data:`EXTINCTION_LAW`); ``ingest`` records
the coefficients its ``ebv`` column relates to (for Legacy Survey ``mw_transmission`` input, the
DECam values the survey made the transmissions with, :data:`DECAM_EXTINCTION`). Every reader goes
through :func:`store_extinction_coefficients`, which falls back on this module's law only for
stores written before the coefficients were recorded.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np

from deepdip.errors import DeepdipError

R_V = 3.1
#: Description recorded in a mock store's provenance next to the coefficients.
EXTINCTION_LAW = "Fitzpatrick (1999), R_V = 3.1, at filter effective wavelengths"

#: Provenance keys of the recorded coefficients (list, store band order) and of their description.
COEFFS_KEY = "extinction_coeffs"
LAW_KEY = "extinction_law"

# A_band / E(B-V)_SFD for the DECam filters used by the Legacy Surveys DR9/DR10 (Schlafly & Finkbeiner
# 2011), i.e. mw_transmission = 10^(-0.4 R E(B-V)). Users of other surveys pass their own.
DECAM_EXTINCTION = {"g": 3.214, "r": 2.165, "i": 1.592, "z": 1.211, "Y": 1.064}
#: Description of :data:`DECAM_EXTINCTION` recorded by the ingest.
DECAM_LAW = ("Legacy Surveys DR9/DR10 DECam A/E(B-V)_SFD (Schlafly & Finkbeiner 2011), "
             "the coefficients of mw_transmission")


@cache
def _coefficients(filters: tuple[str, ...]) -> np.ndarray:
    import extinction

    from deepdip.filters import effective_wavelengths

    wave = effective_wavelengths(filters)
    return extinction.fitzpatrick99(wave, R_V, R_V)  # A_V = R_V for E(B-V) = 1


def extinction_coefficients(filters) -> np.ndarray:
    """A_band / E(B-V) for each filter name (:mod:`deepdip.filters`; Fitzpatrick 1999, R_V = 3.1)."""
    return _coefficients(tuple(filters)).copy()


def extinction_record(coeffs, law: str) -> dict:
    """The provenance entries a store writer records: ``{"extinction_coeffs": [...], "extinction_law": law}``."""
    return {COEFFS_KEY: [float(c) for c in np.asarray(coeffs, dtype=np.float64)], LAW_KEY: str(law)}


def store_extinction_coefficients(store, filters) -> np.ndarray:
    """A_b / E(B-V) for each band of ``store``: the coefficients its writer recorded, else the law.

    Recorded ones (``provenance["extinction_coeffs"]``, see the module docstring; a dict band ->
    value is read too) are the ones the store's ``ebv`` column was made with: the mock's reddening,
    or for an ingested Legacy Survey store the DECam coefficients of its ``mw_transmission``, so
    dereddening applies exactly the A_b the survey did. A store without them (written before they
    were recorded) gets :func:`extinction_coefficients` of ``filters`` (one speclite name per band).
    """
    bands = list(getattr(store, "bands", ()))
    attrs = getattr(store, "attrs", {}) or {}
    given = attrs.get(COEFFS_KEY, (getattr(store, "provenance", {}) or {}).get(COEFFS_KEY))
    if given is None:
        return extinction_coefficients(tuple(filters))
    if isinstance(given, str):
        given = json.loads(given)
    if isinstance(given, dict):
        missing = [b for b in bands if b not in given]
        if missing:
            raise DeepdipError(f"store {getattr(store, 'path', '')} records no extinction coefficient for "
                               f"band(s) {', '.join(missing)}")
        given = [given[b] for b in bands]
    coeffs = np.asarray(given, dtype=np.float64)
    if coeffs.shape != (len(filters),):
        raise DeepdipError(f"store {getattr(store, 'path', '')} records {coeffs.size} extinction coefficient(s) "
                           f"for {len(filters)} band(s)")
    return coeffs


def ebv_from_transmission(transmission, bands, coeffs: dict | None = None) -> np.ndarray:
    """E(B-V) from per-band Milky-Way transmissions ``[N, B]``, averaged over bands.

    Each band gives E(B-V) = -2.5 log10(T_b) / R_b with R_b from ``coeffs`` or else
    :data:`DECAM_EXTINCTION`: the coefficients the transmissions were made with, a fact about the
    input (they are what the ingest records, :func:`transmission_coefficients`). The Legacy Survey
    derives all T_b from one SFD E(B-V), so the bands agree and the mean only averages rounding.
    """
    r = transmission_coefficients(bands, coeffs)
    t = np.asarray(transmission, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != len(bands):
        raise DeepdipError(f"transmission column must be [N, {len(bands)}] (one value per band), got {list(t.shape)}")
    if not np.all((t > 0) & (t <= 1)):
        raise DeepdipError("Milky-Way transmissions must lie in (0, 1]")
    return (-2.5 * np.log10(t) / r).mean(axis=1)


def transmission_coefficients(bands, coeffs: dict | None = None) -> np.ndarray:
    """A_b / E(B-V) per band behind Milky-Way transmissions: ``coeffs``, else :data:`DECAM_EXTINCTION`."""
    coeffs = {**DECAM_EXTINCTION, **(coeffs or {})}
    missing = [b for b in bands if b not in coeffs]
    if missing:
        raise DeepdipError(f"no extinction coefficient A/E(B-V) for band(s) {', '.join(missing)}; "
                           "give extinction_coeffs in the config")
    return np.array([float(coeffs[b]) for b in bands])
