"""The estimator contract, checked the same way for every estimator (knn, rf, boost, bpz, cnn).

scikit-learn's rules (``sklearn.utils.estimator_checks``) and RAIL's rerun rule, on a store of 200
galaxies: ``fit`` returns self and leaves the parameters alone; a rerun gives identical PDFs;
parameters survive ``get_params``/``set_params``/``clone``; a saved model loads back (without
unpickling) and predicts identical PDFs; bad input raises :class:`DeepdipError`.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone

from deepdip.baselines import METHODS, baseline_class, load_baseline, make_baseline
from deepdip.errors import DeepdipError
from deepdip.store import CutoutStore
from deepdip.train import CNNEstimator

from .conftest import TINY_MODEL

TINY_CNN = {"model_kwargs": TINY_MODEL, "num_workers": 0, "tensorboard": False}
FAST = {"knn": {"k": 5}, "rf": {"n_trees": 10}, "boost": {"n_rounds": 20}, "bpz": {"interp": 1}}
NAMES = [*METHODS, "cnn"]
FOLD = 0


def make_estimator(name: str, tmp_path):
    if name == "cnn":
        return CNNEstimator(model="compact", epochs=1, out=tmp_path / "cnn", seed=3, progress=False,
                            train_kwargs=dict(TINY_CNN))
    return make_baseline(name, **FAST[name])


def comparable_params(est) -> dict:
    """Parameters less where a CNN keeps its files (each copy has its own run directory)."""
    return {k: v for k, v in est.get_params().items() if k != "out"}


def comparable_config(est) -> dict:
    return {k: v for k, v in est.config().items() if k != "run"}


@pytest.fixture(scope="module")
def store(photometry_store):
    return CutoutStore(photometry_store)


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, store, tmp_path_factory):
    """(name, a fresh estimator's parameters, the estimator fitted on fold 0, its test-fold PDFs)."""
    est = make_estimator(request.param, tmp_path_factory.mktemp(request.param))
    params = est.get_params()
    assert est.fit(store, FOLD) is est
    return request.param, params, est, est.predict_pdf(store, store.split_rows("test", FOLD))


def test_fit_returns_self_leaves_parameters_and_predicts_pdfs(fitted, store):
    _, params, est, pdf = fitted
    assert est.get_params() == params  # what fit learns goes into names ending in "_"
    assert pdf.shape == (len(store.split_rows("test", FOLD)), est.zgrid_.nbins) and pdf.dtype == np.float32
    assert np.all(pdf >= 0) and np.allclose(pdf.sum(axis=1), 1.0, atol=1e-5)


def test_rerun_gives_identical_output(fitted, store, tmp_path):
    name, _, est, pdf = fitted
    again = clone(est)
    if name == "cnn":
        again.set_params(out=tmp_path / "again")  # a fresh run, not a resume of the first
    again.fit(store, FOLD)
    assert np.array_equal(again.predict_pdf(store, store.split_rows("test", FOLD)), pdf)
    assert comparable_config(again) == comparable_config(est)


def test_parameters_round_trip(fitted, tmp_path):
    name, params, est, _ = fitted
    cls = type(est)
    signature = set(inspect.signature(cls).parameters)
    assert set(params) == signature  # get_params reads the constructor's signature, nothing hidden
    if name != "cnn":
        assert signature == {"zgrid", *baseline_class(name).PARAMS}  # PARAMS is the one declaration
    copy = clone(est)
    assert copy.get_params() == params and not hasattr(copy, "zgrid_")  # clone is unfitted
    rebuilt = cls(**params)
    assert rebuilt.get_params() == params and repr(rebuilt) == repr(est)
    blank = make_estimator(name, tmp_path)
    defaults = blank.get_params()
    assert blank.set_params(**params) is blank and blank.get_params() == params
    assert blank.set_params(**defaults).get_params() == defaults


@pytest.mark.parametrize("check", ["check_no_attributes_set_in_init", "check_parameters_default_constructible",
                                   "check_get_params_invariance", "check_set_params"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.filterwarnings("ignore:.*delay parameter validation until fit")  # deepdip checks at once, by design
def test_scikit_learn_parameter_checks(name, check, tmp_path):
    """scikit-learn's own checks of the parameter contract (those that need no fit(X, y))."""
    from sklearn.utils import estimator_checks

    est = make_estimator(name, tmp_path)
    getattr(estimator_checks, check)(type(est).__name__, est)


def test_save_load_round_trips(fitted, store, tmp_path):
    name, _, est, pdf = fitted
    path = tmp_path / ("cnn" if name == "cnn" else f"{name}.npz")
    est.save(path)
    loaded = type(est).load(path)
    assert type(loaded) is type(est)
    assert np.array_equal(loaded.predict_pdf(store, store.split_rows("test", FOLD)), pdf)
    assert comparable_params(loaded) == comparable_params(est)
    assert comparable_config(loaded) == comparable_config(est)
    with pytest.raises(DeepdipError, match="exists"):
        est.save(path)  # never replaced without overwrite (and a CNN's run directory never)
    if name != "cnn":
        assert load_baseline(path).config() == est.config()
        est.save(path, overwrite=True)
        assert np.array_equal(load_baseline(path).predict_pdf(store, store.split_rows("test", FOLD)), pdf)


def test_bad_input_raises_deepdip_error(fitted, store, tiny_store, tmp_path):
    name, _, est, _ = fitted
    fresh = make_estimator(name, tmp_path)
    with pytest.raises(DeepdipError, match="fitted"):
        fresh.predict_pdf(store, np.arange(3))
    with pytest.raises(DeepdipError, match="fitted"):
        fresh.save(tmp_path / "unfitted")
    with pytest.raises(DeepdipError, match="fold"):
        fresh.fit(store, fold=store.n_folds)
    with pytest.raises(DeepdipError):  # no photometry for a baseline; other bands or image size for the CNN
        est.predict_pdf(CutoutStore(tiny_store), np.arange(3))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    with pytest.raises(DeepdipError):
        type(est).load(junk if name != "cnn" else tmp_path)
    if name == "cnn":
        with pytest.raises(DeepdipError, match="ensemble"):
            make_estimator(name, tmp_path).set_params(ensemble=0).fit(store, FOLD)
    else:
        with pytest.raises(DeepdipError, match="--seed"):
            make_baseline(name, seed=-1)
        with pytest.raises(DeepdipError, match="unknown parameter"):
            fresh.set_params(no_such_parameter=1)


# ---------------------------------------------------------------- baseline model files are data, not code
@pytest.fixture(scope="module")
def knn_file(store, tmp_path_factory):
    return make_baseline("knn", **FAST["knn"]).fit(store, FOLD).save(tmp_path_factory.mktemp("knn") / "knn.npz")


def test_a_pickled_array_in_a_model_file_is_refused(knn_file, tmp_path):
    with np.load(knn_file) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["z_train_"] = np.array([object()], dtype=object)  # would need unpickling to read
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(DeepdipError, match="not a readable deepdip baseline model file"):
        load_baseline(bad)


def test_a_tampered_model_file_is_refused(knn_file, tmp_path):
    import json

    with np.load(knn_file) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"][()]))
    for change, message in [({"format": "other"}, "not a deepdip baseline"), ({"method": "svm"}, "unknown"),
                            ({"params": {**meta["params"], "k": 0}}, "--k must be at least 1"),
                            ({"state": {}}, "damaged knn model file")]:
        bad = tmp_path / "bad.npz"
        np.savez(bad, **{**arrays, "meta": np.array(json.dumps({**meta, **change}))})
        with pytest.raises(DeepdipError, match=message):
            load_baseline(bad)
    with pytest.raises(DeepdipError, match="not a RandomForestBaseline"):
        baseline_class("rf").load(knn_file)


def test_a_forest_with_out_of_range_nodes_is_refused(store):
    """skops warns that a tree's node indices are used unchecked (a crash, or memory read out of
    bounds, in predict); the loader checks them."""
    import skops.io

    from deepdip.baselines.forest import load_forest

    est = make_baseline("rf", n_trees=3).fit(store, FOLD)
    n_features = est.forest_.n_features_in_
    assert load_forest(skops.io.dumps(est.forest_), n_features).n_estimators == 3
    est.forest_.estimators_[1].tree_.children_left[0] = 10**6
    with pytest.raises(DeepdipError, match="invalid node indices"):
        load_forest(skops.io.dumps(est.forest_), n_features)
    est.forest_.estimators_[1].tree_.children_left[0] = 0  # a cycle: predict would never end
    with pytest.raises(DeepdipError, match="invalid node indices"):
        load_forest(skops.io.dumps(est.forest_), n_features)


def test_cli_baseline_saves_the_model_it_predicted_with(photometry_store, tmp_path, capsys):
    from deepdip.catalog import read_catalog
    from deepdip.cli import main

    out, model = tmp_path / "knn.parquet", tmp_path / "knn.npz"
    args = ["baseline", str(photometry_store), "--method", "knn", "--fold", "1", "--k", "5", "--out", str(out)]
    assert main([*args, "--save-model", str(model)]) == 0
    store = CutoutStore(photometry_store)
    assert np.array_equal(load_baseline(model).predict_pdf(store, store.split_rows("test", 1)), read_catalog(out).pdf)
    assert main([*args, "--overwrite", "--save-model", str(photometry_store)]) == 2  # never an input
    assert main([*args, "--overwrite", "--save-model", str(out)]) == 2
    assert main([*args[:-1], str(tmp_path / "other.parquet"), "--save-model", str(model)]) == 2  # exists
    assert capsys.readouterr().err.count("\n") >= 3
