"""ML baselines on galaxies lacking bands: every ``missing_bands`` mode, the per-pattern models, saving."""

from __future__ import annotations

import numpy as np
import pytest

from deepdip.baselines import Photometry, load_baseline, make_baseline
from deepdip.baselines.base import band_dropout, nearest_band, select_bands
from deepdip.cli import main
from deepdip.errors import DeepdipValueError

from .test_baselines import BANDS, FILTERS, ZGRID, make_phot_store, synthetic_photometry

FAST = {"knn": {"k": 10}, "rf": {"n_trees": 20}, "boost": {"n_rounds": 60}}
MODES = [(m, mode) for m in FAST for mode in ("zero", "impute", "pattern")] + [("boost", "nan")]


@pytest.fixture(scope="module")
def data():
    """600 training galaxies with all bands; 120 test galaxies: 30 lack u, 30 lack u and z, 5 lack all."""
    flux, err, ebv, z = synthetic_photometry(720, seed=3)
    phot = Photometry.from_ebv(flux, err, ebv, BANDS, FILTERS)
    test = phot.subset(slice(600, None))
    f, e = test.flux.copy(), test.flux_err.copy()
    for rows, cols in ((slice(0, 30), [0]), (slice(30, 60), [0, 4]), (slice(60, 65), slice(None))):
        f[rows, cols], e[rows, cols] = np.nan, np.nan
    test = Photometry(f, e, test.extinction, test.bands, test.filters)
    return phot.subset(slice(0, 600)), z[:600], test


def fitted(method, mode, data):
    train, z, _ = data
    return make_baseline(method, ZGRID, missing_bands=mode, **FAST[method]).fit_photometry(train, z)


@pytest.mark.parametrize("method,mode", MODES)
def test_every_mode_predicts_galaxies_lacking_bands(method, mode, data):
    pdf = fitted(method, mode, data).predict_pdf_photometry(data[2])
    assert pdf.shape == (120, ZGRID.nbins) and np.isfinite(pdf).all()
    assert np.allclose(pdf.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("method", list(FAST))
def test_pattern_lacking_u_is_the_model_fitted_on_griz(method, data):
    train, z, test = data
    est = fitted(method, "pattern", data)
    lacking_u = test.subset(slice(0, 30))
    griz = [b != "u" for b in BANDS]
    alone = make_baseline(method, ZGRID, **FAST[method]).fit_photometry(select_bands(train, griz), z)
    expected = alone.predict_pdf_photometry(select_bands(lacking_u, griz))
    assert np.array_equal(est.predict_pdf_photometry(lacking_u), expected)
    assert list(est._pattern_models) == [tuple(griz)]  # one model per pattern met, cached


@pytest.mark.parametrize("method,mode", MODES)
def test_saved_and_loaded_model_predicts_the_same(method, mode, data, tmp_path):
    est = fitted(method, mode, data)
    before = est.predict_pdf_photometry(data[2])
    est.save(tmp_path / "m.npz")
    again = load_baseline(tmp_path / "m.npz")
    assert again.settings["missing_bands"] == mode
    assert np.array_equal(again.predict_pdf_photometry(data[2]), before)


def test_modes_agree_on_galaxies_with_every_band_and_repair_the_dropout(data):
    train, z, test = data
    full = test.subset(slice(65, None))
    lacking_u = test.subset(slice(0, 30))
    pdfs = {mode: fitted("knn", mode, data) for mode in ("zero", "impute", "pattern")}
    ref = pdfs["zero"].predict_pdf_photometry(full)
    assert all(np.array_equal(p.predict_pdf_photometry(full), ref) for p in pdfs.values())
    griz = make_baseline("knn", ZGRID, **FAST["knn"]).fit_photometry(select_bands(train, [b != "u" for b in BANDS]), z)
    target = griz.predict_pdf_photometry(select_bands(lacking_u, [b != "u" for b in BANDS])) @ ZGRID.centres
    miss = {m: np.median(np.abs(p.predict_pdf_photometry(lacking_u) @ ZGRID.centres - target)) for m, p in pdfs.items()}
    assert miss["impute"] < miss["zero"] / 2  # zero flux in u reads as a u-dropout; imputing it does not


def test_a_galaxy_without_any_band_gets_the_training_redshift_distribution(data):
    est = fitted("knn", "pattern", data)
    pdf = est.predict_pdf_photometry(data[2].subset(slice(60, 65)))
    assert np.allclose(pdf, est.nz_[None, :], atol=1e-6)


def test_training_galaxies_with_missing_bands_are_used_not_augmented(data):
    train, z, test = data
    f = train.flux.copy()
    f[:100, 0] = np.nan
    holey = Photometry(f, train.flux_err, train.extinction, train.bands, train.filters)
    for mode in ("nan", "impute", "pattern"):
        est = make_baseline("boost", ZGRID, missing_bands=mode, **FAST["boost"]).fit_photometry(holey, z)
        assert np.isfinite(est.predict_pdf_photometry(test)).all()
    pattern = make_baseline("knn", ZGRID, missing_bands="pattern", **FAST["knn"]).fit_photometry(holey, z)
    assert len(pattern.x_train_) == 500  # the all-band model sees only the galaxies with all bands


def test_band_dropout_is_seeded_and_keeps_two_bands(data):
    train, z, _ = data
    aug, z2, groups = band_dropout(train, z, seed=4)
    again, _, _ = band_dropout(train, z, seed=4)
    n = len(train)
    assert len(aug) == 2 * n and np.array_equal(z2[n:], z) and np.array_equal(groups, np.r_[np.arange(n), np.arange(n)])
    assert np.array_equal(np.isnan(aug.flux), np.isnan(again.flux))
    lost = (~aug.observed[n:]).sum(axis=1)
    assert aug.observed[:n].all() and lost.min() == 1 and lost.max() == 3


def test_nearest_band_prefers_the_reference_then_the_redder_neighbour():
    assert nearest_band("r", BANDS, [1, 1, 1, 1, 1]) == "r"
    assert nearest_band("r", BANDS, [1, 1, 0, 1, 1]) == "i"
    assert nearest_band("r", BANDS, [1, 1, 0, 0, 1]) == "g"


def test_a_bad_mode_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(DeepdipValueError, match="--missing-bands must be one of"):
        make_baseline("knn", missing_bands="mean")
    with pytest.raises(DeepdipValueError, match="--missing-bands nan is LightGBM's"):
        make_baseline("rf", missing_bands="nan")
    with pytest.raises(DeepdipValueError, match="--missing-bands nan is LightGBM's"):
        make_baseline("knn").set_params(missing_bands="nan")
    store = make_phot_store(tmp_path / "s.h5", 60)
    rc = main(["baseline", str(store), "--method", "knn", "--fold", "0", "--missing-bands", "mean",
               "--out", str(tmp_path / "c.parquet")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "--missing-bands must be one of" in err and len(err.splitlines()) == 1


def test_bpz_prior_takes_the_nearest_observed_band_when_the_prior_band_is_missing():
    """A galaxy without i (the sdss prior band) gets the prior of its z (the redder neighbour on the
    tie with r), another without r, i, z that of g: not the prior of a galaxy at magnitude 32."""
    from deepdip.baselines.bpz import _prior_magnitudes

    flux = np.tile(10 ** (-0.4 * np.array([20.0, 19.2, 18.8, 18.5, 18.3])), (3, 1))  # maggies
    observed = np.ones((3, 5), bool)
    observed[1, 3] = False
    observed[2, 2:] = False
    assert np.allclose(_prior_magnitudes(flux, observed, 3), [18.5, 18.3, 19.2])


@pytest.mark.parametrize("method", ["knn", "rf"])
def test_pattern_trains_when_a_band_is_missing_for_every_training_galaxy(method, data):
    """A survey without u (no training galaxy has it): pattern fits on the bands the training set has; its
    galaxies with griz are predicted by that model, those lacking z too by the model of gri."""
    train, z, test = data
    f, e = train.flux.copy(), train.flux_err.copy()
    f[:, 0], e[:, 0] = np.nan, np.nan
    no_u = Photometry(f, e, train.extinction, train.bands, train.filters)
    est = make_baseline(method, ZGRID, **FAST[method]).fit_photometry(no_u, z)
    pdf = est.predict_pdf_photometry(test)
    assert np.isfinite(pdf).all() and np.allclose(pdf.sum(axis=1), 1.0, atol=1e-5)
    lacking_uz = test.subset(slice(30, 60))
    gri = [b in "gri" for b in BANDS]
    alone = make_baseline(method, ZGRID, **FAST[method]).fit_photometry(select_bands(no_u, gri), z)
    assert np.array_equal(est.predict_pdf_photometry(lacking_uz),
                          alone.predict_pdf_photometry(select_bands(lacking_uz, gri)))
    # a galaxy with u gets what it gets without it: u was never seen in training
    full = test.subset(slice(65, None))
    f, e = full.flux.copy(), full.flux_err.copy()
    f[:, 0], e[:, 0] = np.nan, np.nan
    assert np.array_equal(est.predict_pdf_photometry(full),
                          est.predict_pdf_photometry(Photometry(f, e, full.extinction, full.bands, full.filters)))
