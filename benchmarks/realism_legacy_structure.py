"""Structure of the legacy mock against real DESI Legacy Survey DR10 cutouts: sizes, concentrations and
aperture colour gradients at matched redshift and magnitude (issue 11, item 1, Legacy part).

A measurement, not a calibration: nothing here is fitted and no preset value is chosen from these numbers
(the legacy preset's colour structure is the one calibrated on SDSS, ``benchmarks/realism_colour_structure.py``).

- Real: the 35 ``primary`` galaxies of ``legacy_dr10_piczl/piczl_train_griz.npz`` (23 x 23 px griz cutouts at
  0.262"/px, nanomaggies, extinction-corrected; spec-z from SDSS; a radio-galaxy sample, Best & Heckman 2012:
  mostly luminous red early types); r magnitude = the Tractor ``dered_flux`` r (model, extinction-corrected).
- Mock: ``simulate_store("legacy-23", n, seed)`` (the legacy preset with the real cutouts' 23 x 23 stamps),
  pixels dereddened with the store's recorded ``extinction_coeffs`` times each galaxy's ``ebv`` (the real cutouts
  are extinction-corrected, the mock's pixels are not); r magnitude = the noise-free total ``mag_r`` (before
  Galactic extinction: the counterpart of the real dereddened model flux).
- Measured the same way on both (``measure``): neighbours masked and replaced by their mirror image through the
  centroid (``deepdip.photometry.measure_photometry``'s ``cleaned_out``: the same segmentation on both sides), the
  light-weighted centre of the cleaned r image (first moment within 1" of the current centre, iterated from the
  stamp centre), circular apertures of radius 0.5, 0.75, 1.0, 1.5, 2.0, 3.0" about it with exact pixel overlaps
  (``photutils.geometry.circular_overlap_grid``). The DR10 Tractor ``apflux_*`` radii are 0.5, 0.75, 1.0, 1.5,
  2.0, 3.5, 5.0, 7.0": 3.5" and beyond do not fit a 23-px (6.0") stamp, whose half-width is 3.01", so 3.0" is the
  outermost aperture (it touches the stamp edge: the share of its area off the stamp is recorded).
  Statistics per galaxy: r50 = the radius where the r-band curve of growth (0.05" steps) reaches half of F(3");
  concentration C = F_r(1") / F_r(3"); colour gradient Delta(a-b) = (a-b) within 1" - (a-b) in the 1-3" annulus,
  for g-r, r-i, r-z; and ``measure_photometry``'s ``hlr_meas`` (detection image, Kron aperture) as a second size.
- Matching: for each real galaxy the mock galaxies within |Delta z| < 0.03 and |Delta r| < 0.3 mag; where fewer than
  ``N_MIN`` (10) fall inside, the box is widened by the factors ``WIDEN`` (1.5, 2, ... 8) until they do (the real
  galaxies are brighter than most mock galaxies at their redshift: recorded per galaxy). Per galaxy: the matched
  mock median over the real value (sizes, C) or minus it (colours); then the median over real galaxies, with a
  bootstrap that resamples the real galaxies and the mock rows together (Poisson weights; the matched sets hold
  ~20 mock galaxies, so the mock's own sampling counts as much as the real one's).
  Targets (issue 11): ratios within [0.85, 1.15], colour differences within 0.03 mag.
- Robustness: the same with the mock also matched in the measured 3" g-r colour (+-0.1 mag, widened alike; the
  real sample is red), with mock early types only (a truth, used only to pick the comparison set), also matched
  in the g and r PSF FWHM (+-0.07 in ln; real: Tractor ``psfsize``, mock: the true ``psf_fwhm``; aperture colour
  gradients are mostly made by the bands' different seeing, and this file's g seeing is worse than the preset's
  median), on a second mock of another seed, without the neighbour cleaning, and on the real galaxies matched
  without widening beyond 2x; and the seeing alone: Delta of a point source through the renderer's Kolmogorov PSF
  at each galaxy's FWHMs (not the piczl ``psf`` stamps: they are Gaussians of FWHM ``psfsize``, without wings).
- Sanity check of the measurement: the same apertures at the stamp centre on the real cutouts (uncleaned, times
  ``mw_transmission``) against the Tractor catalogue's ``apflux_<band>_1..5`` (0.5-2.0"), and on the Tractor
  residual cutouts against ``apflux_resid_*``. The catalogue has no ``shape_r`` (only SHAPE_E1/E2), so the sizes
  cannot be checked against Tractor's.

Writes ``docs/realism_legacy.json`` and its section of ``docs/realism.md`` (between the markers below; the rest of
the file is left as it is).

Usage: python benchmarks/realism_legacy_structure.py [--n 3000] [--seed 2311] [--check-seed 2312] [--store PATH]
       [--reuse] [--report-only]
About a minute and a half on one busy core (the two 3000-galaxy mocks take 15-30 s each).
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
PICZL = ROOT.parent / "shared" / "data" / "real" / "legacy_dr10_piczl"
BANDS = "griz"
PIXEL_SCALE = 0.262  # arcsec / px, both sides
RADII = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # arcsec: the aperture radii measured
TRACTOR_RADII = (0.5, 0.75, 1.0, 1.5, 2.0, 3.5, 5.0, 7.0)  # DR10 apflux_*_1..8
INNER, OUTER = 1.0, 3.0  # arcsec: inner aperture, outer edge of the annulus (and the curve of growth's total)
COG_STEP = 0.05  # arcsec: radial steps of the curve of growth
CENTRE_WINDOW = 1.0  # arcsec: radius of the light-weighted centre's window
COLOURS = (("g", "r"), ("r", "i"), ("r", "z"))
DZ, DR, DGR = 0.03, 0.3, 0.1  # the matching box (z, r mag, and the 3" g-r of the colour-matched variant)
DLNPSF = 0.07  # ln PSF FWHM in g and in r: the box of the PSF-matched variant
WIDEN = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
N_MIN = 10  # matched mock galaxies needed per real galaxy
RATIO_TARGET = (0.85, 1.15)
COLOUR_TOL = 0.03
N_BOOT = 2000
BEGIN, END = "<!-- legacy-structure: begin -->", "<!-- legacy-structure: end -->"
STATS = ("r50", "hlr_meas", "conc") + tuple(f"d_{a}{b}" for a, b in COLOURS)
LABELS = {"r50": "half-light radius r50 (r, curve of growth to 3\")", "hlr_meas": "hlr_meas (measure_photometry)",
          "conc": "concentration F(1\")/F(3\") (r)", **{f"d_{a}{b}": f"Delta({a}-{b}) inner - outer"
                                                      for a, b in COLOURS}}


def is_ratio(stat: str) -> bool:
    return not stat.startswith("d_")


# ---------------------------------------------------------------------------------------------- measurement

def _grid(cx: float, cy: float, radius_px: float, size: int) -> np.ndarray:
    from photutils.geometry import circular_overlap_grid

    x0, y0 = -cx - 0.5, -cy - 0.5  # pixel edges relative to the centre (pixel k spans k-0.5 .. k+0.5)
    return circular_overlap_grid(x0, x0 + size, y0, y0 + size, size, size, radius_px, 1, 1)


def light_centre(img: np.ndarray, size: int, iterations: int = 10) -> tuple[float, float]:
    """First moment of the positive flux within CENTRE_WINDOW of the current centre, from the stamp centre:
    a window keeps what the cleaning left of neighbours and the noise of the outskirts out."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    cx = cy = (size - 1) / 2
    pos = np.maximum(img, 0.0)
    for _ in range(iterations):
        w = _grid(cx, cy, CENTRE_WINDOW / PIXEL_SCALE, size) * pos
        tot = w.sum()
        if tot <= 0:
            break
        nx, ny = (w * xx).sum() / tot, (w * yy).sum() / tot
        done = np.hypot(nx - cx, ny - cy) < 1e-3
        cx, cy = nx, ny
        if done:
            break
    return float(cx), float(cy)


def aperture_fluxes(images: np.ndarray, centres, radii) -> np.ndarray:
    """[n, len(radii), B] fluxes in circles of ``radii`` (arcsec) about ``centres`` [(cx, cy), ...]."""
    n, nb, size, _ = images.shape
    out = np.empty((n, len(radii), nb))
    for k, (cx, cy) in enumerate(centres):
        w = np.stack([_grid(cx, cy, r / PIXEL_SCALE, size) for r in radii]).reshape(len(radii), -1)
        out[k] = w @ images[k].reshape(nb, -1).T.astype(np.float64)
    return out


def half_light(cog: np.ndarray, radii: np.ndarray, total: np.ndarray) -> np.ndarray:
    """First radius where the curve of growth [n, R] reaches half of ``total``, linear between steps (0 at r=0)."""
    frac = np.column_stack([np.zeros(len(cog)), cog / np.where(total > 0, total, np.nan)[:, None]])
    r = np.concatenate([[0.0], radii])
    j = np.argmax(frac >= 0.5, axis=1)  # first step at or past half (0: never, or the total is not positive)
    rows = np.arange(len(cog))
    lo, hi = frac[rows, np.maximum(j - 1, 0)], frac[rows, j]
    out = r[j - 1] + (0.5 - lo) / np.where(hi > lo, hi - lo, np.nan) * (r[j] - r[j - 1])
    return np.where((j > 0) & (total > 0), out, np.nan)


def measure(images: np.ndarray) -> dict:
    """Aperture statistics of cutouts [n, 4, H, W] (griz nanomaggies, extinction-corrected), the same for real and
    mock: neighbour cleaning, light-weighted centre, apertures, curve of growth."""
    from deepdip.photometry import measure_photometry

    images = np.asarray(images, dtype=np.float32)
    n, _, size, _ = images.shape
    cleaned = np.empty_like(images)
    phot = measure_photometry(images, PIXEL_SCALE, list(BANDS), cleaned_out=cleaned)
    centres = [light_centre(cleaned[k, 1].astype(np.float64), size) for k in range(n)]
    cog_radii = np.round(np.arange(COG_STEP, OUTER + 1e-9, COG_STEP), 6)
    out = {"cleaned": aperture_fluxes(cleaned, centres, RADII), "raw": aperture_fluxes(images, centres, RADII),
           "centre_offset": np.hypot(*(np.array(centres) - (size - 1) / 2).T) * PIXEL_SCALE,
           "hlr_meas": np.asarray(phot["hlr_meas"], dtype=np.float64)}
    for key in ("cleaned", "raw"):
        src = cleaned if key == "cleaned" else images
        cog = aperture_fluxes(src[:, 1:2], centres, cog_radii)[:, :, 0]  # r band only
        out[f"r50_{key}"] = half_light(cog, cog_radii, cog[:, -1])
    # share of the 3" aperture's area off the stamp (the aperture nearly fills it)
    area = np.array([_grid(cx, cy, OUTER / PIXEL_SCALE, size).sum() for cx, cy in centres])
    out["outer_clipped"] = 1 - area / (np.pi * (OUTER / PIXEL_SCALE) ** 2)
    return out


def point_source(psfs: np.ndarray) -> dict:
    """Delta(a-b) of PSF stamps [n, 4, H, W] (a point source; the bands' normalisations cancel in Delta), with the
    galaxies' apertures about the r PSF's light-weighted centre: how much of a Delta the seeing makes alone."""
    size = psfs.shape[-1]
    centres = [light_centre(p[1].astype(np.float64), size) for p in psfs]
    f = aperture_fluxes(psfs, centres, (INNER, OUTER))
    ratio = -2.5 * np.log10(f[:, 0] / (f[:, 1] - f[:, 0]))  # [n, B]: inner minus annulus magnitude per band
    return {f"d_{a}{b}": ratio[:, BANDS.index(a)] - ratio[:, BANDS.index(b)] for a, b in COLOURS}


def kolmogorov_psfs(fwhm: np.ndarray, size: int = 23) -> np.ndarray:
    """The renderer's PSF (Kolmogorov) at the FWHMs [n, B] (arcsec), drawn alone: [n, B, size, size]."""
    from deepdip.simulate import rendering

    const = rendering.transforms()
    return np.stack([np.stack([rendering.psf_image(float(f), PIXEL_SCALE, size, const) for f in row])
                     for row in np.asarray(fwhm, dtype=np.float64)])


def statistics(m: dict, key: str = "cleaned") -> dict:
    """Per-galaxy statistics from ``measure``'s output (NaN where a flux is not positive)."""
    f = m[key]
    i_in, i_out = RADII.index(INNER), RADII.index(OUTER)
    inner, annulus = f[:, i_in], f[:, i_out] - f[:, i_in]
    with np.errstate(divide="ignore", invalid="ignore"):
        mag_in = np.where(inner > 0, -2.5 * np.log10(inner), np.nan)
        mag_out = np.where(annulus > 0, -2.5 * np.log10(annulus), np.nan)
        mag_tot = np.where(f[:, i_out] > 0, -2.5 * np.log10(f[:, i_out]), np.nan)
        out = {"r50": m[f"r50_{key}"], "hlr_meas": m["hlr_meas"],
               "conc": np.where(f[:, i_out, 1] > 0, f[:, i_in, 1] / f[:, i_out, 1], np.nan),
               "gr_3": mag_tot[:, 0] - mag_tot[:, 1]}
    for a, b in COLOURS:
        ia, ib = BANDS.index(a), BANDS.index(b)
        out[f"d_{a}{b}"] = (mag_in[:, ia] - mag_in[:, ib]) - (mag_out[:, ia] - mag_out[:, ib])
    return out


# ---------------------------------------------------------------------------------------------- real and mock

def read_real() -> dict:
    d = np.load(PICZL / "piczl_train_griz.npz")
    keep = d["primary"].astype(bool)
    flux_r = d["dered_flux"][keep, 1].astype(np.float64)
    return {"rows": np.flatnonzero(keep), "images": d["images"][keep], "z": d["z"][keep].astype(np.float64),
            "mag_r": 22.5 - 2.5 * np.log10(flux_r), "psfsize": d["psfsize"][keep].astype(np.float64),
            "morph_type": d["morph_type"][keep].tolist(), "fullid": d["fullid"][keep].tolist()}


def read_mock(path: Path) -> dict:
    from deepdip.store import CutoutStore

    with CutoutStore(path) as store:
        cat = store.catalog()
        coeffs = np.asarray(json.loads(store.attrs["provenance"])["extinction_coeffs"])
        bands = list(store.bands)
        images = store.images()
    if "".join(bands) != BANDS:
        sys.exit(f"mock bands {bands} are not {list(BANDS)}")
    dered = 10 ** (0.4 * np.outer(cat["ebv"], coeffs))  # the real cutouts are extinction-corrected
    return {"images": images * dered[:, :, None, None].astype(np.float32), "z": cat["z_spec"].astype(np.float64),
            "mag_r": cat["mag_r"].astype(np.float64), "is_early": cat["is_early"].astype(bool),
            **{f"psf_fwhm_{b}": cat[f"psf_fwhm_{b}"].astype(np.float64) for b in BANDS}, "n": len(cat["z_spec"])}


def tractor_check() -> dict:
    """Aperture fluxes at the stamp centre on the real cutouts (x mw_transmission: the catalogue's fluxes are not
    extinction-corrected) over the Tractor catalogue's apflux at the radii both have; the same on the residual
    cutouts against apflux_resid. Percentiles over the 35 primary galaxies."""
    from astropy.table import Table

    d = np.load(PICZL / "piczl_train_griz.npz")
    t = Table.read(PICZL / "tractor_catalog_train.fits")
    if not (np.char.strip(np.asarray(t["FULLID"]).astype(str)) == d["fullid"]).all():
        sys.exit("tractor_catalog_train.fits rows are not those of piczl_train_griz.npz")
    keep = d["primary"].astype(bool)
    mw = d["mw_transmission"][keep].astype(np.float64)[:, :, None, None]
    size = d["images"].shape[-1]
    radii = [r for r in TRACTOR_RADII if r <= RADII[-1]]
    centre = [((size - 1) / 2, (size - 1) / 2)] * int(keep.sum())
    out: dict = {"radii": radii, "not_on_stamp": [r for r in TRACTOR_RADII if r > RADII[-1]]}
    for name, key, col in (("image", "images", "apflux"), ("residual", "residual_images", "apflux_resid")):
        mine = aperture_fluxes(d[key][keep] * mw, centre, radii)
        out[name] = {}
        for j, r in enumerate(radii):
            for ib, b in enumerate(BANDS):
                ref = np.asarray(t[f"{col}_{b}_{j + 1}"], dtype=np.float64)[keep]
                if name == "image":
                    q = mine[:, j, ib] / ref
                else:  # residual fluxes scatter about 0: compare differences in units of the image flux
                    q = (mine[:, j, ib] - ref) / np.asarray(t[f"apflux_{b}_{j + 1}"], dtype=np.float64)[keep]
                out[name][f"{b}_{r:g}"] = np.percentile(q, [5, 50, 95]).tolist()
    img = np.array([v for v in out["image"].values()])
    res = np.array([v for v in out["residual"].values()])
    out["image_ratio_range_5_95"] = [float(img[:, 0].min()), float(img[:, 2].max())]
    out["image_ratio_median_range"] = [float(img[:, 1].min()), float(img[:, 1].max())]
    out["residual_diff_abs_max_5_95"] = float(np.abs(res[:, [0, 2]]).max())
    return out


# ---------------------------------------------------------------------------------------------- matching

def match(real: dict, mock: dict, extra=()) -> tuple[list[np.ndarray], np.ndarray]:
    """Mock rows matched to each real galaxy, and the widening factor used (NaN: fewer than N_MIN even at the
    widest box). ``extra``: (real values, mock values, half-width) of more matching variables, widened alike."""
    sets, factors = [], np.full(len(real["z"]), np.nan)
    for k in range(len(real["z"])):
        rows = np.array([], dtype=np.int64)
        for f in WIDEN:
            ok = (np.abs(mock["z"] - real["z"][k]) < DZ * f) & (np.abs(mock["mag_r"] - real["mag_r"][k]) < DR * f)
            for real_v, mock_v, half in extra:
                ok &= np.abs(mock_v - real_v[k]) < half * f
            if "select" in mock:
                ok &= mock["select"]
            rows = np.flatnonzero(ok)
            if len(rows) >= N_MIN:
                factors[k] = f
                break
        sets.append(rows if np.isfinite(factors[k]) else np.array([], dtype=np.int64))
    return sets, factors


def weighted_medians(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Lower weighted median of ``values`` [m] under each row of ``weights`` [N, m] (NaN values dropped)."""
    ok = np.isfinite(values)
    order = np.argsort(values[ok])
    v, w = values[ok][order], weights[:, ok][:, order]
    if not len(v):
        return np.full(len(weights), np.nan)
    cum = np.cumsum(w, axis=1)
    j = np.argmax(cum >= 0.5 * cum[:, -1:], axis=1)
    return np.where(cum[:, -1] > 0, v[j], np.nan)


def bootstrap(values: np.ndarray, replicas: np.ndarray, seed: int = 0) -> dict:
    """Median of the per-galaxy ``values`` [n_real] and its bootstrap: real galaxies resampled, each replica
    ``replicas[:, b]`` (the per-galaxy values with the mock rows resampled) in turn. Also the error with the real
    galaxies alone resampled (``err_real``)."""
    ok = np.isfinite(values)
    v, rep = values[ok], replicas[ok]
    idx = np.random.default_rng(seed).integers(0, len(v), (N_BOOT, len(v)))
    boots = np.nanmedian(rep.T[np.arange(N_BOOT)[:, None], idx], axis=1)
    return {"median": float(np.median(v)), "err": float(np.std(boots)), "n": int(len(v)),
            "err_real": float(np.std(np.median(v[idx], axis=1))),
            "p16_84": np.percentile(boots, [16, 84]).tolist(), "p2_5_97_5": np.percentile(boots, [2.5, 97.5]).tolist()}


def verdict(stat: str, value: float) -> bool:
    return bool(RATIO_TARGET[0] <= value <= RATIO_TARGET[1]) if is_ratio(stat) else bool(abs(value) <= COLOUR_TOL)


def interval_verdict(stat: str, lo: float, hi: float) -> str:
    """Whether the 68 % bootstrap interval lies inside the target, outside it, or straddles its edge."""
    if verdict(stat, lo) and verdict(stat, hi):
        return "inside"
    tlo, thi = RATIO_TARGET if is_ratio(stat) else (-COLOUR_TOL, COLOUR_TOL)
    return "outside" if hi < tlo or lo > thi else "straddles"


def compare(real_stats: dict, mock_stats: dict, sets, factors, keep=None, seed: int = 0, stats=STATS) -> dict:
    """Per real galaxy: matched-mock median over (sizes, C) or minus (colours) the real value; then the median over
    real galaxies with its bootstrap over both samples: the matched sets hold ~20 mock galaxies, so the mock's own
    sampling is as large as the real one's. Mock rows are resampled by Poisson weights (one draw per mock galaxy
    shared by every set it is in; the sets stay as matched)."""
    used = np.isfinite(factors) if keep is None else np.isfinite(factors) & keep
    weights = np.random.default_rng(seed + 1).poisson(1.0, (N_BOOT, len(mock_stats[stats[0]])))
    out: dict = {"n_real": int(used.sum()), "widen_factors": np.unique(factors[used], return_counts=True)[1].tolist(),
                 "widen_values": np.unique(factors[used]).tolist(),
                 "n_matched_median": float(np.median([len(s) for s, u in zip(sets, used) if u]))}
    for stat in stats:
        med = np.array([np.nanmedian(mock_stats[stat][s]) if u else np.nan for s, u in zip(sets, used)])
        real = np.where(used, real_stats[stat], np.nan)
        per = med / real if is_ratio(stat) else med - real
        reps = np.array([weighted_medians(mock_stats[stat][s], weights[:, s]) if u else np.full(N_BOOT, np.nan)
                         for s, u in zip(sets, used)])  # [n_real, N_BOOT]
        reps = reps / real[:, None] if is_ratio(stat) else reps - real[:, None]
        b = bootstrap(per, reps, seed)
        b.update({"mock": float(np.nanmedian(med)), "real": float(np.nanmedian(real)),
                  "pass": verdict(stat, b["median"]), "interval": interval_verdict(stat, *b["p16_84"])})
        out[stat] = b
        out[f"{stat}_per_galaxy"] = [None if not np.isfinite(x) else round(float(x), 4) for x in per]
    return out


def mock_store(path: Path, n: int, seed: int, reuse: bool, preset: str = "legacy-23") -> float:
    """Simulate the ``preset`` mock into ``path`` unless ``reuse`` and it is already there (same preset, n and
    seed); returns the seconds spent."""
    from deepdip.simulate import simulate_store
    from deepdip.store import CutoutStore

    if reuse and path.exists():
        with CutoutStore(path) as store:
            prov = json.loads(store.attrs["provenance"])
        from deepdip.surveys import load_survey

        # the provenance holds the preset's parameters: the same parameters, n and seed are the same mock
        if (prov.get("survey_preset"), prov.get("n"), prov.get("seed")) == (load_survey(preset).params, n, seed):
            return 0.0
    info = simulate_store(preset, n, seed=seed, out=path, workers=1, progress=False, overwrite=True)
    print(f"simulated {n} (seed {seed}) in {info['seconds']:.0f} s", file=sys.stderr, flush=True)
    return float(info["seconds"])


def run(args) -> dict:
    t0 = time.perf_counter()
    t_sim = mock_store(Path(args.store), args.n, args.seed, args.reuse, args.preset)
    real, mock = read_real(), read_mock(Path(args.store))
    mreal, mmock = measure(real["images"]), measure(mock["images"])
    sreal, smock = statistics(mreal), statistics(mmock)
    res: dict = {"n_mock": mock["n"], "seed": args.seed, "n_real_primary": int(len(real["z"])),
                 "n_real_distinct_z": int(len(np.unique(np.round(real["z"], 4)))),
                 "radii_arcsec": list(RADII), "tractor_radii_arcsec": list(TRACTOR_RADII),
                 "box": {"dz": DZ, "dr": DR, "dgr_colour_matched": DGR, "widen": list(WIDEN), "n_min": N_MIN},
                 "targets": {"ratio": list(RATIO_TARGET), "colour_abs": COLOUR_TOL}}
    sets, factors = match(real, mock)
    res["main"] = compare(sreal, smock, sets, factors)
    variants = {}
    sets_c, fac_c = match(real, mock, extra=[(sreal["gr_3"], smock["gr_3"], DGR)])
    variants["colour_matched"] = compare(sreal, smock, sets_c, fac_c)
    # the seeing: Delta(g-r) in fixed apertures grows with the g PSF's width over the r PSF's (g light spread out
    # of the inner aperture), and the real train file's g seeing is worse than the preset's median
    sets_p, fac_p = match(real, mock, extra=[(np.log(real["psfsize"][:, j]), np.log(mock[f"psf_fwhm_{b}"]), DLNPSF)
                                             for j, b in ((0, "g"), (1, "r"))])
    variants["psf_matched"] = compare(sreal, smock, sets_p, fac_p)
    sets_e, fac_e = match(real, dict(mock, select=mock["is_early"]))
    variants["mock_early_types"] = compare(sreal, smock, sets_e, fac_e)
    variants["no_cleaning"] = compare(statistics(mreal, "raw"), statistics(mmock, "raw"), sets, factors)
    variants["widen_le_2"] = compare(sreal, smock, sets, factors, keep=factors <= 2)
    colours = tuple(f"d_{a}{b}" for a, b in COLOURS)
    # the seeing alone: a point source through the same PSF model at each side's FWHMs (the real side's Tractor
    # psfsize; the piczl ``psf`` stamps are Gaussians of that FWHM, without the wings a real PSF has)
    mock_fwhm = np.column_stack([mock[f"psf_fwhm_{b}"] for b in BANDS])
    variants["point_source"] = compare(point_source(kolmogorov_psfs(real["psfsize"])),
                                       point_source(kolmogorov_psfs(mock_fwhm)), sets, factors, stats=colours)
    if args.check_seed >= 0:  # the mock's own sampling: the main comparison on a second, independent mock
        other = Path(args.store).with_name(Path(args.store).stem + f"_seed{args.check_seed}.h5")
        t_sim += mock_store(other, args.n, args.check_seed, args.reuse, args.preset)
        mock2 = read_mock(other)
        sets2, fac2 = match(real, mock2)
        variants["other_seed"] = compare(sreal, statistics(measure(mock2["images"])), sets2, fac2)
        variants["other_seed"]["seed"] = args.check_seed
    res["variants"] = variants
    res["real_galaxies"] = [
        {"row": int(r), "fullid": fid, "type": t, "z": round(float(z), 4), "mag_r": round(float(m), 3),
         "widen": None if not np.isfinite(f) else float(f), "n_matched": int(len(s)),
         **{k: round(float(sreal[k][j]), 4) for k in STATS}}
        for j, (r, fid, t, z, m, f, s) in enumerate(zip(real["rows"], real["fullid"], real["morph_type"], real["z"],
                                                         real["mag_r"], factors, sets))]
    matched_psf = {b: float(np.median([np.median(mock[f"psf_fwhm_{b}"][s]) for s in sets if len(s)])) for b in BANDS}
    res["context"] = {
        "real_morph_types": {t: real["morph_type"].count(t) for t in sorted(set(real["morph_type"]))},
        "real_gr_3_median": float(np.nanmedian(sreal["gr_3"])),
        "matched_mock_gr_3_median": float(np.nanmedian([np.nanmedian(smock["gr_3"][s]) for s in sets if len(s)])),
        "matched_mock_early_fraction": float(np.median([mock["is_early"][s].mean() for s in sets if len(s)])),
        "real_psfsize_median": dict(zip(BANDS, np.median(real["psfsize"], 0).tolist())),
        "matched_mock_psf_fwhm_median": matched_psf,
        "centre_offset_arcsec_median": {"real": float(np.median(mreal["centre_offset"])),
                                        "mock": float(np.median(mmock["centre_offset"]))},
        "outer_aperture_clipped_share_max": {"real": float(mreal["outer_clipped"].max()),
                                             "mock": float(np.quantile(mmock["outer_clipped"], 0.99))},
        "outer_aperture_clipped_share_note": "real: maximum; mock: 99th percentile",
        "mock_mag_r_quantiles_5_50_95": np.percentile(mock["mag_r"], [5, 50, 95]).tolist(),
        "real_mag_r_quantiles_5_50_95": np.percentile(real["mag_r"], [5, 50, 95]).tolist()}
    res["tractor_check"] = tractor_check()
    res["seconds"] = {"simulate": round(t_sim, 1), "total": round(time.perf_counter() - t0, 1)}
    return res


# ---------------------------------------------------------------------------------------------- report

def _fmt(stat: str, x: float) -> str:
    return f"{x:.3f}" if is_ratio(stat) else f"{x:+.3f}"


def _row(stat: str, s: dict, name: str | None = None) -> str:
    target = f"[{RATIO_TARGET[0]:g}, {RATIO_TARGET[1]:g}]" if is_ratio(stat) else f"within +-{COLOUR_TOL:g} mag"
    lo, hi = s["p16_84"]
    value = f"{_fmt(stat, s['median'])} +- {s['err']:.3f} ({_fmt(stat, lo)} .. {_fmt(stat, hi)})"
    unit = "\"" if stat in ("r50", "hlr_meas") else ""
    return (f"| {name or LABELS[stat]} | {s['mock']:.3f}{unit} | {s['real']:.3f}{unit} | {value} | {target} | "
            f"**{'pass' if s['pass'] else 'miss'}** (68 % interval {s['interval']}) |")


def section(res: dict) -> str:
    main, var, ctx, tc = res["main"], res["variants"], res["context"], res["tractor_check"]
    widen = ", ".join(f"{f:g}x: {n}" for f, n in zip(main["widen_values"], main["widen_factors"]))
    lines = [BEGIN, "## Legacy preset vs real DR10 cutouts: sizes, concentration, aperture colour gradients "
             "(issue 11)", "",
             f"Produced by `{res['command']}` (numbers in `docs/realism_legacy.json`; {res['seconds']['total']:.0f} s, "
             f"of which {res['seconds']['simulate']:.0f} s simulating). A measurement: nothing is fitted to it and "
             "no preset value was changed for it (the legacy preset's colour structure is the one calibrated on "
             "SDSS).", "",
             f"Real: the {res['n_real_primary']} `primary` galaxies of `legacy_dr10_piczl/piczl_train_griz.npz` "
             f"(23x23 griz cutouts, 0.262\"/px, extinction-corrected; {res['n_real_distinct_z']} distinct spec-z; "
             "Tractor types " + ", ".join(f"{n} {t}" for t, n in sorted(ctx["real_morph_types"].items(),
                                                                       key=lambda x: -x[1]))
             + f"). Mock: {res['n_mock']} galaxies of `legacy-23` (seed "
             f"{res['seed']}), pixels dereddened with the store's `extinction_coeffs` x `ebv`. Both measured by the "
             "same code on pixels: neighbours masked and mirrored (`measure_photometry`'s cleaning), light-weighted "
             "centre of the cleaned r image (1\" window, iterated), circular apertures of 0.5, 0.75, 1.0, 1.5, 2.0, "
             "3.0\" with exact pixel overlaps. The DR10 `apflux` radii 3.5, 5.0 and 7.0\" do not fit the 6.0\" "
             "stamp, so the outermost aperture is 3.0\" (it touches the edge: at most "
             f"{100 * ctx['outer_aperture_clipped_share_max']['real']:.1f} % of its area falls off the stamp for the "
             f"real galaxies, {100 * ctx['outer_aperture_clipped_share_max']['mock']:.1f} % for 99 % of the mock). "
             "r50: where the r curve of growth reaches half of F(3\"); C = F_r(1\") / F_r(3\"); Delta(a-b): colour "
             "within 1\" minus colour in the 1-3\" annulus. Sizes are therefore relative to the light within 3\": "
             "for the large nearby galaxies they are truncated, the same way on both sides.", "",
             f"Matching: mock galaxies within |Delta z| < {DZ:g}, |Delta r| < {DR:g} mag of each real galaxy (real r: "
             "Tractor dereddened model flux; mock r: the noise-free total magnitude before extinction), at least "
             f"{N_MIN}; where fewer, the box is widened ({widen} real galaxies; median "
             f"{main['n_matched_median']:.0f} matched). Per galaxy: median of the matched mock over (ratio) or minus "
             "(difference) the real value; table: median over real galaxies +- bootstrap error (68 % interval), the "
             "mock and real columns are the medians of the matched-mock medians and of the real values.", "",
             "| statistic | mock | real | mock / real or mock - real | target | verdict |", "|---|---|---|---|---|---|"]
    lines += [_row(stat, main[stat]) for stat in STATS]
    names = {"colour_matched": f"also matched in 3\" g-r (+-{DGR:g})", "mock_early_types": "mock early types only",
             "psf_matched": f"also matched in PSF FWHM g and r (+-{DLNPSF:g} in ln)",
             "other_seed": f"another mock (seed {var.get('other_seed', {}).get('seed')})",
             "point_source": "the seeing alone (a point source, same sets)",
             "no_cleaning": "no neighbour cleaning", "widen_le_2": "only galaxies matched at <= 2x box"}
    lines += ["", "Robustness (the same statistics; mock / real or mock - real, median over real galaxies +- "
              "bootstrap error):", "",
              "| variant | n real | " + " | ".join(LABELS[s].split(" (")[0] for s in STATS) + " |",
              "|---|---|" + "---|" * len(STATS),
              "| main | " + f"{main['n_real']} | " + " | ".join(
                  f"{_fmt(s, main[s]['median'])} +- {main[s]['err']:.3f}" for s in STATS) + " |"]
    for key, name in names.items():
        if key not in var:
            continue
        v = var[key]
        lines.append(f"| {name} | {v['n_real']} | " + " | ".join(
            f"{_fmt(s, v[s]['median'])} +- {v[s]['err']:.3f}" if s in v else "-" for s in STATS) + " |")
    img = tc["image"]
    lines += ["", "Sanity check of the measurement against the Tractor catalogue (`tractor_catalog_train.fits`, "
              "primary galaxies): the same apertures at the stamp centre on the cutouts x `mw_transmission`, over "
              f"`apflux_<band>_1..5` (radii {', '.join(f'{r:g}' for r in tc['radii'])}\"): medians "
              f"{tc['image_ratio_median_range'][0]:.4f}-{tc['image_ratio_median_range'][1]:.4f}, 5-95 % range "
              f"{tc['image_ratio_range_5_95'][0]:.4f}-{tc['image_ratio_range_5_95'][1]:.4f} over bands and radii "
              f"(r at 1\": {img['r_1'][1]:.4f}); on the residual cutouts against `apflux_resid_*`, the difference is "
              f"within {tc['residual_diff_abs_max_5_95']:.4f} of the image aperture flux (5-95 %). The aperture "
              "geometry and centring reproduce DR10's own apertures; the catalogue has no `shape_r`, so the sizes "
              "are not checked against Tractor's.", ""]
    lines += [conclusion(res), END]
    return "\n".join(lines) + "\n"


def conclusion(res: dict) -> str:
    """Which targets are met, what the variants say about why, and the caveats."""
    main, var, ctx = res["main"], res["variants"], res["context"]
    psf, pts, early, w2 = var["psf_matched"], var["point_source"], var["mock_early_types"], var["widen_le_2"]
    other = var.get("other_seed")
    met = [LABELS[s] for s in STATS if main[s]["pass"]]
    missed = [f"{LABELS[s]} ({_fmt(s, main[s]['median'])})" for s in STATS if not main[s]["pass"]]
    sizes = ("r50", "hlr_meas", "conc")
    size_range = [min(v[s]["median"] for v in (main, *var.values()) if s in v) for s in sizes], \
        [max(v[s]["median"] for v in (main, *var.values()) if s in v) for s in sizes]

    def pm(v, s):
        return f"{_fmt(s, v[s]['median'])} +- {v[s]['err']:.3f}"

    seeing_g = (ctx["real_psfsize_median"]["g"], ctx["matched_mock_psf_fwhm_median"]["g"])
    text = [
        f"**Targets met: {len(met)} of {len(STATS)}** ({'; '.join(met) or 'none'}). "
        f"**Missed:** {'; '.join(missed) or 'none'}.", "",
        "What the numbers say. Sizes and concentration: at the real galaxies' (z, r) the mock's r50, hlr_meas and "
        f"C are {pm(main, 'r50')}, {pm(main, 'hlr_meas')} and {pm(main, 'conc')} times the real ones, and every "
        "variant keeps them within " + ", ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(*size_range))
        + " (in that order); against the mock's early types alone, r50 and C are "
        f"{pm(early, 'r50')} and {pm(early, 'conc')}. Colour gradients: real galaxies are redder within 1\" than in "
        f"the 1-3\" annulus by {main['d_gr']['real']:+.3f} in g-r (median), the matched mock by "
        f"{main['d_gr']['mock']:+.3f}: mock - real {pm(main, 'd_gr')}"
        + (f" (another mock seed: {pm(other, 'd_gr')})" if other else "") + ". In fixed apertures most of "
        "Delta(g-r) is the seeing, not the galaxy: the g PSF is wider than the r PSF and moves g light out of the "
        f"inner aperture (a point source through the renderer's PSF gets Delta(g-r) = {pts['d_gr']['mock']:+.2f} at "
        f"the matched mock's FWHMs, {pts['d_gr']['real']:+.2f} at the real galaxies'), and this file's g seeing is "
        f"worse than the matched mock's ({seeing_g[0]:.2f}\" against {seeing_g[1]:.2f}\" median: a property of "
        "this file's fields, mostly Stripe 82, not of the galaxies). With the mock also matched in the g and r PSF "
        f"FWHM the difference is {pm(psf, 'd_gr')}: " + (
            "inside the target" if psf["d_gr"]["pass"] else
            "outside the target by less than its error" if abs(psf["d_gr"]["median"]) - COLOUR_TOL < psf["d_gr"]["err"]
            else "still outside the target") + "; the main row's miss is mostly the seeing of this field, and what "
        "the mock's galaxies themselves lack (if anything) is not measurable with this sample. r-i and r-z: "
        f"{pm(main, 'd_ri')} and {pm(main, 'd_rz')}, {pm(psf, 'd_ri')} and {pm(psf, 'd_rz')} matched in seeing, "
        f"but {pm(w2, 'd_ri')} and {pm(w2, 'd_rz')} on the {w2['n_real']} galaxies matched within 2x the box: "
        "at the target's edge, undecided at this sample size.", "",
        "Caveats. (1) The real sample is tiny and special: "
        f"{main['n_real']} galaxies ({res['n_real_distinct_z']} distinct redshifts), radio galaxies (Best & Heckman "
        f"2012), mostly luminous red early types (real 3\" g-r median {ctx['real_gr_3_median']:.2f} against "
        f"{ctx['matched_mock_gr_3_median']:.2f} for the matched mock, whose median early-type share is "
        f"{ctx['matched_mock_early_fraction']:.2f}). The numbers say how the mock's galaxies at a given (z, r) "
        "compare with this kind of galaxy, not with the Legacy Survey's population: a pass here does not validate "
        "the preset for a photo-z sample's galaxies (blue, star-forming, fainter ones are not in it). The "
        "bootstrap resamples both the real galaxies and the mock (the matched sets hold ~20 mock galaxies each); "
        "it knows nothing of the sample's selection. (2) The real galaxies are brighter than most mock galaxies "
        "at their redshift (mock r quantiles 5/50/95 % "
        + "/".join(f"{x:.1f}" for x in ctx["mock_mag_r_quantiles_5_50_95"]) + ", real "
        + "/".join(f"{x:.1f}" for x in ctx["real_mag_r_quantiles_5_50_95"])
        + "): many boxes had to be widened, which lets in fainter (smaller) mock galaxies; the <= 2x row shows how "
        "much that moves the result. (3) The 6\" stamp truncates: r50 and C are relative to the light within 3\", "
        "the outer colour is that of the 1-3\" annulus, not of the galaxy's outskirts, and DR10's 3.5-7\" "
        "apertures cannot be measured. (4) Seeing: besides g (above), the real r PSF "
        f"({ctx['real_psfsize_median']['r']:.2f}\" against {ctx['matched_mock_psf_fwhm_median']['r']:.2f}\") makes "
        "the real galaxies look slightly larger and less concentrated; the preset's PSF is calibrated on both "
        "piczl files and this train file is also noisier (Stripe 82 depth; docs/realism.md's pixel section). The "
        "PSF-matched sets need wider (z, r) boxes. (5) Matching variables are not measured the same way, unlike the "
        "statistics: real r is the Tractor model flux, mock r the true magnitude; real z the SDSS spec-z. "
        "(6) Nothing here was fitted: the benchmark has no calibration half, every number is a validation one."]
    return "\n".join(text)


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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3000, help="mock galaxies (default 3000)")
    p.add_argument("--seed", type=int, default=2311)
    p.add_argument("--preset", default="legacy-23", help="the mock's preset: a name or a JSON file (default "
                   "legacy-23; e.g. benchmarks/presets/legacy-23-sdss-structure.json, a what-if)")
    p.add_argument("--store", default="/tmp/deepdip_realism_legacy23.h5")
    p.add_argument("--check-seed", type=int, default=2312, help="seed of a second mock for the main comparison "
                   "(negative: none)")
    p.add_argument("--reuse", action="store_true", help="reuse the mock stores if they exist (same n and seeds)")
    p.add_argument("--json", default=str(ROOT / "docs" / "realism_legacy.json"))
    p.add_argument("--md", default=str(ROOT / "docs" / "realism.md"))
    p.add_argument("--report-only", action="store_true", help="rewrite the section from the JSON")
    args = p.parse_args()
    path = Path(args.json)
    if args.report_only:
        res = json.loads(path.read_text())
    else:
        if not (PICZL / "piczl_train_griz.npz").exists():
            sys.exit(f"real data not found: {PICZL}")
        res = {"command": ("python benchmarks/realism_legacy_structure.py "
                           + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()}
        res.update(run(args))
        path.write_text(json.dumps(res, indent=1))
    write_section(Path(args.md), section(res))
    print(section(res))


if __name__ == "__main__":
    main()
