"""BPZ with RAIL's template set and filter curves (``templates='cosmos'``, ``rail:<curve>`` filters).

Tests marked ``needs_rail`` skip where pz-rail-base is not installed (see tests/test_filters_rail.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from deepdip import filters
from deepdip.baselines import Photometry, make_baseline
from deepdip.baselines.bpz import BPZBaseline, template_dir, template_fluxes
from deepdip.errors import DeepdipValueError
from deepdip.metrics import sigma_mad
from deepdip.zgrid import ZGrid

needs_rail = pytest.mark.skipif(filters.rail_data_dir() is None, reason="RAIL not installed: pip install deepdip[rail]")
BANDS = ("u", "g", "r", "i", "z")
FILTERS = tuple(f"sdss2010-{b}" for b in BANDS)
ZGRID = ZGrid(0.0, 0.4, 180)


def test_an_unknown_template_set_is_refused():
    with pytest.raises(DeepdipValueError, match="--templates must be one of 'cwwsb4', 'cosmos'"):
        make_baseline("bpz", ZGRID, templates="lephare")


def test_cosmos_templates_without_rail_say_how_to_install(monkeypatch):
    monkeypatch.setattr(filters, "rail_data_dir", lambda: None)
    with pytest.raises(DeepdipValueError, match=r"'cosmos' comes with RAIL.*pip install deepdip\[rail\]"):
        template_dir("cosmos")  # what template_fluxes (cached per process) asks first


@needs_rail
def test_bpz_fits_with_rails_cosmos_templates(tmp_path):
    """Galaxies drawn from the 31 COSMOS templates (SDSS ugriz, 2 % noise) are recovered, and a saved
    model keeps the set's broad types."""
    rng = np.random.default_rng(3)
    n = 160
    grid = template_fluxes(FILTERS, "no", "cosmos")  # [1200, 31, 5]
    z = rng.uniform(0.03, 0.37, n)
    sed = grid[np.round(z / 0.01).astype(int), rng.integers(0, 31, n)]
    flux = sed / sed[:, 2:3] * 10 ** (-0.4 * (rng.uniform(16.0, 18.0, n)[:, None] - 22.5))
    err = 0.02 * flux + 0.05
    flux = flux + rng.normal(size=flux.shape) * err
    phot = Photometry.from_ebv(flux, err, np.zeros(n), BANDS, FILTERS)
    train, test = np.arange(100), np.arange(100, n)

    est = make_baseline("bpz", ZGRID, templates="cosmos").fit_photometry(phot.subset(train), z[train])
    assert est.n_templates_ == 31 + 30 * 2 and est.broad_types_ == (10, 5, 16) and est.prior_used_ == "trained"
    pdf = est.predict_pdf_photometry(phot.subset(test))
    assert pdf.shape == (len(test), 180) and np.allclose(pdf.sum(axis=1), 1.0, atol=1e-5)
    assert sigma_mad(pdf @ ZGRID.centres, z[test]) < 0.035  # 0.021 today; guessing the mean: ~0.1
    path = est.save(tmp_path / "bpz_cosmos.npz")
    again = BPZBaseline.load(path)
    assert again.broad_types_ == (10, 5, 16) and again.settings["templates"] == "cosmos"
    assert np.array_equal(again.predict_pdf_photometry(phot.subset(test)), pdf)


@needs_rail
def test_bpz_integrates_its_templates_through_rail_curves():
    """RAIL's Euclid H curve and speclite's give the same template colours within 5 %; Roman's curves work."""
    grid = template_fluxes(("rail:euclid_H", "Euclid-H", "rail:roman_J129", "rail:roman_H158"))
    assert np.all(np.isfinite(grid)) and np.all(grid[:300] > 0)  # z < 3
    assert np.allclose(grid[:300, :, 0], grid[:300, :, 1], rtol=0.05)
