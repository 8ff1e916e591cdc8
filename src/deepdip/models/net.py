"""The network a model file holds: the input normaliser in front of a registered backbone.

Training (``deepdip.train``) optimises it and prediction (``deepdip.predict``) runs it, so it lives
with the models: both depend on ``models``, and ``predict`` never on ``train``.
"""

from __future__ import annotations

import torch
from torch import nn

from deepdip.models import create_model
from deepdip.models.normalize import Normalizer


class PhotozNet(nn.Module):
    """Normaliser + backbone: raw fluxes ``[N, B, H, W]`` and E(B-V) ``[N, E]`` -> logits ``[N, K]``.

    ``apertures`` (radii in pixels): aperture photometry measured by the normaliser on the raw
    fluxes joins E(B-V) as extra inputs of the backbone's dense layers (see ``Normalizer``).
    ``band_mask``: the network reads which bands each galaxy has (a band whose stamp is all zero
    is missing) and takes that mask as an input: one network for any subset of bands, trained
    with band dropout (``deepdip train --band-dropout``).
    """

    def __init__(self, model: str, in_chans: int, num_bins: int, img_size: int, n_extra: int = 1,
                 stretch: str = "asinh", apertures=(), model_kwargs: dict | None = None, band_mask: bool = False):
        super().__init__()
        self.normalizer = Normalizer(in_chans, n_extra, stretch, apertures, band_mask=band_mask)
        self.backbone = create_model(model, in_chans=in_chans, num_bins=num_bins, img_size=img_size,
                                     n_extra=self.normalizer.n_extra_out, **(model_kwargs or {}))

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        x, extra = self.normalizer(images, extra)
        if images.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x, extra)
