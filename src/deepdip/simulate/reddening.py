"""Galactic reddening: E(B-V) per line of sight and the extinction it causes in each band.

E(B-V) follows a log-normal fitted to the real SDSS main-sample sight lines (median 0.026, most
between 0.01 and 0.1, a long tail); A_band = R_band * E(B-V) with R_band the Fitzpatrick (1999)
law (R_V = 3.1) at the filter's effective wavelength, from :mod:`deepdip.extinction`.
"""

from __future__ import annotations

import numpy as np


def sample_ebv(survey, n: int, rng: np.random.Generator) -> np.ndarray:
    """E(B-V) [mag] for ``n`` sight lines from the preset's log-normal (``ebv`` key)."""
    p = survey.get("ebv", {"median": 0.0258, "sigma_ln": 0.64, "max": 0.5})
    return np.minimum(p["median"] * rng.lognormal(0.0, p["sigma_ln"], n), p["max"])


def transmission(coeffs: np.ndarray, ebv: np.ndarray) -> np.ndarray:
    """Fraction of flux [n, B] that Galactic dust lets through, for A_band / E(B-V) ``coeffs``."""
    return 10 ** (-0.4 * np.outer(ebv, coeffs))
