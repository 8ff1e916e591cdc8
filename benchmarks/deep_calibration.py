"""Deep presets against published deep fields: counts, n(z | i), sizes (issue 12).

The population of a deep preset (``skypy``: Schechter luminosity functions, SED mixtures, g-z
recoloured from HSC; sizes from Shen et al. 2003) is drawn over a known sky area *before* any
selection (:func:`deepdip.simulate.population.draw_area`), so galaxy counts per deg^2 and the
redshift distributions of i-limited samples can be set beside published measurements. The
anchors, with their sources, are ``../shared/notes/deep-anchors.md`` (read there, not recalled):

- i-band counts: HSC deep (the cumulative N(<i) of descqa's ``hsc_i_n.dat``; differential counts
  derived from it), COSMOS2020 (Weaver et al. 2022, Table 2); the LSST Science Book formula.
- n(z | i): median z of i-limited samples, DEEP2 (Coil et al. 2004), COSMOS (Ilbert et al. 2009: 0.66
  at 22 < i < 22.5) and the LSST Science Book's n ~ z^2 exp(-z/z0) (median 2.67 z0).
- sizes: mean half-light radius of COSMOS F814W galaxies per (z, magnitude) bin (Mandelbaum et al.
  2014 via descqa); the mock's composite (bulge + disk, intrinsic, before the PSF) half-light
  radius along the major axis is compared (the COSMOS one is a fit's; its scatter is as large as
  its mean, so only the order of magnitude and the trend with magnitude are a test).

Which half of what: the count *amplitude* of the cfhtls-wide preset is calibrated on HSC's
N(< 22.5) (the largest area, so the least cosmic variance); COSMOS counts, the count slope, the
Science Book formula, n(z | i) and sizes are validation only (nothing was fitted to them).

    python benchmarks/deep_calibration.py --survey cfhtls-wide --area 0.5 --out docs/deep_calibration.json
    python benchmarks/deep_calibration.py --survey cfhtls-wide --area 0.3 --m-lim-B 25 26 27 28
    python benchmarks/deep_calibration.py --survey cfhtls-wide-faint --area 0.3 --m-lim-B 28 \
        --scan-m-star-z-max 1.1 1.3 1.5 1.8 --scan-alpha-blue -1.3 -1.4 -1.5 --out docs/deep_population_scan.json

(``--m-lim-B``: the population's apparent B limit, a draw's completeness check: counts at the
survey limit must not change when it is made deeper.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# log10 N per 0.5 mag per deg^2 at the bin centre (deep-anchors.md)
COUNTS = {
    "hsc": {18.25: 2.23, 19.25: 2.73, 20.25: 3.11, 21.25: 3.47, 22.25: 3.82, 23.25: 4.18, 23.75: 4.37, 24.25: 4.54},
    "cosmos2020": {19.25: 2.71, 20.25: 3.14, 21.25: 3.55, 22.25: 3.91, 23.25: 4.24, 23.75: 4.41, 24.25: 4.56},
}
# cumulative HSC counts per deg^2 with their quoted (Poisson) errors
HSC_CUMULATIVE = {22.5: (19115, 319), 24.0: (67130, 778), 25.0: (149668, 1273)}
# median z of i-limited samples
MEDIAN_Z = {
    "science_book": {22.5: 0.52, 24.0: 0.69, 25.3: 0.83},   # 2.67 z0, z0 = 0.0417 i - 0.744
    "deep2_coil04": {(18.0, 22.0): 0.55, (18.0, 24.0): 0.76},
    "cosmos_ilbert09": {(22.0, 22.5): 0.66, (24.5, 25.0): 1.06},
}
# COSMOS F814W mean half-light radius, arcsec, by (z, F814W magnitude) (Mandelbaum et al. 2014, descqa)
SIZES = {0.25: {21.532: 0.580, 22.536: 0.391, 23.509: 0.272, 24.476: 0.193},
         0.75: {21.551: 0.510, 22.523: 0.348, 23.506: 0.257, 24.458: 0.188},
         1.25: {21.595: 0.789, 22.549: 0.470, 23.528: 0.328, 24.473: 0.207},
         1.75: {21.655: 1.579, 22.541: 0.610, 23.565: 0.408, 24.520: 0.216}}

# van der Wel et al. (2014) Table 5, all galaxies, median log R_eff [kpc] at log M* = 10.25 (+-0.25 dex 16-84 %)
VDW14 = {0.25: 0.54, 0.75: 0.52, 1.25: 0.52, 1.75: 0.48, 2.25: 0.41}


def composite_hlr(hlr_disk, bulge_frac, bulge_ratio):
    """Half-light radius of an exponential disk (``hlr_disk``) plus a de Vaucouleurs bulge of
    ``bulge_ratio * hlr_disk`` holding ``bulge_frac`` of the light (circular profiles; bisection)."""
    from scipy.special import gammainc

    def enclosed(r):  # fraction of the light within r
        disk = gammainc(2, 1.6783 * (r / hlr_disk))
        bulge = gammainc(8, 7.6692 * (r / (bulge_ratio * hlr_disk)) ** 0.25)
        return (1 - bulge_frac) * disk + bulge_frac * bulge

    lo, hi = np.full_like(hlr_disk, 1e-4), 3 * hlr_disk
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        below = enclosed(mid) < 0.5
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def measure(survey, area, seed):
    from deepdip.simulate import population, rendering

    ctx = population.prepare(survey)
    t0 = time.perf_counter()
    pop = population.draw_area(survey, area, np.random.default_rng(seed), ctx)
    i = pop["mag_i"]
    z = pop["z"]
    out = {"survey": survey.name, "area_deg2": area, "seed": seed, "n_drawn": int(len(z)),
           "m_lim_B": survey["population"]["m_lim_B"], "seconds": round(time.perf_counter() - t0, 1)}
    counts = {}
    for centre in np.arange(17.75, 25.3, 0.5):
        k = int(((i >= centre - 0.25) & (i < centre + 0.25)).sum())
        counts[f"{centre:.2f}"] = {"n": k, "log10_per_deg2": round(float(np.log10(max(k, 1) / area)), 3),
                                   "poisson_dex": round(float(0.434 / np.sqrt(max(k, 1))), 3)}
    out["counts"] = counts
    out["cumulative_per_deg2"] = {f"{m}": {"mock": round(float((i < m).sum() / area)),
                                           "mock_poisson": round(float(np.sqrt((i < m).sum()) / area)),
                                           "hsc": HSC_CUMULATIVE.get(m)} for m in (22.5, 24.0, 25.0)}
    medians = {}
    for lo, hi in [(17.5, 22.5), (18.0, 22.0), (18.0, 24.0), (22.0, 22.5), (22.5, 24.0), (24.5, 25.0),
                   (18, 19), (19, 20), (20, 21), (21, 22), (22, 23), (23, 24), (0, 22.5), (0, 24.0), (0, 25.3)]:
        sel = (i >= lo) & (i < hi)
        if sel.sum() >= 20:
            medians[f"{lo}-{hi}"] = {"n": int(sel.sum()), "median_z": round(float(np.median(z[sel])), 3),
                                     "mean_z": round(float(z[sel].mean()), 3)}
    out["median_z"] = medians
    hlr = composite_hlr(pop["hlr"], pop["bulge_frac"], rendering.BULGE_SIZE_RATIO)
    sizes = {}
    for zc, rows in SIZES.items():
        for mc, real in rows.items():
            sel = (np.abs(z - zc) < 0.25) & (np.abs(i - mc) < 0.5)
            if sel.sum() >= 20:
                sizes[f"z{zc}_i{mc:.1f}"] = {"n": int(sel.sum()), "mock_mean_hlr": round(float(hlr[sel].mean()), 3),
                                             "mock_median_hlr": round(float(np.median(hlr[sel])), 3),
                                             "cosmos_mean_hlr": real}
    out["sizes_arcsec"] = sizes
    # validation: median log R_eff [kpc] of log M* = 10.0-10.5 galaxies vs van der Wel et al. (2014)
    kpc = hlr * np.interp(z, *ctx["kpc_per_arcsec"])
    logm = np.log10(np.maximum(pop["stellar_mass"], 1.0))
    vdw = {}
    for zc, real in VDW14.items():
        sel = (np.abs(z - zc) < 0.25) & (np.abs(logm - 10.25) < 0.25) & (i < survey["mag_limit"])
        if sel.sum() >= 20:
            vdw[f"z{zc}"] = {"n": int(sel.sum()), "mock_median_log_kpc": round(float(np.median(np.log10(kpc[sel]))), 3),
                             "vdw14": real}
    out["size_mass_log_kpc"] = vdw
    out["size_beta_fit"] = fit_size_beta(z, i, hlr, survey)
    return out


def fit_size_beta(z, i, hlr, survey):
    """The size-evolution exponent that brings the mock's mean sizes onto COSMOS's at i = 22.5-24.5,
    relative to the preset's own (least squares in log; a calibration, COSMOS bins only)."""
    from deepdip.simulate.population import SHEN03_Z

    betas = np.round(np.arange(-1.0, 2.001, 0.02), 2)
    cost = np.zeros(len(betas))
    for zc, rows in SIZES.items():
        for mc, real in rows.items():
            sel = (np.abs(z - zc) < 0.25) & (np.abs(i - mc) < 0.5)
            if mc < 22.0 or sel.sum() < 20:
                continue
            for k, b in enumerate(betas):
                mean = np.maximum(hlr[sel] * ((1 + z[sel]) / (1 + SHEN03_Z)) ** -b, 0.15).mean()
                cost[k] += np.log(mean / real) ** 2
    return {"extra_beta": float(betas[np.argmin(cost)]), "cost_at_0": round(float(cost[betas == 0][0]), 3),
            "cost_at_best": round(float(cost.min()), 3),
            "preset_beta": float(survey.get("morphology", {}).get("size_evolution_beta", 0.0))}


def report(res) -> str:
    lines = [f"### {res['survey']}: {res['area_deg2']} deg², seed {res['seed']}, m_lim_B {res['m_lim_B']} "
             f"({res['n_drawn']} galaxies drawn, {res['seconds']} s)", "",
             "| i (bin centre) | mock log N /0.5 mag/deg² (± Poisson) | HSC | COSMOS2020 |", "|---|---|---|---|"]
    for c, v in res["counts"].items():
        key = float(c)
        if key in COUNTS["hsc"] or key in COUNTS["cosmos2020"]:
            lines.append(f"| {c} | {v['log10_per_deg2']:.2f} ± {v['poisson_dex']:.2f} | "
                         f"{COUNTS['hsc'].get(key, '–')} | {COUNTS['cosmos2020'].get(key, '–')} |")
    lines += ["", "| N(< i) /deg² | mock | HSC |", "|---|---|---|"]
    for m, v in res["cumulative_per_deg2"].items():
        hsc = f"{v['hsc'][0]} ± {v['hsc'][1]}" if v["hsc"] else "–"
        lines.append(f"| i < {m} | {v['mock']} ± {v['mock_poisson']} | {hsc} |")
    lines += ["", "| sample | mock median z (mean) | published |", "|---|---|---|"]
    pub = {"0-22.5": "0.52 (Science Book)", "0-24.0": "0.69 (Science Book)", "0-25.3": "0.83 (Science Book)",
           "18.0-22.0": "0.55 (DEEP2, Coil+04)", "18.0-24.0": "0.76 (DEEP2)", "22.0-22.5": "0.66 (COSMOS, Ilbert+09)",
           "24.5-25.0": "1.06 (COSMOS)"}
    for k, v in res["median_z"].items():
        lines.append(f"| {k} | {v['median_z']:.3f} ({v['mean_z']:.3f}) | {pub.get(k, '–')} |")
    lines += ["", "| z, i | mock mean (median) composite hlr, arcsec | COSMOS F814W mean |", "|---|---|---|"]
    for k, v in res["sizes_arcsec"].items():
        lines.append(f"| {k} | {v['mock_mean_hlr']:.3f} ({v['mock_median_hlr']:.3f}) | {v['cosmos_mean_hlr']:.3f} |")
    lines += ["", "| z | mock median log R_eff [kpc], log M* 10.0-10.5 | van der Wel+14 (±0.25 dex) |", "|---|---|---|"]
    for k, v in res["size_mass_log_kpc"].items():
        lines.append(f"| {k[1:]} | {v['mock_median_log_kpc']:.2f} (n={v['n']}) | {v['vdw14']:.2f} |")
    fit = res["size_beta_fit"]
    lines += ["", f"size evolution: preset beta {fit['preset_beta']}, COSMOS fit adds {fit['extra_beta']} "
              f"(cost {fit['cost_at_0']} -> {fit['cost_at_best']})"]
    return "\n".join(lines)


def with_params(base, **population):
    """``base`` with some population settings replaced (a Survey is a frozen dataclass)."""
    import dataclasses

    params = json.loads(json.dumps(base.params))
    params["population"].update(population)
    return dataclasses.replace(base, params=params)


def scan_population(base, caps, alphas, area, seed, m_lim_B):
    """Calibration of two population parameters on deep fields: ``M_star_z_max``, the redshift
    beyond which M* stops brightening (SkyPy's linear M*(z) brightens by ~0.9 mag per unit z
    without end, which puts far too many luminous galaxies at z > 1.5 in a faint sample), and
    the faint-end slope of the blue luminosity function. The cost is the sum of squared relative
    differences to the two COSMOS medians of Ilbert et al. (2009) (22 < i < 22.5: 0.66;
    24.5 < i < 25: 1.06) and to HSC's count ratio N(< 24) / N(< 22.5) = 67,130 / 19,115. The count
    amplitude is set afterwards (it leaves all three unchanged)."""
    from deepdip.simulate import population

    target_ratio = HSC_CUMULATIVE[24.0][0] / HSC_CUMULATIVE[22.5][0]
    rows = []
    for cap in caps:
        for alpha in alphas:
            survey = with_params(base, M_star_z_max=cap, m_lim_B=m_lim_B,
                                 blue=dict(base["population"]["blue"], alpha=alpha))
            pop = population.draw_area(survey, area, np.random.default_rng(seed), population.prepare(survey))
            z, i = pop["z"], pop["mag_i"]
            med = {k: float(np.median(z[(i >= lo) & (i < hi)])) for k, (lo, hi) in
                   {"22.0-22.5": (22.0, 22.5), "24.5-25.0": (24.5, 25.0)}.items()}
            ratio = float((i < 24.0).sum() / (i < 22.5).sum())
            cosmos = MEDIAN_Z["cosmos_ilbert09"]
            cost = ((ratio / target_ratio - 1) ** 2
                    + sum((med[k] / cosmos[tuple(map(float, k.split("-")))] - 1) ** 2 for k in med))
            rows.append({"M_star_z_max": cap, "alpha_blue": alpha, "median_z": {k: round(x, 3) for k, x in med.items()},
                         "count_ratio_24_22.5": round(ratio, 3), "hsc_ratio": round(target_ratio, 3),
                         "N_lt_22.5_per_deg2": round(float((i < 22.5).sum() / area)), "cost": round(cost, 5),
                         "f_z_gt_1.5_at_i_lt_22.5": round(float((z[i < 22.5] > 1.5).mean()), 4)})
            print(rows[-1], flush=True)
    best = min(rows, key=lambda r: r["cost"])
    print("best:", best)
    return rows


DC2 = ROOT.parent / "shared" / "data" / "real" / "dc2_rail"
DC2_BANDS = "ugrizy"
MAG_CEILING = 28.0  # magnitudes fainter than this (and DC2's 99 non-detections) are set to it


def load_dc2(name: str) -> dict:
    """DC2 magnitudes [n, 6], errors and true redshift of one RAIL test file (a simulation, not real data)."""
    import h5py

    with h5py.File(DC2 / f"test_dc2_{name}_9816.hdf5", "r") as f:
        g = f["photometry"]
        mag = np.column_stack([g[f"mag_{b}_lsst"][:] for b in DC2_BANDS]).astype(np.float64)
        err = np.column_stack([g[f"mag_err_{b}_lsst"][:] for b in DC2_BANDS]).astype(np.float64)
        z = g["redshift"][:].astype(np.float64)
    return {"mag": mag, "err": err, "z": z}


def dc2_section(survey, area, seed, stamps: int = 0) -> dict:
    """The lsst preset against LSST DESC DC2 (RAIL's test photometry, i <= 25.3; a peer simulation).

    The mock's true magnitudes get DC2's own errors (the median DC2 error at each magnitude, per
    band, from the *training* file), then both samples are cut at noisy i <= 25.3 and compared
    with the *validation* file: C2ST on (u-g, g-r, r-i, i-z, z-y, i, z) raw, and with DC2
    resampled to the mock's (z, i) distribution (0.1 x 0.5 mag cells), which leaves the colours
    at fixed redshift and magnitude. ``stamps`` > 0 also simulates that many lsst galaxies and sets
    the errors measured on their stamps beside DC2's.
    """
    from deepdip.simulate import population

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from realism.catalogue import c2st

    rng = np.random.default_rng(seed)
    train, val = load_dc2("training"), load_dc2("validation")
    edges = np.arange(14.0, 30.01, 0.25)
    err_of = []
    for b in range(6):
        ok = train["mag"][:, b] < 90
        idx = np.digitize(train["mag"][ok, b], edges)
        med = np.array([np.median(train["err"][ok, b][idx == k]) if (idx == k).sum() >= 5 else np.nan
                        for k in range(1, len(edges))])
        centres = 0.5 * (edges[1:] + edges[:-1])
        good = np.isfinite(med)
        err_of.append((centres[good], med[good]))
    pop = population.draw_area(survey, area, rng, population.prepare(survey))
    true = np.column_stack([pop[f"mag_{b}"] for b in DC2_BANDS])
    keep = true[:, 3] < 26.5  # only galaxies that can scatter to i <= 25.3
    true, z_mock = true[keep], pop["z"][keep]
    flux = 10 ** (-0.4 * (true - 22.5))
    sigma_mag = np.column_stack([np.interp(true[:, b], *err_of[b]) for b in range(6)])
    noisy = flux + rng.standard_normal(flux.shape) * flux * sigma_mag / 1.0857
    mock = 22.5 - 2.5 * np.log10(np.clip(noisy, 1e-30, None))
    mock = np.where(noisy > 0, mock, 99.0)
    sel = mock[:, 3] <= 25.3
    mock, z_mock = mock[sel], z_mock[sel]

    def feats(mag, z):
        m = np.where(mag > 90, MAG_CEILING, np.minimum(mag, MAG_CEILING))
        return np.column_stack([m[:, :-1] - m[:, 1:], m[:, 3], z])

    fm, fr = feats(mock, z_mock), feats(val["mag"], val["z"])
    out = {"n_mock": int(len(fm)), "n_dc2": int(len(fr)), "auc_raw": round(c2st(fm, fr, seed), 3)}
    # DC2 resampled to the mock's (z, i)
    zb, ib = np.arange(0, 4.01, 0.1), np.arange(14, 25.31, 0.5)
    hm, _, _ = np.histogram2d(fm[:, 6], fm[:, 5], [zb, ib])
    hr, _, _ = np.histogram2d(fr[:, 6], fr[:, 5], [zb, ib])
    cz = np.clip(np.digitize(fr[:, 6], zb) - 1, 0, len(zb) - 2)
    ci = np.clip(np.digitize(fr[:, 5], ib) - 1, 0, len(ib) - 2)
    w = np.where(hr[cz, ci] > 0, hm[cz, ci] / np.maximum(hr[cz, ci], 1), 0.0)
    pick = rng.choice(len(fr), size=len(fr), p=w / w.sum())
    czm = np.clip(np.digitize(fm[:, 6], zb) - 1, 0, len(zb) - 2)
    cim = np.clip(np.digitize(fm[:, 5], ib) - 1, 0, len(ib) - 2)
    covered = hr[czm, cim] > 0
    out["auc_matched_z_i"] = round(c2st(fm[covered], fr[pick], seed), 3)
    out["mock_in_cells_without_dc2"] = round(float(1 - covered.mean()), 4)
    names = ["u-g", "g-r", "r-i", "i-z", "z-y"]
    out["per_colour_matched"] = {n: round(c2st(fm[covered][:, [k, 5, 6]], fr[pick][:, [k, 5, 6]], seed), 3)
                                 for k, n in enumerate(names)}
    q = [5, 25, 50, 75, 95]
    out["quantiles"] = {"z": {"mock": np.percentile(fm[:, 6], q).round(3).tolist(),
                              "dc2": np.percentile(fr[:, 6], q).round(3).tolist()},
                        "i": {"mock": np.percentile(fm[:, 5], q).round(2).tolist(),
                              "dc2": np.percentile(fr[:, 5], q).round(2).tolist()}}
    medians = {}
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0)):
        a, b = (fm[:, 6] >= lo) & (fm[:, 6] < hi), (fr[:, 6] >= lo) & (fr[:, 6] < hi)
        medians[f"{lo}-{hi}"] = {n: [round(float(np.median(fm[a, k])), 3), round(float(np.median(fr[b, k])), 3)]
                                 for k, n in enumerate(names)} | {"n": [int(a.sum()), int(b.sum())]}
    out["colour_medians_mock_dc2"] = medians
    if stamps:
        out["errors_on_stamps"] = stamp_errors(survey, stamps, seed, val)
    return out


def stamp_errors(survey, n, seed, dc2) -> dict:
    """Median magnitude error vs magnitude per band: measured on rendered lsst stamps vs DC2's."""
    import tempfile

    from deepdip.simulate import simulate_store
    from deepdip.store import CutoutStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lsst.h5"
        simulate_store(survey.name, n, seed=seed, out=path, workers=2, progress=False)
        with CutoutStore(path) as st:
            flux = np.column_stack([st.column(f"flux_{b}") for b in DC2_BANDS]).astype(np.float64)
            err = np.column_stack([st.column(f"flux_err_{b}") for b in DC2_BANDS]).astype(np.float64)
    out = {}
    for b, band in enumerate(DC2_BANDS):
        for lo in (22.0, 23.0, 24.0, 25.0, 26.0):
            mag = 22.5 - 2.5 * np.log10(np.clip(flux[:, b], 1e-30, None))
            sel = (mag >= lo) & (mag < lo + 1) & (flux[:, b] > 0)
            ok = (dc2["mag"][:, b] >= lo) & (dc2["mag"][:, b] < lo + 1)
            if sel.sum() >= 10 and ok.sum() >= 10:
                out[f"{band} {lo:g}-{lo + 1:g}"] = [round(float(np.median(1.0857 * err[sel, b] / flux[sel, b])), 4),
                                                 round(float(np.median(dc2["err"][ok, b])), 4)]
    return out


def main(argv=None) -> int:
    from deepdip.surveys import load_survey

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--survey", default="cfhtls-wide")
    ap.add_argument("--area", type=float, default=0.3, help="deg^2 drawn (per B limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--m-lim-B", type=float, nargs="*", default=None,
                    help="population B limits to draw at (default: the preset's)")
    ap.add_argument("--out", type=Path, default=None, help="JSON of every draw")
    ap.add_argument("--scan-m-star-z-max", type=float, nargs="*", default=None,
                    help="calibrate M_star_z_max and the blue faint-end slope on a grid (with --scan-alpha-blue; "
                         "at the deepest --m-lim-B): see scan_population")
    ap.add_argument("--scan-alpha-blue", type=float, nargs="*", default=None)
    ap.add_argument("--dc2", action="store_true", help="compare the preset (lsst) with LSST DESC DC2 colours")
    ap.add_argument("--stamps", type=int, default=0, help="with --dc2: also measure errors on this many stamps")
    args = ap.parse_args(argv)
    base = load_survey(args.survey)
    if args.dc2:
        res = dc2_section(base, args.area, args.seed, args.stamps)
        print(json.dumps(res, indent=1))
        if args.out:
            args.out.write_text(json.dumps(res, indent=1) + "\n")
        return 0
    if args.scan_m_star_z_max:
        alphas = args.scan_alpha_blue or [base["population"]["blue"]["alpha"]]
        rows = scan_population(base, args.scan_m_star_z_max, alphas, args.area, args.seed, max(args.m_lim_B or [29.0]))
        if args.out:
            args.out.write_text(json.dumps(rows, indent=1) + "\n")
        return 0
    results = []
    for mlim in args.m_lim_B or [base["population"]["m_lim_B"]]:
        survey = with_params(base, m_lim_B=float(mlim))
        res = measure(survey, args.area, args.seed)
        results.append(res)
        print(report(res), "\n", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
