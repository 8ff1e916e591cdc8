"""Redshift grids (issue 12): bad grids are refused clearly; many bins and soft labels work end to end."""

import json

import numpy as np
import pytest
import torch

from deepdip.errors import DeepdipValueError
from deepdip.train.module import soft_labels
from deepdip.zgrid import ZGrid

from .conftest import TINY_MODEL


@pytest.mark.parametrize("zmin, zmax, nbins, message", [
    (0.5, 0.5, 10, "must be greater than zmin"),
    (1.0, 0.2, 10, "must be greater than zmin"),
    (0.0, float("nan"), 10, "must be greater than zmin"),
    (0.0, 1.0, 1, "at least 2"),
    (0.0, 1.0, 2.5, "whole number"),
])
def test_bad_grids_are_refused_in_one_line(zmin, zmax, nbins, message):
    with pytest.raises(DeepdipValueError, match=message) as err:
        ZGrid(zmin, zmax, nbins)
    assert "\n" not in str(err.value)


def test_a_preset_with_a_bad_grid_is_refused(tmp_path):
    from deepdip.surveys import load_survey

    preset = json.loads(json.dumps(load_survey("sdss").params))
    preset.update(name="bad", nbins=1)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(preset))
    with pytest.raises(DeepdipValueError, match="'nbins' must be at least 2"):
        load_survey(str(path))


def test_soft_labels_are_normalised_gaussians_widening_with_redshift():
    grid = ZGrid(0.0, 3.0, 1000)
    centres = torch.as_tensor(grid.centres, dtype=torch.float32)
    z = torch.tensor([0.3, 2.5])
    q = soft_labels(z, centres, 0.02)
    assert torch.allclose(q.sum(1), torch.ones(2))
    assert q.argmax(1).tolist() == grid.bin_index(z.numpy()).tolist()
    spread = torch.sqrt((q * (centres[None] - z[:, None]) ** 2).sum(1))
    assert torch.allclose(spread, 0.02 * (1 + z), rtol=0.02)
    tiny = soft_labels(z, centres, 1e-6)   # narrower than a bin: floored at half a bin, over 2-3 bins
    assert ((tiny > 0.01).sum(1) <= 3).all() and torch.allclose(tiny.sum(1), torch.ones(2))


def test_training_with_many_bins_and_soft_labels_learns(tmp_path):
    from deepdip.catalog import read_catalog
    from deepdip.metrics import sigma_mad
    from deepdip.predict import predict_store
    from deepdip.train import train
    from deepdip.train.toydata import make_toy_store

    store = make_toy_store(tmp_path / "toy.h5", n=600, size=8, seed=0)
    grid = ZGrid(0.0, 0.4, 1000)
    run = train(store, fold=0, epochs=12, batch_size=32, out=tmp_path / "run", seed=1, model_kwargs=TINY_MODEL,
                threads=1, progress=False, num_workers=0, tensorboard=False, label_sigma=0.02, zgrid=grid)
    assert json.loads((run / "run.json").read_text())["label_sigma"] == 0.02
    cat = read_catalog(predict_store(run, store, tmp_path / "cnn.parquet", rows="test", progress=False))
    assert cat.pdf.shape[1] == 1000
    zs = cat.table["z_spec"].to_numpy()
    assert sigma_mad(cat.table["z_mean"].to_numpy(), zs) < 0.35 * sigma_mad(np.full_like(zs, np.median(zs)), zs)
