"""One CNN for any subset of bands (issue 14): the band-mask normaliser, band dropout, and a
network trained with it predicting a store where some galaxies lack bands."""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch

from deepdip.models.normalize import Normalizer, bands_present
from deepdip.train.module import drop_bands
from deepdip.train.toydata import toy_images

from .conftest import TINY_MODEL


def _images(n=64, nb=5, size=12, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.01, 0.39, n).astype(np.float32)
    return toy_images(z, np.zeros(n, np.float32), n_bands=nb, size=size, seed=seed), z


def test_band_mask_normaliser_blanks_what_is_missing_and_says_so():
    images, _ = _images()
    norm = Normalizer(5, 1, "asinh", apertures=(2.0, 4.0), band_mask=True)
    norm.fit(images, np.zeros((len(images), 1), np.float32))
    assert norm.n_extra_out == 1 + (5 + 4) * 2 + 5
    x = torch.from_numpy(images.copy())
    x[0, 1] = 0.0            # galaxy 0 lacks g
    x[1, 4] = float("nan")   # galaxy 1 has no data in z (NaN pixels count as missing too)
    out, extra = norm(x, torch.zeros(len(x), 1))
    assert torch.equal(bands_present(x)[:2], torch.tensor([[1.0, 0, 1, 1, 1], [1.0, 1, 1, 1, 0]]))
    assert torch.all(out[0, 1] == 0) and torch.all(out[1, 4] == 0)
    assert torch.all(out[0, 0] != 0)              # the bands it has are standardised as usual
    assert torch.equal(extra[0, -5:], torch.tensor([1.0, 0, 1, 1, 1]))
    assert torch.equal(extra[2, -5:], torch.ones(5))
    # aperture luptitudes (band-major, 2 radii) of g, and the colours u-g and g-r, are blanked for galaxy 0
    lupt = extra[0, 1:11].view(5, 2)
    colours = extra[0, 11:19].view(4, 2)
    assert torch.all(lupt[1] == 0) and torch.all(lupt[[0, 2, 3, 4]] != 0)
    assert torch.all(colours[:2] == 0) and torch.all(colours[2:] != 0)


def test_normaliser_statistics_ignore_galaxies_without_the_band():
    images, _ = _images(n=200)
    full = Normalizer(5, 1, "asinh").fit(images)
    holes = images.copy()
    holes[:100, 3] = 0.0     # half the galaxies lack i
    masked = Normalizer(5, 1, "asinh").fit(holes)
    other = Normalizer(5, 1, "asinh").fit(images[100:])
    assert torch.allclose(masked.scale[3], other.scale[3]) and torch.allclose(masked.mean[3], other.mean[3])
    assert torch.allclose(masked.std[3], other.std[3])
    assert torch.allclose(masked.scale[:3], full.scale[:3])  # the other bands use every galaxy


def test_band_dropout_draws_subsets_and_never_empties_a_galaxy():
    images, _ = _images(n=4000, size=6)
    images[:500, 0] = 0.0    # already missing u: must stay missing, and is never counted as dropped
    out = drop_bands(torch.from_numpy(images), 0.5, torch.Generator().manual_seed(1))
    before, after = bands_present(torch.from_numpy(images)), bands_present(out)
    assert torch.all(after <= before) and torch.all(after.sum(1) >= 1)
    hit = (after != before).any(1).float().mean().item()
    assert 0.46 < hit < 0.54
    lost = (before - after).sum(1)[(after != before).any(1)]
    assert lost.min() >= 1 and lost.max() <= 4 and len(torch.unique(lost)) == 4  # 1 .. 4 of 5 bands
    kept = out[after.bool()].reshape(-1)
    assert torch.equal(kept, torch.from_numpy(images)[after.bool()].reshape(-1))  # others untouched
    again = drop_bands(torch.from_numpy(images), 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_independent_band_dropout_loses_each_band_with_probability_p():
    images, _ = _images(n=20000, size=4)
    images[:2000, 0] = 0.0   # already missing u
    x = torch.from_numpy(images)
    out = drop_bands(x, 0.2, torch.Generator().manual_seed(3), mode="independent")
    before, after = bands_present(x), bands_present(out)
    assert torch.all(after <= before) and torch.all(after.sum(1) >= 1)
    lost = before - after
    # each band it has, with probability 0.2 (the kept-one rule moves this by < 0.1 %)
    rate = lost.sum(0) / before.sum(0)
    assert torch.all((rate > 0.19) & (rate < 0.21)), rate
    # exactly one band missing (full galaxies): 5 p (1-p)^4 = 0.41, against 0.2 for mode subset at p = 0.8
    full = before.sum(1) == 5
    one = (lost[full].sum(1) == 1).float().mean().item()
    assert 0.39 < one < 0.43
    assert torch.equal(out, drop_bands(x, 0.2, torch.Generator().manual_seed(3), mode="independent"))
    # a galaxy never loses its last band, even at p close to 1
    assert torch.all(bands_present(drop_bands(x, 0.95, torch.Generator().manual_seed(4), mode="independent"))
                     .sum(1) >= 1)


def test_band_dropout_cnn_predicts_galaxies_without_some_bands(tmp_path):
    """Trained with band dropout on a store where 30 % of galaxies lack g or z, the network reads the
    mask (no warning), beats the prior on the galaxies missing a band, and says which bands it used."""
    from deepdip.catalog import read_catalog
    from deepdip.metrics import sigma_mad
    from deepdip.models.modelfile import ModelFile
    from deepdip.predict import predict_store
    from deepdip.store import CutoutStore, create_store
    from deepdip.train import train

    n = 600
    images, z = _images(n=n, size=8, seed=2)
    rng = np.random.default_rng(5)
    mask = np.ones((n, 5), bool)
    mask[rng.random(n) < 0.15, 1] = False
    mask[rng.random(n) < 0.15, 4] = False
    columns = {"id": np.arange(n), "z_spec": z, "ebv": np.zeros(n, np.float32)}
    path = create_store(tmp_path / "masked.h5", images, columns, band_mask=mask, bands=list("ugriz"),
                        image_shape=(8, 8), survey="sdss", pixel_scale=0.396, flux_unit="nanomaggy", n_folds=5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a mask-reading network gives no "does not read" warning
        warnings.filterwarnings("ignore", message=".*(does not have many workers|num_workers|GPU available).*")
        run = train(path, fold=0, epochs=12, batch_size=32, out=tmp_path / "run", seed=1,
                    model_kwargs=json.loads(json.dumps(TINY_MODEL)), band_dropout=0.3, threads=1, progress=False,
                    num_workers=0, tensorboard=False)
        cat = read_catalog(predict_store(run, path, tmp_path / "cnn.parquet", rows="test", progress=False)).table
    assert ModelFile(tmp_path / "run" / "fold0" / "member0" / "model.pt").config["net"]["band_mask"] is True
    store = CutoutStore(path)
    rows = store.split_rows("test", fold=0)
    expected = ["".join(b for b, m in zip("ugriz", row) if m) for row in mask[rows]]
    assert cat["bands_used"].tolist() == expected
    zp, zs = cat["z_mean"].to_numpy(), cat["z_spec"].to_numpy()
    lacking = ~mask[rows].all(1)
    assert lacking.sum() >= 20
    prior = np.full(lacking.sum(), np.median(store.column("z_spec", store.split_rows("train", fold=0))))
    assert sigma_mad(zp[lacking], zs[lacking]) < 0.5 * sigma_mad(prior, zs[lacking])


def test_band_dropout_on_a_full_band_store_builds_the_mask_reading_network(tmp_path):
    """--band-dropout alone (every galaxy has every band) gives the mask-reading network and is recorded
    in run.json; a run without it keeps the plain network and a run.json without the key."""
    from deepdip.models.modelfile import ModelFile
    from deepdip.train import train
    from deepdip.train.toydata import make_toy_store

    store = make_toy_store(tmp_path / "toy.h5", n=120, size=8, seed=0)
    kw = dict(fold=0, epochs=1, batch_size=32, seed=1, model_kwargs=dict(TINY_MODEL), threads=1, progress=False,
              num_workers=0, tensorboard=False)
    for name, p in (("plain", 0.0), ("dropout", 0.5)):
        run = train(store, out=tmp_path / name, band_dropout=p, **kw)
        net = ModelFile(run / "fold0" / "member0" / "model.pt").config["net"]
        recorded = json.loads((run / "run.json").read_text())
        assert bool(net.get("band_mask")) == (p > 0)
        assert recorded.get("band_dropout") == (p if p > 0 else None)
