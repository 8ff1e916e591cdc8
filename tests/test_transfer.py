"""Fine-tuning a model of another survey (deepdip train --init-model M --transfer; issue 15, item 5):
other bands, stamp size and redshift bins."""

import json

import pytest
import torch

from deepdip.errors import DeepdipValueError
from deepdip.models.modelfile import ModelFile
from deepdip.predict import predict_store
from deepdip.train import train
from deepdip.train.toydata import make_toy_store

from .conftest import TINY_MODEL

COMMON = dict(fold=0, epochs=1, batch_size=32, threads=1, progress=False, num_workers=0, tensorboard=False,
              model_kwargs=None)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A ugriz model trained on 16-px stamps with band dropout (it reads which bands a galaxy has)."""
    root = tmp_path_factory.mktemp("src")
    store = make_toy_store(root / "ugriz.h5", n=200, size=16, seed=0)
    run = train(store, out=root / "run", band_dropout=0.3, **{**COMMON, "model_kwargs": TINY_MODEL})
    return run / "fold0" / "member0" / "model.pt"


def test_transfer_builds_the_network_for_the_store_and_maps_the_first_layer_by_band(source, tmp_path):
    target = make_toy_store(tmp_path / "griz.h5", n=160, size=8, seed=1, n_bands=4, bands="griz", survey="legacy")
    with pytest.raises(DeepdipValueError, match="--transfer"):      # without it: refused, with the hint
        train(target, out=tmp_path / "plain", init_model=str(source), **COMMON)
    run = train(target, out=tmp_path / "tr", init_model=str(source), transfer=True, **COMMON)
    config = json.loads((run / "run.json").read_text())
    assert config["finetune"]["transfer"] is True
    model = ModelFile(run / "fold0" / "member0" / "model.pt")
    assert model.bands == list("griz") and list(model.image_shape) == [8, 8]
    assert model.zgrid != ModelFile(source).zgrid        # the store's (legacy) bins, not the model's
    predict_store(run, target, tmp_path / "cat.parquet", rows="test", progress=False)   # the store's network

    # What was carried over, before any step: the first layer's filters of g, r, i, z are the source's.
    from deepdip.models.net import PhotozNet
    from deepdip.train.finetune import transfer_weights

    src = ModelFile(source)
    net = PhotozNet(**model.config["net"])
    report = transfer_weights(net, source, list("griz"))
    first = report["mapped"][0]
    w_src, w_new = src.net.state_dict()[first], net.state_dict()[first]
    for j, band in enumerate("griz"):
        assert torch.equal(w_new[:, j], w_src[:, "ugriz".index(band)])
    later = [k for k in report["copied"] if k.startswith("backbone.features.")]
    assert later and all(torch.equal(net.state_dict()[k], src.net.state_dict()[k]) for k in later)
    assert any(k.startswith("backbone.head.") for k in report["fresh"])   # another stamp: the head starts afresh


def test_a_band_the_model_lacks_starts_from_the_mean_filter(source):
    from deepdip.models.net import PhotozNet
    from deepdip.train.finetune import transfer_weights

    src = ModelFile(source)
    kwargs = {**src.config["net"], "in_chans": 3}
    kwargs.pop("pit_calibration", None)
    net = PhotozNet(**kwargs)
    report = transfer_weights(net, source, ["g", "r", "y"])
    first = report["mapped"][0]
    w_src, w_new = src.net.state_dict()[first], net.state_dict()[first]
    assert torch.equal(w_new[:, 0], w_src[:, 1]) and torch.equal(w_new[:, 1], w_src[:, 2])
    assert torch.allclose(w_new[:, 2], w_src.mean(1))


def test_same_number_of_bands_in_another_order_is_still_mapped_by_name(source):
    """ugriz -> zirgu: as many bands, so the shapes agree, but each filter must follow its band."""
    from deepdip.models.net import PhotozNet
    from deepdip.train.finetune import transfer_weights

    src = ModelFile(source)
    kwargs = {k: v for k, v in src.config["net"].items() if k != "pit_calibration"}
    net = PhotozNet(**kwargs)
    report = transfer_weights(net, source, list("zirgu"))
    first = report["mapped"][0]
    w_src, w_new = src.net.state_dict()[first], net.state_dict()[first]
    for j, band in enumerate("zirgu"):
        assert torch.equal(w_new[:, j], w_src[:, "ugriz".index(band)])
    assert not any(k.startswith("backbone.head.") for k in report["copied"])   # the head always starts afresh


def test_transfer_refuses_models_it_cannot_carry(source, tmp_path):
    other = make_toy_store(tmp_path / "y.h5", n=120, size=8, seed=2, n_bands=1, bands="y")
    with pytest.raises(DeepdipValueError, match="none in common"):
        train(other, out=tmp_path / "bad", init_model=str(source), transfer=True, **COMMON)
    assert not (tmp_path / "bad").exists()


def test_fine_tuning_onto_another_redshift_grid_is_refused(source, tmp_path):
    """A fine-tuned model keeps its bins: asking for another preset's grid is a one-line error (issue 12)."""
    same = make_toy_store(tmp_path / "ugriz.h5", n=120, size=16, seed=3)
    with pytest.raises(DeepdipValueError, match="keeps the redshift bins"):
        train(same, out=tmp_path / "regrid", init_model=str(source), survey="cfhtls-wide", **COMMON)
    assert not (tmp_path / "regrid").exists()
