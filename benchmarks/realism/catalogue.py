"""Catalogue-level realism: mock photometry against real catalogues (sections ``sdss`` and ``deep``).

SDSS preset against the validation half of ``../shared/data/real/sdss_main_gst10k`` (the other
half calibrated the population; ``deepdip.simulate.calibrate.split_halves``), on photometry
*measured* on the rendered cutouts and extinction-corrected, as the real model magnitudes are:

- classifier two-sample test (C2ST): gradient-boosted trees, 5-fold ROC AUC, mock vs real on
  u-g, g-r, r-i, i-z, r, z (0.5 = indistinguishable); also per feature, and on the mock's true
  magnitudes (the population alone, before rendering and measurement);
- how hard the mock is: random forest (200 trees) on colours + r, sigma_MAD on mock and on real,
  and trained on the mock, tested on real;
- n(z) and r quantiles, colour medians and scatter vs z, the flux-error relation.

Deep preset (cfhtls-wide) against ``hsc_pdr2_specz`` at i <= 22.5: n(z), i, g-z.

Run through ``python benchmarks/realism`` (``__main__.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"
BANDS = "ugriz"
FEATURES = ["u-g", "g-r", "r-i", "i-z", "r", "z"]
ZBINS = [0.0, 0.05, 0.08, 0.11, 0.15, 0.2, 0.3]
DEEP_ZBINS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]


def features(z, flux):
    """[n, 6] features from redshift and ugriz fluxes (nanomaggies); rows with a non-positive flux
    are dropped (mask returned)."""
    ok = np.all(flux > 0, axis=1) & np.isfinite(z)
    mag = 22.5 - 2.5 * np.log10(np.where(flux > 0, flux, 1.0))
    x = np.column_stack([mag[:, :-1] - mag[:, 1:], mag[:, 2], z])
    return x[ok], ok


def c2st(a, b, seed=0):
    """5-fold ROC AUC of a gradient-boosted classifier telling ``a`` from ``b`` (equal sizes)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    m = min(len(a), len(b))
    x = np.vstack([a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]])
    y = np.r_[np.zeros(m), np.ones(m)]
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    clf = HistGradientBoostingClassifier(random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv, scoring="roc_auc").mean())


def sigma_mad(zp, zs):
    dz = (zp - zs) / (1 + zs)
    return float(1.4826 * np.median(np.abs(dz - np.median(dz))))


def rf_scores(mock, real, seed=0):
    """sigma_MAD of a random forest on colours + r: mock->mock, real->real, mock->real."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import train_test_split

    def fit(x):
        return RandomForestRegressor(200, n_jobs=2, random_state=seed).fit(x[:, :5], x[:, 5])

    m = min(len(mock), len(real))
    mock = mock[np.random.default_rng(seed).choice(len(mock), m, replace=False)]
    m_tr, m_te = train_test_split(mock, test_size=0.2, random_state=seed)
    r_tr, r_te = train_test_split(real, test_size=0.2, random_state=seed)
    f_mock, f_real = fit(m_tr), fit(r_tr)
    return {"mock": sigma_mad(f_mock.predict(m_te[:, :5]), m_te[:, 5]),
            "real": sigma_mad(f_real.predict(r_te[:, :5]), r_te[:, 5]),
            "mock_to_real": sigma_mad(f_mock.predict(r_te[:, :5]), r_te[:, 5])}


def colour_vs_z(x):
    """Median and NMAD of each colour in the redshift bins ZBINS."""
    out = []
    for lo, hi in zip(ZBINS[:-1], ZBINS[1:]):
        sel = (x[:, 5] >= lo) & (x[:, 5] < hi)
        cols = x[sel, :4]
        med = np.median(cols, axis=0)
        out.append({"z": [lo, hi], "n": int(sel.sum()), "median": med.round(3).tolist(),
                    "nmad": (1.4826 * np.median(np.abs(cols - med), axis=0)).round(3).tolist()})
    return out


def flux_error_relation(flux, err, edges):
    """Median relative error per band in bins of flux (the real sample's flux quantiles)."""
    rows = []
    for b in range(5):
        idx = np.digitize(flux[:, b], edges[b])
        rows.append([float(np.median(err[idx == k, b] / flux[idx == k, b])) if np.any(idx == k) else float("nan")
                     for k in range(1, len(edges[b]))])
    return rows


def sdss_section(args):
    from deepdip.simulate import simulate_store
    from deepdip.simulate.calibrate import load_sdss_reference, split_halves
    from deepdip.store import CutoutStore

    ref = load_sdss_reference(REAL / "sdss_main_gst10k" / "gst_tests_small.fits")
    _, val = split_halves(len(ref["z"]))
    x_real, ok_real = features(ref["z"][val], ref["flux"][val])
    store_path = Path(args.store)
    if not (args.reuse and store_path.exists()):
        info = simulate_store("sdss", args.n, seed=2024, out=store_path, workers=args.workers)
        print(f"simulated {args.n} in {info['seconds']:.0f} s", file=sys.stderr)
    store = CutoutStore(store_path)
    cat = store.catalog()
    coeffs = np.asarray(json.loads(store.attrs["provenance"])["extinction_coeffs"])
    dered = 10 ** (0.4 * np.outer(cat["ebv"], coeffs))
    flux = np.column_stack([cat[f"flux_{b}"] for b in BANDS]) * dered
    ferr = np.column_stack([cat[f"flux_err_{b}"] for b in BANDS]) * dered
    x_mock, ok_mock = features(cat["z_spec"], flux)
    x_true, _ = features(cat["z_spec"], 10 ** (-0.4 * (np.column_stack([cat[f"mag_{b}"] for b in BANDS]) - 22.5)))

    res = {"n_mock": int(len(cat["z_spec"])), "n_mock_used": int(ok_mock.sum()), "n_real": int(ok_real.sum())}
    res["c2st_measured"] = c2st(x_mock, x_real)
    res["c2st_true_mags"] = c2st(x_true, x_real)
    res["c2st_single"] = {f: c2st(x_mock[:, [j]], x_real[:, [j]]) for j, f in enumerate(FEATURES)}
    res["c2st_without"] = {f: c2st(np.delete(x_mock, j, 1), np.delete(x_real, j, 1)) for j, f in enumerate(FEATURES)}
    res["rf_sigma_mad"] = rf_scores(x_mock, x_real)
    splits = [res["rf_sigma_mad"]] + [rf_scores(x_mock, x_real, seed=s) for s in range(1, 5)]
    res["rf_ratio_splits"] = [round(r["mock"] / r["real"], 4) for r in splits]
    q = [5, 25, 50, 75, 95]
    res["z_quantiles"] = {"mock": np.percentile(x_mock[:, 5], q).round(4).tolist(),
                          "real": np.percentile(x_real[:, 5], q).round(4).tolist()}
    res["r_quantiles"] = {"mock": np.percentile(x_mock[:, 4], q).round(3).tolist(),
                          "real": np.percentile(x_real[:, 4], q).round(3).tolist()}
    res["colours_vs_z"] = {"mock": colour_vs_z(x_mock), "real": colour_vs_z(x_real)}
    rf, re = ref["flux"][val][ok_real], ref["flux_err"][val][ok_real]
    edges = [np.percentile(rf[:, b], [0, 20, 40, 60, 80, 100]) for b in range(5)]
    res["flux_error"] = {"edges": [e.round(2).tolist() for e in edges],
                         "mock": flux_error_relation(flux[ok_mock], ferr[ok_mock], edges),
                         "real": flux_error_relation(rf, re, edges)}
    res["flux_error"]["real_petrosian"] = petrosian_errors(val, ok_real, edges)
    true_flux = 10 ** (-0.4 * (np.column_stack([cat[f"mag_{b}"] for b in BANDS]) - 22.5))
    res["measured_over_true_r"] = float(np.median(flux[:, 2] / true_flux[:, 2]))
    res["photometry"] = json.loads(store.attrs["provenance"]).get("photometry", "")
    if "flux_kron_r" in cat:  # model-fit catalogue: the Kron apertures measured on the same pixels, for comparison
        kflux = np.column_stack([cat[f"flux_kron_{b}"] for b in BANDS]) * dered
        kerr = np.column_stack([cat[f"flux_kron_err_{b}"] for b in BANDS]) * dered
        x_kron, ok_kron = features(cat["z_spec"], kflux)
        res["c2st_kron"] = c2st(x_kron, x_real)
        res["rf_sigma_mad_kron"] = rf_scores(x_kron, x_real)
        res["flux_error"]["mock_kron"] = flux_error_relation(kflux[ok_kron], kerr[ok_kron], edges)
        res["kron_over_true_r"] = float(np.median(kflux[:, 2] / true_flux[:, 2]))
    # measured minus true colours of the mock (model fits weigh the centre: red bulges make them redder)
    with np.errstate(divide="ignore", invalid="ignore"):
        meas = -2.5 * np.log10(flux / true_flux)
    early = cat["is_early"].astype(bool)
    res["measured_minus_true_colour"] = {
        f"{a}-{b}": {name: float(np.nanmedian(meas[sel, j] - meas[sel, j + 1]))
                     for name, sel in (("all", np.ones_like(early)), ("early", early), ("late", ~early))}
        for j, (a, b) in enumerate(zip(BANDS[:-1], BANDS[1:]))}
    # what a model-fit photometry would give (emulated): the true fluxes plus Gaussian noise at the optimal
    # flux error of each galaxy's own pixels (pixels.store_optimal_errors replays the store's random numbers)
    import pixels

    err_opt = pixels.store_optimal_errors(store.attrs.get("survey", "sdss"), 2024, len(cat["z_spec"]))
    true_obs = 10 ** (-0.4 * (np.column_stack([cat[f"mag_{b}"] for b in BANDS]) - 22.5)) / dered
    emulated = (true_obs + np.random.default_rng(1).normal(0.0, err_opt)) * dered
    x_emul, _ = features(cat["z_spec"], emulated)
    res["c2st_optimal_emulated"] = c2st(x_emul, x_real)
    res["rf_sigma_mad_optimal_emulated"] = rf_scores(x_emul, x_real)
    res["flux_error"]["mock_optimal"] = flux_error_relation(emulated, err_opt * dered, edges)
    from deepdip.simulate.calibrate import POPULATION_FILE

    res["population_measurement"] = json.loads(POPULATION_FILE.read_text()).get("measurement")
    res["k_selection"] = k_selection(ref, val)
    plot_stamps(store_path, ROOT / "docs" / "realism_stamps.png")
    _plot_sdss(x_mock, x_real, flux[ok_mock], ferr[ok_mock], rf, re, ROOT / "docs" / "realism_sdss.png")
    return res


def petrosian_errors(rows, ok, edges):
    """Median relative PETROFLUX error of the real galaxies in the model-flux quintiles ``edges``: the
    real catalogue's own aperture photometry (relative errors do not depend on the extinction)."""
    from astropy.table import Table

    t = Table.read(REAL / "sdss_main_gst10k" / "gst_tests_small.fits")
    model = np.asarray(t["MODELFLUX"], np.float64)[rows][ok]
    ext = 10 ** (0.4 * np.asarray(t["EXTINCTION"], np.float64)[rows][ok])
    petro, ivar = (np.asarray(t[c], np.float64)[rows][ok] for c in ("PETROFLUX", "PETROFLUX_IVAR"))
    good = (petro > 0) & (ivar > 0)
    rel = np.where(good, 1 / np.sqrt(np.where(good, ivar, 1.0)) / np.where(good, petro, 1.0), np.nan)
    out = []
    for b in range(5):
        idx = np.digitize(model[:, b] * ext[:, b], edges[b])
        out.append([float(np.nanmedian(rel[idx == k, b])) for k in range(1, len(edges[b]))])
    return out


def k_selection(ref, rows, n=5000):
    """2MASS Ks (Vega) of mock galaxies, predicted from their template SEDs, against the real K.

    Checks that the population inherits the 2MASS selection of the real sample (K_ext <~ 14.3):
    the same templates also predict each real galaxy's K from its ugriz, which tells how far the
    optical-to-K extrapolation can be trusted. Ks(AB) - Ks(Vega) = 1.85.
    """
    from deepdip.simulate import population
    from deepdip.simulate.calibrate import SDSS_FILTERS
    from deepdip.simulate.templates import template_table
    from deepdip.surveys import Survey, load_survey

    base = load_survey("sdss")
    filters = base.filters + ("twomass-Ks",)
    survey = Survey(base.name, base.bands + ("K",), filters, base.pixel_scale, base.stamp_size,
                    base.zmin, base.zmax, base.nbins, base.params)
    pop = population.sample_population(survey, n, np.random.default_rng(7), population.prepare(survey))
    k_mock = pop["mag_K"] - 1.85
    table = template_table(tuple(SDSS_FILTERS) + ("twomass-Ks",), 0.7)
    z, flux = ref["z"][rows], ref["flux"][rows]
    good = np.all(flux > 0, axis=1) & np.isfinite(ref["k_vega"][rows])
    sdss_only = template_table(tuple(SDSS_FILTERS), 0.7)
    coeffs = population.fit_coefficients(flux[good] * 1e-9, z[good], sdss_only)
    k_pred = 22.5 - 2.5 * np.log10(table.fluxes(coeffs, z[good])[:, -1] * 1e9) - 1.85
    k_real = ref["k_vega"][rows][good]
    q = [5, 50, 95, 99]
    return {"mock_quantiles": np.percentile(k_mock, q).round(2).tolist(),
            "real_quantiles": np.percentile(k_real, q).round(2).tolist(),
            "mock_frac_below_14.3": float(np.mean(k_mock < 14.3)),
            "real_frac_below_14.3": float(np.mean(k_real < 14.3)),
            "pred_minus_real_median": float(np.median(k_pred - k_real)),
            "pred_minus_real_nmad": float(1.4826 * np.median(np.abs(k_pred - k_real - np.median(k_pred - k_real))))}


def deep_section(args):
    from deepdip.simulate import simulate_store
    from deepdip.simulate.calibrate import load_hsc_reference, split_halves
    from deepdip.store import CutoutStore

    hsc = load_hsc_reference(REAL / "hsc_pdr2_specz" / "hsc_ratios_and_specz.hdf5")
    _, val = split_halves(len(hsc["z"]))  # the half not used to fit the colour mixture
    path = Path(args.deep_store)
    if not (args.reuse and path.exists()):
        simulate_store("cfhtls-wide", args.deep_n, seed=2024, out=path, workers=args.workers)
    cat = CutoutStore(path).catalog()
    coeffs = np.asarray(json.loads(CutoutStore(path).attrs["provenance"])["extinction_coeffs"])
    dered = 10 ** (0.4 * np.outer(cat["ebv"], coeffs))
    fi, fg, fz = (cat[f"flux_{b}"] * dered[:, j] for j, b in ((3, "i"), (1, "g"), (4, "z")))
    ok = (fi > 0) & (fg > 0) & (fz > 0)
    mock = {"z": cat["z_spec"][ok], "i": 22.5 - 2.5 * np.log10(fi[ok]), "g-z": -2.5 * np.log10(fg[ok] / fz[ok])}
    real = {k: v[val] for k, v in hsc.items()}
    q = [5, 25, 50, 75, 95]
    res = {k: {"mock": np.percentile(mock[k], q).round(3).tolist(), "real": np.percentile(real[k], q).round(3).tolist()}
           for k in ("z", "i", "g-z")}
    res["n_mock"], res["n_real"] = int(ok.sum()), int(len(val))
    # g-z at fixed redshift (and i <= 22.5 on both sides) is less sensitive to spectroscopic targeting
    res["gz_vs_z"] = []
    for lo, hi in zip(DEEP_ZBINS[:-1], DEEP_ZBINS[1:]):
        sm, sr = (mock["z"] >= lo) & (mock["z"] < hi), (real["z"] >= lo) & (real["z"] < hi)
        res["gz_vs_z"].append({"z": [lo, hi], "n": [int(sm.sum()), int(sr.sum())],
                               "median": [float(np.median(mock["g-z"][sm])) if sm.any() else float("nan"),
                                          float(np.median(real["g-z"][sr]))]})
    xm = np.column_stack([mock["z"], mock["i"], mock["g-z"]])
    xr = np.column_stack([real["z"], real["i"], real["g-z"]])
    res["c2st"] = c2st(xm, xr)
    # colours at fixed (z, i): resample HSC to the mock's (z, i) distribution, then compare
    zi_edges = [np.linspace(0, 2, 21), np.linspace(16, 22.5, 14)]
    h_mock = np.histogram2d(mock["z"], mock["i"], zi_edges)[0]
    h_real = np.histogram2d(real["z"], real["i"], zi_edges)[0]
    iz = np.clip(np.digitize(real["z"], zi_edges[0]) - 1, 0, 19)
    ii = np.clip(np.digitize(real["i"], zi_edges[1]) - 1, 0, 12)
    w = np.where(h_real[iz, ii] > 0, h_mock[iz, ii] / np.maximum(h_real[iz, ii], 1), 0.0)
    pick = np.random.default_rng(0).choice(len(w), size=20 * len(xm), p=w / w.sum())
    res["c2st_at_fixed_z_i"] = c2st(xm, xr[pick])
    res["hsc_unmatched_frac"] = float(h_mock[h_real == 0].sum() / h_mock.sum())
    _plot_deep(mock, real, ROOT / "docs" / "realism_deep.png")
    return res


def _plot_sdss(xm, xr, fm, em, fr, er, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(13, 7.5))
    kw = dict(histtype="step", density=True, lw=1.5)
    ax[0, 0].hist(xr[:, 5], bins=40, range=(0, 0.35), label="real SDSS", **kw)
    ax[0, 0].hist(xm[:, 5], bins=40, range=(0, 0.35), label="mock (measured)", **kw)
    ax[0, 0].set_xlabel("z")
    ax[0, 0].legend()
    ax[0, 1].hist(xr[:, 4], bins=40, range=(12.5, 18), **kw)
    ax[0, 1].hist(xm[:, 4], bins=40, range=(12.5, 18), **kw)
    ax[0, 1].set_xlabel("r (extinction-corrected)")
    for j, (name, lim) in enumerate([("u-g", (0.5, 2.6)), ("g-r", (0.2, 1.3))]):
        a = ax[0, 2] if j == 0 else ax[1, 0]
        a.scatter(xr[:, 5], xr[:, j], s=1, alpha=0.3, label="real")
        a.scatter(xm[:, 5], xm[:, j], s=1, alpha=0.3, label="mock")
        a.set_xlim(0, 0.3)
        a.set_ylim(*lim)
        a.set_xlabel("z")
        a.set_ylabel(name)
    ax[1, 1].scatter(xr[:, 1], xr[:, 2], s=1, alpha=0.3)
    ax[1, 1].scatter(xm[:, 1], xm[:, 2], s=1, alpha=0.3)
    ax[1, 1].set_xlim(0.2, 1.3)
    ax[1, 1].set_ylim(0.1, 0.7)
    ax[1, 1].set_xlabel("g-r")
    ax[1, 1].set_ylabel("r-i")
    for b in range(5):
        ax[1, 2].loglog(fr[:, b], er[:, b] / fr[:, b], ",", color=f"C{b}", alpha=0.3)
        ax[1, 2].loglog(fm[:, b], em[:, b] / fm[:, b], "x", ms=1.5, color=f"C{b}", alpha=0.3)
    ax[1, 2].set_xlabel("flux [nanomaggies] (dots real, crosses mock; colour = band ugriz)")
    ax[1, 2].set_ylabel("relative flux error")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def plot_stamps(store_path, path, n=12):
    """gri colour composites (asinh stretch) of the first ``n`` mock cutouts, with z and r."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepdip.store import CutoutStore

    store = CutoutStore(store_path)
    images = store.images(np.arange(n))
    cat = store.catalog(["z_spec", "mag_r", "n_neighbours"], rows=np.arange(n))
    fig, axes = plt.subplots(2, n // 2, figsize=(2 * n // 2, 4.3))
    for k, ax in enumerate(axes.ravel()):
        rgb = np.stack([images[k, 3], images[k, 2], images[k, 1]], axis=-1)  # i, r, g
        rgb = np.arcsinh(rgb / 0.05) / np.arcsinh(np.percentile(images[k, 2], 99.5) / 0.05)
        ax.imshow(np.clip(rgb, 0, 1), origin="lower")
        ax.set_title(f"z={cat['z_spec'][k]:.3f} r={cat['mag_r'][k]:.1f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _plot_deep(mock, real, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    kw = dict(histtype="step", density=True, lw=1.5)
    for a, k, rng in zip(ax, ("z", "i", "g-z"), ((0, 2), (16, 22.5), (-0.5, 4.5))):
        a.hist(real[k], bins=50, range=rng, label="HSC PDR2 spec-z, i <= 22.5", **kw)
        a.hist(mock[k], bins=50, range=rng, label="mock cfhtls-wide (measured)", **kw)
        a.set_xlabel(k)
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
