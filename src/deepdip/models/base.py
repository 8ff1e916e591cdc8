"""What every deepdip backbone shares: features split from heads, and the head contract.

timm's model contract (``forward_features`` / ``forward_head(x, pre_logits=...)`` /
``get_classifier`` / ``reset_classifier``), adapted to photo-z: the head also reads extra scalars
(E(B-V), aperture photometry) joined to the flattened features, and its outputs are redshift bins.
A backbone subclasses :class:`PhotozBackbone`, builds its layers, sets ``num_features`` and builds
``self.head`` with :func:`deepdip.models.heads.create_head`; everything below comes with it.
"""

from __future__ import annotations

import torch
from torch import nn

from deepdip.errors import DeepdipValueError
from deepdip.models.heads import create_head


class PhotozBackbone(nn.Module):
    """Base of the deepdip models. Subclasses define ``forward_features`` and build ``self.head``.

    Attributes set by a subclass: ``in_chans``, ``num_bins``, ``img_size``, ``n_extra``,
    ``num_features`` (length of the flattened features) and ``head`` (a module of the
    :mod:`deepdip.models.heads` contract reading ``num_features + n_extra`` inputs).
    """

    in_chans: int
    num_bins: int
    img_size: int
    n_extra: int
    num_features: int
    head: nn.Module

    def __init__(self):
        super().__init__()
        # Heads run beside the main one (add_head). Empty by default: an empty ModuleDict adds no
        # state-dict keys, so model files are unchanged.
        self.extra_heads = nn.ModuleDict()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, B, H, W]`` normalised images -> ``[N, num_features]``."""
        raise NotImplementedError

    def head_input(self, features: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Features ``[N, F]`` joined with the extra scalars ``[N, n_extra]`` -> ``[N, F + n_extra]``."""
        if self.n_extra:
            if extra is None:
                raise DeepdipValueError(f"this network reads {self.n_extra} extra scalars per image: pass extra")
            features = torch.cat([features, extra.to(features.dtype)], dim=1)
        return features

    def forward_head(self, features: torch.Tensor, extra: torch.Tensor | None = None, *,
                     pre_logits: bool = False) -> torch.Tensor:
        """Features ``[N, F]`` and extras ``[N, n_extra]`` -> logits ``[N, num_bins]``; with
        ``pre_logits`` the head's last hidden layer ``[N, head.hidden_size]`` instead."""
        return self.head(self.head_input(features, extra), pre_logits=pre_logits)

    def get_head(self) -> nn.Module:
        return self.head

    def reset_head(self, num_bins: int, kind: str | None = None, **kwargs) -> None:
        """Point the network at ``num_bins`` outputs.

        ``kind=None`` replaces only the head's output layer (timm's ``reset_classifier``: the
        trained dense layers are kept, e.g. to fine-tune on a survey with another redshift grid);
        a registered ``kind`` (``deepdip.models.heads``) builds a whole new head with ``kwargs``.
        """
        if kind is None:
            # nn.Module.__getattr__ types attributes as Tensor | Module; a head of the contract defines reset()
            self.head.reset(num_bins)  # type: ignore[operator]
        else:
            self.head = create_head(kind, self.num_features + self.n_extra, num_bins, **kwargs)
        self.num_bins = num_bins

    def add_head(self, name: str, head: nn.Module) -> None:
        """Run ``head`` (reading ``[N, num_features + n_extra]``) beside the main one; see ``forward_heads``."""
        self.extra_heads[name] = head

    def forward_heads(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every head's output for images ``[N, B, H, W]``: ``"head"`` (the main head) and each added one."""
        inputs = self.head_input(self.forward_features(x), extra)
        out = {"head": self.head(inputs)}
        out.update({name: head(inputs) for name, head in self.extra_heads.items()})
        return out

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``[N, B, H, W]`` and extras ``[N, n_extra]`` -> main-head logits ``[N, num_bins]``."""
        return self.forward_head(self.forward_features(x), extra)
