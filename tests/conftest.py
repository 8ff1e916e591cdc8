"""Shared fixtures and constants of the test suite.

Layout: one test module per package or top-level module of ``src/deepdip`` (``test_store.py`` for
``deepdip.store``, ``test_report.py`` for ``deepdip.report``, ``test_core.py`` for the small top-level
modules: zgrid, surveys, atomic, options, cli), plus four that cut across packages on purpose:
``test_estimator_contract.py`` (every estimator, one contract), ``test_bad_inputs.py`` (every command
with bad values), ``test_outputs.py`` (nothing the user had is lost) and ``test_faults.py`` (kills,
full disks, corrupt files). Tiny stores are made on the fly; the real data lives in ../shared (tests
that need it skip without it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from deepdip.store import create_store

#: ``src/`` of this checkout, put on PYTHONPATH for CLI subprocesses (:func:`cli_env`).
SRC = str(Path(__file__).resolve().parents[1] / "src")
#: The smallest ``compact`` network (``model_kwargs``): seconds per training run on a shared CPU.
TINY_MODEL = {"widths": [8, 16, 16, 32], "hidden": 32}
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def cli_env() -> dict:
    """Environment for ``python -m deepdip`` subprocesses that import this checkout's deepdip."""
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def real_data(*parts) -> Path:
    """Path under ../shared/data/real, or skip the test with the reason when it is absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available at {path} (a fresh clone has no ../shared)")
    return path


def make_catalog(n: int, rng: np.random.Generator, first_id: int = 1000) -> dict:
    return {
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "z_spec": rng.uniform(0.01, 0.39, n).astype(np.float32),
        "ebv": rng.uniform(0.01, 0.1, n).astype(np.float32),
    }


@pytest.fixture
def tiny_store(tmp_path) -> Path:
    """A valid 5-band 8x8 store of 60 galaxies."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(60, 5, 8, 8)).astype(np.float32)
    return create_store(tmp_path / "tiny.h5", images, make_catalog(60, rng), bands="ugriz", survey="sdss",
                        pixel_scale=0.396, seed=3)


def assert_folds_predicted_by_their_own_models(cat, run, store, atol=1e-6):
    """Every row of a cross-validated catalogue (``rows="test"``) holds the PDF of its own fold's
    ensemble (``run/fold{K}/member*/model.pt``, recomputed here model file by model file), never
    that of another fold, whose networks were trained on it. Needs two folds or more."""
    from deepdip.predict import load_members, predict_chunk
    from deepdip.store import CutoutStore

    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    row_of = {int(i): r for r, i in enumerate(store.column("id"))}
    cat_folds = cat.table["fold"].to_numpy()
    folds = sorted(int(k) for k in np.unique(cat_folds))
    assert len(folds) >= 2, "a fold-assignment check needs a catalogue with two folds or more"
    nets = {k: [m.net for m in load_members(sorted((Path(run) / f"fold{k}").glob("member*/model.pt")), store)]
            for k in folds}
    for k in folds:
        sel = cat_folds == k
        rows = np.array([row_of[int(i)] for i in cat.ids[sel]])
        assert (store.column("fold", rows) == k).all()
        images, ebv = store.images(rows), store.column("ebv", rows)[:, None]
        np.testing.assert_allclose(cat.pdf[sel], predict_chunk(nets[k], images, ebv), atol=atol,
                                   err_msg=f"fold-{k} rows are not predicted by the fold-{k} models")
        for other in folds:   # the check has teeth: another fold's models give other PDFs
            if other != k:
                assert not np.allclose(cat.pdf[sel], predict_chunk(nets[other], images, ebv), atol=100 * atol)


@pytest.fixture(scope="session")
def photometry_store(tmp_path_factory) -> Path:
    """200 sdss galaxies with 16x16 toy cutouts (for the CNN) and photometry measured on them (for the
    baselines): flux = the sum of each band's pixels, its error that of the pixel noise."""
    from deepdip.train.toydata import toy_images

    rng = np.random.default_rng(11)
    n, size, noise = 200, 16, 0.05
    catalog = make_catalog(n, rng)
    images = toy_images(catalog["z_spec"], catalog["ebv"], size=size, seed=12, noise=noise)
    flux = images.sum(axis=(2, 3))
    for j, band in enumerate("ugriz"):
        catalog[f"flux_{band}"] = flux[:, j].astype(np.float32)
        catalog[f"flux_err_{band}"] = np.full(n, noise * size, dtype=np.float32)
    return create_store(tmp_path_factory.mktemp("contract") / "phot.h5", images, catalog, bands="ugriz",
                        survey="sdss", pixel_scale=0.396, flux_unit="nanomaggy", seed=5)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """In-process training (``train(threads=1)``) sets torch's thread count for the whole process; put it
    back after each test, so that a later test computes with the default (a different count sums in
    another order: bit-for-bit checks such as the old model file's logits would fail)."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _own_precision_cache(tmp_path, monkeypatch):
    """Each test its own per-machine decision cache (``--precision auto``, the default): a decision
    taken with faked timings never reaches another test, nor the user's ``~/.cache``. Set in the
    environment, so the CLI subprocesses of a test share the test's cache."""
    from deepdip.hardware import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "deepdip-cache"))
