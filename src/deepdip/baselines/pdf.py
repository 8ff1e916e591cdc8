"""Redshift PDFs on the survey grid from samples: weighted histograms, kernel smoothing, and the
choice of the kernel width that makes them calibrated.

Every ML baseline produces, per galaxy, a set of redshift "votes" (neighbours' spec-z, trees'
predictions, residual quantiles) with weights. A histogram of the votes is too spiky and, for
trees, too narrow; convolving with a Gaussian whose width is chosen by the held-out
log-likelihood (a proper score) widens it just enough to be calibrated.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from deepdip.zgrid import ZGrid

#: Kernel widths tried, in units of the bin width (0.5 bin ... 16 bins).
BANDWIDTH_GRID = np.geomspace(0.5, 16.0, 16)
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
    return normalise(out)


def normalise(pdf: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (a row of zeros becomes uniform: "no information")."""
    pdf = np.clip(np.asarray(pdf, dtype=np.float64), 0.0, None)
    s = pdf.sum(axis=1, keepdims=True)
    uniform = np.full_like(pdf, 1.0 / pdf.shape[1])
    return np.where(s > 0, pdf / np.where(s > 0, s, 1.0), uniform)


def smooth(pdf: np.ndarray, sigma_bins: float) -> np.ndarray:
    """Gaussian convolution along redshift; mass is reflected at the grid ends (z >= zmin)."""
    if sigma_bins <= 0:
        return normalise(pdf)
    return normalise(gaussian_filter1d(np.asarray(pdf, dtype=np.float64), sigma_bins, axis=1, mode="reflect"))


def log_score(pdf: np.ndarray, zgrid: ZGrid, z_true: np.ndarray) -> float:
    """Mean log density at the true redshift (higher is better)."""
    p = pdf[np.arange(len(z_true)), zgrid.bin_index(z_true)] / zgrid.width
    return float(np.mean(np.log(np.maximum(p, _FLOOR))))


def choose_bandwidth(raw_pdf: np.ndarray, zgrid: ZGrid, z_true: np.ndarray,
                     candidates=BANDWIDTH_GRID) -> float:
    """Kernel width (bins) that maximises the held-out log score of ``smooth(raw_pdf, width)``."""
    keep = (z_true >= zgrid.zmin) & (z_true < zgrid.zmax)
    raw_pdf, z_true = raw_pdf[keep], z_true[keep]
    scores = [log_score(smooth(raw_pdf, s), zgrid, z_true) for s in candidates]
    return float(candidates[int(np.argmax(scores))])
