"""Flux units and AB magnitudes: everything a store holds is nanomaggies per pixel.

A nanomaggy (``astropy.units.nanomaggy``) is the flux of an AB magnitude 22.5 source, 3.631
microjansky (1 maggy = 3631 Jy, the SDSS definition, given to astropy as the zero-point flux of
the maggy scale), so ``mag = 22.5 - 2.5 log10(flux)``: :func:`flux_to_mag` and
:func:`mag_to_flux`, the one copy of that formula. Input pixel units are parsed by
``astropy.units`` (any spectral flux density: ``Jy``, ``uJy``, ``erg / (s cm2 Hz)``, ...); counts
with an AB zero point ZP convert by ``mag_to_flux(ZP)`` = 10^(-0.4 (ZP - 22.5)) nanomaggies per count.
"""

from __future__ import annotations

import numpy as np

from deepdip.errors import DeepdipError

#: AB magnitude of one nanomaggy.
NANOMAGGY_ZERO_POINT = 22.5
#: Flux of one maggy (AB magnitude 0) in janskys, as SDSS defines it.
MAGGY_JY = 3631.0

# Unit names deepdip has always accepted, case-insensitively ("MJy" has meant millijansky), and how
# astropy spells them; any other string is read by astropy as given (case-sensitive).
_ALIASES = {"nanomaggy": "nanomaggy", "nanomaggies": "nanomaggy", "nmgy": "nanomaggy",
            "maggy": "maggy", "maggies": "maggy",
            "jy": "Jy", "mjy": "mJy", "ujy": "uJy", "njy": "nJy"}
_KNOWN = "nanomaggy, maggy, Jy, mJy, uJy, nJy (or any astropy flux density unit), counts"


def flux_to_mag(flux, zero_point: float = NANOMAGGY_ZERO_POINT):
    """AB magnitude of ``flux``: ``zero_point - 2.5 log10(flux)`` (22.5 for nanomaggies, 0 for maggies).

    The input's dtype is kept (float32 in, float32 out); non-positive fluxes give NaN/-inf as
    ``np.log10`` does, so callers mask or clip them first.
    """
    mag = -2.5 * np.log10(flux)
    # adding 0 would turn the magnitude -0.0 of a 1-maggy source into +0.0
    return mag + zero_point if zero_point else mag


def mag_to_flux(mag, zero_point: float = NANOMAGGY_ZERO_POINT):
    """Flux of an AB magnitude ``mag``: ``10^(-0.4 (mag - zero_point))`` (nanomaggies by default)."""
    return 10 ** (-0.4 * (mag - zero_point))


def flux_factors(bands, flux_unit: str, zero_point=None) -> np.ndarray:
    """Per-band factor that turns the input pixel values into nanomaggies.

    ``flux_unit`` is a flux density astropy can read (``nanomaggy``, ``maggy``, ``Jy``, ``uJy``,
    ``erg / (s cm2 Hz)``...; the old names are accepted in any case), or ``counts``, which needs
    ``zero_point``: one AB zero point, or a dict band -> zero point.
    """
    unit = str(flux_unit).strip()
    if unit.lower() == "counts":
        return mag_to_flux(_zero_points(bands, zero_point))
    return np.full(len(bands), _to_nanomaggy(_ALIASES.get(unit.lower(), unit), flux_unit))


def _to_nanomaggy(unit: str, given) -> float:
    import astropy.units as u

    try:
        parsed = u.Unit(unit)
    except ValueError:
        raise DeepdipError(f"unknown flux unit {given!r}; known: {_KNOWN}") from None
    maggy_scale = u.zero_point_flux(MAGGY_JY * u.Jy)
    try:
        # through janskys: nanomaggy -> Jy is 3.631e-06 exactly, so the known units give round factors
        jy = parsed.to(u.Jy, 1.0, equivalencies=maggy_scale)
    except u.UnitConversionError:
        raise DeepdipError(f"unknown flux unit {given!r} (astropy reads {parsed!s}, not a flux density); "
                           f"known: {_KNOWN}") from None
    return float(jy / u.nanomaggy.to(u.Jy, 1.0, equivalencies=maggy_scale))


def _zero_points(bands, zero_point) -> np.ndarray:
    if zero_point is None:
        raise DeepdipError("flux unit 'counts' needs a zero point (--zero-point 27.0 or g=27.0,r=27.1,...)")
    if isinstance(zero_point, dict):
        missing = [b for b in bands if b not in zero_point]
        if missing:
            raise DeepdipError(f"zero point missing for band(s) {', '.join(missing)}")
        return np.array([float(zero_point[b]) for b in bands])
    return np.full(len(bands), float(zero_point))
