"""Bring every stamp to the model's input: centred on the galaxy, cropped or padded to size x size.

No resampling happens here: the pixel scale is physics the CNN learns from (sizes, profiles), so
a stamp only gains or loses whole pixels. Padding uses Gaussian noise at the stamp's own sky
level by default, because a CNN trained on noisy mocks would otherwise see an unnatural flat frame.
"""

from __future__ import annotations

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.photometry.noise import robust_sigma

PAD_MODES = ("noise", "zeros")
CENTRE_MODES = ("none", "wcs", "centroid")


def border_sigma(image: np.ndarray, width: int = 2) -> np.ndarray:
    """Per-band robust sky noise from the outer ``width`` pixels of a ``[B, H, W]`` stamp."""
    mask = np.ones(image.shape[1:], dtype=bool)
    mask[width:-width, width:-width] = False
    ring = image[:, mask]
    return robust_sigma(ring, axis=1)


def centroid(image: np.ndarray) -> tuple[float, float]:
    """(y, x) flux-weighted centre of the band-summed stamp, sky subtracted from the border median."""
    from photutils.centroids import centroid_com

    total = image.sum(axis=0)
    ring = np.concatenate([total[:2].ravel(), total[-2:].ravel(), total[:, :2].ravel(), total[:, -2:].ravel()])
    weights = np.clip(total - np.median(ring), 0, None)
    if not np.any(weights > 0):
        raise DeepdipError("no positive flux to centre on")
    x, y = centroid_com(weights)
    return float(y), float(x)


def fit_stamp(image: np.ndarray, size: int | None, centre: tuple[float, float] | None = None,
              pad: str = "noise", rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop or pad a ``[B, H, W]`` stamp to ``[B, size, size]`` around ``centre`` (y, x pixels).

    Without ``centre`` the stamp's own centre is kept. The centre pixel lands on output pixel
    ``size // 2`` (the convention of astropy's ``Cutout2D``), so shifts are whole pixels.
    """
    if size is None and centre is None:
        return image
    n_bands, height, width = image.shape
    size_y, size_x = (height, width) if size is None else (int(size), int(size))
    cy, cx = ((height - 1) / 2, (width - 1) / 2) if centre is None else centre
    # Python's round() sends .5 to even; floor(c + 0.5) keeps the same rule as Cutout2D.
    y0 = int(np.floor(cy + 0.5)) - size_y // 2
    x0 = int(np.floor(cx + 0.5)) - size_x // 2
    if centre is None and size is not None:
        # Symmetric crop/pad of a centred stamp: split the difference, extra pixel at the end.
        y0, x0 = (height - size_y) // 2, (width - size_x) // 2
    out = np.zeros((n_bands, size_y, size_x), dtype=np.float32)
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(height, y0 + size_y), min(width, x0 + size_x)
    if ye <= ys or xe <= xs:
        raise DeepdipError("the galaxy centre lies outside its stamp")
    out[:, ys - y0:ye - y0, xs - x0:xe - x0] = image[:, ys:ye, xs:xe]
    padded = np.ones((size_y, size_x), dtype=bool)
    padded[ys - y0:ye - y0, xs - x0:xe - x0] = False
    if pad == "noise" and padded.any():
        rng = rng if rng is not None else np.random.default_rng(0)
        sigma = border_sigma(image)
        noise = rng.standard_normal((n_bands, int(padded.sum()))) * sigma[:, None]
        out[:, padded] = noise.astype(np.float32)
    elif pad not in PAD_MODES:
        raise DeepdipError(f"unknown pad mode {pad!r}; use one of {', '.join(PAD_MODES)}")
    return out
