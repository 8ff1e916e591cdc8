"""Dask inference: a real LocalCluster (two worker processes, loopback) writes predict_store's catalogue."""

import os
import subprocess
import sys
from pathlib import Path

import distributed
import numpy as np
import pytest

from deepdip.catalog import read_catalog
from deepdip.errors import DeepdipError
from deepdip.predict import predict_store, predict_store_dask
from deepdip.train.toydata import make_toy_store

from .conftest import assert_folds_predicted_by_their_own_models

TINY = {"widths": [8, 16, 16, 32], "hidden": 32}
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_store(tmp_path_factory.mktemp("toy") / "toy.h5", n=240, size=16, seed=3)


@pytest.fixture(scope="module")
def run(toy, tmp_path_factory):
    """Two folds, one member each: 'test' rows then need each row's own fold's model."""
    from deepdip.train import train

    return train(toy, fold="0,1", ensemble=1, epochs=1, out=tmp_path_factory.mktemp("run") / "cnn", seed=5,
                 model_kwargs=TINY, progress=False, num_workers=0, tensorboard=False)


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
    rows = np.random.default_rng(0).permutation(240)[:90]
    expect = read_catalog(predict_store(run, toy, tmp_path / "local.parquet", rows=rows, progress=False))
    with client.as_current():
        got = read_catalog(predict_store_dask(run, toy, tmp_path / "dask.parquet", rows=rows, chunk_size=32,
                                              progress=False))
    _assert_same(got, expect)


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


def test_cli_predict_dask(run, toy, client, tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    address = client.scheduler.address
    res = subprocess.run([sys.executable, "-m", "deepdip", "predict", run, toy, "--out", tmp_path / "cli.parquet",
                          "--dask", address, "--chunk-size", "40", "--no-progress"],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    expect = read_catalog(predict_store(run, toy, tmp_path / "local.parquet", progress=False))
    _assert_same(read_catalog(tmp_path / "cli.parquet"), expect)
    bad = subprocess.run([sys.executable, "-m", "deepdip", "predict", run, toy, "--out", tmp_path / "x.parquet",
                          "--dask", "local:0"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "local:N" in bad.stderr
