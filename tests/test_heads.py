"""The head contract (timm's, with extra scalars): pre-logits, get/reset, registered kinds, added heads."""

import pytest
import torch
from torch import nn

from deepdip.errors import DeepdipError
from deepdip.models import create_head, create_model, heads, list_heads, register_head


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
