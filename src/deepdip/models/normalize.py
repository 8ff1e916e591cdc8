"""Per-band input normalisation, fitted on training images and stored inside the model file.

Galaxy images span orders of magnitude between sky noise and a bright core. A stretch compresses
that range before the network sees it:

- ``asinh`` (default): ``asinh(x / s_b)`` with ``s_b`` the band's robust sky-noise level, so the
  noise is linear (~1) and bright cores grow only logarithmically (Lupton et al. 1999 magnitudes);
- ``pasquet``: ``sign(x) (sqrt(|x| + 1) - 1)`` on the raw fluxes, as Pasquet et al. 2019.

Each stretched band is then standardised (mean/std over training pixels), and E(B-V) likewise.

Optionally (``apertures``, radii in pixels) the normaliser also measures aperture photometry on
the *raw* fluxes, before any stretch: the flux in centred circular apertures per band, as asinh
magnitudes (luptitudes, softened by the aperture's sky noise) and adjacent-band colours. These
join E(B-V) as extra scalars before the dense layers. Why: a sum of raw pixels is exactly the
linear operation the stretch destroys, and colours are most of the redshift information; giving
them to a small network lets its convolutions spend their capacity on morphology (size, profile,
gradients), which matters when data and CPU time are limited (see docs/benchmarks.md).
Because the statistics are buffers of :class:`Normalizer`, prediction applies exactly the same
transform by loading the model's state dict.

With ``band_mask`` (a network for any subset of bands, issue 14) the normaliser reads which bands
each galaxy has from its pixels: a band whose stamp is all zero (or NaN) is missing, which is how
deepdip stores write a band their mask says is absent (``deepdip.store``; ``validate`` checks the
two agree) and how band dropout removes one in training. A missing band's standardised channel is
set to 0 (the training mean: no signal either way), its aperture luptitudes and the colours that
use it to 0, and the mask itself (1 present, 0 missing) joins the extras, so the dense layers know
what the convolutions did not see.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

STRETCHES = ("asinh", "pasquet")


def asinh(x: torch.Tensor) -> torch.Tensor:
    """``torch.asinh(x)`` as ``sign(x) log1p(|x| + x^2 / (1 + sqrt(1 + x^2)))``: the same to float32
    rounding (relative error <= 1.2e-7 from 1e-12 to 1e17, like ``torch.asinh``'s), but 3-4x faster
    on CPUs, where ATen's ``asinh`` is scalar code (33 ms against 9-13 ms for a training batch of
    128 x 5 x 64 x 64 on 2 threads: a seventh of a compact training step). ``|x|`` is capped at
    1e18 (asinh 42.1) so that ``x^2`` cannot overflow."""
    a = x.abs().clamp_max_(1e18)
    a2 = a * a
    return torch.log1p(a + a2 / (1 + torch.sqrt(a2 + 1))).copysign_(x)


def bands_present(images: torch.Tensor) -> torch.Tensor:
    """``[N, B]`` float: 1 where a galaxy's band holds any non-zero, finite pixel (deepdip stores
    zero a missing band's pixels), else 0."""
    finite = torch.nan_to_num(images.float(), nan=0.0, posinf=0.0, neginf=0.0)
    return (finite.abs().amax(dim=(2, 3)) > 0).float()


class Normalizer(nn.Module):
    """Raw fluxes ``[N, B, H, W]`` and extras ``[N, E]`` -> network inputs of the same shapes."""

    # registered buffers (declared for the type checker: nn.Module's __getattr__ types them Tensor | Module)
    scale: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    extra_mean: torch.Tensor
    extra_std: torch.Tensor

    def __init__(self, n_bands: int, n_extra: int = 1, stretch: str = "asinh", apertures=(), band_mask: bool = False):
        super().__init__()
        if stretch not in STRETCHES:
            raise ValueError(f"unknown stretch {stretch!r}; use one of {STRETCHES}")
        self.stretch = stretch
        self.n_bands, self.n_extra_in = n_bands, n_extra
        self.apertures = tuple(float(r) for r in apertures or ())
        self.band_mask = bool(band_mask)
        n_ap = len(self.apertures)
        n_standardised = n_extra + (n_bands + (n_bands - 1)) * n_ap   # E(B-V) + luptitudes + colours
        self.n_extra_out = n_standardised + (n_bands if self.band_mask else 0)   # + the band mask
        self.register_buffer("scale", torch.ones(n_bands))      # s_b: sky noise per pixel, flux units
        self.register_buffer("mean", torch.zeros(n_bands))      # of stretched pixels
        self.register_buffer("std", torch.ones(n_bands))
        self.register_buffer("extra_mean", torch.zeros(n_standardised))
        self.register_buffer("extra_std", torch.ones(n_standardised))
        self._masks: dict[tuple[int, int, str], torch.Tensor] = {}

    def _stretch(self, x: torch.Tensor) -> torch.Tensor:
        # Out of place once (the caller's array must not change; masked pixels carry no signal),
        # then in place: this runs on every pixel of every batch (a quarter of a compact step).
        x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        if self.stretch == "asinh":
            return asinh(x.mul_((1.0 / self.scale).view(1, -1, 1, 1)))
        return torch.sign(x) * (torch.sqrt(x.abs() + 1.0) - 1.0)

    def _aperture_masks(self, h: int, w: int, device) -> torch.Tensor:
        """``[R, H, W]`` anti-aliased (1-pixel soft edge) centred discs of the aperture radii."""
        key = (h, w, str(device))
        if key not in self._masks:
            yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32) - (h - 1) / 2,
                                    torch.arange(w, dtype=torch.float32) - (w - 1) / 2, indexing="ij")
            r = torch.sqrt(yy**2 + xx**2)
            radii = torch.tensor(self.apertures).view(-1, 1, 1)
            self._masks[key] = (radii + 0.5 - r).clamp(0, 1).to(device)
        return self._masks[key]

    def photometry(self, images: torch.Tensor) -> torch.Tensor:
        """Raw fluxes ``[N, B, H, W]`` -> ``[N, B*R + (B-1)*R]`` aperture luptitudes and colours."""
        x = torch.nan_to_num(images.float(), nan=0.0, posinf=0.0, neginf=0.0)
        h, w = x.shape[-2:]
        masks = self._aperture_masks(h, w, x.device)                              # [R, H, W]
        flux = torch.einsum("nbhw,rhw->nbr", x, masks)                            # [N, B, R]
        noise = self.scale.view(1, -1, 1) * masks.sum(dim=(1, 2)).sqrt().view(1, 1, -1)
        lupt = asinh(flux / noise)                                                # [N, B, R]
        colours = lupt[:, :-1] - lupt[:, 1:]                                      # [N, B-1, R]
        return torch.cat([lupt.flatten(1), colours.flatten(1)], dim=1)

    def _extras(self, images: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        n = images.shape[0]
        parts = [extra.float() if extra is not None else images.new_zeros(n, self.n_extra_in)]
        if self.apertures:
            parts.append(self.photometry(images))
        return torch.cat(parts, dim=1)

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None):
        """-> stretched, standardised images ``[N, B, H, W]`` and extras ``[N, n_extra_out]``."""
        with torch.autocast(images.device.type, enabled=False):  # photometry needs fp32, even under bf16
            return self._forward(images.float(), extra)

    def _forward(self, images, extra):
        inv_std = (1.0 / self.std).view(1, -1, 1, 1)
        x = self._stretch(images).mul_(inv_std).sub_(self.mean.view(1, -1, 1, 1) * inv_std)
        e = self._extras(images, extra)
        e = torch.nan_to_num((e - self.extra_mean) / self.extra_std, nan=0.0)
        if self.band_mask:
            present = bands_present(images)                                       # [N, B] 0/1
            x = x * present[:, :, None, None]
            e = torch.cat([e * self._extras_present(present), present], dim=1)
        return x, e

    def _extras_present(self, present: torch.Tensor) -> torch.Tensor:
        """``[N, n_standardised]`` 1 where an extra is measurable from the bands present: E(B-V)
        always, a band's luptitudes with the band, a colour with both of its bands."""
        n_ap = len(self.apertures)
        parts = [present.new_ones(len(present), self.n_extra_in)]
        if n_ap:
            parts.append(present.repeat_interleave(n_ap, dim=1))                 # [N, B*R], band-major
            parts.append((present[:, :-1] * present[:, 1:]).repeat_interleave(n_ap, dim=1))
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def fit(self, images: np.ndarray, extra: np.ndarray | None = None) -> Normalizer:
        """Set the statistics from a sample of training images ``[n, B, H, W]`` and extras ``[n, E]``.

        Galaxies missing a band (its stamp all zero) do not count in that band's statistics."""
        images = np.nan_to_num(np.asarray(images, dtype=np.float32))
        present = bands_present(torch.from_numpy(images)).numpy().astype(bool)   # [n, B]
        if not present.all():
            return self._fit_with_missing_bands(images, extra, present)
        # Sky noise from the stamp border (4 px), where galaxy light is faint: robust MAD. It softens
        # the asinh stretch and the aperture luptitudes.
        border = np.concatenate([images[:, :, :4, :].reshape(*images.shape[:2], -1),
                                 images[:, :, -4:, :].reshape(*images.shape[:2], -1)], axis=2)
        border = np.moveaxis(border, 1, 0).reshape(images.shape[1], -1)      # [B, n*pixels]
        mad = np.median(np.abs(border - np.median(border, axis=1, keepdims=True)), axis=1)
        scale = 1.4826 * mad
        # Noise-free images (or empty borders): fall back to a small fraction of the flux scale.
        fallback = 1e-2 * np.maximum(np.percentile(np.abs(images), 99, axis=(0, 2, 3)), 1e-12)
        self.scale.copy_(torch.from_numpy(np.where(scale > 0, scale, fallback).astype(np.float32)))
        stretched = self._stretch(torch.from_numpy(images))
        self.mean.copy_(stretched.mean(dim=(0, 2, 3)))
        self.std.copy_(stretched.std(dim=(0, 2, 3)).clamp_min(1e-6))
        extra_t = None if extra is None else torch.from_numpy(np.nan_to_num(np.asarray(extra, dtype=np.float32)))
        e = self._extras(torch.from_numpy(images), extra_t)     # uses the scale set above
        if len(e) > 1:
            self.extra_mean.copy_(e.mean(dim=0))
            self.extra_std.copy_(e.std(dim=0).clamp_min(1e-3))  # E(B-V) ~ 0.01-0.1 mag
        return self

    def _fit_with_missing_bands(self, images: np.ndarray, extra, present: np.ndarray) -> Normalizer:
        """:meth:`fit` where some galaxies lack some bands: each band's statistics from the galaxies
        that have it, each extra's from those where it is measurable (defaults where none is)."""
        for b in range(images.shape[1]):
            sample = images[present[:, b], b]                                  # [m, H, W]
            if not len(sample):
                continue
            border = np.concatenate([sample[:, :4, :].ravel(), sample[:, -4:, :].ravel()])
            scale = 1.4826 * np.median(np.abs(border - np.median(border)))
            fallback = 1e-2 * max(float(np.percentile(np.abs(sample), 99)), 1e-12)
            self.scale[b] = float(scale) if scale > 0 else fallback
        stretched = self._stretch(torch.from_numpy(images))
        for b in range(images.shape[1]):
            rows = torch.from_numpy(present[:, b])
            if rows.any():
                self.mean[b] = stretched[rows, b].mean()
                self.std[b] = stretched[rows, b].std().clamp_min(1e-6) if rows.sum() > 1 else 1.0
        extra_t = None if extra is None else torch.from_numpy(np.nan_to_num(np.asarray(extra, dtype=np.float32)))
        e = self._extras(torch.from_numpy(images), extra_t)
        ok = self._extras_present(torch.from_numpy(present.astype(np.float32))).bool()
        for j in range(e.shape[1]):
            values = e[ok[:, j], j]
            if len(values) > 1:
                self.extra_mean[j] = values.mean()
                self.extra_std[j] = values.std().clamp_min(1e-3)
        return self
