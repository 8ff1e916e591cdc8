"""Prediction: model files, PDFs, ensembles, test-time augmentation, store checks, CLI end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdip.catalog import read_catalog
from deepdip.errors import DeepdipError
from deepdip.models.dihedral import dihedral
from deepdip.predict import load_members, predict_chunk, predict_store
from deepdip.store import CutoutStore
from deepdip.train import CNNEstimator
from deepdip.train.toydata import make_toy_store

from .conftest import assert_folds_predicted_by_their_own_models

TINY = {"widths": [8, 16, 16, 32], "hidden": 32}
SRC = str(Path(__file__).resolve().parents[1] / "src")
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
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
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
