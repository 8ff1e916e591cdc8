"""Redshift PDFs on the survey grid from samples: weighted histograms, kernel smoothing, and the
choice of the kernel width that makes them calibrated.

Every ML baseline produces, per galaxy, a set of redshift "votes" (neighbours' spec-z, trees'
predictions, residual quantiles) with weights. A histogram of the votes is too spiky and, for
trees, too narrow; convolving with a Gaussian whose width is chosen on held-out galaxies so that
their PIT values are uniform widens it just enough to be calibrated.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from deepdip.zgrid import ZGrid

#: Kernel widths tried, in units of the bin width (a quarter bin ... 16 bins, factors of 1.41).
BANDWIDTH_GRID = np.geomspace(0.25, 16.0, 13)
_FLOOR = 1e-6  # density floor in the log-likelihood: one catastrophic miss must not decide the width


def histogram(zgrid: ZGrid, z: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Row-wise weighted histogram of ``z`` [n, k] on the grid -> [n, nbins], rows summing to 1.

    Votes outside the grid fall into the end bins (:meth:`ZGrid.bin_index`).
    """
    z = np.atleast_2d(z)
    n, k = z.shape
    w = np.ones_like(z, dtype=np.float64) if weights is None else np.broadcast_to(weights, z.shape).astype(np.float64)
    flat = (np.arange(n)[:, None] * zgrid.nbins + zgrid.bin_index(z)).ravel()
    out = np.bincount(flat, weights=w.ravel(), minlength=n * zgrid.nbins).reshape(n, zgrid.nbins)
    return normalise_or_uniform(out)


def normalise_or_uniform(pdf: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (a row of zeros becomes uniform: "no information")."""
    pdf = np.clip(np.asarray(pdf, dtype=np.float64), 0.0, None)
    s = pdf.sum(axis=1, keepdims=True)
    uniform = np.full_like(pdf, 1.0 / pdf.shape[1])
    return np.where(s > 0, pdf / np.where(s > 0, s, 1.0), uniform)


def smooth(pdf: np.ndarray, sigma_bins: float) -> np.ndarray:
    """Gaussian convolution along redshift; mass is reflected at the grid ends (z >= zmin)."""
    if sigma_bins <= 0:
        return normalise_or_uniform(pdf)
    smoothed = gaussian_filter1d(np.asarray(pdf, dtype=np.float64), sigma_bins, axis=1, mode="reflect")
    return normalise_or_uniform(smoothed)


def log_score(pdf: np.ndarray, zgrid: ZGrid, z_true: np.ndarray) -> float:
    """Mean log density at the true redshift (higher is better)."""
    p = pdf[np.arange(len(z_true)), zgrid.bin_index(z_true)] / zgrid.width
    return float(np.mean(np.log(np.maximum(p, _FLOOR))))


def choose_bandwidth(raw_pdf: np.ndarray, zgrid: ZGrid, z_true: np.ndarray,
                     candidates=BANDWIDTH_GRID, score: str = "pit") -> float:
    """Kernel width (bins) for ``smooth(raw_pdf, width)`` chosen on held-out galaxies.

    ``score="pit"`` (default) minimises the KS distance of the PIT values from uniform: the width
    only widens or narrows the PDFs (point estimates barely move), so calibration is what it should
    buy. Measured on real SDSS, the mean CRPS is nearly flat over widths (kNN: 0.0103-0.0104 for
    0.5-4 bins) and the mean log density prefers over-wide PDFs (a few outliers at ~zero density
    dominate it), so neither proper score pins the width down. ``"crps"`` and ``"log"`` remain
    available.
    """
    from deepdip.metrics import crps, pit_ks, pit_values

    keep = (z_true >= zgrid.zmin) & (z_true < zgrid.zmax)
    raw_pdf, z_true = raw_pdf[keep], z_true[keep]
    if score == "log":
        values = [-log_score(smooth(raw_pdf, s), zgrid, z_true) for s in candidates]
    elif score == "crps":
        values = [float(np.mean(crps(smooth(raw_pdf, s), zgrid, z_true))) for s in candidates]
    elif score == "pit":
        values = [pit_ks(pit_values(smooth(raw_pdf, s), zgrid, z_true)) for s in candidates]
    else:
        raise ValueError(f"unknown score {score!r}: use pit, crps or log")
    return float(candidates[int(np.argmin(values))])
