"""Internal colour structure: a galaxy's SED split into a bulge, a disk and star-forming knots.

A galaxy is its kcorrect template coefficients ``c`` (solar masses formed per template, see
:mod:`deepdip.simulate.templates`); its fluxes are ``c @ T(z)``. The split keeps them exactly:
``c = b + d`` (bulge + disk), then ``d = k + s`` (knots + smooth disk), every part non-negative,
so the components' fluxes add up to the population's in every band and at every redshift.

Which light goes where follows the templates' rest-frame colour u-r (``colour_t``): the bulge
takes the share ``f_t = exp(-u * gamma_t)`` of template t, with ``gamma_t = exp(-kappa * (colour_t -
max colour))`` (``f_t = beta^gamma_t`` with ``beta = exp(-u)``), so with ``kappa > 0`` old, red
templates go to the bulge first and young, blue ones stay in the disk; ``u`` is solved per galaxy
(bisection, vectorised) so that the bulge carries ``bulge_frac`` of the galaxy's flux in the
reference band (the preset's ``mag_limit_band``). The knots take, by the same rule with the
opposite sign, the youngest, bluest part of the disk, ``knot_fraction`` of the disk's
reference-band flux. The reference of the colours is immaterial (it rescales ``u``).

``kappa = 0`` switches the colour structure off: ``f_t`` is the same for every template, so bulge,
disk and knots share the galaxy's SED (the ablation of issue 11). Per-band shares of the
galaxy's flux, ``(b @ T(z)) / (c @ T(z))``, then depend on redshift and on the galaxy's own SED,
which a fixed colour tilt per band cannot.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from deepdip.simulate.templates import TemplateTable

BISECTION_STEPS = 64  # halvings of the bracket in log u: far below float64 resolution
_TINY = 1e-300


def template_colours(rest_maggies: np.ndarray) -> np.ndarray:
    """Rest-frame u - r (AB) of each template, from ``template_properties()["rest_maggies"]`` [5, >=2]."""
    return -2.5 * np.log10(rest_maggies[:, 0] / rest_maggies[:, 1])


def solve_share(weights: np.ndarray, gamma: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The ``u >= 0`` with ``sum_t w_t exp(-u gamma_t) = target`` per row.

    ``weights`` [n, T] (non-negative, rows summing to 1: each template's share of the reference
    flux), ``gamma`` [T] (>= 1), ``target`` [n] in (0, 1). The sum falls monotonically from 1 at
    u = 0 to 0, so bisection on log u converges; the bracket is [(1 - target) / sum(w gamma),
    -ln(target)] (from 1 - x <= exp(-x) and gamma >= 1).
    """
    target = np.clip(np.asarray(target, dtype=np.float64), 1e-9, 1 - 1e-9)
    lo = np.log((1 - target) / np.maximum(weights @ gamma, _TINY))
    hi = np.log(-np.log(target))
    lo = np.minimum(lo, hi)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        share = np.einsum("nt,nt->n", weights, np.exp(-np.exp(mid)[:, None] * gamma[None, :]))
        above = share > target  # u too small: move up
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return np.exp(0.5 * (lo + hi))


def _take(coeffs: np.ndarray, ref_maggies: np.ndarray, colours: np.ndarray, kappa: float,
          fraction: np.ndarray) -> np.ndarray:
    """The part of ``coeffs`` [n, T] carrying ``fraction`` of its reference flux, reddest first
    (``kappa > 0``), bluest first (``kappa < 0``) or in proportion (``kappa = 0``)."""
    flux = coeffs * ref_maggies  # [n, T]
    total = flux.sum(1, keepdims=True)
    weights = flux / np.maximum(total, _TINY)
    anchor = colours.max() if kappa >= 0 else colours.min()
    gamma = np.exp(-kappa * (colours - anchor))  # >= 1, 1 at the favoured end
    u = solve_share(weights, gamma, fraction)
    return coeffs * np.exp(-u[:, None] * gamma[None, :])


def split(coeffs: np.ndarray, z: np.ndarray, bulge_frac: np.ndarray, table: TemplateTable, ref_band: int,
          rest_maggies: np.ndarray, kappa: float, knot_fraction: float = 0.0) -> dict:
    """Split template coefficients into bulge, smooth disk and knots.

    Parameters
    ----------
    coeffs : [n, T] template coefficients of the galaxies.
    z : [n] redshifts.
    bulge_frac : [n] the bulge's share of the reference-band flux.
    table : template fluxes through the survey's filters (``ctx["survey"]``).
    ref_band : index in ``table.filters`` of the band in which ``bulge_frac`` and ``knot_fraction`` hold.
    rest_maggies : ``template_properties()["rest_maggies"]`` (rest-frame u, r, ...).
    kappa : bulge/disk colour contrast per magnitude of template rest-frame u - r (0: no colour structure).
    knot_fraction : the knots' share of the disk's reference-band flux.

    Returns
    -------
    dict: ``bulge``, ``disk`` (smooth disk), ``knots`` coefficients [n, T] (summing to ``coeffs``);
    ``bulge_share``, ``knot_share`` [n, B]: each component's share of the galaxy's flux per band;
    ``bulge_rest_u_r``, ``disk_rest_u_r`` (disk with its knots), ``knot_rest_u_r`` [n]: rest-frame
    colours (NaN for a component without light).
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    maggies = table.maggies(z)  # [n, T, B]
    colours = template_colours(rest_maggies)
    ref = maggies[:, :, ref_band]
    bulge = _take(coeffs, ref, colours, kappa, bulge_frac)
    disk_all = np.maximum(coeffs - bulge, 0.0)
    if knot_fraction > 0:
        knots = _take(disk_all, ref, colours, -kappa, np.full(len(coeffs), float(knot_fraction)))
    else:
        knots = np.zeros_like(coeffs)
    disk = np.maximum(disk_all - knots, 0.0)
    total = np.einsum("nt,ntb->nb", coeffs, maggies)

    def rest(c):
        u, r = c @ rest_maggies[:, 0], c @ rest_maggies[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((u > 0) & (r > 0), -2.5 * np.log10(u / r), np.nan)

    return {"bulge": bulge, "disk": disk, "knots": knots,
            "bulge_share": np.einsum("nt,ntb->nb", bulge, maggies) / total,
            "knot_share": np.einsum("nt,ntb->nb", knots, maggies) / total,
            "bulge_rest_u_r": rest(bulge), "disk_rest_u_r": rest(disk + knots), "knot_rest_u_r": rest(knots)}


def columns(survey, coeffs, z, bulge_frac, ctx) -> dict:
    """The catalogue columns of the split for ``sample_population``: per-band shares
    ``bulge_share_<band>``, ``knot_share_<band>`` and rest-frame colours of the components,
    with the preset's ``morphology.bulge_disk_contrast`` (kappa) and ``knot_fraction``."""
    m = survey.get("morphology", {})
    parts = split(coeffs, z, bulge_frac, ctx["survey"], survey.bands.index(survey["mag_limit_band"]),
                  ctx["rest_maggies"], float(m.get("bulge_disk_contrast", 0.0)), float(m.get("knot_fraction", 0.0)))
    out = {}
    for b, band in enumerate(survey.bands):
        out[f"bulge_share_{band}"] = parts["bulge_share"][:, b]
        out[f"knot_share_{band}"] = parts["knot_share"][:, b]
    out["bulge_rest_u_r"] = parts["bulge_rest_u_r"]
    out["disk_rest_u_r"] = parts["disk_rest_u_r"]
    return out


def shares(pop: dict, bands) -> tuple[np.ndarray, np.ndarray] | None:
    """Bulge and knot shares [n, B] from a population's ``bulge_share_<band>`` / ``knot_share_<band>``
    columns, or None if it has none (then the renderer falls back to its fixed colour tilt)."""
    if f"bulge_share_{bands[0]}" not in pop:
        return None
    bulge = np.column_stack([pop[f"bulge_share_{b}"] for b in bands])
    knots = np.column_stack([pop.get(f"knot_share_{b}", np.zeros(len(bulge))) for b in bands])
    return bulge, knots


def knot_positions(pop: dict, n_knots: int, rng: np.random.Generator, disk_scale: float) -> np.ndarray:
    """Positions [n, n_knots, 2] (arcsec, x and y from the galaxy's centre) of point-like knots
    placed like the disk's light, as GalSim's ``RandomKnots(profile=disk)`` shoots them: radius
    from the face-on exponential (surface density ~ exp(-r / r_s), so r ~ Gamma(2, r_s) with
    r_s = ``disk_scale`` * ``hlr``), a uniform angle, then the disk's area-preserving shear (axis
    ratio ``q_disk``, major axis at ``pa``)."""
    n = len(pop["hlr"])
    r = rng.gamma(2.0, 1.0, (n, n_knots)) * (disk_scale * np.asarray(pop["hlr"]))[:, None]
    theta = rng.uniform(0.0, 2 * np.pi, (n, n_knots))
    q = np.sqrt(np.asarray(pop["q_disk"]))[:, None]
    major, minor = r * np.cos(theta) / q, r * np.sin(theta) * q
    pa = np.radians(np.asarray(pop["pa"]))[:, None]
    c, s = np.cos(pa), np.sin(pa)
    return np.stack([major * c - minor * s, major * s + minor * c], axis=-1)


def knots_transform(xy: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Fourier transform [n, nky, nkx] (complex64, unit flux) of equal point sources at ``xy``
    [n, m, 2] (arcsec): the mean over knots of exp(-i (kx x + ky y)), separable in kx and ky,
    so the sum over knots is batched matrix products. ``kx``, ``ky``: 1-D wave numbers (rad/arcsec).
    In real arithmetic: numpy's batched complex matmul is ~50x slower than its real one."""
    xy = np.asarray(xy, dtype=np.float32)
    ax = kx[None, None, :].astype(np.float32) * xy[:, :, 0:1]  # [n, m, nkx]
    ay = ky[None, :, None].astype(np.float32) * xy[:, None, :, 1]  # [n, nky, m]
    weight = np.float32(1.0 / xy.shape[1])
    cx, sx = np.cos(ax) * weight, np.sin(ax) * weight
    cy, sy = np.cos(ay), np.sin(ay)
    # exp(-i (a + b)) = (cos a cos b - sin a sin b) - i (sin a cos b + cos a sin b)
    out = np.empty((xy.shape[0], ay.shape[1], ax.shape[2]), dtype=np.complex64)
    # one BLAS thread: OpenBLAS's result for a matrix shape can change in the last bit with the thread
    # count, and the store must not depend on whether a block ran in this process or a 1-thread worker
    with threadpool_limits(1, user_api="blas"):
        out.real = cy @ cx - sy @ sx
        out.imag = -(sy @ cx + cy @ sx)
    return out
