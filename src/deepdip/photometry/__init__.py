"""Photometry: fluxes measured on cutouts, the catalogue photometry baselines read, flux units.

- ``measure``: :func:`measure_photometry` (Kron and circular apertures on cutouts, as a survey
  pipeline measures them), ``store_photometry``, ``add_photometry``;
- ``catalog``: :class:`Photometry`, the fluxes, errors and A_b of n galaxies that catalogue
  methods read (``Photometry.from_store``), ``store_filters``;
- ``units``: :func:`flux_factors` (input pixel units -> nanomaggies, parsed by astropy units),
  the one AB conversion :func:`flux_to_mag` / :func:`mag_to_flux` (22.5 - 2.5 log10 nanomaggies);
- ``noise``: :func:`robust_sigma` (1.4826 MAD), the one robust noise estimate;
- ``sdss``: SDSS's model and Petrosian fluxes (:func:`model_fluxes`, :func:`petrosian_fluxes`, :func:`sdss_photometry`).

Galactic extinction (the law and the coefficients a store records) is :mod:`deepdip.extinction`.
"""

from deepdip.photometry.catalog import Photometry, store_filters
from deepdip.photometry.measure import add_photometry, measure_photometry, store_photometry
from deepdip.photometry.noise import MAD_TO_SIGMA, robust_sigma
from deepdip.photometry.sdss import model_fluxes, petrosian_fluxes, sdss_photometry
from deepdip.photometry.units import NANOMAGGY_ZERO_POINT, flux_factors, flux_to_mag, mag_to_flux

__all__ = [
    "MAD_TO_SIGMA",
    "NANOMAGGY_ZERO_POINT",
    "Photometry",
    "add_photometry",
    "flux_factors",
    "flux_to_mag",
    "mag_to_flux",
    "measure_photometry",
    "model_fluxes",
    "petrosian_fluxes",
    "robust_sigma",
    "sdss_photometry",
    "store_filters",
    "store_photometry",
]
