"""Heads: what turns a backbone's features into outputs, and where new kinds of output plug in.

The contract is timm's classifier heads (``timm/layers/classifier.py``) with E(B-V) in the input:
a head maps ``[N, in_features]`` (the flattened features joined with the extra scalars, see
:meth:`deepdip.models.base.PhotozBackbone.head_input`) to ``[N, num_outputs]``;
``head(x, pre_logits=True)`` stops before the output layer (the representation a new head or an
embedding reads); ``head.reset(num_outputs)`` replaces only the output layer (a new redshift grid
when fine-tuning on another survey keeps the trained dense layers).

Kinds are registered by name (``register_head``) so a mixture density or a regression head for
physical parameters is added by a module of its own, without editing any backbone: build it with
``create_head(kind, ...)``, then ``backbone.reset_head(num_outputs, kind=...)`` to replace the
binned PDF, or ``backbone.add_head(name, head)`` to run it beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepdip.errors import DeepdipError

_HEADS: dict[str, type[nn.Module]] = {}


def register_head(kind: str):
    """Class decorator: make a head ``cls(in_features, num_outputs, **kwargs)`` available as ``kind``."""
    def wrap(cls):
        _HEADS[kind] = cls
        return cls
    return wrap


def list_heads() -> list[str]:
    return list(_HEADS)


def create_head(kind: str, in_features: int, num_outputs: int, **kwargs) -> nn.Module:
    """Head ``kind`` reading ``[N, in_features]`` and writing ``[N, num_outputs]``."""
    if kind not in _HEADS:
        raise DeepdipError(f"unknown head {kind!r}; available: {', '.join(_HEADS)}")
    return _HEADS[kind](in_features, num_outputs, **kwargs)


@register_head("binned")
class BinnedPdfHead(nn.Sequential):
    """Dense layers -> logits over the redshift bins; their softmax is the PDF (Pasquet et al. 2019).

    ``n_hidden`` fully connected ReLU layers of width ``hidden``, then the output layer. Dropout
    comes before the first dense layer, and before every one with ``drop_each`` (pasquet19's
    placement; compact's is the first only). A ``Sequential`` whose children are numbered in that
    order, so the weights keep the keys (``head.1.weight`` ...) of model files written before the
    head was shared; the RNG draws of initialisation are in the same order too.
    """

    def __init__(self, in_features: int, num_outputs: int, hidden: int = 256, n_hidden: int = 2,
                 drop_rate: float = 0.0, drop_each: bool = False):
        layers: list[nn.Module] = []
        width = in_features
        for i in range(n_hidden):
            if i == 0 or drop_each:
                layers.append(nn.Dropout(drop_rate))
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, num_outputs))
        super().__init__(*layers)
        self.in_features, self.num_outputs = in_features, num_outputs
        self.hidden_size = width            # of the pre-logits representation
        # The layout, so that a head of another kind can be built like this one (PhotozNet's ``head``).
        self.spec = dict(hidden=hidden, n_hidden=n_hidden, drop_rate=drop_rate, drop_each=drop_each)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``[N, in_features]`` -> logits ``[N, num_outputs]``, or ``[N, hidden_size]`` with ``pre_logits``."""
        *trunk, out = self
        for layer in trunk:
            x = layer(x)
        return x if pre_logits else out(x)

    def reset(self, num_outputs: int) -> None:
        """New (freshly initialised) output layer for ``num_outputs`` bins; the dense layers stay."""
        self[len(self) - 1] = nn.Linear(self.hidden_size, num_outputs)
        self.num_outputs = num_outputs


@register_head("mdn")
class MixtureDensityHead(nn.Module):
    """A mixture of ``n_components`` Gaussians in z (D'Isanto & Polsterer 2018), read out on the bins.

    The dense layers are those of :class:`BinnedPdfHead`; their output is, per component, a weight
    logit, a mean (a sigmoid onto [zmin, zmax]) and a width (one bin plus a softplus: a component
    never narrower than the grid can show). ``forward`` returns the mixture's log-probability of
    each bin (density at the bin centre times the width, renormalised on the grid), so it is a head
    of the common contract: the softmax of its output is the PDF, the training loss is the same
    cross-entropy against the bin of z_spec (the likelihood of the mixture, discretised on the
    grid), and prediction, catalogues and metrics need nothing new. What differs from the softmax
    head is the shape of the PDF: a few smooth modes, not one free weight per bin (fewer parameters,
    no ragged PDF in sparsely populated bins).
    """

    zcentres: torch.Tensor   # bin centres, a non-persistent buffer (derived from zmin, zmax and the bins)

    def __init__(self, in_features: int, num_outputs: int, zmin: float = 0.0, zmax: float = 1.0,
                 n_components: int = 5, hidden: int = 256, n_hidden: int = 2, drop_rate: float = 0.0,
                 drop_each: bool = False):
        super().__init__()
        if not zmax > zmin or n_components < 1:
            raise DeepdipError(f"mdn head: needs zmax > zmin and n_components >= 1 "
                               f"(got {zmin}, {zmax}, {n_components})")
        self.trunk = BinnedPdfHead(in_features, 3 * n_components, hidden=hidden, n_hidden=n_hidden,
                                   drop_rate=drop_rate, drop_each=drop_each)
        self.in_features, self.n_components = in_features, n_components
        self.zmin, self.zmax = float(zmin), float(zmax)
        self.hidden_size = self.trunk.hidden_size
        self._set_grid(num_outputs)

    def _set_grid(self, num_outputs: int) -> None:
        self.num_outputs = num_outputs
        width = (self.zmax - self.zmin) / num_outputs
        centres = self.zmin + width * (torch.arange(num_outputs, dtype=torch.float32) + 0.5)
        self.register_buffer("zcentres", centres, persistent=False)   # derived from (zmin, zmax, bins)
        self.bin_width = width

    def mixture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[N, in_features]`` -> log weights, means and widths of the components, each ``[N, K]``."""
        raw = self.trunk(x).float()
        logit, loc, scale = raw.chunk(3, dim=1)
        span = self.zmax - self.zmin
        mean = self.zmin + span * torch.sigmoid(loc)
        sigma = self.bin_width + 0.05 * span * F.softplus(scale)
        return logit.log_softmax(dim=1), mean, sigma

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``[N, in_features]`` -> log-probabilities of the bins ``[N, num_outputs]`` (or the trunk's
        last hidden layer with ``pre_logits``)."""
        if pre_logits:
            return self.trunk(x, pre_logits=True)
        logw, mean, sigma = self.mixture(x)
        z = self.zcentres[None, :, None]                                                 # [1, bins, 1]
        log_density = (-0.5 * ((z - mean[:, None, :]) / sigma[:, None, :]) ** 2
                       - sigma[:, None, :].log() + logw[:, None, :])                     # [N, bins, K]
        return torch.logsumexp(log_density, dim=2).log_softmax(dim=1)

    def reset(self, num_outputs: int) -> None:
        """Read the same mixture out on ``num_outputs`` bins of the same range (nothing to retrain)."""
        self._set_grid(num_outputs)


@register_head("gaussian")
class GaussianHead(nn.Module):
    """A Gaussian (mean, sigma) for each of ``num_outputs`` scalar quantities (physical parameters).

    Dense layers -> per quantity a mean and a log width, in units standardised by the buffers
    ``loc`` and ``scale`` (the training labels' mean and spread, set by the trainer before the first
    step and saved in the model file), so that one learning rate suits quantities of any range.
    Trained by the Gaussian negative log-likelihood (:meth:`nll`), which fits the width too: the
    predicted sigma is an uncertainty, checked by the calibration of the catalogue columns.
    """

    loc: torch.Tensor
    scale: torch.Tensor

    def __init__(self, in_features: int, num_outputs: int, hidden: int = 128, drop_rate: float = 0.0):
        super().__init__()
        self.trunk = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(in_features, hidden), nn.ReLU(inplace=True))
        self.out = nn.Linear(hidden, 2 * num_outputs)
        self.hidden_size = hidden
        self.in_features, self.num_outputs = in_features, num_outputs
        self.register_buffer("loc", torch.zeros(num_outputs))
        self.register_buffer("scale", torch.ones(num_outputs))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``[N, in_features]`` -> ``[N, num_outputs, 2]``: standardised mean and log sigma."""
        hidden = self.trunk(x)
        if pre_logits:
            return hidden
        out = self.out(hidden).float().view(len(x), self.num_outputs, 2)
        return torch.stack([out[..., 0], out[..., 1].clamp(-7.0, 5.0)], dim=-1)

    def set_standardisation(self, loc, scale) -> None:
        self.loc.copy_(torch.as_tensor(loc, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32).clamp_min(1e-6))

    def mean_std(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output of :meth:`forward` -> mean and sigma ``[N, num_outputs]`` in the labels' units."""
        return self.loc + self.scale * out[..., 0], self.scale * out[..., 1].exp()

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean Gaussian negative log-likelihood (standardised units, constant dropped) over the
        labels that are known: a NaN label (a galaxy without that quantity) adds nothing."""
        known = torch.isfinite(target)
        if not known.any():
            return out.sum() * 0.0   # keeps the graph (DDP expects every parameter to get a gradient)
        y = (torch.nan_to_num(target) - self.loc) / self.scale
        mu, log_sigma = out[..., 0], out[..., 1]
        per = 0.5 * ((y - mu) * torch.exp(-log_sigma)) ** 2 + log_sigma
        return per[known].mean()
