"""Deep presets (issue 12): population draws per sky area, the calibrated knobs, the lsst preset,
the deep-survey metric conventions and the deep demo with its external test."""

import dataclasses
import json

import numpy as np
import pytest

from deepdip.errors import DeepdipError
from deepdip.simulate import population
from deepdip.surveys import load_survey


def _with(base, population_update=None, morphology_update=None):
    params = json.loads(json.dumps(base.params))
    params["population"].update(population_update or {})
    params.setdefault("morphology", {}).update(morphology_update or {})
    return dataclasses.replace(base, params=params)


def test_draw_area_counts_every_galaxy_per_area_before_the_selection():
    survey = load_survey("cfhtls-wide")
    ctx = population.prepare(survey)
    small = population.draw_area(survey, 0.002, np.random.default_rng(0), ctx)
    large = population.draw_area(survey, 0.008, np.random.default_rng(1), ctx)
    # no magnitude selection: galaxies fainter than the survey limit are there
    assert (small["mag_i"] > survey["mag_limit"]).any() and np.all(np.isfinite(small["abs_mag_B"]))
    # counts scale with the area (Poisson: 4x the area, 4x the galaxies within a few sigma)
    ratio = len(large["z"]) / len(small["z"])
    assert 3.3 < ratio < 4.8, ratio
    sdss = load_survey("sdss")
    with pytest.raises(DeepdipError, match="skypy population"):
        population.draw_area(sdss, 0.01, np.random.default_rng(0), population.prepare(sdss))


def test_m_star_stops_brightening_beyond_its_redshift():
    """Without the cap, SkyPy's linear M*(z) fills a faint sample with luminous z > 1.5 galaxies."""
    base = load_survey("cfhtls-wide-faint")
    ctx = population.prepare(base)
    medians = {}
    for cap in (None, 1.1):
        pop = population.draw_area(_with(base, {"M_star_z_max": cap}), 0.01, np.random.default_rng(2), ctx)
        faint = (pop["mag_i"] > 23.0) & (pop["mag_i"] < 24.0)
        medians[cap] = np.median(pop["z"][faint])
    assert medians[1.1] < medians[None] - 0.1, medians


def test_size_evolution_shrinks_distant_galaxies_by_its_power_law():
    base = load_survey("cfhtls-wide")
    ctx = population.prepare(base)
    sizes = {}
    for beta in (0.0, 1.0):
        survey = _with(base, morphology_update={"size_evolution_beta": beta})
        sizes[beta] = population.sample_population(survey, 300, np.random.default_rng(3), ctx)
    z = sizes[0.0]["z"]
    assert np.allclose(sizes[1.0]["z"], z)  # same galaxies
    free = (sizes[0.0]["hlr"] > 0.2) & (sizes[1.0]["hlr"] > 0.2)  # away from the 0.15 arcsec floor
    expected = ((1 + z[free]) / (1 + population.SHEN03_Z)) ** -1.0
    assert np.allclose(sizes[1.0]["hlr"][free] / sizes[0.0]["hlr"][free], expected, rtol=1e-6)


def test_lsst_preset_simulates_six_bands_on_a_thousand_bins(tmp_path):
    from deepdip.simulate import simulate_store
    from deepdip.store import CutoutStore

    lsst = load_survey("lsst")
    assert lsst.bands == tuple("ugrizy") and lsst.zgrid.nbins == 1000 and lsst.zmax >= 3.0
    path = tmp_path / "lsst.h5"
    simulate_store("lsst", 6, seed=1, out=path, workers=1, progress=False)
    with CutoutStore(path) as st:
        assert list(st.bands) == list("ugrizy") and tuple(st.image_shape) == (64, 64)
        mag_i = 22.5 - 2.5 * np.log10(np.clip(st.column("flux_i").astype(float), 1e-30, None))
        assert np.median(mag_i) > 22.0  # a deep sample: most galaxies are faint


def test_convention_scores_count_outliers_at_every_threshold():
    from deepdip.metrics import outlier_frac, sigma_mad
    from deepdip.report.conventions import convention_scores, convention_table, conventions
    from deepdip.zgrid import ZGrid

    rng = np.random.default_rng(4)
    zs = rng.uniform(0.05, 2.0, 500)
    zp = zs + 0.04 * (1 + zs) * rng.standard_normal(500)
    mag = rng.uniform(17.5, 22.5, 500)
    grid = ZGrid(0.0, 3.0, 300)
    pdf = np.exp(-0.5 * ((grid.centres[None, :] - zp[:, None]) / (0.04 * (1 + zp[:, None]))) ** 2)
    conv = conventions(load_survey("cfhtls-wide"))
    s = convention_scores(zp, zs, pdf, grid, conv, magnitude=mag)
    assert s["eta_0.15"] == pytest.approx(outlier_frac(zp, zs, 0.15))
    assert s["eta_0.05"] == pytest.approx(outlier_frac(zp, zs, 0.05)) and s["eta_0.05"] > s["eta_0.15"]
    assert s["sigma_mad"] == pytest.approx(sigma_mad(zp, zs))
    assert [b["lo"] for b in s["by_mag"]] == conv["mag_edges"][:-1]
    assert sum(b["n"] for b in s["by_mag"]) == 500 and sum(b["n"] for b in s["by_z"]) == 500
    assert abs(s["coverage_68"] - 0.68) < 0.08  # honest Gaussian PDFs
    assert "η(0.15)" in convention_table({"a": s}, conv)


def test_deep_demo_reports_its_conventions_and_the_external_test(tmp_path):
    from deepdip.demo import run_demo

    run_demo(tmp_path / "d", n=120, survey="cfhtls-wide", epochs=1, baselines=("knn",), progress=False)
    deep = json.loads((tmp_path / "d" / "conventions.json").read_text())
    assert set(deep) == {"test", "external"} and set(deep["test"]) == {"cnn", "knn"}
    ext = deep["external"]["knn"]
    assert ext["n"] > 0 and [b["lo"] for b in ext["by_mag"]] == [22.5, 23.0, 23.5]
    # every external galaxy is fainter than the training limit
    import pandas as pd

    cat = pd.read_parquet(tmp_path / "d" / "external_cnn.parquet", columns=["mag_i"])
    assert (cat["mag_i"] > 22.5).all() and len(cat) == ext["n"]


def test_a_draw_too_small_to_hold_a_galaxy_gives_none_and_sampling_still_completes():
    """SkyPy fails on an empty draw; a block's last small top-up draw can be empty (it broke the demo)."""
    survey = load_survey("cfhtls-wide-faint")
    ctx = population.prepare(survey)
    pop = population.draw_area(survey, 1e-9, np.random.default_rng(0), ctx)
    assert len(pop["z"]) == 0
    full = population.sample_population(survey, 30, np.random.default_rng(5), ctx)
    assert len(full["z"]) == 30


@pytest.mark.parametrize("update, key", [({"population": {"M_star_z_max": "high"}}, "M_star_z_max"),
                                         ({"population": {"M_star_z_max": -1}}, "M_star_z_max"),
                                         ({"morphology": {"size_evolution_beta": "fast"}}, "size_evolution_beta"),
                                         ({"morphology": {"size_wavelength_slope": {"mean": 0.2}}},
                                          "size_wavelength_slope"),
                                         ({"morphology": {"size_wavelength_slope": {"mean": 0.2, "scatter": -1}}},
                                          "size_wavelength_slope")])
def test_bad_deep_population_knobs_are_refused_in_one_line(tmp_path, update, key):
    from deepdip.errors import DeepdipValueError
    from deepdip.surveys import check_simulatable

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"extends": "cfhtls-wide", "name": "bad", **update}))
    with pytest.raises(DeepdipValueError, match=key):
        check_simulatable(load_survey(path))
