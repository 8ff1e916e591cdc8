"""Which catalogue columns of a deepdip mock are truths: what the simulator knows and a survey cannot measure.

The simulator records this list in the store's provenance (``provenance["truth_columns"]``), so
every reader can refuse truths as features by what the store says, not by guessing from names:
``abs_mag_r`` or ``hlr`` look like ordinary catalogue columns but hold the answer (a kNN on colours
plus ``abs_mag_r`` reaches a third of the honest scatter).
"""

from __future__ import annotations

#: The provenance key holding the list of truth columns.
PROVENANCE_KEY = "truth_columns"

# Per-galaxy truths written by simulate_block, besides the per-band ones below: the physical
# properties of deepdip.simulate.population (_physical, _morphology) and the observing truths of
# deepdip.simulate.rendering (true PSF, true centroid offset, true neighbour count, the slope of size
# with wavelength).
_SCALAR_TRUTHS = ("z_true", "abs_mag_r", "rest_u_r", "is_early", "stellar_mass", "sfr", "hlr", "bulge_frac",
                  "q_disk", "q_bulge", "pa", "offset_x", "offset_y", "n_neighbours",
                  "bulge_rest_u_r", "disk_rest_u_r", "size_wavelength_slope")
# Per-band truths of the colour structure (deepdip.simulate.structure): the bulge's and the knots'
# shares of the galaxy's flux in each band.
_BAND_TRUTHS = ("mag", "psf_fwhm", "bulge_share", "knot_share")


def truth_columns(bands) -> list[str]:
    """The truth columns a mock of ``bands`` holds: noise-free magnitudes ``mag_<band>`` (before
    Galactic extinction), true PSF widths ``psf_fwhm_<band>``, the components' flux shares
    ``bulge_share_<band>``, ``knot_share_<band>`` and the scalar truths above.

    Not truths: ``id``, ``fold``, ``ebv`` (an input the CNN gets too), ``z_spec`` (the label) and
    everything :func:`deepdip.photometry.measure_photometry` measures on the noisy images.
    """
    bands = list(bands)
    return [*_SCALAR_TRUTHS, *(f"{kind}_{b}" for kind in _BAND_TRUTHS for b in bands)]
