"""deepdip.sklearn: the scikit-learn facade (issue 16 item 4).

scikit-learn's own estimator checks run on the kNN, random-forest and boosted-tree wrappers
(``parametrize_with_checks``; the one expected failure is named with its reason in
``deepdip.sklearn.EXPECTED_FAILED_CHECKS``); BPZ and the CNN, whose inputs no data check can make,
run the checks of the parameter contract. The rest checks what the data checks cannot: the default
``[N, 2B]`` layout gives the library's PDFs exactly, E(B-V) is used, scikit-learn's tools
(``clone``, pickling, ``GridSearchCV``, metadata routing of ``ebv``) work, and the CNN fits and
predicts on a few tiny cutouts through a temporary store that it removes.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepdip.baselines import make_baseline
from deepdip.errors import DeepdipValueError
from deepdip.photometry import Photometry
from deepdip.sklearn import (
    BASELINES,
    EXPECTED_FAILED_CHECKS,
    PARAMETER_CHECKS,
    BoostPhotoz,
    BPZPhotoz,
    CNNPhotoz,
    KNNPhotoz,
    RFPhotoz,
)
from deepdip.zgrid import ZGrid

from .conftest import TINY_MODEL
from .test_baselines import FILTERS, synthetic_photometry

SDSS = ZGrid(0.0, 0.4, 180)


@parametrize_with_checks([KNNPhotoz(error_fraction=0.1), RFPhotoz(n_trees=10, error_fraction=0.1),
                          BoostPhotoz(n_rounds=20, error_fraction=0.1)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [CNNPhotoz(), BPZPhotoz(), KNNPhotoz()], ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", PARAMETER_CHECKS)
def test_parameter_contract_checks(estimator, check):
    getattr(estimator_checks, check)(type(estimator).__name__, estimator)


@pytest.fixture(scope="module")
def phot():
    """600 template galaxies (flux, err, ebv, z): 500 to fit, 100 to predict."""
    return synthetic_photometry(600, seed=3)


@pytest.mark.parametrize("method", ["knn", "rf", "boost", "bpz"])
def test_wrapper_gives_the_library_pdfs(method, phot):
    """X = [fluxes, errors] and ebv give exactly the PDFs of the baseline's array face."""
    flux, err, ebv, z = phot
    params = {"knn": {"k": 10}, "rf": {"n_trees": 20}, "boost": {"n_rounds": 50}, "bpz": {}}[method]
    X = np.hstack([flux, err])
    est = BASELINES[method](**params).fit(X[:500], z[:500], ebv=ebv[:500])
    lib = make_baseline(method, SDSS, **params).fit_photometry(
        Photometry.from_ebv(flux[:500], err[:500], ebv[:500], "ugriz", FILTERS), z[:500])
    expected = lib.predict_pdf_photometry(Photometry.from_ebv(flux[500:], err[500:], ebv[500:], "ugriz", FILTERS))
    np.testing.assert_array_equal(est.predict_pdf(X[500:], ebv=ebv[500:]), expected)
    assert est.zgrid_ == SDSS and est.bands_ == tuple("ugriz") and est.n_features_in_ == 10
    z_phot = est.predict(X[500:], ebv=ebv[500:])
    assert z_phot.shape == (100,) and est.score(X[500:], z[500:], ebv=ebv[500:]) > -0.05
    # E(B-V) is used: leaving it out changes the answer
    assert not np.allclose(est.predict_pdf(X[500:]), expected)


def test_points_grid_layouts_and_refusals(phot):
    flux, err, ebv, z = phot
    X = np.hstack([flux, err])
    knn = KNNPhotoz(k=10, point="z_median", zmax=0.5, nbins=100).fit(X[:500], z[:500], ebv=ebv[:500])
    assert knn.zgrid_ == ZGrid(0.0, 0.5, 100)
    pdf = knn.predict_pdf(X[500:], ebv=ebv[500:])
    from deepdip.metrics import point_estimates

    np.testing.assert_array_equal(knn.predict(X[500:], ebv=ebv[500:]), point_estimates(pdf, knn.zgrid_)["z_median"])
    with pytest.raises(ValueError, match="expecting 10 features"):
        knn.predict(X[500:, :8])
    with pytest.raises(DeepdipValueError, match="one E\\(B-V\\) per galaxy"):
        knn.predict(X[500:], ebv=ebv[:3])
    with pytest.raises(DeepdipValueError, match=r"\[n, 2B\]"):
        KNNPhotoz().fit(X[:, :9], z)
    with pytest.raises(DeepdipValueError, match="--k"):
        KNNPhotoz(k=0).fit(X, z)  # the baseline's own check of the value, at fit (scikit-learn's rule)
    # fluxes alone, with fractional errors; 3 bands have no preset filters: no dereddening, no BPZ
    three = KNNPhotoz(k=10, error_fraction=0.05).fit(flux[:500, 1:4], z[:500])
    assert three.bands_ == ("b0", "b1", "b2") and three.predict(flux[500:, 1:4]).shape == (100,)
    with pytest.raises(DeepdipValueError, match="filters"):
        KNNPhotoz(error_fraction=0.05).fit(flux[:500, 1:4], z[:500], ebv=ebv[:500])
    with pytest.raises(DeepdipValueError, match="filters"):
        BPZPhotoz(error_fraction=0.05).fit(flux[:500, 1:4], z[:500])
    assert BPZPhotoz(bands="gri", filters=FILTERS[1:4], error_fraction=0.05).fit(
        flux[:500, 1:4], z[:500]).predict(flux[500:, 1:4]).shape == (100,)


def test_sklearn_tools_work(phot):
    """clone, pickle, GridSearchCV with the -sigma_MAD score, and ebv routed by scikit-learn's metadata routing."""
    import sklearn
    from sklearn.model_selection import GridSearchCV, cross_val_score

    flux, err, ebv, z = phot
    X = np.hstack([flux, err])
    knn = KNNPhotoz(k=10).fit(X[:500], z[:500])
    again = pickle.loads(pickle.dumps(knn))
    np.testing.assert_array_equal(again.predict(X[500:]), knn.predict(X[500:]))
    fresh = clone(knn)
    assert fresh.get_params() == knn.get_params() and not hasattr(fresh, "estimator_")
    search = GridSearchCV(KNNPhotoz(), {"k": [5, 20]}, cv=3).fit(X, z)
    assert search.best_params_["k"] in (5, 20) and search.best_score_ < 0
    with sklearn.config_context(enable_metadata_routing=True):
        est = KNNPhotoz(k=10).set_fit_request(ebv=True).set_score_request(ebv=True)
        routed = cross_val_score(est, X, z, cv=3, params={"ebv": ebv})
    plain = cross_val_score(KNNPhotoz(k=10), X, z, cv=3)
    assert routed.shape == (3,) and np.all(routed < 0) and not np.allclose(routed, plain)


def _leftover_stores() -> set[str]:
    return {str(p) for p in Path(tempfile.gettempdir()).glob("deepdip-sklearn-*")}


def test_cnn_fits_and_predicts_arrays(tmp_path):
    """A tiny CNN (2 epochs) on 120 toy 16x16 cutouts: PDFs on the grid, point estimates, score, no temporary
    store left behind, pickling; out= keeps a run that deepdip predict reads."""
    from deepdip.train.toydata import toy_images

    rng = np.random.default_rng(0)
    n = 120
    z, ebv = rng.uniform(0.02, 0.38, n), rng.uniform(0.0, 0.1, n)
    X = toy_images(z, ebv, size=16, seed=1, noise=0.05)
    before = _leftover_stores()
    cnn = CNNPhotoz(epochs=2, batch_size=32, model_kwargs=TINY_MODEL, out=tmp_path / "run",
                    train_kwargs={"tensorboard": False, "threads": 1})
    assert cnn.fit(X, z, ebv=ebv) is cnn
    assert _leftover_stores() == before
    pdf = cnn.predict_pdf(X[:10], ebv=ebv[:10])
    assert pdf.shape == (10, 180) and np.allclose(pdf.sum(axis=1), 1, atol=1e-5)
    z_phot = cnn.predict(X[:10], ebv=ebv[:10])
    assert np.all((z_phot >= 0) & (z_phot < 0.4)) and np.isfinite(cnn.score(X, z, ebv=ebv))
    assert cnn.image_shape_ == (5, 16, 16) and cnn.bands_ == tuple("ugriz")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(cnn)).predict(X[:10], ebv=ebv[:10]), z_phot)
    assert (tmp_path / "run" / "fold0" / "member0" / "model.pt").is_file()
    with pytest.raises(DeepdipValueError, match="fitted on"):
        cnn.predict(X[:, :, :8, :8])
    with pytest.raises(DeepdipValueError, match="square cutouts"):
        CNNPhotoz().fit(X[:, 0], z)
