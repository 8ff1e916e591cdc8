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
