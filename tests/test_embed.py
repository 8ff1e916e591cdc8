"""deepdip embed: representations of every galaxy, their 2-D map, and the guards (issue 15, item 3)."""

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from deepdip.errors import DeepdipError
from deepdip.store import CutoutStore, create_store
from deepdip.train.toydata import make_toy_store

from .conftest import TINY_MODEL, cli_env


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from deepdip.train import train

    tmp = tmp_path_factory.mktemp("embed")
    store = make_toy_store(tmp / "toy.h5", n=300, size=8, seed=0)
    run = train(store, fold=0, epochs=2, batch_size=32, out=tmp / "run", seed=1, model_kwargs=TINY_MODEL, threads=1,
                progress=False, num_workers=0, tensorboard=False)
    return store, run, tmp


def test_embeddings_of_every_galaxy_with_their_map(trained, tmp_path):
    from deepdip.embed import embed_store

    store, run, _ = trained
    out = embed_store(run, store, tmp_path / "emb.parquet", figure=tmp_path / "map.png")
    table = pq.read_table(out)
    s = CutoutStore(store)
    assert table.column("id").to_numpy().tolist() == s.column("id").tolist()
    emb = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert emb.shape == (len(s), TINY_MODEL["hidden"]) and np.isfinite(emb).all()
    assert np.std(table.column("pca_1").to_numpy()) >= np.std(table.column("pca_2").to_numpy()) > 0
    assert (tmp_path / "map.png").stat().st_size > 1000
    feats = np.stack(pq.read_table(embed_store(run, store, tmp_path / "f.parquet", layer="features", rows="test"))
                     .column("embedding").to_numpy(zero_copy_only=False))
    assert len(feats) == (s.column("fold") == 0).sum() and feats.shape[1] != emb.shape[1]


def test_tta_embeddings_do_not_depend_on_how_the_galaxy_lies(trained, tmp_path):
    from deepdip.embed import embed_store

    store, run, _ = trained
    s = CutoutStore(store)
    turned = create_store(tmp_path / "turned.h5", np.rot90(s.images(), 1, axes=(2, 3)).copy(), s.catalog(),
                          bands=list(s.bands), survey=s.survey, pixel_scale=s.pixel_scale, flux_unit=s.flux_unit,
                          n_folds=int(s.attrs["n_folds"]), seed=int(s.attrs["fold_seed"]))
    a = pq.read_table(embed_store(run, store, tmp_path / "a.parquet", tta=True)).column("embedding")
    b = pq.read_table(embed_store(run, turned, tmp_path / "b.parquet", tta=True)).column("embedding")
    a, b = (np.stack(c.to_numpy(zero_copy_only=False)) for c in (a, b))
    assert np.allclose(a, b, atol=1e-4 * np.abs(a).max())


def test_a_store_the_model_does_not_fit_is_refused_and_nothing_is_written(trained, tmp_path):
    from deepdip.embed import embed_store

    _, run, _ = trained
    other = make_toy_store(tmp_path / "four.h5", n=50, size=8, seed=0, n_bands=4)
    with pytest.raises(DeepdipError, match="does not match model"):
        embed_store(run, other, tmp_path / "emb.parquet")
    assert not (tmp_path / "emb.parquet").exists()


def test_cli_refuses_an_existing_output(trained, tmp_path):
    store, run, _ = trained
    out = tmp_path / "emb.parquet"
    out.write_text("mine")
    p = subprocess.run([sys.executable, "-m", "deepdip", "embed", str(run), str(store), "--out", str(out)],
                       env=cli_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "exists" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert out.read_text() == "mine"
