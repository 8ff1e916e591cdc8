"""Prediction (the ``deepdip.predict`` package): model files, PDFs, ensembles, test-time augmentation,
store checks, CLI end to end, and the three executors writing one catalogue: in-process, a real Dask
LocalCluster (two worker processes on loopback) and Lightning's predict loop (two CPU processes, DDP)."""

import json
import subprocess
import sys
from pathlib import Path

import distributed
import numpy as np
import pytest
import torch

from deepdip.catalog import read_catalog
from deepdip.errors import DeepdipError
from deepdip.models.dihedral import dihedral
from deepdip.predict import load_members, predict_chunk, predict_store, predict_store_dask, predict_store_lightning
from deepdip.store import CutoutStore
from deepdip.train import CNNEstimator
from deepdip.train.toydata import make_toy_store

from .conftest import TINY_MODEL, assert_folds_predicted_by_their_own_models, cli_env

TINY = TINY_MODEL
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "legacy_dr10_piczl"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_store(tmp_path_factory.mktemp("toy") / "toy.h5", n=300, size=16, seed=1)


@pytest.fixture(scope="module")
def run(toy, tmp_path_factory):
    """Two folds x two members, two epochs each: enough to check the plumbing."""
    from deepdip.train import train

    return train(toy, fold="0,1", ensemble=2, epochs=2, out=tmp_path_factory.mktemp("run") / "cnn", seed=2,
                 model_kwargs=TINY, progress=False, num_workers=0, tensorboard=False)


def test_model_file_loads_weights_only_and_carries_its_config(run):
    payload = torch.load(run / "fold0" / "member0" / "model.pt", weights_only=True)
    cfg = payload["config"]
    assert cfg["bands"] == list("ugriz") and cfg["image_shape"] == [16, 16]
    assert cfg["zgrid"] == {"zmin": 0.0, "zmax": 0.4, "nbins": 180}
    assert cfg["net"]["stretch"] == "asinh"
    assert "normalizer.scale" in payload["state_dict"]
    assert payload["info"]["fold"] == 0 and payload["info"]["member"] == 0


def test_pdfs_are_normalised_and_tta_is_orientation_invariant(run, toy):
    store = CutoutStore(toy)
    members = load_members(sorted((run / "fold0").glob("member*/model.pt")), store)
    nets = [m.net for m in members]
    images, ebv = store.images(np.arange(20)), store.column("ebv", np.arange(20))[:, None]
    pdf = predict_chunk(nets, images, ebv)
    assert pdf.shape == (20, 180)
    assert (pdf >= 0).all() and np.allclose(pdf.sum(axis=1), 1, atol=1e-5)
    # The ensemble PDF is the mean of the members' PDFs, each the softmax of its network's logits
    # bin for bin (a PDF shifted by one bin, a bias of 2e-3, would not pass).
    each = [predict_chunk([n], images, ebv) for n in nets]
    assert np.allclose(pdf, np.mean(each, axis=0), atol=1e-6)
    with torch.no_grad():
        x, e = torch.from_numpy(images), torch.from_numpy(ebv)
        direct = [torch.softmax(n(x, e).float(), dim=1).numpy() for n in nets]
    assert np.allclose(pdf, np.mean(direct, axis=0), atol=1e-5)
    # With TTA the PDF of a rotated or flipped galaxy is the same.
    rotated = dihedral(torch.from_numpy(images), 5).numpy()
    assert np.allclose(predict_chunk(nets, images, ebv, tta=True), predict_chunk(nets, rotated, ebv, tta=True),
                       atol=1e-5)


def test_predict_test_rows_uses_each_folds_models(run, toy, tmp_path):
    out = predict_store(run, toy, tmp_path / "cv.parquet", rows="test", chunk_size=50, progress=False)
    cat = read_catalog(out)
    store = CutoutStore(toy)
    folds = store.column("fold")
    assert sorted(cat.table["fold"].unique()) == [0, 1]
    assert len(cat.table) == np.isin(folds, [0, 1]).sum()
    assert np.allclose(cat.pdf.sum(axis=1), 1, atol=1e-5)
    # Row by row equal to the fold's own ensemble, for every fold (chunking changes nothing).
    assert_folds_predicted_by_their_own_models(cat, run, store)
    rows = store.split_rows("test", fold=1)
    est = CNNEstimator.from_run(run, 1, store)
    got = cat.pdf[cat.table["fold"].to_numpy() == 1]
    assert np.allclose(got, est.predict_pdf(store, rows), atol=1e-6)
    all_rows = read_catalog(predict_store(run, toy, tmp_path / "all.parquet", rows="all", progress=False))
    assert len(all_rows.table) == len(store)


def _store_like(path, toy, **change):
    store = CutoutStore(toy)
    images = store.images()
    bands = change.get("bands", store.bands)
    if "size" in change:
        images = images[:, :, :change["size"], :change["size"]]
    if len(bands) != images.shape[1]:
        images = images[:, :len(bands)]
    from deepdip.store import create_store
    cat = store.catalog(["id", "z_spec", "ebv", "fold"])
    return create_store(path, images, cat, bands=tuple(bands), survey="sdss", pixel_scale=0.396,
                        flux_unit=change.get("flux_unit", "nanomaggy"), n_folds=5, seed=1)


@pytest.mark.parametrize("change,message", [
    ({"bands": list("grizu")}, "bands grizu"),
    ({"bands": list("griz")}, "bands griz"),
    ({"size": 12}, "image size 12x12"),
    ({"flux_unit": "adu"}, "flux unit"),
])
def test_mismatched_store_is_refused(run, toy, tmp_path, change, message):
    other = _store_like(tmp_path / "other.h5", toy, **change)
    with pytest.raises(DeepdipError, match=message):
        predict_store(run, other, tmp_path / "x.parquet", rows="all", progress=False)
    assert not (tmp_path / "x.parquet").exists()


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DeepdipError, match="not a readable deepdip model file"):
        load_members([bad])


def test_estimator_interface(toy, tmp_path):
    store = CutoutStore(toy)
    est = CNNEstimator(model="compact", epochs=1, out=tmp_path / "est", seed=4, progress=False,
                       train_kwargs={"model_kwargs": TINY, "num_workers": 0, "tensorboard": False})
    assert est.fit(store, 2) is est
    rows = store.split_rows("test", fold=2)
    pdf = est.predict_pdf(store, rows)
    assert pdf.shape == (len(rows), est.zgrid.nbins)
    cat = read_catalog(est.predict_catalog(store, rows, tmp_path / "est.parquet", progress=False))
    assert np.allclose(cat.pdf, pdf, atol=1e-6)
    assert cat.method == "cnn"


def test_cli_train_and_predict_end_to_end(tmp_path):
    """`deepdip train` + `deepdip predict` on a small mock, as a user runs them."""
    store = make_toy_store(tmp_path / "mock.h5", n=300, size=16, seed=2)
    env = cli_env()
    subprocess.run([sys.executable, "-m", "deepdip", "train", store, "--out", tmp_path / "run", "--epochs", "3",
                    "--model-kwargs", json.dumps(TINY), "--no-progress", "--workers", "0"],
                   check=True, env=env, capture_output=True)
    res = subprocess.run([sys.executable, "-m", "deepdip", "predict", tmp_path / "run", store, "--out",
                          tmp_path / "cnn.parquet", "--no-progress"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    cat = read_catalog(tmp_path / "cnn.parquet")
    assert len(cat.table) == (CutoutStore(store).column("fold") == 0).sum()
    bad = subprocess.run([sys.executable, "-m", "deepdip", "predict", tmp_path / "nope", store, "--out",
                          tmp_path / "x.parquet"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "no such run directory" in bad.stderr


@pytest.mark.skipif(not REAL.exists(), reason="real Legacy Survey cutouts in ../shared/data are absent")
def test_real_legacy_cutouts_train_and_predict(tmp_path):
    """Real DR10 griz pixels (23x23): loading, normalisation and inference give finite, normalised PDFs."""
    from deepdip.store import create_store
    from deepdip.train import train
    from deepdip.zgrid import ZGrid

    d = np.load(REAL / "piczl_train_griz.npz")
    n = len(d["z"])
    ebv = np.zeros(n, np.float32)
    path = create_store(tmp_path / "legacy.h5", d["images"].astype(np.float32),
                        {"id": np.arange(n), "z_spec": d["z"].astype(np.float32), "ebv": ebv},
                        bands=tuple("griz"), survey="legacy", pixel_scale=0.262, flux_unit="nanomaggy",
                        n_folds=2, seed=0)
    run = train(path, fold=0, epochs=1, out=tmp_path / "run", zgrid=ZGrid(0.0, 0.6, 60), model_kwargs=TINY,
                progress=False, num_workers=0, tensorboard=False, batch_size=16)
    cat = read_catalog(predict_store(run, path, tmp_path / "cnn.parquet", rows="test", progress=False))
    assert np.isfinite(cat.pdf).all() and np.allclose(cat.pdf.sum(axis=1), 1, atol=1e-5)


def test_ensemble_predictor_is_picklable_and_matches(run, toy):
    import pickle

    from deepdip.predict import EnsemblePredictor

    store = CutoutStore(toy)
    paths = sorted((run / "fold1").glob("member*/model.pt"))
    images, ebv = store.images(np.arange(10)), store.column("ebv", np.arange(10))[:, None]
    pred = EnsemblePredictor(paths)
    first = pred(images, ebv)
    clone = pickle.loads(pickle.dumps(pred))
    assert np.allclose(clone(images, ebv), first)
    assert np.allclose(first, predict_chunk([m.net for m in load_members(paths)], images, ebv))


# -- Dask: a real LocalCluster writes predict_store's catalogue ----------------------------------
@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        c = distributed.Client(cluster, set_as_default=False)
        try:
            yield c
        finally:
            c.close()
    finally:
        cluster.close()


def _assert_same(a, b):
    assert a.metadata == b.metadata  # method, config (run, models, tta...), grid, version
    assert list(a.table.columns) == list(b.table.columns)
    np.testing.assert_array_equal(a.ids, b.ids)
    for col in ("z_spec", "fold", *[c for c in a.table.columns if c.startswith("mag_")]):
        np.testing.assert_array_equal(a.table[col].to_numpy(), b.table[col].to_numpy())
    np.testing.assert_allclose(a.pdf, b.pdf, atol=1e-6)
    for col in ("z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68"):
        np.testing.assert_allclose(a.table[col].to_numpy(), b.table[col].to_numpy(), atol=1e-4)


def test_dask_catalogue_equals_predict_store(run, toy, client, tmp_path):
    expect = read_catalog(predict_store(run, toy, tmp_path / "local.parquet", rows="test", chunk_size=50,
                                        progress=False))
    # Small chunks and few in flight: results arrive out of order and must still be written in row order.
    with distributed.get_task_stream(client=client) as stream:
        out = predict_store_dask(run, toy, tmp_path / "dask.parquet", rows="test", client=client, chunk_size=17,
                                 max_in_flight=3, progress=False)
    got = read_catalog(out)
    _assert_same(got, expect)
    assert sorted(got.table["fold"].unique()) == [0, 1]
    assert_folds_predicted_by_their_own_models(got, run, toy)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    # Chunks ran as tasks of the cluster (which worker ran how many is the scheduler's business).
    assert [t for t in stream.data if str(t["key"]).startswith("deepdip-predict")]


def test_dask_explicit_rows_keep_their_order_and_use_the_default_client(run, toy, client, tmp_path):
    rows = np.random.default_rng(0).permutation(len(CutoutStore(toy)))[:90]
    expect = read_catalog(predict_store(run, toy, tmp_path / "local.parquet", rows=rows, progress=False))
    with client.as_current():
        got = read_catalog(predict_store_dask(run, toy, tmp_path / "dask.parquet", rows=rows, chunk_size=32,
                                              progress=False))
    _assert_same(got, expect)


@pytest.mark.parametrize("method", ["knn", "boost"])
def test_baseline_on_dask_writes_the_in_process_catalogue(method, photometry_store, client, tmp_path):
    """Issue 17: the catalogue baselines predict on a real LocalCluster (API and CLI), the same catalogue."""
    from deepdip.baselines import baseline_class

    store = CutoutStore(photometry_store)
    est = baseline_class(method)().fit(store, 0)
    rows = store.split_rows("all", fold=0)
    expect = read_catalog(est.predict_catalog(store, rows, tmp_path / "local.parquet", progress=False))
    with distributed.get_task_stream(client=client) as stream:
        got = read_catalog(est.predict_catalog(store, rows, tmp_path / "dask.parquet", chunk_size=23, client=client,
                                               progress=False))
    _assert_same(got, expect)
    assert len([t for t in stream.data if str(t["key"]).startswith(f"deepdip-{method}")]) >= len(rows) // 23
    if method == "knn":
        res = subprocess.run([sys.executable, "-m", "deepdip", "baseline", photometry_store, "--method", "knn",
                              "--fold", "0",
                              "--rows", "all", "--out", tmp_path / "cli.parquet", "--dask", client.scheduler.address,
                              "--chunk-size", "40"], env=cli_env(), capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        _assert_same(read_catalog(tmp_path / "cli.parquet"), expect)


def test_dask_bad_input_is_a_clear_error(run, toy, tmp_path):
    out = tmp_path / "x.parquet"
    with pytest.raises(DeepdipError, match="no Dask client"):
        predict_store_dask(run, toy, out, progress=False)
    with pytest.raises(DeepdipError, match="cannot reach the Dask scheduler"):
        predict_store_dask(run, toy, out, client="tcp://127.0.0.1:1", timeout=2, progress=False)
    with pytest.raises(DeepdipError, match="local:N"):
        predict_store_dask(run, toy, out, client="local:two", progress=False)
    with pytest.raises(DeepdipError, match="no such run directory"):
        predict_store_dask(tmp_path / "nope", toy, out, client="tcp://127.0.0.1:1", progress=False)
    assert not out.exists()


def test_cli_predict_records_its_precision(run, toy, tmp_path):
    """``--precision auto`` decides by a timing probe and says so in the catalogue."""
    res = subprocess.run([sys.executable, "-m", "deepdip", "predict", run, toy, "--out", tmp_path / "auto.parquet",
                          "--precision", "auto", "--no-progress"], env=cli_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    config = read_catalog(tmp_path / "auto.parquet").config
    assert config["precision"] in ("32-true", "bf16-mixed")
    assert config["precision_probe"]["chosen"] == config["precision"]


def test_cli_predict_dask(run, toy, client, tmp_path):
    env = cli_env()
    address = client.scheduler.address
    res = subprocess.run([sys.executable, "-m", "deepdip", "predict", run, toy, "--out", tmp_path / "cli.parquet",
                          "--dask", address, "--chunk-size", "40", "--precision", "32-true", "--no-progress"],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    expect = read_catalog(predict_store(run, toy, tmp_path / "local.parquet", precision="32-true", progress=False))
    _assert_same(read_catalog(tmp_path / "cli.parquet"), expect)
    bad = subprocess.run([sys.executable, "-m", "deepdip", "predict", run, toy, "--out", tmp_path / "x.parquet",
                          "--dask", "local:0"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "local:N" in bad.stderr


# -- Lightning's predict loop: the same catalogue, on GPUs or several processes -----------------
def test_lightning_catalogue_equals_predict_store(run, toy, tmp_path):
    """One CPU process under Lightning: the catalogue of the in-process executor (rows, order,
    columns, metadata, PDFs), each fold's rows by that fold's ensemble, no temporary left."""
    # One explicit precision for both (under auto each executor records why it chose, in its own words).
    expect = read_catalog(predict_store(run, toy, tmp_path / "local.parquet", rows="test", precision="32-true",
                                        progress=False))
    got = read_catalog(predict_store_lightning(run, toy, tmp_path / "pl.parquet", rows="test", accelerator="cpu",
                                               devices=1, chunk_size=23, num_workers=0, precision="32-true",
                                               progress=False))
    _assert_same(got, expect)
    assert_folds_predicted_by_their_own_models(got, run, toy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.parquet", "pl.parquet"]


def test_cli_predict_lightning_ddp_two_processes(run, toy, tmp_path):
    """``--accelerator cpu --devices 2 --strategy ddp``: two processes (gloo), as on two GPUs; each
    predicts every other chunk and rank 0 writes the catalogue, in row order, printed once."""
    env = cli_env()
    res = subprocess.run([sys.executable, "-m", "deepdip", "predict", run, toy, "--out", tmp_path / "ddp.parquet",
                          "--rows", "all", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
                          "--chunk-size", "40", "--threads", "1", "--precision", "32-true", "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("wrote") == 1, res.stdout
    expect = read_catalog(predict_store(run, toy, tmp_path / "local.parquet", rows="all", precision="32-true",
                                        progress=False))
    _assert_same(read_catalog(tmp_path / "ddp.parquet"), expect)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.parquet", "local.parquet"]
    bad = subprocess.run([sys.executable, "-m", "deepdip", "predict", run, toy, "--out", tmp_path / "x.parquet",
                          "--accelerator", "cpu", "--dask", "local:1"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "choose one" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
