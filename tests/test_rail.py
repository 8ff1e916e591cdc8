"""The RAIL plugin (``rail.deepdip``): discovery, the baseline and CNN stages in RAIL pipelines, and RAIL's own
evaluators against ``deepdip evaluate`` on the same galaxies.

Stages run in Python as RAIL's own tests and notebooks run them (``Stage.make_stage(...)``, then
``inform``/``estimate``/``evaluate``), on a 300-galaxy ``sdss`` mock: fold 0 (68 galaxies) is the
test set. Skipped when RAIL (``pz-rail-base``, the ``rail`` extra) is not installed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rail.core.stage", reason="RAIL is not installed (pip install -e '.[rail]', PyPI pz-rail-base)")

import qp  # noqa: E402
from rail.core.data import QPHandle, TableHandle  # noqa: E402

from deepdip import catalog, metrics  # noqa: E402
from deepdip.baselines import load_baseline, make_baseline  # noqa: E402
from deepdip.errors import DeepdipError  # noqa: E402
from deepdip.photometry import Photometry  # noqa: E402
from deepdip.store import CutoutStore  # noqa: E402
from tests.conftest import SRC, TINY_MODEL  # noqa: E402

BANDS = [f"mag_{b}" for b in "ugriz"]
ERRS = [f"mag_err_{b}" for b in "ugriz"]
#: What every baseline stage of these tests is given: RAIL's conventions for an SDSS-like table.
TABLE = dict(bands=BANDS, err_bands=ERRS, ref_band="mag_r", mag_limits={b: 24.0 for b in BANDS},
             nondetect_val=99.0, hdf5_groupname="", survey="sdss", ebv_col="ebv", extra_columns=["hlr_meas"])
GRID = dict(zmin=0.0, zmax=0.4, nzbins=181)   # 181 grid points = the 180 bin edges of the sdss preset
POINT_METRICS = {"point_stats_sigma_mad": "sigma_mad", "point_stats_iqr": "sigma_iqr", "point_bias": "bias_median",
                 "point_outlier_rate": "outlier_frac_rail"}


@pytest.fixture(scope="module")
def mock(tmp_path_factory) -> Path:
    """A 300-galaxy sdss mock (64x64 ugriz cutouts, measured photometry): the same galaxies for every test.

    Its catalogue holds Kron fluxes, all positive here: RAIL's magnitude tables cannot hold a non-positive
    flux (it becomes ``nondetect_val``), which the sdss preset's model fits give for some faint u bands, and
    the stages can only predict what deepdip predicts when both see the same photometry.
    """
    from deepdip.simulate import simulate_store
    from deepdip.surveys import Survey, load_survey

    base = load_survey("sdss")
    kron = Survey(base.name, base.bands, base.filters, base.pixel_scale, base.stamp_size, base.zmin, base.zmax,
                  base.nbins, dict(base.params, catalogue_photometry={"method": "kron"}))
    path = tmp_path_factory.mktemp("rail") / "mock.h5"
    simulate_store(kron, n=300, seed=1, out=path, workers=1, progress=False)
    assert (Photometry.from_store(CutoutStore(path)).flux > 0).all()  # the precondition above
    return path


def rail_table(store: CutoutStore, rows) -> dict:
    """The store's measured photometry as RAIL's usual magnitude table (+ redshift, object_id, ebv, a size)."""
    from rail.deepdip import magnitude_table

    table = magnitude_table(Photometry.from_store(store, rows))   # observed (not dereddened) fluxes
    table.update(redshift=store.column("z_spec", rows).astype(np.float64), object_id=store.column("id", rows),
                 ebv=store.column("ebv", rows).astype(np.float64),
                 hlr_meas=store.column("hlr_meas", rows).astype(np.float64))
    return table


@pytest.fixture(scope="module")
def tables(mock):
    store = CutoutStore(mock)
    train, test = store.split_rows("train", 0), store.split_rows("test", 0)
    return {"store": store, "train": rail_table(store, train), "test": rail_table(store, test), "test_rows": test}


def test_rail_discovers_the_plugin_as_its_own_packages():
    import rail.stages
    from rail.core import RailEnv

    import rail
    import rail.estimation.algos.deepdip as algos

    assert "rail.deepdip" in RailEnv.list_rail_packages()
    rail.stages.import_and_attach_all(silent=True)
    import rail.deepdip as plugin

    names = [f"Deepdip{m}{kind}" for m in ("KNN", "RandomForest", "Boost", "BPZ", "CNN")
             for kind in ("Informer", "Estimator")]
    for name in names:
        assert getattr(rail.stages, name) is getattr(plugin, name) is getattr(algos, name)
    # rail/ and rail/estimation/ are namespace packages shared with pz-rail-base: an __init__.py would hide RAIL
    for package in ("rail", "rail/estimation", "rail/estimation/algos"):
        assert not (Path(SRC) / package / "__init__.py").exists()
    assert any(Path(p) == Path(SRC) / "rail" for p in rail.__path__)


@pytest.mark.parametrize("method", ["knn", "rf", "boost", "bpz"])
def test_baseline_stages_predict_what_deepdip_predicts(tables, method, tmp_path, monkeypatch):
    """inform -> estimate in RAIL gives, on the same galaxies, the PDFs deepdip's own baseline gives on
    the store; the model file is deepdip's .npz (read back without pickle) and the output a qp file."""
    from rail.deepdip import BASELINE_STAGES

    monkeypatch.chdir(tmp_path)
    informer_cls, estimator_cls = BASELINE_STAGES[method]
    informer = informer_cls.make_stage(name=f"inform_{method}", model=f"{method}.npz", **TABLE, **GRID)
    model = informer.inform(tables["train"])
    estimator = estimator_cls.make_stage(name=f"estimate_{method}", model=model, chunk_size=25, **TABLE)
    output = estimator.estimate(tables["test"])

    saved = load_baseline(tmp_path / f"{method}.npz")   # deepdip's own model file, never unpickled
    assert saved.name == method and saved.zgrid_ == saved.zgrid
    ens = qp.read(output.path)                            # the file RAIL wrote, chunk by chunk (25 rows)
    assert ens.npdf == len(tables["test_rows"])
    assert {"id", "zmode", "zmean", "zmedian"} <= set(ens.ancil)
    np.testing.assert_array_equal(np.ravel(ens.ancil["id"]), tables["test"]["object_id"])

    store = tables["store"]
    direct = make_baseline(method).fit(store, fold=0)     # the store face: no table, no magnitudes
    want = direct.predict_pdf(store, tables["test_rows"])
    grid = saved.zgrid_
    assert grid == direct.zgrid_
    np.testing.assert_allclose(ens.objdata["pdfs"] * grid.width, want, atol=2e-6)
    point = metrics.point_estimates(want, grid)
    for key in ("zmode", "zmean", "zmedian"):
        np.testing.assert_allclose(np.ravel(ens.ancil[key]), point[key[0] + "_" + key[1:]], atol=1e-6)


def test_rail_evaluators_agree_with_deepdip_evaluate(tables, tmp_path, monkeypatch):
    """RAIL's PointToPointEvaluator and DistToPointEvaluator on the RAIL stage's ensemble and deepdip's truth
    export give the numbers of `deepdip evaluate` (metrics.json) on deepdip's catalogue of the same galaxies."""
    from rail.evaluation.dist_to_point_evaluator import DistToPointEvaluator
    from rail.evaluation.point_to_point_evaluator import PointToPointEvaluator

    from deepdip.report import evaluate
    from rail.deepdip import DeepdipKNNEstimator, DeepdipKNNInformer

    monkeypatch.chdir(tmp_path)
    model = DeepdipKNNInformer.make_stage(name="inform_knn", model="knn.npz", **TABLE, **GRID).inform(tables["train"])
    ens_handle = DeepdipKNNEstimator.make_stage(name="estimate_knn", model=model, **TABLE).estimate(tables["test"])

    store = tables["store"]
    make_baseline("knn").fit(store, fold=0).predict_catalog(store, tables["test_rows"], tmp_path / "knn.parquet",
                                                            progress=False)
    cat = catalog.read_catalog(tmp_path / "knn.parquet")
    truth = TableHandle("truth", path=str(catalog.write_truth_table(cat, tmp_path / "truth.hdf5")))
    ens = QPHandle("pdfs", path=ens_handle.path)

    for key, column in (("zmean", "z_mean"), ("zmode", "z_mode"), ("zmedian", "z_median")):
        got = evaluate([tmp_path / "knn.parquet"], tmp_path / f"report_{key}", point=column)["knn"]
        written = json.loads((tmp_path / f"report_{key}" / "metrics.json").read_text())["knn"]
        ptp = PointToPointEvaluator.make_stage(name=f"ptp_{key}", metrics=list(POINT_METRICS), force_exact=True,
                                               point_estimate_key=key, hdf5_groupname="photometry")
        summary = ptp.evaluate(ens, truth)["summary"].data
        for rail_name, ours in POINT_METRICS.items():
            assert float(summary[rail_name][0]) == pytest.approx(written[ours], rel=1e-9, abs=1e-12), (key, ours)
            assert written[ours] == got[ours]

    dtp = DistToPointEvaluator.make_stage(name="dtp", metrics=["pit", "cdeloss"], force_exact=True,
                                          hdf5_groupname="photometry", metric_integration_limits=[0.0, 0.4],
                                          metric_config={"cdeloss": {"eval_grid": cat.zgrid.centres}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = dtp.evaluate(ens, truth)
    from qp.metrics.pit import PIT

    # The evaluator's PIT distribution is the quantile ensemble of deepdip's PIT values
    pit = metrics.pit_values(cat.pdf, cat.zgrid, cat.table["z_spec"].to_numpy())
    levels = np.linspace(0, 1, min(100, len(pit)))   # qp shrinks its 100 levels to the number of PITs
    want = PIT._produce_output_ensemble(np.quantile(pit, levels), levels)
    got = results["single_distribution_summary"].data["pit"]

    def levels_inside(ensemble):
        """(quantile level, PIT) pairs of a PIT ensemble, those at PIT 0 or 1 left out: a galaxy whose z_spec
        lies beyond all its PDF's mass has PIT exactly 1 in deepdip, and qp's CDF of the interpolated ensemble
        lands on either side of 1 there (1.00013, or 1 - 1e-9, which qp's (0, 1) mask then keeps)."""
        pick = lambda key: np.ravel(ensemble.objdata[key] if key in ensemble.objdata else ensemble.metadata[key])  # noqa: E731
        quants, locs = pick("quants"), pick("locs")
        keep = (locs > 1e-6) & (locs < 1 - 1e-6)
        return quants[keep], locs[keep]

    for ours, theirs in zip(levels_inside(want), levels_inside(got)):
        np.testing.assert_allclose(theirs, ours, atol=1e-6)
    written = json.loads((tmp_path / "report_zmean" / "metrics.json").read_text())["knn"]
    # CDE loss: qp evaluates the density on a grid of points (trapezoid for the integral of f^2, the point
    # nearest z_spec for f(z_spec)), deepdip exactly for the piecewise-uniform density. On the bin centres
    # qp's nearest point is z_spec's own bin and its trapezoid is exact but for half of each end bin
    # (empty here): the same number.
    assert np.abs(cat.pdf[:, [0, -1]]).max() == 0
    assert float(results["summary"].data["cdeloss"][0]) == pytest.approx(written["cde_loss"], rel=1e-9)
    # PIT statistics: qp's PIT object on the RAIL ensemble, deepdip's numbers from its own catalogue
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qp_pit = PIT(qp.read(ens_handle.path), cat.table["z_spec"].to_numpy())
        assert written["pit_ks"] == pytest.approx(qp_pit.evaluate_PIT_KS().statistic, abs=2e-6)
        assert written["pit_cvm"] == pytest.approx(qp_pit.evaluate_PIT_CvM().statistic, abs=1e-5)
        # qp's Anderson-Darling drops PIT values outside [0, 1]: the overshoot above (a PIT of 1.00013) loses
        # that galaxy there. The statistic is rank-based with midranks for ties, and the PIT values agree only
        # to 1e-6: galaxies at PIT exactly 1 in deepdip (tied with the uniform sample's end) are not all exactly
        # 1 in qp, which moves the statistic (0.41 against 0.56 on one mock). So: the same values, and the same
        # statistic on the same values.
        samples = np.asarray(qp_pit._pit_samps)
        assert np.allclose(np.clip(samples, 0.0, 1.0), pit, atol=1e-6)   # the same galaxies in the same order
        kept = (samples >= 0.0) & (samples <= 1.0)
        assert metrics.pit_ad(samples[kept]) == pytest.approx(qp_pit.evaluate_PIT_anderson_ksamp().statistic,
                                                              abs=1e-9)
        if kept.all():
            assert written["pit_ad"] == pytest.approx(qp_pit.evaluate_PIT_anderson_ksamp().statistic, abs=1e-4)


def test_cnn_stages_stream_the_store_and_predict_what_deepdip_predicts(mock, tmp_path, monkeypatch):
    from deepdip.predict import predict_store
    from rail.deepdip import CNNModel, DeepdipCNNEstimator, DeepdipCNNInformer

    monkeypatch.chdir(tmp_path)
    informer = DeepdipCNNInformer.make_stage(
        name="inform_cnn", fold="0", epochs=1, seed=3,
        train_config=dict(model_kwargs=TINY_MODEL, threads=1, progress=False, num_workers=0, tensorboard=False))
    model = informer.inform(str(mock))
    manifest = json.loads(Path(model.path).read_text())
    assert manifest["format"] == "deepdip-cnn-run" and manifest["run"] == "model_inform_cnn_run"
    assert (tmp_path / "model_inform_cnn_run" / "fold0" / "member0" / "model.pt").is_file()

    reads = []
    real_images = CutoutStore.images
    monkeypatch.setattr(CutoutStore, "images", lambda self, rows=None: reads.append(rows) or real_images(self, rows))
    estimator = DeepdipCNNEstimator.make_stage(name="estimate_cnn", model=model, chunk_size=64)
    output = estimator.estimate(str(mock))
    sizes = [r.stop - r.start for r in reads]
    assert max(sizes) <= 64 and sum(sizes) == 300          # five chunks, never the whole store
    monkeypatch.setattr(CutoutStore, "images", real_images)

    ens = qp.read(output.path)
    want = catalog.read_catalog(predict_store(tmp_path / "model_inform_cnn_run", mock, tmp_path / "cnn.parquet",
                                              rows="all", progress=False))
    np.testing.assert_array_equal(np.ravel(ens.ancil["id"]), want.ids)
    np.testing.assert_allclose(ens.objdata["pdfs"] * want.zgrid.width, want.pdf, atol=1e-6)
    for key in ("zmode", "zmean", "zmedian"):
        np.testing.assert_allclose(np.ravel(ens.ancil[key]), want.table[key[0] + "_" + key[1:]], atol=1e-6)
    np.testing.assert_array_equal(np.ravel(ens.ancil["z_spec"]), want.table["z_spec"])

    # the model may also be the manifest's path, the run directory or one model.pt
    for name, given in (("manifest", model.path), ("run", "model_inform_cnn_run"),
                        ("pt", "model_inform_cnn_run/fold0/member0/model.pt")):
        stage = DeepdipCNNEstimator.make_stage(name=f"estimate_{name}", model=given, output_mode="return")
        np.testing.assert_allclose(stage.estimate(CutoutStore(mock)).data.objdata["pdfs"], ens.objdata["pdfs"],
                                   atol=1e-9)
        assert isinstance(stage.model, CNNModel)
    cv = DeepdipCNNEstimator.make_stage(name="estimate_cv", model=model, rows="test", output_mode="return")
    with pytest.raises(DeepdipError, match="rows='test' needs a model for every fold"):
        cv.estimate(str(mock))


def test_magnitude_tables_follow_rails_conventions():
    from rail.deepdip import magnitude_table, table_photometry

    cfg = dict(bands=["m_a", "m_b"], err_bands=["e_a", "e_b"], nondetect_val=99.0, nonobserved_val=-99.0,
               mag_limits={"m_a": 25.0, "m_b": 24.0})
    table = {"m_a": np.array([20.0, 99.0, -99.0, np.nan, 21.0]), "e_a": np.array([0.1, 0.5, 0.3, 0.1, -1.0]),
             "m_b": np.array([22.5, 22.5, 22.5, 22.5, 99.0]), "e_b": np.full(5, 0.05)}
    phot = table_photometry(table, cfg)
    assert phot.bands == ("m_a", "m_b") and np.all(phot.extinction == 0)
    np.testing.assert_allclose(phot.flux[0], [10 ** (-0.4 * (20 - 22.5)), 1.0])
    np.testing.assert_allclose(phot.flux_err[0], phot.flux[0] * np.log(10) / 2.5 * np.array([0.1, 0.05]))
    # a non-detection is the measurement "zero flux, 1-sigma error at the limiting magnitude"
    assert phot.flux[1, 0] == 0.0 and phot.flux_err[1, 0] == pytest.approx(10 ** (-0.4 * (25.0 - 22.5)))
    assert phot.flux[4, 1] == 0.0 and phot.flux_err[4, 1] == pytest.approx(10 ** (-0.4 * (24.0 - 22.5)))
    # not observed: -99, NaN (when 99 marks non-detections) or an unusable error
    np.testing.assert_array_equal(phot.observed[:, 0], [True, True, False, False, False])
    nan_cfg = dict(cfg, nondetect_val=np.nan)
    assert table_photometry(table, nan_cfg).flux[3, 0] == 0.0   # NaN is the sentinel: a non-detection
    with pytest.raises(DeepdipError, match=r"no mag_limits\['m_b'\]"):
        table_photometry(table, dict(cfg, mag_limits={"m_a": 25.0}))
    with pytest.raises(DeepdipError, match="needs the bands' filter curves"):
        table_photometry(table, cfg, need_filters=True)
    with pytest.raises(DeepdipError, match="no column 'm_c'"):
        table_photometry(table, dict(cfg, bands=["m_a", "m_c"]))
    # the inverse of magnitude_table, to rounding, for detected bands
    rng = np.random.default_rng(2)
    flux = rng.uniform(0.5, 300, (50, 2))
    phot = Photometry(flux, flux * 0.03, 0.0, ("a", "b"), ("a", "b"))
    back = table_photometry(magnitude_table(phot), dict(cfg, bands=["mag_a", "mag_b"],
                                                        err_bands=["mag_err_a", "mag_err_b"]))
    np.testing.assert_allclose(back.flux, flux, rtol=1e-12)
    np.testing.assert_allclose(back.flux_err, flux * 0.03, rtol=1e-12)


def test_model_files_are_deepdips_and_checked(tables, tmp_path, monkeypatch):
    from rail.deepdip import DeepdipKNNInformer, DeepdipModelHandle, DeepdipRandomForestEstimator

    monkeypatch.chdir(tmp_path)
    DeepdipKNNInformer.make_stage(name="inform_knn", model="knn.npz", **TABLE, **GRID).inform(tables["train"])
    with np.load(tmp_path / "knn.npz", allow_pickle=False) as archive:   # a zip of .npy arrays and JSON
        assert json.loads(str(archive["meta"][()]))["format"] == "deepdip-baseline"
    assert DeepdipModelHandle("model", path=str(tmp_path / "knn.npz")).read().name == "knn"
    wrong = DeepdipRandomForestEstimator.make_stage(name="rf_with_knn", model=str(tmp_path / "knn.npz"), **TABLE)
    with pytest.raises(DeepdipError, match="needs a rf model"):
        wrong.estimate(tables["test"])


def test_cnn_estimator_gives_cross_validated_pdfs_of_a_fold_all_run(tmp_path, monkeypatch):
    """rows='test': each row by its own fold's ensemble, as `deepdip predict --rows test` (a 16x16 toy store)."""
    from deepdip.predict import predict_store
    from deepdip.train.toydata import make_toy_store
    from rail.deepdip import DeepdipCNNEstimator, DeepdipCNNInformer

    monkeypatch.chdir(tmp_path)
    toy = make_toy_store(tmp_path / "toy.h5", n=120, size=16, n_folds=3, seed=4)
    model = DeepdipCNNInformer.make_stage(
        name="inform_cv", fold="all", epochs=1, run_dir=str(tmp_path / "cv_run"),
        train_config=dict(model_kwargs=TINY_MODEL, threads=1, progress=False, num_workers=0, tensorboard=False),
    ).inform(toy)
    got = DeepdipCNNEstimator.make_stage(name="estimate_cv", model=model, rows="test", chunk_size=50,
                                         output_mode="return").estimate(toy).data
    want = catalog.read_catalog(predict_store(tmp_path / "cv_run", toy, tmp_path / "cv.parquet", rows="test",
                                              progress=False))
    np.testing.assert_array_equal(np.ravel(got.ancil["id"]), want.ids)
    np.testing.assert_allclose(got.objdata["pdfs"] * want.zgrid.width, want.pdf, atol=1e-6)
    every = DeepdipCNNEstimator.make_stage(name="estimate_all", model=model, output_mode="return").estimate(toy).data
    assert not np.allclose(every.objdata["pdfs"], got.objdata["pdfs"], atol=1e-3)   # the choice of models matters
