"""Physical parameters beside the redshift and the mixture-density redshift head (issue 14, item 3)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from deepdip.errors import DeepdipValueError
from deepdip.metrics import property_metrics
from deepdip.models.heads import GaussianHead, MixtureDensityHead
from deepdip.models.net import PhotozNet
from deepdip.predict.core import ensemble_outputs
from deepdip.properties import SFR_FLOOR, parse_properties, property_labels
from deepdip.store import CutoutStore
from deepdip.train.toydata import make_toy_store

from .conftest import TINY_MODEL, cli_env


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_store(tmp_path_factory.mktemp("props") / "toy.h5", n=600, size=8, seed=0, properties=True)


# -- heads ----------------------------------------------------------------------------------------
def test_gaussian_head_ignores_unknown_labels_and_reports_in_label_units():
    torch.manual_seed(0)
    head = GaussianHead(6, 2)
    head.set_standardisation([10.0, -1.0], [0.5, 2.0])
    x = torch.randn(5, 6)
    out = head(x)
    labels = torch.tensor([[10.2, float("nan")]] * 5)
    nan_free = torch.tensor([[10.2, 0.0]] * 5)
    # a NaN label contributes nothing: the loss equals that of the first quantity alone
    y = (10.2 - 10.0) / 0.5
    alone = (0.5 * ((y - out[:, 0, 0]) * torch.exp(-out[:, 0, 1])) ** 2 + out[:, 0, 1]).mean()
    assert torch.allclose(head.nll(out, labels), alone)
    assert not torch.allclose(head.nll(out, nan_free), alone)
    mean, std = head.mean_std(out)
    assert torch.allclose(mean, torch.tensor([10.0, -1.0]) + torch.tensor([0.5, 2.0]) * out[..., 0])
    assert torch.allclose(std, torch.tensor([0.5, 2.0]) * out[..., 1].exp())
    assert (std > 0).all()
    assert torch.isfinite(head.nll(out, torch.full((5, 2), float("nan"))))   # no label at all: zero, not NaN


def test_mdn_head_is_a_normalised_pdf_on_the_grid_and_follows_a_grid_change():
    torch.manual_seed(0)
    head = MixtureDensityHead(12, 180, zmin=0.0, zmax=0.4, n_components=3, hidden=16)
    x = torch.randn(7, 12)
    logp = head(x)
    assert logp.shape == (7, 180)
    assert torch.allclose(logp.exp().sum(1), torch.ones(7), atol=1e-5)
    logw, mean, sigma = head.mixture(x)
    assert ((mean >= 0) & (mean <= 0.4)).all() and (sigma >= 0.4 / 180).all()
    assert torch.allclose(logw.exp().sum(1), torch.ones(7), atol=1e-6)
    head.reset(40)
    assert head(x).shape == (7, 40)
    # the same mixture read out on coarser bins: the PDF's mean barely moves
    z180 = (torch.arange(180) + 0.5) * 0.4 / 180
    z40 = (torch.arange(40) + 0.5) * 0.4 / 40
    head.reset(180)
    m180 = (logp.exp() * z180).sum(1)
    head.reset(40)
    m40 = (head(x).exp() * z40).sum(1)
    assert torch.allclose(m180, m40, atol=2e-3)


def test_ensemble_of_gaussians_is_their_equal_weight_mixture():
    torch.manual_seed(0)
    nets = [PhotozNet("compact", 2, 20, 16, model_kwargs=TINY_MODEL, properties=["logmstar"]).eval() for _ in range(2)]
    for i, net in enumerate(nets):
        net.property_head.set_standardisation([10.0 + i], [1.0])
    x, e = torch.randn(4, 2, 16, 16), torch.zeros(4, 1)
    pdf, props = ensemble_outputs(nets, x, e)
    singles = [net.property_mean_std(net.forward_outputs(x, e)[1]) for net in nets]
    means = torch.stack([m for m, _ in singles])[..., 0]
    variances = torch.stack([s ** 2 for _, s in singles])[..., 0]
    assert torch.allclose(props[:, 0, 0], means.mean(0), atol=1e-5)
    assert torch.allclose(props[:, 0, 1] ** 2, variances.mean(0) + means.var(0, unbiased=False), atol=1e-4)
    assert torch.allclose(pdf.sum(1), torch.ones(4), atol=1e-5)


# -- labels and errors ------------------------------------------------------------------------------
def test_labels_are_derived_from_the_mock_columns_and_unknown_ones_stay_nan(toy):
    store = CutoutStore(toy)
    labels = property_labels(store, ["logmstar", "logsfr"])
    z = store.column("z_spec")
    assert np.allclose(labels[:, 0], 9.0 + 6.0 * z, atol=1e-5)
    sfr = store.column("sfr")
    assert np.isnan(labels[np.isnan(sfr), 1]).all() and np.isfinite(labels[np.isfinite(sfr), 1]).all()
    assert labels[np.isfinite(sfr), 1].min() >= np.log10(SFR_FLOOR) - 1e-6


def test_bad_property_lists_are_refused(toy):
    with pytest.raises(DeepdipValueError, match="twice"):
        parse_properties("logmstar,logmstar")
    with pytest.raises(DeepdipValueError, match="neither a catalogue column"):
        property_labels(CutoutStore(toy), ["logfoo"])


def test_cli_refuses_an_unknown_property_before_writing_anything(toy, tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "deepdip", "train", str(toy), "--out", str(out), "--properties",
                        "logfoo", "--no-progress"], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "'logfoo' is neither a catalogue column" in p.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_property_metrics_on_known_errors():
    rng = np.random.default_rng(0)
    true = rng.normal(10, 0.5, 20000)
    mean = true + rng.normal(0.1, 0.2, true.size)
    m = property_metrics(true, mean, np.full(true.size, 0.2))
    assert abs(m["bias"] - 0.1) < 0.01 and abs(m["nmad"] - 0.2) < 0.01
    assert m["pit_ks"] > 0.15                                  # biased by half a sigma: miscalibrated
    good = property_metrics(true, true + rng.normal(0, 0.2, true.size), np.full(true.size, 0.2))
    assert good["pit_ks"] < 0.02 and abs(good["coverage_68"] - 0.683) < 0.02


# -- end to end -------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["binned", "mdn"])
def test_joint_training_learns_the_properties_and_predict_writes_their_columns(toy, tmp_path, head):
    """On the toy store (log M* = 9 + 6 z, shown by the images as z is), the joint network predicts
    log M* to a small fraction of its spread and the redshift far better than the prior; the
    catalogue holds <name>_mean/_std; the model file keeps the head and the standardisation."""
    from deepdip.catalog import read_catalog
    from deepdip.metrics import sigma_mad
    from deepdip.models.modelfile import ModelFile
    from deepdip.predict import predict_store
    from deepdip.train import train

    run = train(toy, fold=0, epochs=12, batch_size=32, out=tmp_path / "run", seed=1, model_kwargs=TINY_MODEL,
                threads=1, progress=False, num_workers=0, tensorboard=False, properties="logmstar,logsfr", head=head)
    config = json.loads((run / "run.json").read_text())
    assert config["properties"] == ["logmstar", "logsfr"] and config.get("head", "binned") == head
    model = ModelFile(run / "fold0" / "member0" / "model.pt")
    assert model.net.properties == ["logmstar", "logsfr"]
    assert 9.5 < float(model.net.property_head.loc[0]) < 10.8          # the training labels' mean
    cat = read_catalog(predict_store(run, toy, tmp_path / "cnn.parquet", rows="test", progress=False))
    t = cat.table
    for name in ("logmstar", "logsfr"):
        assert {f"{name}_mean", f"{name}_std"} <= set(t.columns)
        assert np.isfinite(t[f"{name}_mean"]).all() and (t[f"{name}_std"] > 0).all()
    zs = t["z_spec"].to_numpy()
    truth = 9.0 + 6.0 * zs
    resid = t["logmstar_mean"].to_numpy() - truth
    assert np.std(resid) < 0.15 * np.std(truth)
    assert sigma_mad(t["z_mean"].to_numpy(), zs) < 0.35 * sigma_mad(np.full_like(zs, np.median(zs)), zs)


def test_properties_and_new_heads_cannot_be_bolted_onto_a_finetuned_model(toy, tmp_path):
    from deepdip.train import train

    base = train(toy, fold=0, epochs=1, batch_size=32, out=tmp_path / "base", seed=1, model_kwargs=TINY_MODEL,
                 threads=1, progress=False, num_workers=0, tensorboard=False)
    with pytest.raises(DeepdipValueError, match="--init-model"):
        train(toy, fold=0, epochs=1, out=tmp_path / "ft", init_model=str(base), properties="logmstar",
              threads=1, progress=False, num_workers=0, tensorboard=False)
    assert not (tmp_path / "ft").exists()
