"""Models (the ``deepdip.models`` package): shapes, the timm-style model and head contracts, pinned parameter /
FLOP counts, and model files."""

import pytest
import torch
from torch import nn

from deepdip.errors import DeepdipError
from deepdip.models import (
    count_flops,
    count_params,
    create_head,
    create_model,
    heads,
    list_heads,
    list_models,
    register_head,
)


def test_registry_lists_both_models():
    assert {"pasquet19", "compact"} <= set(list_models())
    with pytest.raises(DeepdipError, match="unknown model"):
        create_model("resnet9000", 5, 180, 64)


def test_pasquet19_matches_the_paper():
    """Pasquet et al. 2019 for 64x64 ugriz and 180 bins: ~27.6 M parameters, ~1.5 GFLOP forward."""
    net = create_model("pasquet19", in_chans=5, num_bins=180, img_size=64)
    assert count_params(net) == 27_596_372
    assert count_flops(net) == pytest.approx(1.519e9, rel=2e-3)


def test_compact_is_at_least_10x_cheaper():
    big = count_flops(create_model("pasquet19", 5, 180, 64))
    net = create_model("compact", 5, 180, 64)
    flops = count_flops(net)
    assert flops * 10 <= big
    assert count_params(net) == 444_276
    assert flops == pytest.approx(3.417e7, rel=2e-3)


@pytest.mark.parametrize("name", ["pasquet19", "compact"])
@pytest.mark.parametrize("in_chans,img_size,num_bins,n_extra", [(5, 16, 180, 1), (4, 32, 50, 0), (6, 24, 400, 2)])
def test_shapes_and_feature_head_split(name, in_chans, img_size, num_bins, n_extra):
    net = create_model(name, in_chans=in_chans, num_bins=num_bins, img_size=img_size, n_extra=n_extra).eval()
    x = torch.randn(3, in_chans, img_size, img_size)
    extra = torch.randn(3, n_extra)
    with torch.no_grad():
        feats = net.forward_features(x)
        logits = net(x, extra)
    assert feats.shape == (3, net.num_features)
    assert logits.shape == (3, num_bins)
    assert torch.allclose(net.forward_head(feats, extra), logits)


def test_extra_scalars_reach_the_output():
    net = create_model("compact", 5, 20, 16).eval()
    x = torch.randn(2, 5, 16, 16)
    with torch.no_grad():
        a, b = net(x, torch.zeros(2, 1)), net(x, torch.ones(2, 1))
    assert not torch.allclose(a, b)


def test_models_cli(capsys):
    from deepdip.cli import main

    assert main(["models", "--survey", "sdss"]) == 0
    out = capsys.readouterr().out
    assert "pasquet19" in out and "27,596,372" in out and "compact" in out


def test_model_defaults_are_the_constructor_keywords():
    from deepdip.models import create_model, model_defaults

    defaults = model_defaults("compact")
    assert "widths" in defaults and "in_chans" not in defaults
    # Building with the recorded defaults gives the same architecture as building with none.
    a = create_model("compact", in_chans=5, num_bins=180, img_size=64)
    b = create_model("compact", in_chans=5, num_bins=180, img_size=64, **defaults)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]


# State-dict keys and shapes of the SDSS networks, as model files written since the first release
# store them (sha256 of "key:shape" lines, first 16 hex digits). A change here breaks every saved
# model.pt: refactor without renaming modules or reordering a Sequential.
STATE_DICT_DIGESTS = {"compact": (42, "59fac97bb8ff9298"), "pasquet19": (93, "dffa0b8ae08dc617")}


@pytest.mark.parametrize("name", ["compact", "pasquet19"])
def test_state_dict_keys_are_those_of_saved_model_files(name):
    import hashlib

    sd = create_model(name, in_chans=5, num_bins=180, img_size=64).state_dict()
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sd.items())
    assert (len(sd), hashlib.sha256(text.encode()).hexdigest()[:16]) == STATE_DICT_DIGESTS[name]


def test_model_file_written_before_the_models_moved_loads_and_predicts_the_same():
    """tests/data/modelfile_v1_compact.pt was written by the code before issue 10 (PhotozNet in
    deepdip.train.modelfile, each model with its own head); its info holds inputs and the logits
    that code gave. Loading it today must give the same logits, to float32 rounding: bit for bit on the
    CPU model that wrote them, but another CPU (an AMD EPYC here, an Intel one then) picks other
    convolution kernels, which sum in another order (3.7e-8 apart, 2026-12-02). A wrong mapping of
    the old weights would move the logits by orders of magnitude more."""
    from pathlib import Path

    from deepdip.models.modelfile import ModelFile

    mf = ModelFile(Path(__file__).parent / "data" / "modelfile_v1_compact.pt")
    with torch.no_grad():
        logits = mf.net(mf.info["test_images"], mf.info["test_ebv"])
    torch.testing.assert_close(logits, mf.info["test_logits"], rtol=1e-5, atol=1e-6)


def test_registry_default_configs():
    from deepdip.models import get_model_cfg

    for name in ("compact", "pasquet19"):
        cfg = get_model_cfg(name)
        assert cfg["description"] == list_models()[name]
        net = create_model(name)          # shape arguments from the default config: SDSS
        assert (net.in_chans, net.img_size, net.num_bins, net.n_extra) == (5, 64, 180, 1)
        modules = dict(net.named_modules())
        assert isinstance(modules[cfg["first_conv"]], torch.nn.Conv2d) and cfg["head"] in modules
    with pytest.raises(DeepdipError, match="unknown model"):
        get_model_cfg("resnet9000")


def test_inference_needs_nothing_from_train():
    """predict depends on models, never on train (DESIGN.md's one-way arrows)."""
    import subprocess
    import sys

    code = ("import sys, deepdip.predict, deepdip.models.modelfile; "
            "bad = [m for m in sys.modules if m.startswith(('deepdip.train', 'lightning'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the head contract (timm's, with extra scalars): pre-logits, get/reset, registered kinds, added heads ---
@pytest.fixture(params=["compact", "pasquet19"])
def net(request):
    return create_model(request.param, in_chans=3, num_bins=20, img_size=16, n_extra=2).eval()


def _inputs(n=4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randn(n, 2, generator=g)


def test_forward_is_features_then_head(net):
    x, e = _inputs()
    with torch.no_grad():
        logits = net(x, e)
        feats = net.forward_features(x)
        assert torch.equal(net.forward_head(feats, e), logits)
        pre = net.forward_head(feats, e, pre_logits=True)
    head = net.get_head()
    assert pre.shape == (4, head.hidden_size)
    assert torch.allclose(list(head)[-1](pre), logits)   # pre-logits is what the output layer reads


def test_reset_head_keeps_the_dense_layers(net):
    x, e = _inputs()
    head = net.get_head()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    with torch.no_grad():
        pre = net.forward_head(net.forward_features(x), e, pre_logits=True)
    net.reset_head(7)
    assert net.num_bins == 7 and net(x, e).shape == (4, 7)
    with torch.no_grad():
        assert torch.equal(net.forward_head(net.forward_features(x), e, pre_logits=True), pre)
    last = str(len(head) - 1)
    kept = {k: v for k, v in head.state_dict().items() if not k.startswith(last + ".")}
    assert kept and all(torch.equal(v, before[k]) for k, v in kept.items())


def test_a_registered_head_kind_plugs_in_without_touching_the_backbone(net):
    @register_head("test_gaussian")
    class Gaussian(nn.Module):   # a stand-in for a mixture density head: mean and log-sigma
        def __init__(self, in_features, num_outputs, hidden=4):
            super().__init__()
            self.body, self.out = nn.Linear(in_features, hidden), nn.Linear(hidden, num_outputs)

        def forward(self, x, pre_logits=False):
            h = torch.relu(self.body(x))
            return h if pre_logits else self.out(h)

    try:
        assert "binned" in list_heads() and "test_gaussian" in list_heads()
        x, e = _inputs()
        feats_before = net.forward_features(x).detach()
        net.reset_head(2, kind="test_gaussian", hidden=5)
        assert isinstance(net.get_head(), Gaussian) and net(x, e).shape == (4, 2)
        assert net.forward_head(net.forward_features(x), e, pre_logits=True).shape == (4, 5)
        assert torch.equal(net.forward_features(x), feats_before)
    finally:
        heads._HEADS.pop("test_gaussian", None)   # other tests see the shipped kinds only
    with pytest.raises(DeepdipError, match="unknown head"):
        create_head("nope", 10, 2)


def test_added_heads_run_beside_the_main_one(net):
    x, e = _inputs()
    n_keys = len(net.state_dict())
    net.add_head("log_mstar", nn.Linear(net.num_features + net.n_extra, 2))   # value and log-sigma
    with torch.no_grad():
        out = net.forward_heads(x, e)
        assert set(out) == {"head", "log_mstar"}
        assert torch.equal(out["head"], net(x, e)) and out["log_mstar"].shape == (4, 2)
    assert len(net.state_dict()) == n_keys + 2    # extra_heads.log_mstar.weight / .bias
