"""Robust noise: the one copy of the normalised median absolute deviation.

``robust_sigma(x) = 1.4826 median(|x - median(x)|)`` estimates the standard deviation of the
Gaussian part of ``x`` while ignoring outliers (sources on a stamp's border, catastrophic photo-z):
the sky noise of cutouts, σ_MAD of Δz in the metrics.
"""

from __future__ import annotations

import numpy as np

#: 1 / Phi^-1(3/4): the MAD times this equals sigma for a Gaussian.
MAD_TO_SIGMA = 1.4826


def robust_sigma(x, axis=None, keepdims: bool = False):
    """``1.4826 * median(|x - median(x)|)`` along ``axis`` (all of ``x`` by default).

    The input's dtype is kept (float32 in, float32 out), as with ``np.median``.
    """
    centre = np.median(x, axis=axis, keepdims=True)
    return MAD_TO_SIGMA * np.median(np.abs(x - centre), axis=axis, keepdims=keepdims)
