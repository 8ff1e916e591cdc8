"""Colour-magnitude features shared by the machine-learning baselines.

Features are extinction-corrected asinh magnitudes ("luptitudes", Lupton, Gunn & Szalay 1999, as
in the SDSS catalogue): they equal ordinary magnitudes for bright galaxies and stay finite and
ordered for faint, zero or negative fluxes, so non-detections need no special value. Unobserved
bands (NaN flux) get the luptitude of zero flux by default (``missing="zero"``), which reads as a
dropout; ``missing="nan"`` leaves them NaN instead, so that every feature touching a missing band is
NaN (what LightGBM's missing-value handling and an imputer want; see
:mod:`deepdip.baselines.base`'s ``missing_bands``). The feature vector is the reference-band
magnitude, the colours of adjacent bands (Beck et al. 2016 use colours + r), then any extra
measured columns.
"""

from __future__ import annotations

import numpy as np

from deepdip.errors import DeepdipValueError
from deepdip.photometry import Photometry
from deepdip.photometry.units import NANOMAGGY_ZERO_POINT

ZERO_POINT = NANOMAGGY_ZERO_POINT  # 22.5: fluxes are nanomaggies
_POGSON = 2.5 / np.log(10.0)


def luptitude(flux: np.ndarray, softening: np.ndarray) -> np.ndarray:
    """Asinh magnitude of ``flux`` (nanomaggies) with softening ``b`` (nanomaggies, per band)."""
    b = np.asarray(softening, dtype=np.float64)
    return ZERO_POINT - _POGSON * (np.arcsinh(flux / (2.0 * b)) + np.log(b))


class ColourFeatures:
    """Turns :class:`Photometry` into ``[ref_mag, colours..., extras...]``; ``fit`` learns the softening.

    The softening of each band is 1.042 x the median flux error of the training set, Lupton's
    choice that makes the asinh magnitude's noise minimal near the detection limit.
    """

    def __init__(self, ref_band: str):
        self.ref_band = ref_band

    def fit(self, phot: Photometry) -> ColourFeatures:
        if self.ref_band not in phot.bands:
            raise DeepdipValueError(f"reference band {self.ref_band!r} is not one of the bands {phot.bands}")
        _, err = phot.dereddened()
        med = np.nanmedian(err, axis=0)
        # A band never observed in training still needs a positive, finite softening.
        self.softening_ = np.where(np.isfinite(med) & (med > 0), 1.042 * med, 1.0)
        self.bands_ = tuple(phot.bands)
        self.extra_names_ = tuple(phot.extra_names)
        return self

    def state(self, prefix: str = "features.") -> dict:
        """The fitted softening, bands and extra names, as arrays and JSON values (saved models)."""
        return {f"{prefix}ref_band": self.ref_band, f"{prefix}softening": self.softening_,
                f"{prefix}bands": list(self.bands_), f"{prefix}extra_names": list(self.extra_names_)}

    @classmethod
    def from_state(cls, state: dict, prefix: str = "features.") -> ColourFeatures:
        """The fitted features :meth:`state` described."""
        features = cls(str(state[f"{prefix}ref_band"]))
        features.softening_ = np.asarray(state[f"{prefix}softening"], dtype=np.float64)
        features.bands_ = tuple(str(b) for b in state[f"{prefix}bands"])
        features.extra_names_ = tuple(str(c) for c in state[f"{prefix}extra_names"])
        if features.softening_.shape != (len(features.bands_),) or features.ref_band not in features.bands_:
            raise DeepdipValueError("the saved colour features do not match their bands")
        return features

    def magnitudes(self, phot: Photometry, missing: str = "zero") -> np.ndarray:
        """Luptitudes [n, B]; an unobserved band is the luptitude of zero flux, or NaN (``missing="nan"``)."""
        flux, _ = phot.dereddened()
        if missing == "nan":
            return luptitude(flux, self.softening_)
        return luptitude(np.nan_to_num(flux, nan=0.0), self.softening_)

    def transform(self, phot: Photometry, missing: str = "zero") -> np.ndarray:
        """Features [n, 1 + (B - 1) + E]; with ``missing="nan"`` those touching an unobserved band are NaN."""
        self._check(phot)
        return self.from_magnitudes(self.magnitudes(phot, missing), phot.extra)

    def from_magnitudes(self, mag: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Features from luptitudes [n, B] (e.g. with imputed bands) and the extra columns."""
        ref = mag[:, [self.bands_.index(self.ref_band)]]
        parts = [ref, mag[:, :-1] - mag[:, 1:]]
        if extra is not None:
            parts.append(np.nan_to_num(extra, nan=0.0))
        return np.concatenate(parts, axis=1)

    def _check(self, phot: Photometry) -> None:
        if tuple(phot.bands) != self.bands_ or tuple(phot.extra_names) != self.extra_names_:
            raise ValueError("photometry bands/extra columns differ from those the features were fitted on")

    @property
    def names(self) -> list[str]:
        b = self.bands_
        return [self.ref_band] + [f"{b[i]}-{b[i + 1]}" for i in range(len(b) - 1)] + list(self.extra_names_)
