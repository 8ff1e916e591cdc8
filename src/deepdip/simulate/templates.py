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

from deepdip.filters import speclite_names

N_TEMPLATES = 5


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
        Filter names (speclite or ``rail:``, see :mod:`deepdip.filters`).
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
def template_table(filters: tuple[str, ...], zmax: float, nz: int = 200) -> TemplateTable:
    """Tabulate the kcorrect templates through ``filters`` for 0.002 <= z <= ``zmax``.

    Costs seconds (speclite integrations), hence the cache; workers receive the table from the
    parent. Magnitudes are smooth in z on this grid (filters are ~1000 A wide): linear
    interpolation errs by well under 0.01 mag.
    """
    z = np.linspace(0.002, zmax, nz)
    with warnings.catch_warnings():
        # skypy's package template imports astropy's deprecated TestRunner, and speclite warns
        # about spectra padded beyond filter edges: neither concerns the user
        warnings.simplefilter("ignore")
        from skypy.galaxies.spectrum import kcorrect
        from skypy.utils.photometry import mag_ab

        m = mag_ab(kcorrect.wavelength, kcorrect.templates, speclite_names(filters), redshift=z,
                   distmod=cosmology().distmod(z).value, interpolate=False)
    return TemplateTable(tuple(filters), z, -0.4 * np.asarray(m, dtype=np.float64))


REST_FILTERS = ("sdss2010-u", "sdss2010-r", "bessell-B")  # rest-frame bands of the truth columns


def template_properties() -> dict:
    """Per-template constants, per solar mass formed: ``mremain`` (stellar mass left today),
    ``mass300`` (mass formed in the last 300 Myr) and ``rest_maggies`` [5, 3], the absolute
    (10 pc, z = 0) AB maggies in ``REST_FILTERS``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in template_table
        from skypy.galaxies.spectrum import kcorrect
        from skypy.utils.photometry import mag_ab

        m = np.asarray(mag_ab(kcorrect.wavelength, kcorrect.templates, list(REST_FILTERS)))
    return {"mremain": np.asarray(kcorrect.mremain, dtype=np.float64),
            "mass300": np.asarray(kcorrect.mass300, dtype=np.float64),
            "rest_maggies": 10 ** (-0.4 * m.reshape(N_TEMPLATES, len(REST_FILTERS)))}
