"""PIT recalibration of the CNN's PDFs, one map per band-availability pattern (train --recalibrate pit)."""

import numpy as np
import torch

from deepdip.metrics import cdf_at, pit_ks
from deepdip.models.calibration import PitCalibration, pattern_index
from deepdip.models.modelfile import ModelFile
from deepdip.train.toydata import make_toy_store
from deepdip.zgrid import ZGrid

from .conftest import TINY_MODEL


def _gaussian_pdfs(centres, sigma, zgrid):
    c = zgrid.centres[None, :]
    p = np.exp(-0.5 * ((c - centres[:, None]) / sigma) ** 2)
    return p / p.sum(1, keepdims=True)


def test_pattern_index_is_the_bitmask_of_the_bands_present():
    present = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.float32)
    assert pattern_index(present).tolist() == [7, 6, 1, 0]


def test_a_map_fitted_on_biased_overconfident_pdfs_calibrates_new_galaxies_of_that_pattern_only():
    rng = np.random.default_rng(0)
    grid = ZGrid(0.0, 0.4, 180)
    z = rng.uniform(0.05, 0.35, 4000)
    observed = z + rng.normal(0, 0.02, z.size)                     # true scatter 0.02 ...
    pdf = _gaussian_pdfs(observed - 0.01, 0.01, grid)               # ... PDFs 0.01 low and twice too narrow
    fit, new = slice(0, 2000), slice(2000, None)
    cal = PitCalibration(n_bands=2)
    assert cal.fit_pattern(3, cdf_at(pdf[fit], grid, z[fit]))       # pattern 3: both bands
    before = pit_ks(cdf_at(pdf[new], grid, z[new]))
    both = torch.ones(2000, 2)
    after_pdf = cal(torch.as_tensor(pdf[new], dtype=torch.float32), both).numpy()
    after = pit_ks(cdf_at(after_pdf, grid, z[new]))
    assert before > 0.15 and after < 0.04
    assert np.allclose(after_pdf.sum(1), 1, atol=1e-5) and (after_pdf >= 0).all()
    # another pattern keeps the identity: its PDFs are unchanged
    one = torch.tensor([[1.0, 0.0]]).repeat(2000, 1)
    same = cal(torch.as_tensor(pdf[new], dtype=torch.float32), one).numpy()
    assert np.allclose(same, pdf[new], atol=1e-5)


def test_calibrated_pits_are_left_alone():
    """PIT values already consistent with uniform: no map (it would only add the noise of its own sample)."""
    rng = np.random.default_rng(1)
    cal = PitCalibration(n_bands=1)
    assert not cal.fit_pattern(1, rng.uniform(0, 1, 1000))
    assert not cal.fit_pattern(1, rng.uniform(0.4, 0.6, 50))         # too few values to fit from
    assert torch.equal(cal.knots[1], torch.linspace(0, 1, cal.knots.shape[1]))


def test_train_recalibrate_fits_every_pattern_and_predict_applies_the_maps(tmp_path):
    from deepdip.catalog import read_catalog
    from deepdip.predict import predict_store
    from deepdip.predict.core import predict_chunk
    from deepdip.store import CutoutStore
    from deepdip.train import train

    store_path = make_toy_store(tmp_path / "toy.h5", n=600, size=8, seed=0, n_bands=3)
    run = train(store_path, fold=0, epochs=3, batch_size=32, out=tmp_path / "run", seed=1, model_kwargs=TINY_MODEL,
                threads=1, progress=False, num_workers=0, tensorboard=False, band_dropout=0.3, recalibrate="pit",
                val_fraction=0.3)
    model = ModelFile(run / "fold0" / "member0" / "model.pt")
    assert model.config["net"]["pit_calibration"] is True
    report = model.info["pit_calibration"]
    assert set(report) == {"u", "g", "r", "ug", "ur", "gr", "ugr"}             # every non-empty subset
    assert all(r["n"] > 100 for r in report.values())
    # prediction goes through the maps: the catalogue equals the network's PDFs mapped by hand
    store = CutoutStore(store_path)
    rows = np.flatnonzero(store.column("fold") == 0)
    cat = read_catalog(predict_store(run, store_path, tmp_path / "cnn.parquet", rows="test", progress=False))
    x, e = store.images(rows), store.column("ebv", rows)[:, None].astype(np.float32)
    with_maps = predict_chunk([model.net], x, e)
    maps = model.net.calibration
    model.net.calibration = None
    raw = predict_chunk([model.net], x, e)
    by_hand = maps(torch.as_tensor(raw), torch.ones(len(rows), 3)).numpy()
    assert np.allclose(with_maps, by_hand, atol=1e-6)
    assert np.allclose(cat.pdf, with_maps / with_maps.sum(1, keepdims=True), atol=1e-5)
    assert not np.allclose(with_maps, raw, atol=1e-4) or not any(r["fitted"] for r in report.values())
    # fine-tuning from it starts without the maps (they describe the initial model's PDFs)
    ft = train(store_path, fold=0, epochs=1, out=tmp_path / "ft", init_model=str(run), threads=1, progress=False,
               num_workers=0, tensorboard=False)
    assert "pit_calibration" not in ModelFile(ft / "fold0" / "member0" / "model.pt").config["net"]
