"""Galactic extinction per band: deepdip's one A_band / E(B-V) law.

Fitzpatrick (1999) with R_V = 3.1 (``extinction`` package) at each filter's effective wavelength.
The simulator reddens mocks with it (and records the values in the store's provenance); catalogue
baselines and the catalogue ingest use it whenever a store or the user gives no coefficients.

For ``sdss2010-ugriz`` it gives 4.78, 3.73, 2.56, 1.90, 1.42: Schlafly & Finkbeiner (2011) Table 6
(R_V = 3.1) divided by its A_V / E(B-V) of 2.742 / 3.1, i.e. per unit E(B-V) rather than per unit
SFD E(B-V) (their Table 6 as printed, 4.239, 3.303, 2.285, 1.698, 1.263, is 0.885 times these).
"""

from __future__ import annotations

from functools import cache

import numpy as np

R_V = 3.1
#: Description recorded in a mock store's provenance next to the coefficients.
EXTINCTION_LAW = "Fitzpatrick (1999), R_V = 3.1, at filter effective wavelengths"


@cache
def _coefficients(filters: tuple[str, ...]) -> np.ndarray:
    import extinction
    import speclite.filters

    wave = np.array([f.effective_wavelength.to_value("Angstrom")
                     for f in speclite.filters.load_filters(*filters)], dtype=np.float64)
    return extinction.fitzpatrick99(wave, R_V, R_V)  # A_V = R_V for E(B-V) = 1


def extinction_coefficients(filters) -> np.ndarray:
    """A_band / E(B-V) for each speclite filter name (Fitzpatrick 1999, R_V = 3.1)."""
    return _coefficients(tuple(filters)).copy()
