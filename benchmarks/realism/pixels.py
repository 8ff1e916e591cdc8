"""Pixel noise and PSF of the mock presets against real pixels: calibration, then validation.

SDSS (``../shared/data/real/sdss_frames_stripe82``: one Stripe 82 field on the globular cluster M2)
- calibration: the SDSS noise model of the frame data model, sigma_DN = sqrt(sky_DN / gain +
  darkVariance), times the calibration (nanomaggies per count). Gain and dark variance are the
  psField's (HDU 6, camcol 2), the calibration the frame's (HDU 1); the sky is SDSS's *published*
  r-band distribution over the survey (median 20.86 mag/arcsec^2, quartiles 20.70 and 21.03: SDSS
  DR7 "Seeing and sky brightness", http://www.sdss.org/DR7/products/general/seeing.html, the same
  table on https://sdss3.org/dr9/imaging/other_info.php), with the other bands at the sky colours
  of this field (its own sky, u-r, g-r, i-r, z-r). The seeing is the published r-band ``psf_width``
  (median 1.43", quartiles 1.30" and 1.58", same page), an "effective width" (the FWHM of the
  Gaussian of equal noise-equivalent area); other bands follow FWHM ~ lambda^-0.3 (Xin et al. 2018,
  AJ 156, 222, "A Study of the Point Spread Function in SDSS Images": alpha ~ -0.3 on ugri), except
  z, which that study finds above the power law: z takes this field's psf_width z/i ratio.
- validation: (1) the noise model on this field (its own sky) against the sigma of blank patches of
  its frames; (2) a mock at the median sky against the frame's blank sigma scaled by the model to
  the median sky (the field's sky is 10-35 % brighter than the median); (3) the mock PSF's
  effective width and half-maximum FWHM against the published median and against the field's own
  KL PSF (psField HDU 1-5), whose FWHM / psf_width ratio carries the profile's shape to the median.

Legacy (``../shared/data/real/legacy_dr10_piczl``: 50 + 50 DR10 cutouts, train then run file)
- rows with an even index (0, 2, ...) of the two files concatenated calibrate, odd rows validate.
- sky sigma: robust sigma of the Tractor residual image (image - model) on the stamp border
  (|dx| or |dy| >= 9 px from the centre), times ``mw_transmission`` (the cutouts are
  extinction-corrected, mock pixels are not); median per band, and the log-scatter between
  galaxies (one depth factor shared by the bands: their log-sigmas correlate at 0.83-0.93).
- PSF: median and log-scatter of ``psfsize`` (the Tractor PSF FWHM) per band.
- validation: the same statistics on the odd rows against the mock measured the same way: its
  residual (noisy image - the same image without noise; the Tractor residual's counterpart),
  central 23x23 crop, same border; the half-maximum FWHM of the real PSF stamps against the mock's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"
FRAMES = REAL / "sdss_frames_stripe82"
PICZL = REAL / "legacy_dr10_piczl"
FIELD = "002583-2-0136"
SDSS_BANDS = "ugriz"
LEGACY_BANDS = "griz"
# SDSS DR7 "Seeing and sky brightness" (r band, quartiles over the DR1 fields): (worse, median, better)
SDSS_SKY_R = (20.70, 20.86, 21.03)  # mag / arcsec^2
SDSS_PSF_WIDTH_R = (1.58, 1.43, 1.30)  # arcsec, effective width
XIN_ALPHA = -0.3  # FWHM ~ lambda^alpha (Xin et al. 2018)
IQR_TO_SIGMA = 1 / (2 * 0.6745)  # quartile range of a Gaussian = 1.349 sigma
SKY_TARGET = 0.20  # |mock / real - 1| for the sky sigma
PSF_TARGET = 0.10  # |mock / real - 1| for PSF widths
PATCH = 64  # px: real frame patches, the size of an SDSS stamp
BORDER = 4  # px: the stamp border measured (deepdip.photometry's)
LEGACY_BORDER = 9  # px from the centre of a 23x23 stamp: where the real noise is measured


def robust_sigma(x, axis=None):
    med = np.median(x, axis=axis, keepdims=True)
    return 1.4826 * np.median(np.abs(x - med), axis=axis)


def border_mask(size: int, width: int = BORDER) -> np.ndarray:
    mask = np.ones((size, size), bool)
    mask[width:-width, width:-width] = False
    return mask


def legacy_border(size: int = 23) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return (np.abs(xx) >= LEGACY_BORDER) | (np.abs(yy) >= LEGACY_BORDER)


# ---------------------------------------------------------------------------------------------- SDSS

def read_sdss_field() -> dict:
    """Per band: gain, dark variance, sky (counts/pixel), calibration (nmgy/count), psf_width, the
    frame (nanomaggies) and the field's KL PSF at the frame centre."""
    from astropy.io import fits

    with fits.open(FRAMES / f"psField-{FIELD}.fits") as ps:
        meta = ps[6].data
        out = {"gain": np.array(meta["gain"][0], float), "dark_variance": np.array(meta["dark_variance"][0], float),
               "psf_width": np.array(meta["psf_width"][0], float),
               "kl_psf": [_kl_psf(ps[b + 1].data) for b in range(5)]}
    calib, sky, frames = [], [], []
    for band in SDSS_BANDS:
        with fits.open(FRAMES / f"frame-{band}-{FIELD}.fits.bz2") as f:
            frames.append(np.asarray(f[0].data, np.float32))
            calib.append(float(np.median(f[1].data)))
            sky.append(float(np.median(f[2].data["ALLSKY"][0])))
    out.update(calib=np.array(calib), sky_counts=np.array(sky), frames=frames)
    return out


def _kl_psf(table, row: float = 744.0, col: float = 1024.0) -> np.ndarray:
    """The psField KL PSF at (row, col): sum_k (sum_ij C_kij (0.001 row)^i (0.001 col)^j) eigen_k
    (the photoop SDSS_PSF_RECON recipe)."""
    img = 0.0
    for k in range(len(table)):
        nr, nc = int(table["nrow_b"][k]), int(table["ncol_b"][k])
        c = np.asarray(table["c"][k], float).reshape(5, 5)[:nr, :nc]
        i, j = np.meshgrid(range(nr), range(nc), indexing="ij")
        coeff = np.sum((0.001 * row) ** i * (0.001 * col) ** j * c)
        img = img + coeff * np.asarray(table["RROWS"][k], float).reshape(table["RNROW"][k], table["RNCOL"][k])
    return img / img.sum()


def sky_mag(counts, calib, pixel_scale=0.396):
    return 22.5 - 2.5 * np.log10(np.asarray(counts) * np.asarray(calib) / pixel_scale**2)


def sdss_model_sigma(sky_mag_arcsec2, field: dict, pixel_scale=0.396) -> np.ndarray:
    """The frame data model's sigma (nanomaggies/pixel) at a sky surface brightness per band."""
    sky_counts = 10 ** (-0.4 * (np.asarray(sky_mag_arcsec2) - 22.5)) * pixel_scale**2 / field["calib"]
    return field["calib"] * np.sqrt(sky_counts / field["gain"] + field["dark_variance"])


def blank_sigma(frame: np.ndarray, step: int = 100) -> dict:
    """Robust sigma of the 4-px border of 64x64 patches on a grid (every ``step`` px, 100 px from
    the edges): 25th percentile (patches with sources have larger sigma) and median."""
    mask = border_mask(PATCH)
    h, w = frame.shape
    sig = [robust_sigma(frame[y:y + PATCH, x:x + PATCH][mask])
           for y in range(step, h - PATCH - step, step) for x in range(step, w - PATCH - step, step)]
    return {"p25": float(np.percentile(sig, 25)), "median": float(np.median(sig)), "n_patches": len(sig)}


def kolmogorov_fwhm_for(width: float, kind: str, pixel_scale: float, size: int = 64) -> float:
    """The Kolmogorov FWHM whose rendered PSF (with the pixel) has ``psf_widths()[kind] == width``."""
    from scipy.optimize import brentq

    from deepdip.simulate import rendering

    const = rendering.transforms()
    return float(brentq(lambda f: rendering.psf_widths(rendering.psf_image(f, pixel_scale, size, const),
                                                       pixel_scale)[kind] - width, 0.3 * width, 1.5 * width,
                        xtol=1e-4))


def calibrate_sdss() -> dict:
    """The sdss preset's noise and PSF numbers from the published distributions and the psField."""
    import speclite.filters

    field = read_sdss_field()
    mu_field = sky_mag(field["sky_counts"], field["calib"])
    mu_median = SDSS_SKY_R[1] + (mu_field - mu_field[2])  # the field's sky colours at the published median
    wave = np.array([f.effective_wavelength.to_value("nm") for f in
                     speclite.filters.load_filters(*(f"sdss2010-{b}" for b in SDSS_BANDS))])
    width = SDSS_PSF_WIDTH_R[1] * (wave / wave[2]) ** XIN_ALPHA
    width[4] = width[3] * field["psf_width"][4] / field["psf_width"][3]  # z above the power law
    fwhm = [kolmogorov_fwhm_for(w, "effective", 0.396) for w in width]
    return {
        "sky_mag_arcsec2": np.round(mu_median, 3).tolist(),
        "sky_mag_scatter": round((SDSS_SKY_R[2] - SDSS_SKY_R[0]) * IQR_TO_SIGMA, 4),
        "poisson_var_per_nmgy": np.round(field["calib"] / field["gain"], 7).tolist(),
        "dark_variance_nmgy2": np.round(field["calib"] ** 2 * field["dark_variance"], 9).tolist(),
        "psf_width_median": np.round(width, 3).tolist(),
        "psf_fwhm": np.round(fwhm, 3).tolist(),
        "psf_fwhm_scatter": round(float(np.log(SDSS_PSF_WIDTH_R[0] / SDSS_PSF_WIDTH_R[2]) * IQR_TO_SIGMA), 4),
        "field": {"gain": field["gain"].tolist(), "dark_variance": field["dark_variance"].tolist(),
                  "calib": np.round(field["calib"], 6).tolist(),
                  "sky_counts": np.round(field["sky_counts"], 2).tolist(),
                  "sky_mag_arcsec2": np.round(mu_field, 3).tolist(),
                  "psf_width": np.round(field["psf_width"], 3).tolist()},
    }


def _variant(survey, **params):
    from deepdip.surveys import Survey

    merged = dict(survey.params, **params)
    return Survey(survey.name, survey.bands, survey.filters, survey.pixel_scale,
                  merged.get("stamp_size", survey.stamp_size), survey.zmin, survey.zmax, survey.nbins, merged)


def render_pair(survey, n: int, seed: int):
    """Noisy images, the same images without noise (same galaxies, PSFs, neighbours, sky draws),
    the per-cutout observing conditions and the population."""
    from deepdip.simulate import population, rendering

    ctx = population.prepare(survey)
    rng = np.random.default_rng(seed)
    pop = population.sample_population(survey, n, rng, ctx)
    rng_obs, rng_clean = copy.deepcopy(rng), copy.deepcopy(rng)
    noisy, truth = rendering.render_block(survey, pop, rng, ctx)
    obs = rendering.observing_conditions(survey, n, rng_obs)
    quiet = dict(survey["noise"])
    nb = len(survey.bands)
    if quiet.get("model") == "ccd":
        quiet.update(poisson_var_per_nmgy=[0.0] * nb, dark_variance_nmgy2=[0.0] * nb)
    else:
        quiet.update(sky_sigma=[0.0] * nb, poisson_var_per_nmgy=[0.0] * nb)
    clean, _ = rendering.render_block(_variant(survey, noise=quiet), pop, rng_clean, ctx)
    return noisy, clean, obs, pop, truth


def _optimal_block(survey, ctx, rng, n):
    """Observed fluxes and optimal (model-fit) flux errors [n, B] of ``n`` galaxies drawn from ``rng``
    as the simulator draws them: the true, noiseless profile of the central galaxy as template, each
    pixel weighted by its variance (sky + dark + the galaxy's Poisson noise), sigma_F^-2 = sum t^2 / sigma^2."""
    from deepdip.simulate import population, rendering

    pop = population.sample_population(survey, n, rng, ctx)
    obs = rendering.observing_conditions(survey, n, copy.deepcopy(rng))  # the draws render_block makes next
    nb = len(survey.bands)
    zero = [0.0] * nb
    quiet = ({"poisson_var_per_nmgy": zero, "dark_variance_nmgy2": zero} if survey["noise"].get("model") == "ccd"
             else {"sky_sigma": zero, "poisson_var_per_nmgy": zero})
    alone = _variant(survey, neighbours={"density_arcmin2": 0.0}, noise=dict(survey["noise"], **quiet))
    clean, _ = rendering.render_block(alone, pop, rng, ctx)
    pv = np.asarray(survey["noise"]["poisson_var_per_nmgy"])[None, :, None, None]
    var = obs["sky_sigma"][:, :, None, None].astype(np.float64) ** 2 + np.maximum(clean, 0) * pv
    flux = clean.sum((2, 3), dtype=np.float64)
    t = clean / np.maximum(flux, 1e-12)[:, :, None, None]
    return flux, 1 / np.sqrt((t**2 / var).sum((2, 3))), pop


def optimal_flux_error(survey, n: int, seed: int) -> dict:
    """Extinction-corrected fluxes and optimal flux errors of ``n`` mock galaxies (``_optimal_block``)."""
    from deepdip.simulate import population

    ctx = population.prepare(survey)
    flux, err, pop = _optimal_block(survey, ctx, np.random.default_rng(seed), n)
    dered = 10 ** (0.4 * np.outer(pop["ebv"], ctx["ext_coeffs"]))  # the real fluxes are extinction-corrected
    return {"flux": flux * dered, "err": err * dered}


def store_optimal_errors(survey, seed: int, n: int) -> np.ndarray:
    """Optimal flux errors [n, B] (observed units) of the galaxies ``simulate_store(survey, n, seed)``
    wrote: each block's random numbers replayed from ``SeedSequence([seed, block])``."""
    from deepdip.simulate import BLOCK_SIZE, population
    from deepdip.surveys import load_survey

    survey = load_survey(survey) if isinstance(survey, str) else survey
    ctx = population.prepare(survey)
    out = []
    for k in range((n + BLOCK_SIZE - 1) // BLOCK_SIZE):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), k]))
        out.append(_optimal_block(survey, ctx, rng, min(BLOCK_SIZE, n - k * BLOCK_SIZE))[1])
    return np.concatenate(out)


def measure_psf(fwhm, pixel_scale, size=64):
    from deepdip.simulate import rendering

    return rendering.psf_widths(rendering.psf_image(float(fwhm), pixel_scale, size), pixel_scale)


def sdss_pixels(n: int = 400, seed: int = 11) -> dict:
    from deepdip.surveys import load_survey

    field = read_sdss_field()
    cal = calibrate_sdss()
    survey = load_survey("sdss")
    preset = survey["noise"]
    res = {"calibration": cal, "preset_matches_calibration": _preset_matches(survey, cal)}
    mu_field = np.array(cal["field"]["sky_mag_arcsec2"])
    mu_median = np.array(preset["sky_mag_arcsec2"])
    # (1) the noise model on the field itself, against its blank patches
    blanks = [blank_sigma(f) for f in field["frames"]]
    model_field = sdss_model_sigma(mu_field, field)
    res["field_blank_p25"] = [b["p25"] for b in blanks]
    res["field_blank_median"] = [b["median"] for b in blanks]
    res["field_model"] = model_field.tolist()
    # (2) mock stamps at the median sky (no sky scatter) and at the field's sky, measured like the frame
    mask = border_mask(survey.stamp_size)
    for name, offset in (("median", 0.0), ("field", float(mu_field[2] - mu_median[2]))):
        fixed = _variant(survey, noise=dict(preset, sky_mag_scatter=0.0,
                                            sky_mag_arcsec2=(mu_median + offset).tolist()))
        noisy, clean, obs, _, _ = render_pair(fixed, n, seed)
        border = noisy[:, :, mask]
        res[f"mock_{name}_p25"] = np.percentile(robust_sigma(border, axis=2), 25, axis=0).tolist()
        res[f"mock_{name}_noise_only"] = np.median(robust_sigma((noisy - clean)[:, :, mask], axis=2), axis=0).tolist()
        res[f"model_{name}"] = obs["sky_sigma"][0].tolist()
    scale = sdss_model_sigma(mu_median, field) / model_field  # the field's blank sigma carried to the median sky
    res["real_at_median"] = (np.array(res["field_blank_p25"]) * scale).tolist()
    res["ratio_median"] = (np.array(res["mock_median_p25"]) / np.array(res["real_at_median"])).tolist()
    res["ratio_field"] = (np.array(res["mock_field_p25"]) / np.array(res["field_blank_p25"])).tolist()
    # (3) PSF: the mock's rendered PSF at the median seeing, and the field's KL PSF
    mock_psf = [measure_psf(f, survey.pixel_scale) for f in survey["psf_fwhm"]]
    kl = [_widths(p, survey.pixel_scale) for p in field["kl_psf"]]
    shape = np.array([k["fwhm"] for k in kl]) / field["psf_width"]  # half-max FWHM / psf_width of real PSFs
    res["psf"] = {
        "published_width_median": cal["psf_width_median"],
        "mock_effective": [m["effective"] for m in mock_psf], "mock_fwhm": [m["fwhm"] for m in mock_psf],
        "field_psf_width": field["psf_width"].tolist(), "field_kl_effective": [k["effective"] for k in kl],
        "field_kl_fwhm": [k["fwhm"] for k in kl],
        "real_fwhm_at_median": (shape * np.array(cal["psf_width_median"])).tolist(),
    }
    # the per-galaxy distribution of the mock's r-band effective width against the published quartiles
    obs = _observing(survey, 2000, seed)
    r_eff = np.array([measure_psf(f, survey.pixel_scale)["effective"]
                      for f in np.percentile(obs["psf_fwhm"][:, 2], [25, 50, 75])])
    res["psf"]["mock_r_effective_quartiles"] = r_eff.tolist()
    res["psf"]["published_r_quartiles"] = [SDSS_PSF_WIDTH_R[2], SDSS_PSF_WIDTH_R[1], SDSS_PSF_WIDTH_R[0]]
    mock_mu_r = mu_median[2] + rng_normal_quartiles(obs, survey)
    res["sky_r_quartiles"] = {"mock": mock_mu_r, "published": [SDSS_SKY_R[0], SDSS_SKY_R[1], SDSS_SKY_R[2]]}
    return res


def rng_normal_quartiles(obs, survey) -> list:
    """Quartiles of the mock's r-band sky surface brightness offsets, read back from its sky sigma."""
    p = survey["noise"]
    pv, dv = p["poisson_var_per_nmgy"][2], p["dark_variance_nmgy2"][2]
    sky = (obs["sky_sigma"][:, 2].astype(np.float64) ** 2 - dv) / pv  # flux / pixel
    mu = 22.5 - 2.5 * np.log10(sky / survey.pixel_scale**2)
    return (np.percentile(mu, [25, 50, 75]) - p["sky_mag_arcsec2"][2]).tolist()


def _observing(survey, n, seed):
    from deepdip.simulate import rendering

    return rendering.observing_conditions(survey, n, np.random.default_rng(seed))


def _widths(img, scale):
    from deepdip.simulate import rendering

    return rendering.psf_widths(img, scale)


def _preset_matches(survey, cal: dict) -> dict:
    """Which preset numbers equal what the calibration computes now (they are data, copied once)."""
    noise = survey["noise"]
    out = {}
    for key in ("sky_mag_arcsec2", "sky_mag_scatter", "poisson_var_per_nmgy", "dark_variance_nmgy2"):
        out[key] = bool(np.allclose(noise.get(key, np.nan), cal[key], rtol=2e-3, atol=1e-9))
    for key in ("psf_fwhm", "psf_fwhm_scatter"):
        out[key] = bool(np.allclose(survey.get(key), cal[key], rtol=5e-3))
    return out


# -------------------------------------------------------------------------------------------- Legacy

def read_legacy() -> dict:
    files = [np.load(PICZL / name) for name in ("piczl_train_griz.npz", "piczl_run_griz.npz")]
    keys = ("residual_images", "images", "psf", "psfsize", "mw_transmission")
    return {k: np.concatenate([f[k] for f in files]).astype(np.float64) for k in keys}


def legacy_statistics(data: dict, rows: np.ndarray) -> dict:
    mask = legacy_border(data["residual_images"].shape[-1])
    sigma = robust_sigma(data["residual_images"][rows][:, :, mask], axis=2) * data["mw_transmission"][rows]
    psfsize = data["psfsize"][rows]
    log_spread = robust_sigma(np.log(sigma), axis=0)
    stamp_fwhm = np.array([[_widths(p, 0.262)["fwhm"] for p in gal] for gal in data["psf"][rows]])
    return {"sky_sigma": np.median(sigma, 0), "sky_sigma_log_spread": log_spread,
            "psfsize": np.median(psfsize, 0), "psfsize_log_spread": robust_sigma(np.log(psfsize), axis=0),
            "psf_stamp_fwhm": np.median(stamp_fwhm, 0), "n": int(len(rows))}


def calibrate_legacy() -> dict:
    data = read_legacy()
    n = len(data["psfsize"])
    stats = legacy_statistics(data, np.arange(0, n, 2))
    return {"sky_sigma": np.round(stats["sky_sigma"], 5).tolist(),
            "sky_sigma_scatter": round(float(np.median(stats["sky_sigma_log_spread"])), 3),
            "psf_fwhm": np.round(stats["psfsize"], 3).tolist(),
            "psf_fwhm_scatter": np.round(stats["psfsize_log_spread"], 3).tolist(),
            "n_calibration": stats["n"]}


def legacy_pixels(n: int = 400, seed: int = 12) -> dict:
    from deepdip.surveys import load_survey

    data = read_legacy()
    rows = np.arange(len(data["psfsize"]))
    cal_stats, val_stats = legacy_statistics(data, rows[0::2]), legacy_statistics(data, rows[1::2])
    cal = calibrate_legacy()
    survey = load_survey("legacy")
    res = {"calibration": cal, "preset_matches": {
        "sky_sigma": bool(np.allclose(survey["noise"]["sky_sigma"], cal["sky_sigma"], rtol=2e-3)),
        "sky_sigma_scatter": bool(np.isclose(survey["noise"].get("sky_sigma_scatter", np.nan),
                                             cal["sky_sigma_scatter"])),
        "psf_fwhm": bool(np.allclose(survey["psf_fwhm"], cal["psf_fwhm"], rtol=2e-3)),
        "psf_fwhm_scatter": bool(np.allclose(survey.get("psf_fwhm_scatter"), cal["psf_fwhm_scatter"], rtol=2e-3))}}
    for name, stats in (("cal", cal_stats), ("val", val_stats)):
        res[f"real_{name}"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in stats.items()}
    noisy, clean, obs, _, truth = render_pair(survey, n, seed)
    size = survey.stamp_size
    lo = (size - 23) // 2
    crop = (noisy - clean)[:, :, lo:lo + 23, lo:lo + 23]
    sigma = robust_sigma(crop[:, :, legacy_border()], axis=2)
    res["mock"] = {"sky_sigma": np.median(sigma, 0).tolist(),
                   "sky_sigma_log_spread": robust_sigma(np.log(sigma), axis=0).tolist(),
                   "psf_fwhm": np.median(obs["psf_fwhm"], 0).tolist(),
                   "psf_stamp_fwhm": [measure_psf(np.median(obs["psf_fwhm"][:, b]), 0.262, 23)["fwhm"]
                                      for b in range(len(survey.bands))],
                   "image_border_sigma": np.median(robust_sigma(
                       noisy[:, :, lo:lo + 23, lo:lo + 23][:, :, legacy_border()], axis=2), 0).tolist(),
                   "n": n}
    mask = legacy_border()
    res["real_val"]["image_border_sigma"] = np.median(
        robust_sigma(data["images"][rows[1::2]][:, :, mask], axis=2) * data["mw_transmission"][rows[1::2]], 0).tolist()
    res["ratio_sky"] = (np.array(res["mock"]["sky_sigma"]) / val_stats["sky_sigma"]).tolist()
    res["ratio_psf"] = (np.array(res["mock"]["psf_fwhm"]) / val_stats["psfsize"]).tolist()
    res["ratio_psf_stamp"] = (np.array(res["mock"]["psf_stamp_fwhm"]) / val_stats["psf_stamp_fwhm"]).tolist()
    return res


def flux_errors(n: int = 600, seed: int = 13) -> dict:
    """Optimal (model-fit) flux errors on the sdss mock pixels against the real MODELFLUX_IVAR
    errors, in the real validation half's flux quintiles: what a model-fit photometry would give
    on the new pixels (the shipped photometry is Kron apertures)."""
    from deepdip.simulate.calibrate import load_sdss_reference, split_halves
    from deepdip.surveys import load_survey

    ref = load_sdss_reference(REAL / "sdss_main_gst10k" / "gst_tests_small.fits")
    _, val = split_halves(len(ref["z"]))
    rf, re = ref["flux"][val], ref["flux_err"][val]
    ok = np.all(rf > 0, axis=1)
    rf, re = rf[ok], re[ok]
    opt = optimal_flux_error(load_survey("sdss"), n, seed)
    rows = []
    for b in range(5):
        edges = np.percentile(rf[:, b], [0, 20, 40, 60, 80, 100])
        real_q, mock_q = [], []
        im, ir = np.digitize(opt["flux"][:, b], edges), np.digitize(rf[:, b], edges)
        for k in range(1, 6):
            real_q.append(float(np.median(re[ir == k, b] / rf[ir == k, b])))
            sel = im == k
            mock_q.append(float(np.median(opt["err"][sel, b] / opt["flux"][sel, b])) if sel.sum() >= 5
                          else float("nan"))
        rows.append({"real": real_q, "mock_optimal": mock_q})
    return {"bands": SDSS_BANDS, "quintiles": rows, "n_mock": n}


def run(n: int = 400) -> dict:
    return {"sdss": sdss_pixels(n), "legacy": legacy_pixels(n), "flux_errors": flux_errors()}


if __name__ == "__main__":
    print(json.dumps({"sdss": calibrate_sdss(), "legacy": calibrate_legacy()}, indent=1))
