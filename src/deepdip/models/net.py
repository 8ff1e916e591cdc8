"""The network a model file holds: the input normaliser in front of a registered backbone.

Training (``deepdip.train``) optimises it and prediction (``deepdip.predict``) runs it, so it lives
with the models: both depend on ``models``, and ``predict`` never on ``train``.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from deepdip.models import create_head, create_model
from deepdip.models.base import PhotozBackbone
from deepdip.models.calibration import PitCalibration
from deepdip.models.heads import GaussianHead
from deepdip.models.normalize import Normalizer, bands_present

#: The name of the physical-parameter head among the backbone's extra heads.
PROPERTY_HEAD = "properties"


class PhotozNet(nn.Module):
    """Normaliser + backbone: raw fluxes ``[N, B, H, W]`` and E(B-V) ``[N, E]`` -> logits ``[N, K]``.

    ``apertures`` (radii in pixels): aperture photometry measured by the normaliser on the raw
    fluxes joins E(B-V) as extra inputs of the backbone's dense layers (see ``Normalizer``).
    ``band_mask``: the network reads which bands each galaxy has (a band whose stamp is all zero
    is missing) and takes that mask as an input: one network for any subset of bands, trained
    with band dropout (``deepdip train --band-dropout``).
    ``head``: the redshift head's kind (``binned``: the softmax over bins of the backbone; ``mdn``:
    a mixture of Gaussians read out on the bins, built with the dense layers' layout of the
    backbone's head and ``head_kwargs``, e.g. ``zmin``, ``zmax``, ``n_components``).
    ``properties``: names of physical parameters (``deepdip.properties``) predicted beside the
    redshift by a Gaussian head reading the same features (:meth:`forward_outputs`).
    ``pit_calibration``: the network carries PIT recalibration maps, one per band-availability
    pattern (:mod:`deepdip.models.calibration`), that prediction applies to its PDFs
    (:meth:`calibrate`); fitted after training (``deepdip train --recalibrate pit``).
    """

    def __init__(self, model: str, in_chans: int, num_bins: int, img_size: int, n_extra: int = 1,
                 stretch: str = "asinh", apertures=(), model_kwargs: dict | None = None, band_mask: bool = False,
                 head: str = "binned", head_kwargs: dict | None = None, properties=(), pit_calibration: bool = False):
        super().__init__()
        self.normalizer = Normalizer(in_chans, n_extra, stretch, apertures, band_mask=band_mask)
        self.backbone = create_model(model, in_chans=in_chans, num_bins=num_bins, img_size=img_size,
                                     n_extra=self.normalizer.n_extra_out, **(model_kwargs or {}))
        backbone = cast(PhotozBackbone, self.backbone)
        if head != "binned":
            layout = getattr(backbone.get_head(), "spec", {})
            backbone.reset_head(num_bins, kind=head, **{**layout, **(head_kwargs or {})})
        self.properties = list(properties)
        if self.properties:
            backbone.add_head(PROPERTY_HEAD, create_head("gaussian", backbone.num_features + backbone.n_extra,
                                                         len(self.properties)))
        self.calibration = PitCalibration(in_chans) if pit_calibration else None

    def calibrate(self, pdf: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """PDFs ``[N, K]`` of ``images`` -> recalibrated by their band pattern's map (unchanged
        without ``pit_calibration``)."""
        return pdf if self.calibration is None else self.calibration(pdf, bands_present(images))

    def _inputs(self, images: torch.Tensor, extra: torch.Tensor | None):
        x, extra = self.normalizer(images, extra)
        if images.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x, extra

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone(*self._inputs(images, extra))

    def forward_outputs(self, images: torch.Tensor, extra: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Redshift logits ``[N, K]`` and, with ``properties``, the Gaussian head's raw output
        ``[N, P, 2]`` (see :meth:`property_mean_std`; None without properties), in one pass."""
        if not self.properties:
            return self(images, extra), None
        out = cast(PhotozBackbone, self.backbone).forward_heads(*self._inputs(images, extra))
        return out["head"], out[PROPERTY_HEAD]

    @property
    def property_head(self) -> GaussianHead:
        return cast(GaussianHead, cast(PhotozBackbone, self.backbone).extra_heads[PROPERTY_HEAD])

    def property_mean_std(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw property output ``[N, P, 2]`` -> mean and sigma ``[N, P]`` in the labels' units."""
        return self.property_head.mean_std(raw)
