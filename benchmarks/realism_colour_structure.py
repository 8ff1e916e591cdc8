"""Colour structure of the sdss mock against real SDSS: Petrosian minus model colours (issue 11, item 1).

The mock's bulges, disks and star-forming knots have their own SEDs (``deepdip.simulate.structure``):
the bulge/disk colour contrast ``kappa`` (preset ``morphology.bulge_disk_contrast``) and the knots'
share of the disk light (``morphology.knot_fraction``) are calibrated here on the per-galaxy
Petrosian - model colours of real SDSS galaxies (``sdss_main_gst10k``: PETROFLUX, MODELFLUX),
measured on rendered, noisy mock stamps the way the SDSS pipeline defines them
(``deepdip.photometry.sdss``): model flux = the better (chi^2) of a PSF-convolved exponential and de
Vaucouleurs fit in r, amplitude refitted per band with the shape fixed; Petrosian flux = flux within
2 r_P, r_P where the r-band Petrosian ratio (annulus 0.8-1.25 r) falls to 0.2.

- Real: Delta(a-b) = (a-b)_Petrosian - (a-b)_model per galaxy (observed magnitudes: the Galactic
  extinction cancels), for u-g, g-r, r-i; "red" galaxies have model g - r > 0.70 + z, the others are
  "blue". Calibration and validation halves: ``deepdip.simulate.calibrate.split_halves`` (the halves
  the population was calibrated and validated on).
- Mock: the sdss preset with the (kappa, knot_fraction) of the grid, measured on stamps of
  ``--stamp`` pixels (128 by default: the 64-pixel stamps of the preset would clip the Petrosian
  aperture 2 r_P of a third of the galaxies; SDSS measures on whole frames) without neighbours
  (SDSS deblends them; a deblender's errors are left out). The model fit uses the central 64 x 64
  pixels, the Petrosian apertures the whole stamp. The same seed for every grid point: the r-band
  images do not depend on kappa (the bulge's r share is the drawn bulge fraction whatever the
  contrast), so the r-band fit and r_P are made once per knot fraction and the other bands are
  refitted with the shape fixed.
- Fit: the grid point minimising sum over (red, blue) x (u-g, g-r, r-i) of
  ((median_mock - median_real) / 0.01)^2 + ((NMAD_mock / NMAD_real - 1) / 0.25)^2 (the targets of
  issue 11: median within 0.01 mag, NMAD within 25 %), on the calibration half; then a new mock
  (another seed) at the chosen values, and the same with the colour structure off (kappa = 0),
  against the validation half.

Writes ``docs/realism_colour.json`` and its section of ``docs/realism.md`` (between the markers
below; the rest of the file is left as it is).

Usage: python benchmarks/realism_colour_structure.py [--n-calib 1600] [--n-valid 4000]
       [--kappa 0 0.5 1 2 4 10] [--knots 0 0.1 0.2 0.35 0.5] [--stamp 128] [--report-only]
Run it under ``flock /tmp/deepdip-cpu.lock`` on a shared machine (about an hour on one core).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "sdss_main_gst10k" / "gst_tests_small.fits"
COLOURS = (("u", "g"), ("g", "r"), ("r", "i"))
CLASSES = ("red", "blue")
FIT_SIZE = 64  # pixels of the stamp's centre the model fit uses
MEDIAN_TOL, NMAD_TOL = 0.01, 0.25  # the targets of issue 11
BEGIN, END = "<!-- colour-structure: begin -->", "<!-- colour-structure: end -->"


def nmad(x) -> float:
    x = np.asarray(x)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def statistics(model_flux, petro_flux, z) -> dict:
    """Median and NMAD of Delta(colour) = Petrosian - model, red and blue galaxies apart."""
    mm = 22.5 - 2.5 * np.log10(model_flux)
    pm = 22.5 - 2.5 * np.log10(petro_flux)
    red = (mm[:, 1] - mm[:, 2]) > 0.70 + z
    out: dict = {}
    for name, sel in (("red", red), ("blue", ~red)):
        out[name] = {"n": int(sel.sum())}
        for a, b in COLOURS:
            i, j = "ugriz".index(a), "ugriz".index(b)
            d = (pm[sel, i] - pm[sel, j]) - (mm[sel, i] - mm[sel, j])
            out[name][f"{a}-{b}"] = {"median": float(np.median(d)), "nmad": nmad(d)}
    return out


def loss(mock: dict, real: dict) -> float:
    total = 0.0
    for c in CLASSES:
        for a, b in COLOURS:
            m, r = mock[c][f"{a}-{b}"], real[c][f"{a}-{b}"]
            total += ((m["median"] - r["median"]) / MEDIAN_TOL) ** 2 + ((m["nmad"] / r["nmad"] - 1) / NMAD_TOL) ** 2
    return total


def real_statistics(path: Path) -> dict:
    from astropy.table import Table

    from deepdip.simulate.calibrate import split_halves

    t = Table.read(path)
    model, petro = (np.asarray(t[k], dtype=np.float64) for k in ("MODELFLUX", "PETROFLUX"))
    z = np.asarray(t["Z"], dtype=np.float64)
    ivar = np.asarray(t["PETROFLUX_IVAR"], dtype=np.float64)
    calib, valid = split_halves(len(z))
    ok = (model > 0).all(1) & (petro > 0).all(1)
    out = {}
    for name, rows in (("calibration", calib), ("validation", valid)):
        rows = rows[ok[rows]]
        out[name] = statistics(model[rows], petro[rows], z[rows])
        err = 1.0857 / np.sqrt(np.where(ivar[rows] > 0, ivar[rows], np.nan)) / petro[rows]
        out[name]["petro_mag_err_median"] = np.nanmedian(err, axis=0).tolist()
        out[name]["n_rows"] = int(len(rows))
    return out


def survey_for(kappa: float, knots: float, stamp: int, slope: tuple[float, float] = (0.0, 0.0)):
    """The sdss preset at one grid point: colour contrast, knot fraction, size-wavelength slope (mean,
    scatter; always present, so every grid point draws the same random numbers)."""
    from deepdip.surveys import Survey, load_survey

    base = load_survey("sdss")
    morph = dict(base["morphology"], bulge_disk_contrast=float(kappa), knot_fraction=float(knots),
                 size_wavelength_slope={"mean": float(slope[0]), "scatter": float(slope[1])})
    params = dict(base.params, morphology=morph, neighbours={"density_arcmin2": 0.0}, stamp_size=stamp)
    return Survey(base.name, base.bands, base.filters, base.pixel_scale, stamp, base.zmin, base.zmax, base.nbins,
                  params)


def render(survey, ctx, seed: int, block: int):
    """Block ``block`` of the mock, drawn exactly as ``deepdip.simulate.simulate_block`` draws it."""
    from deepdip.simulate import BLOCK_SIZE, population, rendering

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block)]))
    pop = population.sample_population(survey, BLOCK_SIZE, rng, ctx)
    images, truth = rendering.render_block(survey, pop, rng, ctx)
    return images, pop, truth


def measure(images, psf, pv, shape=None, r_petro=None) -> dict:
    from deepdip.photometry.sdss import model_fluxes, petrosian_fluxes

    size = images.shape[-1]
    lo = (size - FIT_SIZE) // 2
    model = model_fluxes(images[..., lo:lo + FIT_SIZE, lo:lo + FIT_SIZE], psf, 0.396, 2,
                         poisson_var_per_flux=pv, shape=shape)
    petro = petrosian_fluxes(images, 0.396, 2, np.column_stack([model["x"], model["y"]]),
                             poisson_var_per_flux=pv, r_petro=r_petro)
    return {"model": model, "petro": petro}


def grid_points(kappas, slopes) -> list[tuple[float, tuple[float, float]]]:
    """(kappa, slope) pairs of one knot fraction: the structure off first (kappa = 0, no slope: the
    reference, and the galaxies whose r-band fit the others reuse), then every non-zero kappa x slope."""
    return [(0.0, (0.0, 0.0))] + [(k, tuple(s)) for k in kappas if k != 0 for s in slopes]


def run_grid(points, knots, n, seed, stamp, log) -> list[dict]:
    """Mock statistics at every (kappa, slope) of ``points`` for every knot fraction, one seed (the first
    point's r-band fits are reused by the others: see :func:`grid_points`)."""
    from deepdip.simulate import BLOCK_SIZE, population, rendering

    blocks = range(max(1, n // BLOCK_SIZE))
    ctx = population.prepare(survey_for(0.0, 0.0, stamp))
    pv = survey_for(0.0, 0.0, stamp)["noise"]["poisson_var_per_nmgy"]
    psf_cache: dict = {}
    rows = []
    for fk in knots:
        fits: dict = {}  # block -> the r-band fit and r_P (the same for every kappa and slope)
        for kappa, slope in points:
            t0 = time.perf_counter()
            survey = survey_for(kappa, fk, stamp, slope)
            parts = []
            for blk in blocks:
                images, pop, truth = render(survey, ctx, seed, blk)
                if blk not in psf_cache:
                    psf_cache[blk] = np.stack([[rendering.psf_image(truth[f"psf_fwhm_{b}"][k], 0.396, FIT_SIZE,
                                                                    ctx["render"]) for b in survey.bands]
                                               for k in range(len(images))])
                if blk in fits:
                    m = measure(images, psf_cache[blk], pv, fits[blk]["model"], fits[blk]["petro"]["r_petro"])
                    assert np.array_equal(m["model"]["model_type"], fits[blk]["model"]["model_type"])
                else:
                    m = fits[blk] = measure(images, psf_cache[blk], pv)
                parts.append((m, pop["z"], m["petro"]["clipped"], m["petro"]["flux_err"] / m["petro"]["flux"]))
            model = np.concatenate([p[0]["model"]["flux"] for p in parts])
            petro = np.concatenate([p[0]["petro"]["flux"] for p in parts])
            z = np.concatenate([p[1] for p in parts])
            good = (model > 0).all(1) & (petro > 0).all(1)
            row = {"kappa": kappa, "knot_fraction": fk, "slope_mean": slope[0], "slope_scatter": slope[1],
                   "n": int(good.sum()),
                   "stats": statistics(model[good], petro[good], z[good]),
                   "clipped_fraction": float(np.concatenate([p[2] for p in parts]).mean()),
                   "petro_mag_err_median": (1.0857 * np.median(np.concatenate([p[3] for p in parts]), 0)).tolist(),
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            log(row)
    return rows


def component_colours(kappa: float, knots: float, n: int = 4000, seed: int = 2) -> dict:
    """Median observed colours bulge - whole disk (knots included) of the mock population, red and
    blue galaxies (true g - r > 0.70 + z) apart, and their median bulge fractions."""
    from deepdip.simulate import population

    survey = survey_for(kappa, knots, 64)
    pop = population.sample_population(survey, n, np.random.default_rng(seed), population.prepare(survey))
    share = np.column_stack([pop[f"bulge_share_{b}"] for b in survey.bands])
    red = (pop["mag_g"] - pop["mag_r"]) > 0.70 + pop["z"]
    out = {}
    for name, sel in (("red", red), ("blue", ~red)):
        out[name] = {"bulge_frac": float(np.median(pop["bulge_frac"][sel]))}
        for a, b in COLOURS:
            i, j = "ugriz".index(a), "ugriz".index(b)
            diff = (-2.5 * np.log10(share[sel, i] / share[sel, j])
                    + 2.5 * np.log10((1 - share[sel, i]) / (1 - share[sel, j])))
            out[name][f"{a}-{b}"] = float(np.median(diff))
    return out


def conclusion(res: dict) -> str:
    """Which targets the validation meets, and what the numbers say about the model."""
    val, rv = res["validation"]["mock"]["stats"], res["real"]["validation"]
    met, missed = [], []
    for c in CLASSES:
        for a, b in COLOURS:
            m, r = val[c][f"{a}-{b}"], rv[c][f"{a}-{b}"]
            dm, ratio = m["median"] - r["median"], m["nmad"] / r["nmad"]
            (met if abs(dm) <= MEDIAN_TOL else missed).append(f"{c} {a}-{b} median ({dm:+.3f})")
            (met if abs(ratio - 1) <= NMAD_TOL else missed).append(f"{c} {a}-{b} NMAD ({ratio:.2f}x)")
    comp, off = res["components"], res["validation"]["off"]["stats"]
    best = res["best"]
    err_ratio = [r / m for r, m in zip(rv["petro_mag_err_median"], res["validation"]["mock"]["petro_mag_err_median"])]

    def share(stats, c, key):  # fraction of the real median the mock reaches
        return stats[c][key]["median"] / rv[c][key]["median"]

    def nmad_range(stats):
        ratios = [stats[c][k]["nmad"] / rv[c][k]["nmad"] for c in CLASSES for k in ("g-r", "r-i")]
        return f"{min(ratios):.2f}-{max(ratios):.2f}x"

    ranked = sorted(res["grid"], key=lambda r: r["loss"])
    text = [f"**Targets met: {len(met)} of {len(met) + len(missed)}** ({'; '.join(met) or 'none'}). "
            f"**Missed:** {'; '.join(missed) or 'none'}.", "",
            "What the numbers say. Components of uniform colour (bulge, disk and knots with their own SEDs) move "
            "the Petrosian - model colours the way real galaxies do (bluer outskirts: negative Delta, larger in "
            "blue galaxies) and saturate beyond kappa ~ 4, when the bulge already holds each galaxy's reddest "
            f"templates: at kappa {best['kappa']:g} the bulge is {comp['red']['g-r']:.2f} mag redder than its disk "
            f"in g-r in red galaxies (median bulge fraction {comp['red']['bulge_frac']:.2f}), "
            f"{comp['blue']['g-r']:.2f} in blue ones ({comp['blue']['bulge_frac']:.2f})."]
    if "no_slope" in res["validation"]:
        ns = res["validation"]["no_slope"]["stats"]
        text += ["Alone, that reaches "
                 f"{share(ns, 'red', 'g-r'):.0%} (red) and {share(ns, 'blue', 'g-r'):.0%} (blue) of the real median "
                 f"Delta(g-r), with NMADs (g-r, r-i) {nmad_range(ns)} the real ones (validation, no slope): a bulge "
                 "0.6x the disk's size overlaps it too much for the two fluxes to see different mixes. Real galaxies "
                 "also have colour gradients inside each component (age and metallicity), which half-light radii "
                 "that shrink with wavelength give: with the chosen slope beta = "
                 f"{best['slope_mean']:g} +- {best['slope_scatter']:g} the mock reaches {share(val, 'red', 'g-r'):.0%} "
                 f"and {share(val, 'blue', 'g-r'):.0%} of the real Delta(g-r), {share(val, 'red', 'r-i'):.0%} and "
                 f"{share(val, 'blue', 'r-i'):.0%} of Delta(r-i), NMADs {nmad_range(val)}. The mean slope is "
                 "an independent check: GAMA measures half-light radii 13 % smaller from g to Ks at 10^10 M_sun "
                 "(beta ~ 0.09, Lange et al. 2015), early types more (~0.3, La Barbera et al. 2010); the scatter "
                 "between galaxies (not constrained by those papers) is what sets the NMADs here."]
    other = next((r for r in ranked if r.get("slope_mean", 0) != best.get("slope_mean", 0)), None)
    check = res.get("seed_check")
    spread = ("its seed-to-seed spread is not measured" if not check else
              f"with mock seed {check[0]['seed']} the best four points score "
              + ", ".join(f"{r['loss']:.0f}" for r in check) + " (chosen point first), against "
              + ", ".join(f"{r['loss_first_seed']:.0f}" for r in check) + ": the mock's sampling moves the loss by "
              f"{np.median([abs(r['loss'] - r['loss_first_seed']) for r in check]):.0f} (median), and the chosen "
              + ("point stays ahead" if min(check, key=lambda r: r["loss"]) is check[0] else "point is not ahead"))
    if other is not None and "no_slope" in res["validation"]:
        rc = res["real"]["calibration"]
        o = other["stats"]
        text += [f"The loss is flat along the slope: beta = {other['slope_mean']:g} +- {other['slope_scatter']:g} "
                 f"(knots {other['knot_fraction']:g}) scores {other['loss']:.0f} against the chosen "
                 f"{best['loss']:.0f} on the grid's seed ({spread}). It trades the "
                 f"medians: Delta(g-r) {o['red']['g-r']['median']:+.3f} / {o['blue']['g-r']['median']:+.3f} (red / "
                 f"blue; real {rc['red']['g-r']['median']:+.3f} / {rc['blue']['g-r']['median']:+.3f}) and Delta(r-i) "
                 f"{o['red']['r-i']['median']:+.3f} / {o['blue']['r-i']['median']:+.3f} (real "
                 f"{rc['red']['r-i']['median']:+.3f} / {rc['blue']['r-i']['median']:+.3f}), closer, against red "
                 f"Delta(u-g) {o['red']['u-g']['median']:+.3f} (real {rc['red']['u-g']['median']:+.3f}), further: "
                 "the steeper slope buys red u-g with g-r and r-i overshoots."]
    text += ["Best grid points: " + ", ".join(
        f"kappa {r['kappa']:g} / knots {r['knot_fraction']:g} / beta {r.get('slope_mean', 0):g} +- "
        f"{r.get('slope_scatter', 0):g}: {r['loss']:.0f}" for r in ranked[:4]) + ".",
        f"With the structure off the NMADs are {off['red']['g-r']['nmad']:.3f} (red g-r), the mock's pixel noise; the "
        f"real PETROFLUX errors (which include the Petrosian radius's) are {err_ratio[1]:.2f}x (g) and "
        f"{err_ratio[2]:.2f}x (r) the mock's aperture noise (deblending and sky errors are left out of the mock). "
        f"u-g: the median is {val['red']['u-g']['median']:+.3f} against {rv['red']['u-g']['median']:+.3f} in red "
        f"galaxies and {val['blue']['u-g']['median']:+.3f} against {rv['blue']['u-g']['median']:+.3f} in blue ones: "
        "one power law in wavelength for every band cannot give red galaxies both their small Delta(r-i) and "
        "their large Delta(u-g) (u-bright outskirts that the red galaxies' templates do not hold)."]
    return "\n".join(text)


def size_ratio_check(res: dict, ratios, n: int, seed: int, stamp: int, log) -> list[dict]:
    """The chosen (kappa, knot fraction) again with other bulge/disk size ratios (a diagnostic: the ratio is
    the renderer's constant, not calibrated here)."""
    from deepdip.simulate import rendering

    best = res["best"]
    point = (best["kappa"], (best.get("slope_mean", 0.0), best.get("slope_scatter", 0.0)))
    saved, out = rendering.BULGE_SIZE_RATIO, []
    try:
        for ratio in ratios:
            rendering.BULGE_SIZE_RATIO = float(ratio)
            row = run_grid([point], [best["knot_fraction"]], n, seed, stamp, log)[0]
            row["bulge_size_ratio"] = float(ratio)
            row["loss"] = loss(row["stats"], res["real"]["calibration"])
            out.append(row)
    finally:
        rendering.BULGE_SIZE_RATIO = saved
    return out


def _one_knot_fraction(job):
    points, fk, n, seed, stamp = job
    return run_grid(points, [fk], n, seed, stamp, log)


def run_jobs(jobs, workers: int) -> list[dict]:
    """The rows of :func:`_one_knot_fraction` jobs, in job order, on ``workers`` processes."""
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            return [row for rows in pool.map(_one_knot_fraction, jobs) for row in rows]
    return [row for job in jobs for row in _one_knot_fraction(job)]


def seed_check(res: dict, seed: int, n: int, stamp: int, workers: int, top: int = 4) -> list[dict]:
    """The ``top`` grid points of the calibration again with another mock seed (calibration half): how far
    the loss moves with the mock's own sampling, and whether the chosen point stays ahead."""
    ranked = sorted(res["grid"], key=lambda r: r["loss"])[:top]
    jobs = []
    for fk in sorted({r["knot_fraction"] for r in ranked}):
        points = [(r["kappa"], (r.get("slope_mean", 0.0), r.get("slope_scatter", 0.0)))
                  for r in ranked if r["knot_fraction"] == fk]
        jobs.append((points, fk, n, seed, stamp))
    rows = run_jobs(jobs, workers)
    for row in rows:
        row["loss"] = loss(row["stats"], res["real"]["calibration"])
        row["seed"] = seed
        row["loss_first_seed"] = next(r["loss"] for r in ranked if all(
            r.get(k, 0.0) == row[k] for k in ("kappa", "knot_fraction", "slope_mean", "slope_scatter")))
    return sorted(rows, key=lambda r: r["loss_first_seed"])


def _cell(m: dict) -> str:
    return f"{m['median']:+.3f} / {m['nmad']:.3f}"


def _verdict(m: dict, r: dict) -> str:
    dm, ratio = m["median"] - r["median"], m["nmad"] / r["nmad"]
    ok_m, ok_n = abs(dm) <= MEDIAN_TOL, abs(ratio - 1) <= NMAD_TOL
    return (f"{dm:+.3f} ({'pass' if ok_m else 'miss'}); {ratio:.2f}x ({'pass' if ok_n else 'miss'})")


def section(res: dict) -> str:
    """The markdown section of docs/realism.md."""
    best, val = res["best"], res["validation"]
    lines = [BEGIN, "## Colour structure: SDSS Petrosian - model colours (issue 11)", "",
             f"Produced by `{res['command']}` (numbers in `docs/realism_colour.json`).", "",
             "Bulges, disks and star-forming knots have their own SEDs, split from each galaxy's template "
             "coefficients so that its total fluxes are unchanged (`deepdip.simulate.structure`): the bulge takes "
             "the share f_t = exp(-u exp(-kappa (u-r)_t)) of template t (rest-frame u-r of the template; u solved "
             "per galaxy so the bulge carries the drawn bulge fraction of the r flux), the knots (point sources "
             "placed like the disk's light) the bluest part of the disk by the same rule with the opposite sign, "
             "`knot_fraction` of the disk's r flux. kappa = 0 is the colour structure switched off.", "",
             "Measured the same way on real and mock galaxies: Delta(a-b) = (a-b)_Petrosian - (a-b)_model, "
             "median / NMAD, red (model g-r > 0.70 + z) and blue galaxies apart; real: `sdss_main_gst10k` "
             "PETROFLUX and MODELFLUX; mock: `deepdip.photometry.sdss` on noisy rendered stamps (model: the better "
             "of an exponential and a de Vaucouleurs fit in r, PSF-convolved, amplitudes per band with the shape "
             "fixed; Petrosian: flux within 2 r_P, r_P set in r at Petrosian ratio 0.2, annulus 0.8-1.25 r). "
             f"Mock stamps of {res['stamp']} px (the preset's 64 px clip 2 r_P of a third of the galaxies; "
             f"{100 * val['mock']['clipped_fraction']:.1f} % still clipped), no neighbours (SDSS deblends them).",
             "", "### Calibration (grid on the calibration half)", "",
             f"Grid: kappa in {res['kappas']}, knot_fraction in {res['knots']}, size-wavelength slope beta: mean in "
             f"{res.get('slope_means', [0.0])}, scatter in {res.get('slope_scatters', [0.0])} (kappa = 0 only "
             f"without slope: the structure off), {res['n_calib']} mock galaxies "
             "per point (one seed), loss = sum over red/blue x (u-g, g-r, r-i) of ((median difference) / 0.01)^2 + "
             "((NMAD ratio - 1) / 0.25)^2.", "",
             "| kappa | knot_fraction | beta mean | beta scatter | loss | red g-r | blue g-r | red r-i | blue r-i "
             "| red u-g | blue u-g |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in res["grid"]:
        s = row["stats"]
        lines.append(f"| {row['kappa']:g} | {row['knot_fraction']:g} | {row.get('slope_mean', 0):g} | "
                     f"{row.get('slope_scatter', 0):g} | {row['loss']:.0f} | "
                     + " | ".join(_cell(s[c][k]) for k in ("g-r", "r-i", "u-g") for c in CLASSES) + " |")
    rc = res["real"]["calibration"]
    lines += ["| real (calibration half) | | | | | "
              + " | ".join(_cell(rc[c][k]) for k in ("g-r", "r-i", "u-g") for c in CLASSES) + " |", "",
              f"Chosen: **kappa = {best['kappa']:g}, knot_fraction = {best['knot_fraction']:g}, size-wavelength slope "
              f"beta = {best.get('slope_mean', 0):g} +- {best.get('slope_scatter', 0):g}** "
              f"(loss {best['loss']:.0f}; with the structure off, kappa = 0 and no slope at the same knot fraction: "
              f"{best['loss_off']:.0f}"
              + (f"; the chosen kappa without slope: {best['loss_no_slope']:.0f}" if best.get("loss_no_slope") else "")
              + ").", "",
              "### Validation (a new mock seed against the validation half)", "",
              f"{val['n']} mock galaxies at the chosen values, the same galaxies with the colour structure off "
              "(kappa = 0, no slope) and with the chosen kappa but no size-wavelength slope; median / NMAD; target: "
              "median within 0.01 mag, NMAD within 25 % of real.", "",
              "| class | colour | real | mock | mock - real (median); mock / real (NMAD) | structure off | no slope |",
              "|---|---|---|---|---|---|---|"]
    rv = res["real"]["validation"]
    for c in CLASSES:
        for a, b in COLOURS:
            key = f"{a}-{b}"
            mock, real, off = val["mock"]["stats"][c], rv[c], val["off"]["stats"][c]
            lines.append(f"| {c} ({mock['n']} mock, {real['n']} real) | {key} | {_cell(real[key])} | "
                         f"{_cell(mock[key])} | {_verdict(mock[key], real[key])} | {_cell(off[key])} | "
                         f"{_cell(val['no_slope']['stats'][c][key]) if 'no_slope' in val else '-'} |")
    lines += ["", "Median Petrosian magnitude errors (u g r i z): real "
              + " / ".join(f"{e:.3f}" for e in rv["petro_mag_err_median"]) + " (PETROFLUX_IVAR), mock "
              + " / ".join(f"{e:.3f}" for e in val["mock"]["petro_mag_err_median"])
              + " (pixel noise within the aperture).", ""]
    lines += [conclusion(res)]
    if res.get("size_ratio_check"):
        from deepdip.simulate import rendering

        best = next(r for r in res["grid"] if r["kappa"] == res["best"]["kappa"]
                    and r["knot_fraction"] == res["best"]["knot_fraction"])
        lines += ["", "### Diagnostic: the bulge/disk size ratio", "",
                  f"Produced by `{res['size_ratio_command']}`. The chosen values again, with the bulge's half-light "
                  f"radius a different fraction of the disk's (the renderer's `BULGE_SIZE_RATIO` = "
                  f"{rendering.BULGE_SIZE_RATIO:g}; not calibrated here: it also sets the galaxies' concentration), "
                  "calibration seed and half:", "",
                  "| bulge / disk size | loss | red u-g | red g-r | red r-i | blue u-g | blue g-r | blue r-i |",
                  "|---|---|---|---|---|---|---|---|"]
        rc = res["real"]["calibration"]
        for name, row in [(f"{rendering.BULGE_SIZE_RATIO:g} (renderer)", best)] + [
                (f"{r['bulge_size_ratio']:g}", r) for r in res["size_ratio_check"]]:
            lines.append(f"| {name} | {row['loss']:.0f} | " + " | ".join(
                _cell(row["stats"][c][f"{a}-{b}"]) for c in CLASSES for a, b in COLOURS) + " |")
        lines.append("| real (calibration half) | | " + " | ".join(
            _cell(rc[c][f"{a}-{b}"]) for c in CLASSES for a, b in COLOURS) + " |")
        small = min(res["size_ratio_check"], key=lambda r: r["bulge_size_ratio"])
        st = small["stats"]
        lines += ["", f"More compact bulges (size ratio {small['bulge_size_ratio']:g}) separate the colours better: "
                  f"blue galaxies' Delta(g-r) {st['blue']['g-r']['median']:+.3f} and Delta(r-i) "
                  f"{st['blue']['r-i']['median']:+.3f} (real {rc['blue']['g-r']['median']:+.3f}, "
                  f"{rc['blue']['r-i']['median']:+.3f}), red galaxies' {st['red']['g-r']['median']:+.3f} "
                  f"(real {rc['red']['g-r']['median']:+.3f}); blue u-g then overshoots "
                  f"({st['blue']['u-g']['median']:+.3f} vs {rc['blue']['u-g']['median']:+.3f}) and the NMADs stay "
                  "short, so the loss hardly moves. The size ratio is worth calibrating together with the sizes and "
                  "concentrations (it sets both), which this benchmark does not measure."]
    if res.get("seed_check"):
        rows = res["seed_check"]
        lines += ["", "### Seed check: the best grid points with another mock seed", "",
                  f"Produced by `{res['seed_check_command']}`: the {len(rows)} best points of the grid again with "
                  f"mock seed {rows[0]['seed']} ({res['n_calib']} galaxies, calibration half).", "",
                  "| kappa | knot_fraction | beta | loss, seed of the grid | loss, seed " f"{rows[0]['seed']} |",
                  "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['kappa']:g} | {r['knot_fraction']:g} | {r['slope_mean']:g} +- {r['slope_scatter']:g} | "
                         f"{r['loss_first_seed']:.0f} | {r['loss']:.0f} |")
        best_other = min(rows, key=lambda r: r["loss"])
        chosen = rows[0]
        lines += ["", (f"The chosen point stays the best with the other seed (loss {chosen['loss']:.0f})."
                       if best_other is chosen else
                       f"With the other seed the best of them is kappa {best_other['kappa']:g} / knots "
                       f"{best_other['knot_fraction']:g} / beta {best_other['slope_mean']:g} +- "
                       f"{best_other['slope_scatter']:g} (loss {best_other['loss']:.0f} against the chosen point's "
                       f"{chosen['loss']:.0f}): the grid's choice among these is within the mock's sampling noise.")]
    lines += [END]
    return "\n".join(lines) + "\n"


def write_section(md: Path, text: str) -> None:
    """Replace this script's section of ``md`` (between the markers), or append it."""
    old = md.read_text() if md.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    md.write_text(new)


def log(row):
    print(json.dumps({k: row[k] for k in ("kappa", "knot_fraction", "slope_mean", "slope_scatter", "seconds",
                                          "clipped_fraction")}
                     | {c: {k: _cell(v) for k, v in row["stats"][c].items() if k != "n"} for c in CLASSES}),
          file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-calib", type=int, default=1600, help="mock galaxies per grid point")
    p.add_argument("--n-valid", type=int, default=4000, help="mock galaxies of the validation")
    p.add_argument("--kappa", type=float, nargs="+", default=[10.0],
                   help="bulge/disk colour contrasts (kappa >= 4 is saturated; kappa = 0 is always run)")
    p.add_argument("--knots", type=float, nargs="+", default=[0.1, 0.2, 0.35])
    p.add_argument("--slope-mean", type=float, nargs="+", default=[0.0, 0.15, 0.3, 0.45, 0.6],
                   help="mean slopes beta of half-light radius with wavelength, (lambda / lambda_r)^-beta")
    p.add_argument("--slope-scatter", type=float, nargs="+", default=[0.0, 0.2, 0.4],
                   help="scatters of beta between galaxies")
    p.add_argument("--workers", type=int, default=1, help="processes (one knot fraction each)")
    p.add_argument("--stamp", type=int, default=128)
    p.add_argument("--seed-calib", type=int, default=1)
    p.add_argument("--seed-valid", type=int, default=2)
    p.add_argument("--json", default=str(ROOT / "docs" / "realism_colour.json"))
    p.add_argument("--md", default=str(ROOT / "docs" / "realism.md"))
    p.add_argument("--report-only", action="store_true", help="rewrite the section from the JSON")
    p.add_argument("--size-ratio-check", type=float, nargs="*", default=None, metavar="RATIO",
                   help="also measure the chosen values with bulge half-light radius / disk's = RATIO instead of "
                        "rendering.BULGE_SIZE_RATIO (calibration seed and half; with --report-only: only this)")
    p.add_argument("--seed-check", type=int, default=None, metavar="SEED",
                   help="also rerun the 4 best grid points with mock seed SEED (calibration half; with "
                        "--report-only: only this)")
    args = p.parse_args()
    path = Path(args.json)

    if args.report_only:
        res = json.loads(path.read_text())
        if "components" not in res:
            res["components"] = component_colours(res["best"]["kappa"], res["best"]["knot_fraction"])
            path.write_text(json.dumps(res, indent=1))
    else:
        if not REAL.exists():
            sys.exit(f"real data not found: {REAL}")
        kappas = sorted(set(args.kappa) | {0.0})  # kappa = 0: the structure-off reference
        slopes = [(m, s) for m in args.slope_mean for s in args.slope_scatter]
        command = "python benchmarks/realism_colour_structure.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        res = {"command": command.strip(),
               "stamp": args.stamp, "kappas": kappas, "knots": args.knots, "slope_means": args.slope_mean,
               "slope_scatters": args.slope_scatter, "n_calib": args.n_calib, "real": real_statistics(REAL)}
        t0 = time.perf_counter()
        points = grid_points(kappas, slopes)
        grid = run_jobs([(points, fk, args.n_calib, args.seed_calib, args.stamp) for fk in args.knots],
                        args.workers)
        for row in grid:
            row["loss"] = loss(row["stats"], res["real"]["calibration"])
        best = min(grid, key=lambda r: r["loss"])
        same_knots = [r for r in grid if r["knot_fraction"] == best["knot_fraction"]]
        off = next(r for r in same_knots if r["kappa"] == 0.0)
        flat_sizes = next((r for r in same_knots if r["kappa"] == best["kappa"] and r["slope_mean"] == 0
                           and r["slope_scatter"] == 0), None)
        res["grid"] = grid
        res["best"] = {"kappa": best["kappa"], "knot_fraction": best["knot_fraction"],
                       "slope_mean": best["slope_mean"], "slope_scatter": best["slope_scatter"],
                       "loss": best["loss"], "loss_off": off["loss"],
                       "loss_no_slope": flat_sizes["loss"] if flat_sizes else None}
        chosen = (best["slope_mean"], best["slope_scatter"])
        points = [(best["kappa"], chosen), (0.0, (0.0, 0.0))]  # the chosen values, the structure off
        if chosen != (0, 0):
            points.append((best["kappa"], (0.0, 0.0)))  # and the chosen kappa without slope
        rows = run_grid(points, [best["knot_fraction"]], args.n_valid, args.seed_valid, args.stamp, log)
        res["validation"] = {"n": rows[0]["n"], "mock": rows[0], "off": rows[1]}
        if len(rows) > 2:
            res["validation"]["no_slope"] = rows[2]
        for key in [k for k in ("mock", "off", "no_slope") if k in res["validation"]]:
            res["validation"][key]["loss"] = loss(res["validation"][key]["stats"], res["real"]["validation"])
        res["seconds"] = round(time.perf_counter() - t0, 1)
        res["components"] = component_colours(best["kappa"], best["knot_fraction"])
        path.write_text(json.dumps(res, indent=1))
    if args.size_ratio_check:
        res["size_ratio_check"] = size_ratio_check(res, args.size_ratio_check, args.n_calib, args.seed_calib,
                                                   args.stamp, log)
        res.setdefault("size_ratio_command", "python benchmarks/realism_colour_structure.py "
                       + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        path.write_text(json.dumps(res, indent=1))
    if args.seed_check is not None:
        res["seed_check"] = seed_check(res, args.seed_check, res["n_calib"], res["stamp"], args.workers)
        res["seed_check_command"] = ("python benchmarks/realism_colour_structure.py "
                                     + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        path.write_text(json.dumps(res, indent=1))
    write_section(Path(args.md), section(res))
    print(section(res))


if __name__ == "__main__":
    main()
