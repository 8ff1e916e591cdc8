"""Galaxy SEDs as non-negative mixtures of the 5 kcorrect templates (Blanton & Roweis 2007).

SkyPy ships the templates (``skypy.galaxies.spectrum.kcorrect``): spectra per solar mass formed,
seen from 10 pc. A galaxy is a coefficient vector ``c`` (solar masses formed per template); its flux
in any speclite filter at redshift z is ``sum_i c_i T_i(z)``, where ``T`` is tabulated here once on
a redshift grid and interpolated, so magnitudes in any survey follow from one population.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

N_TEMPLATES = 5
YEAR_300MYR = 3.0e8  # yr: the window of the kcorrect ``mass300`` column, used for the SFR


def cosmology():
    """The cosmology of every distance in the simulator (astropy ``Planck18``)."""
    from astropy.cosmology import Planck18

    return Planck18


@dataclass(frozen=True)
class TemplateTable:
    """Template fluxes through a set of filters on a redshift grid.

    Attributes
    ----------
    filters : tuple of str
        speclite filter names.
    z : ndarray [nz]
        Redshift grid.
    log_maggies : ndarray [nz, 5, nf]
        log10 of AB maggies (flux / 3631 Jy) per solar mass formed, distance modulus included.
    """

    filters: tuple[str, ...]
    z: np.ndarray
    log_maggies: np.ndarray

    def maggies(self, z: np.ndarray) -> np.ndarray:
        """Per-template maggies per solar mass at redshifts ``z``: array [n, 5, nf]."""
        z = np.clip(np.asarray(z, dtype=np.float64), self.z[0], self.z[-1])
        pos = np.interp(z, self.z, np.arange(len(self.z)))
        lo = np.minimum(pos.astype(np.int64), len(self.z) - 2)
        w = (pos - lo)[:, None, None]
        # interpolate in log flux (i.e. in magnitude): smooth in z
        return 10.0 ** ((1 - w) * self.log_maggies[lo] + w * self.log_maggies[lo + 1])

    def fluxes(self, coeffs: np.ndarray, z: np.ndarray) -> np.ndarray:
        """AB maggies [n, nf] of galaxies with template coefficients ``coeffs`` [n, 5] at ``z``."""
        return np.einsum("nt,ntf->nf", coeffs, self.maggies(z))


@lru_cache(maxsize=16)
def template_table(filters: tuple[str, ...], zmax: float, nz: int = 400) -> TemplateTable:
    """Tabulate the kcorrect templates through ``filters`` for 0.002 <= z <= ``zmax``.

    Costs a few seconds (speclite integrations), hence the cache; workers receive the table
    from the parent instead of recomputing it.
    """
    from skypy.galaxies.spectrum import kcorrect
    from skypy.utils.photometry import mag_ab

    z = np.linspace(0.002, zmax, nz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # speclite warns about spectra padded beyond filter edges
        m = mag_ab(kcorrect.wavelength, kcorrect.templates, list(filters), redshift=z,
                   distmod=cosmology().distmod(z).value, interpolate=False)
    return TemplateTable(tuple(filters), z, -0.4 * np.asarray(m, dtype=np.float64))


def stellar_mass(coeffs: np.ndarray) -> np.ndarray:
    """Present stellar mass [Msun] of coefficient vectors (mass formed minus mass returned)."""
    from skypy.galaxies.spectrum import kcorrect

    return coeffs @ np.asarray(kcorrect.mremain, dtype=np.float64)


def star_formation_rate(coeffs: np.ndarray) -> np.ndarray:
    """Mean star-formation rate over the last 300 Myr [Msun / yr]."""
    from skypy.galaxies.spectrum import kcorrect

    return coeffs @ np.asarray(kcorrect.mass300, dtype=np.float64) / YEAR_300MYR
