"""CNN models: shapes, the timm-style contract, and pinned parameter / FLOP counts."""

import pytest
import torch

from deepdip.errors import DeepdipError
from deepdip.models import count_flops, count_params, create_model, list_models


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
    that code gave. Loading it today must give the same logits, bit for bit."""
    from pathlib import Path

    from deepdip.models.modelfile import ModelFile

    mf = ModelFile(Path(__file__).parent / "data" / "modelfile_v1_compact.pt")
    with torch.no_grad():
        logits = mf.net(mf.info["test_images"], mf.info["test_ebv"])
    assert torch.equal(logits, mf.info["test_logits"])


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
