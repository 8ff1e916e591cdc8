"""A toy cutout store for tests and quick checks: Gaussian blobs whose colours and size depend on z.

Not a mock survey (that is ``deepdip simulate``): just enough signal for a CNN to learn in seconds.
"""

from __future__ import annotations

import numpy as np


def toy_images(z: np.ndarray, ebv: np.ndarray, n_bands: int = 5, size: int = 16, seed: int = 0,
               noise: float = 0.05) -> np.ndarray:
    """float32 ``[n, n_bands, size, size]`` blobs: redder, smaller and fainter with redshift."""
    rng = np.random.default_rng(seed)
    n = len(z)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    sigma = size / 16 * (1.0 + 2.0 * (0.4 - z) / 0.4)                       # [n] px
    ell = rng.uniform(0.6, 1.0, n)                                           # axis ratio
    theta = rng.uniform(0, np.pi, n)
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = c * xx + s * yy
    v = (-s * xx + c * yy) / ell[:, None, None]
    profile = np.exp(-0.5 * (u**2 + v**2) / sigma[:, None, None] ** 2)      # [n, H, W]
    profile /= profile.sum(axis=(1, 2), keepdims=True)
    bands = np.arange(n_bands)
    colour = (z[:, None] * 6.0) * (bands[None, :] - n_bands / 2) / n_bands  # mag offsets grow with z
    extinction = ebv[:, None] * (4.0 - 0.6 * bands[None, :])
    flux = 100.0 * (0.05 / (z[:, None] + 0.05)) * 10 ** (0.4 * colour - 0.4 * extinction)  # [n, B]
    images = flux[:, :, None, None] * profile[:, None] + rng.normal(0, noise, (n, n_bands, size, size))
    return images.astype(np.float32)


def make_toy_store(path, n: int = 300, size: int = 16, n_bands: int = 5, seed: int = 0, n_folds: int = 5,
                   survey: str = "sdss", bands=None, properties: bool = False):
    """Write a toy store of ``n`` galaxies at ``path``; z uniform in [0.01, 0.39] (SDSS bins).

    ``properties``: also ``stellar_mass`` (log10 = 9 + 6 z: what the images show of z, they show
    of it) and ``sfr`` (NaN for every fifth galaxy: a label unknown), the mock's physical columns.
    """
    from deepdip.store import create_store

    rng = np.random.default_rng(seed)
    z = rng.uniform(0.01, 0.39, n).astype(np.float32)
    ebv = rng.uniform(0.0, 0.1, n).astype(np.float32)
    images = toy_images(z, ebv, n_bands=n_bands, size=size, seed=seed + 1)
    bands = tuple(bands or "ugrizy"[:n_bands])
    columns = {"id": np.arange(n, dtype=np.int64) + 1000, "z_spec": z, "ebv": ebv}
    if properties:
        columns["stellar_mass"] = 10 ** (9.0 + 6.0 * z.astype(np.float64))
        sfr = 10 ** (1.0 - 4.0 * z.astype(np.float64))
        sfr[::5] = np.nan
        columns["sfr"] = sfr
    return create_store(path, images, columns,
                        bands=bands, image_shape=(size, size), survey=survey, pixel_scale=0.396,
                        flux_unit="nanomaggy", n_folds=n_folds, seed=seed)
