"""The BPZ redshift-type prior of Benitez (2000): its HDF-N values, and a fit to training galaxies.

p(T | m) p(z | T, m) with type fractions f_T exp(-k_T (m - m0)) and p(z | T, m) ~ z^a
exp(-(z / (z0 + km (m - m0)))^a), in the dictionary form ``desc_bpz.prior_from_dict`` evaluates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BROAD_TYPES = (1, 2, 5)  # templates per broad type in CWWSB4: E/S0, spirals, Im/starbursts
#: Benitez (2000) HDFN prior (Table 1) in the dictionary form of desc_bpz.prior_from_dict.
HDFN_PRIOR = dict(fo_arr=np.array([0.35, 0.5]), kt_arr=np.array([0.45, 0.147]),
                  zo_arr=np.array([0.431, 0.39, 0.0626]), km_arr=np.array([0.0913, 0.0636, 0.123]),
                  a_arr=np.array([2.465, 1.806, 0.906]), mo=20.0)


def broad_type(template_index, broad_types=BROAD_TYPES):
    """Broad type (0 = E/S0, 1 = spiral, 2 = Im/SB) of each base template index of a set holding
    ``broad_types`` templates of each type, in order (CWWSB4's by default)."""
    edges = np.cumsum(broad_types)
    return np.searchsorted(edges, template_index, side="right")


def fit_prior(mags, z, types, min_per_type: int = 30) -> dict:
    """Benitez (2000) prior parameters fitted by maximum likelihood to training galaxies.

    Same functional form and likelihoods as RAIL's ``BPZliteInformer``: type fractions
    f_T exp(-k_T (m - m0)) and p(z | T, m) ~ z^a exp(-(z / (z0 + km (m - m0)))^a). ``m0`` is set to
    the 1st percentile of the training magnitudes (the prior clips brighter ones to m0), so bright
    surveys (SDSS) are not all clipped to the HDF-N's m0 = 20. Types with fewer than
    ``min_per_type`` galaxies keep their HDF-N parameters.
    """
    from scipy.optimize import minimize
    from scipy.special import gammaln

    ok = (mags < 90) & (z > 0)
    mags, z, types = mags[ok], z[ok], types[ok]
    m0 = float(np.floor(np.percentile(mags, 1) * 10) / 10)
    dm = np.maximum(mags - m0, 0.0)
    out: dict[str, Any] = {k: np.array(v, dtype=np.float64) if isinstance(v, np.ndarray) else v
                           for k, v in HDFN_PRIOR.items()}
    out["mo"] = m0
    nt = len(BROAD_TYPES)

    def frac_nll(p):
        fo, kt = p[: nt - 1], p[nt - 1:]
        prob = np.empty((nt, len(dm)))
        prob[:-1] = fo[:, None] * np.exp(-kt[:, None] * dm[None, :])
        prob[-1] = 1.0 - prob[:-1].sum(axis=0)
        if np.any(prob <= 0):  # every type keeps a positive share over the training magnitudes
            return np.inf
        return -np.sum(np.log(prob[types, np.arange(len(dm))]))

    counts = np.bincount(types, minlength=nt) / len(types)
    fo_start = np.clip(counts[:-1], 0.02, None)
    fo_start *= min(1.0, 0.95 / fo_start.sum())  # the last type must start with a positive share
    start = np.concatenate([fo_start, np.zeros(nt - 1)])
    res = minimize(frac_nll, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-5, "fatol": 1e-6})
    if np.isfinite(res.fun):
        out["fo_arr"], out["kt_arr"] = res.x[: nt - 1], res.x[nt - 1:]

    def dndz_nll(p, zt, dmt):
        z0, alpha, km = p
        zm = z0 + km * dmt
        if alpha <= 0.1 or np.any(zm <= 1e-3):
            return np.inf
        log_norm = (alpha + 1) * np.log(zm) + gammaln(1 + 1 / alpha) - np.log(alpha)
        return -np.sum(alpha * np.log(zt) - (zt / zm) ** alpha - log_norm)

    for t in range(nt):
        sel = types == t
        if sel.sum() < min_per_type:
            continue
        x0 = [np.median(z[sel]), 2.0, 0.0]
        res = minimize(dndz_nll, x0, args=(z[sel], dm[sel]), method="Nelder-Mead", options={"maxiter": 4000})
        if np.isfinite(res.fun):
            out["zo_arr"][t], out["a_arr"][t], out["km_arr"][t] = res.x
    return out
