"""Flux units and Galactic extinction: everything the store holds is nanomaggies per pixel.

A nanomaggy is the flux of an AB magnitude 22.5 source (3.631 microjansky), so
``mag = 22.5 - 2.5 log10(flux)``; counts with an AB zero point ZP convert by 10^(-0.4 (ZP - 22.5)).
"""

from __future__ import annotations

import numpy as np

from deepdip.errors import DeepdipError

# Multiply by these to get nanomaggies. 1 maggy = 3631 Jy (AB).
_PER_NANOMAGGY_JY = 3631e-9
UNIT_FACTORS = {
    "nanomaggy": 1.0,
    "nanomaggies": 1.0,
    "nmgy": 1.0,
    "maggy": 1e9,
    "maggies": 1e9,
    "jy": 1.0 / _PER_NANOMAGGY_JY,
    "mjy": 1e-3 / _PER_NANOMAGGY_JY,
    "ujy": 1e-6 / _PER_NANOMAGGY_JY,
    "njy": 1e-9 / _PER_NANOMAGGY_JY,
}

# A_band / E(B-V) for the DECam filters used by the Legacy Surveys DR9/DR10 (Schlafly & Finkbeiner
# 2011), i.e. mw_transmission = 10^(-0.4 R E(B-V)). Users of other surveys pass their own.
DECAM_EXTINCTION = {"g": 3.214, "r": 2.165, "i": 1.592, "z": 1.211, "Y": 1.064}


def flux_factors(bands, flux_unit: str, zero_point=None) -> np.ndarray:
    """Per-band factor that turns the input pixel values into nanomaggies."""
    unit = str(flux_unit).strip().lower()
    if unit in UNIT_FACTORS:
        return np.full(len(bands), UNIT_FACTORS[unit])
    if unit != "counts":
        raise DeepdipError(f"unknown flux unit {flux_unit!r}; known: nanomaggy, maggy, Jy, mJy, uJy, nJy, counts")
    if zero_point is None:
        raise DeepdipError("flux unit 'counts' needs a zero point (--zero-point 27.0 or g=27.0,r=27.1,...)")
    if isinstance(zero_point, dict):
        missing = [b for b in bands if b not in zero_point]
        if missing:
            raise DeepdipError(f"zero point missing for band(s) {', '.join(missing)}")
        zps = np.array([float(zero_point[b]) for b in bands])
    else:
        zps = np.full(len(bands), float(zero_point))
    return 10.0 ** (-0.4 * (zps - 22.5))


def ebv_from_transmission(transmission, bands, coeffs: dict | None = None) -> np.ndarray:
    """E(B-V) from per-band Milky-Way transmissions ``[N, B]``, averaged over bands.

    Each band gives E(B-V) = -2.5 log10(T_b) / R_b; the Legacy Survey derives all T_b from one
    SFD E(B-V), so the bands agree and the mean only averages rounding.
    """
    coeffs = {**DECAM_EXTINCTION, **(coeffs or {})}
    missing = [b for b in bands if b not in coeffs]
    if missing:
        raise DeepdipError(f"no extinction coefficient A/E(B-V) for band(s) {', '.join(missing)}; "
                           "give extinction_coeffs in the config")
    t = np.asarray(transmission, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != len(bands):
        raise DeepdipError(f"transmission column must be [N, {len(bands)}] (one value per band), got {list(t.shape)}")
    if not np.all((t > 0) & (t <= 1)):
        raise DeepdipError("Milky-Way transmissions must lie in (0, 1]")
    r = np.array([coeffs[b] for b in bands])
    return (-2.5 * np.log10(t) / r).mean(axis=1)
