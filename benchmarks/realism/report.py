"""docs/realism.md from the measured numbers (the prose around them states the method).

Each section (``sdss``, ``deep``, ``pixels``) is written from its own results and names the
command that produced them (``res["commands"]``), so sections refreshed at different times say so.
"""

from __future__ import annotations

import numpy as np

BANDS = "ugriz"

def _row(name, values, fmt="{:.3f}"):
    return f"| {name} | " + " | ".join(fmt.format(v) for v in values) + " |"


def report(res) -> str:
    """The whole page: the sections present in ``res``."""
    commands = res.get("commands", {})
    lines = ["# How realistic are the mock surveys?", "",
             "Each section names the command that produced its numbers (rerun it to refresh); "
             "`python benchmarks/realism` runs them all.", ""]
    if "pixels" in res:
        lines += pixel_section(res["pixels"], commands.get("pixels"), res.get("sdss"))
    if "sdss" in res:
        lines += sdss_section(res["sdss"], commands.get("sdss"))
    if "deep" in res:
        lines += deep_section(res["deep"], commands.get("deep"))
    return "\n".join(lines)


def _produced(command) -> list[str]:
    """``command`` may end with a note in brackets: ``"python ... (note)"``."""
    if not command:
        return []
    cmd, _, note = command.partition(" (")
    return [f"Produced by `{cmd}`" + (f" ({note}" if note else "") + ".", ""]


def _kron_over_real(s) -> np.ndarray:
    """Mock Kron / real model flux errors [band, quintile] from the sdss section's flux-error table."""
    fe = s["flux_error"]
    return np.array(fe.get("mock_kron", fe["mock"])) / np.array(fe["real"])


def _measured_over_real(s) -> np.ndarray:
    """Mock catalogue (flux_<band>) / real model flux errors [band, quintile]."""
    return np.array(s["flux_error"]["mock"]) / np.array(s["flux_error"]["real"])


def sdss_section(s, command) -> list[str]:
    rf = s["rf_sigma_mad"]
    single = s["c2st_single"]
    worst = max(single, key=single.get)
    kron = _kron_over_real(s)
    measured = _measured_over_real(s)
    model_fit = "flux_kron_r" in s.get("photometry", "") or "mock_kron" in s["flux_error"]
    fe = s["flux_error"]
    petro = np.array(fe["real_petrosian"]) / np.array(fe["real"]) if "real_petrosian" in fe else None
    emu = s.get("rf_sigma_mad_optimal_emulated")
    method = ("SDSS model fluxes (`deepdip.photometry.model_fluxes`: the better of a PSF-convolved exponential and "
              "de Vaucouleurs fit in r, amplitudes per band; the catalogue's `flux_<band>`), as the real catalogue's "
              "`MODELFLUX`" if model_fit else "Kron apertures, `deepdip.photometry`")
    lines = [
        "## SDSS preset vs real SDSS: catalogue level",
        "",
        *_produced(command),
        f"Mock: {s['n_mock']} galaxies simulated with `deepdip simulate --survey sdss`, photometry *measured* on the "
        f"rendered cutouts ({method}), corrected for the mock's Galactic extinction "
        f"({s['n_mock_used']} with positive fluxes in all bands). Real: the validation half of "
        f"`sdss_main_gst10k` ({s['n_real']} galaxies, extinction-corrected model magnitudes); the other half "
        "calibrated the population (`deepdip.simulate.calibrate`), so no galaxy is used on both sides.",
        "",
        "**Selection.** The real sample is the SDSS main sample matched to 2MASS (K ≲ 14.3 Vega): brighter and "
        "redder than the full main sample. The mock's population density is learned from that very sample, so it "
        "inherits the 2MASS selection; the mock then applies the preset's r ≤ 17.8 cut on its true magnitudes. No "
        "separate K cut is applied (it would cut twice). The `sdss` mock therefore represents the 2MASS-matched main "
        "sample, not the full Pasquet et al. sample (fainter in K, bluer on average).",
        "",
        "Check (`k_selection`): the templates fitted to each real galaxy's ugriz predict its 2MASS K with a median "
        f"offset of {s['k_selection']['pred_minus_real_median']:+.2f} mag and a scatter (NMAD) of "
        f"{s['k_selection']['pred_minus_real_nmad']:.2f} mag; through the same templates, "
        f"{100 * s['k_selection']['mock_frac_below_14.3']:.1f} % of mock galaxies have K(Vega) < 14.3, against "
        f"{100 * s['k_selection']['real_frac_below_14.3']:.1f} % of the real ones (K quantiles 5/50/95/99 %: mock "
        f"{s['k_selection']['mock_quantiles']}, real {s['k_selection']['real_quantiles']}). Corrected by the "
        "offset (templates extrapolated to 2.2 µm, and 2MASS extended-source magnitudes that miss faint outer "
        "light), the mock's K distribution lands on the real one: the K selection is inherited, not lost.",
        "",
        "### Classifier two-sample test (gradient-boosted trees, 5-fold ROC AUC; 0.5 = indistinguishable)",
        "",
        "| features | AUC |",
        "|---|---|",
        f"| u-g, g-r, r-i, i-z, r, z — **measured** mock photometry (the catalogue's; target ≤ 0.6) | "
        f"**{s['c2st_measured']:.3f}** |",
        f"| same, mock *true* magnitudes (population only, no rendering/measurement) | {s['c2st_true_mags']:.3f} |",
    ]
    if "c2st_kron" in s:
        lines.append("| same, Kron apertures measured on the same pixels (`flux_kron_<band>`) | "
                     f"{s['c2st_kron']:.3f} |")
    if "c2st_optimal_emulated" in s:
        lines.append("| same, *emulated model-fit* photometry: true fluxes + noise at each galaxy's optimal flux error "
                     f"on its pixels (not a measurement) | {s['c2st_optimal_emulated']:.3f} |")
    lines += [f"| {f} alone | {v:.3f} |" for f, v in single.items()]
    lines += [f"| all but {f} | {v:.3f} |" for f, v in s["c2st_without"].items()]
    hi = s["colours_vs_z"]
    offsets = [np.array(m["median"]) - np.array(r["median"]) for r, m in zip(hi["real"], hi["mock"])]
    lines += ["", f"The single feature that separates most is **{worst}** (AUC {single[worst]:.3f})."]
    mmt = s.get("measured_minus_true_colour") or {}
    model_bias = (", ".join(f"{k} {v['all']:+.3f}" for k, v in mmt.items()) + " (median; late types "
                  + ", ".join(f"{v['late']:+.3f}" for v in mmt.values()))
    redshift_structure = ("Other known differences: redshift structure (the real sample has spikes in n(z) from "
                          "groups and walls along its sight lines, e.g. at z ≈ 0.075) that a smooth density does "
                          "not reproduce.")
    if model_fit and mmt and s.get("population_measurement"):
        cal = s["population_measurement"]
        lines[-1] += (
            " On the mock the model colours are redder than the galaxies' true total colours by "
            + model_bias
            + "): the r-band profile applied to every band weighs each galaxy's centre, where the red bulge sits, "
            "and misses the outer light of the bluer bands (half-light radii that grow bluewards). "
            "The population is therefore **calibrated through the measurement**: its mixture is fitted to the real "
            "calibration-half features minus the mock's measurement bias (`deepdip.simulate.calibrate."
            f"MeasurementBias`, measured on {cal['note']}; median measured − true "
            + ", ".join(f"{k} {v:+.3f}" for k, v in cal["median_measured_minus_true"].items() if k != "z")
            + "; `python benchmarks/calibrate_population.py sdss ../shared/data/real/sdss_main_gst10k/"
            "gst_tests_small.fits --through-measurement 6000 --workers 2`), so that the mock's *measured* colours "
            "follow the real model colours: mock − real median u-g "
            + ", ".join(f"{o[0]:+.3f}" for o in offsets) + ", g-r " + ", ".join(f"{o[1]:+.3f}" for o in offsets)
            + " in the redshift bins below. The true-magnitude AUC above is higher for the same reason: the "
            "population's true colours are now bluer than the real measured ones, by the measurement's bias. "
            "Only the bias's conditional mean is subtracted: its scatter between galaxies of the same true "
            "features (their own size-wavelength slopes, bulge fractions, noise) is not deconvolved, a suspected "
            "(not measured) reason why the joint AUC exceeds every single feature's. "
            + redshift_structure)
    elif model_fit and mmt:
        lines[-1] += (
            " With model-fit photometry the measured colours are *redder* than the real ones at fixed redshift: "
            "mock − real median u-g " + ", ".join(f"{o[0]:+.2f}" for o in offsets) + ", g-r "
            + ", ".join(f"{o[1]:+.2f}" for o in offsets) + " in the redshift bins below. The cause is measured, "
            "not guessed: on the mock, the model colours are redder than the galaxies' true total colours by "
            + model_bias
            + ") — the r-band profile applied to every band weighs each galaxy's centre, where the red bulge sits "
            "(the colour structure above). The population (`deepdip.simulate.calibrate`) was fitted so that its "
            "*true* colours match the real *model* colours (only the noise was deconvolved), so measured through "
            "model fits the mock comes out redder by that offset. The fix is a calibration through the "
            "measurement (fit the population so that its model-fit colours, not its true ones, match the real "
            "model colours); not done yet. " + redshift_structure)
    else:
        ug = [(r["nmad"][0], m["nmad"][0]) for r, m in zip(hi["real"], hi["mock"])]
        lines[-1] += (
            " What is left to tell mock from real, as far as these numbers show: (1) the u-g scatter of distant "
            f"galaxies, {ug[-2][1]:.2f} mock vs {ug[-2][0]:.2f} real at 0.15 < z < 0.2: the faintest fifth of mock "
            f"galaxies has u errors {kron[0, 0]:.2f}x the real ones (flux-error table below); (2) redshift structure "
            "(spikes in the real n(z)); (3) the Kron aperture misses a few per cent of the light of large early "
            "types, against model magnitudes that are nearly total.")
    lines += [
        "",
        "**Flux errors.** The pixels carry the noise of real SDSS images (the pixel section above). Measured "
        + ("with model fits, as the real catalogue, " if model_fit else "")
        + "the mock's catalogue flux errors are "
        + ", ".join(f"{b} {np.nanmin(measured[j]):.2f}-{np.nanmax(measured[j]):.2f}x" for j, b in enumerate(BANDS))
        + " the real `MODELFLUX_IVAR` errors across the flux quintiles (table below; lowest for the brightest "
        "galaxies, whose real model fits carry a profile mismatch and calibration errors the mock's do not)."
        + (" Kron apertures on the same pixels give "
           + ", ".join(f"{b} {np.nanmin(kron[j]):.2f}-{np.nanmax(kron[j]):.2f}x" for j, b in enumerate(BANDS))
           + ": an aperture sums sky noise over a larger area (the real catalogue's own Petrosian fluxes have "
           + (", ".join(f"{b} {np.nanmin(petro[j]):.1f}-{np.nanmax(petro[j]):.1f}x" for j, b in enumerate(BANDS))
              if petro is not None else "about 2x")
           + " its model-flux errors). Before the model fits (session 4) the catalogue held those Kron fluxes, so "
           "the mock's baselines saw noisier photometry than real SDSS baselines do." if model_fit else ""),
        "",
        "### Is the mock as hard as the sky? Random forest (200 trees) on colours + r, 80/20 split",
        "",
        "| trained on → tested on | σ_MAD |",
        "|---|---|",
        f"| real → real | {rf['real']:.4f} |",
        f"| mock → mock | {rf['mock']:.4f} |",
        f"| mock → real | {rf['mock_to_real']:.4f} |",
        "",
        f"Ratio mock/real σ_MAD = **{rf['mock'] / rf['real']:.2f}** (target 0.9–1.1; the tuned parametric SkyPy "
        f"model gave 0.74); mock-trained on real / real-trained = **{rf['mock_to_real'] / rf['real']:.2f}** "
        "(target ≤ 1.1; the tuned parametric model gave 1.41)."
        + (" Over five 80/20 splits (seeds 0-4; one split's ratio moves by ±0.05): mock/real "
           + ", ".join(f"{v:.3f}" for v in s["rf_ratio_splits"]) + f", mean **{np.mean(s['rf_ratio_splits']):.3f}**."
           if "rf_ratio_splits" in s else "")
        + (f" With the Kron apertures of the same mock: mock/real {s['rf_sigma_mad_kron']['mock'] / rf['real']:.2f}, "
           f"mock-trained on real / real-trained {s['rf_sigma_mad_kron']['mock_to_real'] / rf['real']:.2f}."
           if "rf_sigma_mad_kron" in s else "")
        + (f" With the emulated model-fit photometry: mock/real {emu['mock'] / emu['real']:.2f}, mock-trained on "
           f"real / real-trained {emu['mock_to_real'] / emu['real']:.2f}." if emu else ""),
        "",
        "### Distributions",
        "",
        "| quantile | 5 % | 25 % | 50 % | 75 % | 95 % |",
        "|---|---|---|---|---|---|",
        _row("z real", s["z_quantiles"]["real"], "{:.4f}"), _row("z mock", s["z_quantiles"]["mock"], "{:.4f}"),
        _row("r real", s["r_quantiles"]["real"], "{:.2f}"), _row("r mock", s["r_quantiles"]["mock"], "{:.2f}"),
        "",
        "Colour medians (and NMAD scatter) in redshift bins, real / mock:",
        "",
        "| z bin | n real / mock | u-g | g-r | r-i | i-z |",
        "|---|---|---|---|---|---|",
    ]
    for r, m in zip(s["colours_vs_z"]["real"], s["colours_vs_z"]["mock"]):
        cells = [f"{a:.2f} ({sa:.2f}) / {b:.2f} ({sb:.2f})"
                 for a, sa, b, sb in zip(r["median"], r["nmad"], m["median"], m["nmad"])]
        lines.append(f"| {r['z'][0]:.2f}–{r['z'][1]:.2f} | {r['n']} / {m['n']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Flux–error relation: median relative flux error in the real sample's model-flux quintiles. Real: "
        "`MODELFLUX_IVAR` (model) and `PETROFLUX_IVAR` (Petrosian aperture); mock: the catalogue's measured "
        "fluxes" + (" (model fits) and the Kron apertures" if model_fit else " (Kron apertures)") + ", and the "
        "optimal error of the emulation (true profile as the template):",
        "",
        "| band | errors | quintile 1 (faint) | 2 | 3 | 4 | 5 (bright) |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, band in enumerate(BANDS):
        rows = [("real model", fe["real"][b]), ("real Petrosian", fe.get("real_petrosian", [None] * 5)[b]),
                ("mock model fit" if model_fit else "mock Kron", fe["mock"][b]),
                ("mock Kron", fe["mock_kron"][b] if "mock_kron" in fe else None),
                ("mock optimal", fe.get("mock_optimal", [None] * 5)[b])]
        for name, values in rows:
            if values is not None:
                lines.append(f"| {band} | {name} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    lines += [
        "",
        "The catalogue's r flux is a median "
        f"{100 * s.get('measured_over_true_r', s.get('kron_over_true_r', np.nan)):.1f} % of the true r flux"
        + (f"; the Kron aperture holds {100 * s['kron_over_true_r']:.1f} %" if model_fit and "kron_over_true_r" in s
           else "") + " (real model magnitudes are close to total).",
        "",
        "![SDSS mock vs real](realism_sdss.png)",
        "",
        "Twelve mock cutouts (gri composites, asinh stretch; 25\" × 25\"):",
        "",
        "![mock SDSS cutouts](realism_stamps.png)",
        "",
    ]
    return lines


def deep_section(d, command) -> list[str]:
    lines = [
        "## Deep preset (cfhtls-wide) vs HSC PDR2 spec-z, i ≤ 22.5",
        "",
        *_produced(command),
        "Beyond the SDSS range the population is SkyPy's parametric model for redshifts and magnitudes (blue + "
        "red Schechter luminosity functions: galaxy counts down to the limit) with colours from real galaxies: "
        "each galaxy's g-z is drawn from a mixture fitted to HSC PDR2 spec-z galaxies (calibration half) at its "
        "z and i, and it takes, among the block's SkyPy template mixtures and the 5 pure templates, the SED "
        "with that g-z at its redshift (`population._recolour`). Other colours follow from the templates and "
        "are not validated here (the HSC file has only i, g-z and z). HSC's spectroscopic sample is a "
        "compilation of surveys with their own targeting (bright galaxies, luminous red galaxies), not a "
        "complete i ≤ 22.5 sample, so its n(z) and i distributions are not those of a photometric survey; "
        "HSC filters differ slightly from MegaCam's.",
        "",
        "| quantile | 5 % | 25 % | 50 % | 75 % | 95 % |",
        "|---|---|---|---|---|---|",
    ]
    for k in ("z", "i", "g-z"):
        lines += [_row(f"{k} HSC", d[k]["real"], "{:.3f}"), _row(f"{k} mock", d[k]["mock"], "{:.3f}")]
    lines += [
        "",
        f"C2ST AUC on (z, i, g-z): {d['c2st']:.3f} ({d['n_mock']} mock vs {d['n_real']} HSC galaxies). "
        "With HSC resampled to the mock's (z, i) distribution (weights from 2-D histograms, 0.1 in z × 0.5 "
        "in i), which leaves only the colours at fixed redshift and magnitude to tell them apart: "
        f"**{d.get('c2st_at_fixed_z_i', float('nan')):.3f}** ({100 * d.get('hsc_unmatched_frac', float('nan')):.1f} % "
        "of the mock lies in (z, i) cells without HSC galaxies).",
        "",
        "Median g-z in redshift bins (mock / HSC, numbers of galaxies in brackets):",
        "",
        "| z bin | " + " | ".join(f"{b['z'][0]:.2f}–{b['z'][1]:.2f}" for b in d.get("gz_vs_z", [])) + " |",
        "|---|" + "---|" * len(d.get("gz_vs_z", [])),
        "| g-z | " + " | ".join(f"{b['median'][0]:.2f} / {b['median'][1]:.2f} ({b['n'][0]} / {b['n'][1]})"
                               for b in d.get("gz_vs_z", [])) + " |",
        "",
        "The marginal distributions differ as the targeting predicts: the spectroscopic sample is dominated by "
        f"bright targets (median i {d['i']['real'][2]:.1f} against the mock's {d['i']['mock'][2]:.1f}, which "
        "follows the galaxy counts); the red, luminous galaxies BOSS targeted at 0.3 < z < 0.7 make HSC's g-z "
        "redder there. At fixed (z, i) the AUC above measures the colour model itself; it is near 0.5 "
        "because g-z is drawn from a fit to HSC (on the other half of it), so it tests that the SED step "
        "reproduces the drawn colours and that the mixture generalises, not the physics of the deep "
        "population. Before the colour step (SkyPy's published mixtures alone) the mock's median g-z was "
        "0.3-0.9 mag bluer than HSC's at z < 0.75 and the overall AUC 0.815.",
        "",
        "![deep mock vs HSC](realism_deep.png)",
        "",
    ]
    return lines


def _ok(ratio, tol) -> str:
    return "pass" if abs(ratio - 1) <= tol else "**miss**"


def _cells(values, fmt="{:.4f}"):
    return " | ".join(fmt.format(v) for v in values)


def pixel_section(px, command, sdss=None) -> list[str]:
    """Sky sigma and PSF of the sdss and legacy presets against real pixels; optimal flux errors."""
    sd, lg, fe = px["sdss"], px["legacy"], px["flux_errors"]
    cal = sd["calibration"]
    sky_tol, psf_tol = px.get("targets", {}).get("sky", 0.2), px.get("targets", {}).get("psf", 0.1)
    lines = [
        "## Pixel noise and PSF against real pixels (issue 11)",
        "",
        *_produced(command),
        "Targets: sky σ per band within ±20 % of real, PSF FWHM medians within 10 %. Every statistic is measured "
        "the same way on mock and real pixels (robust σ = 1.4826 MAD; PSF widths by "
        "`deepdip.simulate.rendering.psf_widths`: the half-maximum FWHM of the image interpolated 8x, and the "
        "effective width, the FWHM of the Gaussian of equal noise-equivalent area, which is how SDSS defines its "
        "`psf_width`). Calibration and validation data are kept apart as stated per survey. The method and the "
        "sources are in `benchmarks/realism/pixels.py`; the calibrated numbers, with their provenance, in "
        "`src/deepdip/surveys/sdss.json` and `legacy.json`.",
        "",
        "### SDSS: the frame data model at SDSS's published sky and seeing",
        "",
        "**Calibration.** Per pixel σ² = sky × calibration / gain + dark variance × calibration² (the SDSS frame "
        "data model's `dn_err = sqrt(dn/gain + darkVariance)`, in nanomaggies). Gain and dark variance: psField "
        "HDU 6 of run 2583, camcol 2, field 136; calibration: that frame's calibvec (HDU 1). Sky: SDSS's published "
        "r-band distribution (DR7 \"Seeing and sky brightness\": quartiles 20.70 / 20.86 / 21.03 mag/arcsec² over "
        "the DR1 fields), one Gaussian offset per cutout for all bands (σ = 0.245 mag), the other bands at this "
        "field's sky colours. PSF: the published r-band `psf_width` quartiles (1.58 / 1.43 / 1.30\"), other bands "
        "by FWHM ∝ λ^-0.3 (Xin et al. 2018) except z (this field's z/i ratio), rendered as a Kolmogorov profile "
        "of the same effective width, one log-normal seeing factor per cutout (σ_ln = 0.145).",
        "",
        "| band | u | g | r | i | z |",
        "|---|---|---|---|---|---|",
        "| median sky (mag/arcsec²) | " + _cells(cal["sky_mag_arcsec2"], "{:.2f}") + " |",
        "| this field's sky (mag/arcsec²) | " + _cells(cal["field"]["sky_mag_arcsec2"], "{:.2f}") + " |",
        "| gain (e-/count), dark variance (count²) | "
        + " | ".join(f"{g:.3f}, {d:.2f}" for g, d in zip(cal["field"]["gain"], cal["field"]["dark_variance"])) + " |",
        "| calibration (nmgy/count) | " + _cells(cal["field"]["calib"], "{:.5f}") + " |",
        "| model σ at the median sky (nmgy) | " + _cells(sd["model_median"]) + " |",
        "| median psf_width (\", effective) | " + _cells(cal["psf_width_median"], "{:.3f}") + " |",
        "| Kolmogorov FWHM rendered (\") | " + _cells(cal["psf_fwhm"], "{:.3f}") + " |",
        "",
        f"The preset holds exactly these numbers: {all(sd['preset_matches_calibration'].values())} "
        "(`preset_matches_calibration`).",
        "",
        "**Validation 1: the noise model on the real field.** The model at the field's own sky against the σ "
        "of its blank sky: robust σ of the 4-px border of 64 × 64 patches on a 100-px grid of each frame "
        "(the statistic the photometry uses on stamps), 25th percentile over the patches (patches with sources "
        "have larger σ: the median is given too). The mock at the same sky, measured the same way (25th "
        "percentile over mock stamps of the border σ), closes the loop through the renderer.",
        "",
        "| band | u | g | r | i | z |",
        "|---|---|---|---|---|---|",
        "| real frame, blank σ (nmgy) | " + _cells(sd["field_blank_p25"]) + " |",
        "| real frame, median patch σ | " + _cells(sd["field_blank_median"]) + " |",
        "| noise model at the field's sky | " + _cells(sd["field_model"]) + " |",
        "| model / real | " + _cells(np.array(sd["field_model"]) / np.array(sd["field_blank_p25"]), "{:.2f}") + " |",
        "| mock at the field's sky, border σ p25 | " + _cells(sd["mock_field_p25"]) + " |",
        "| mock / real | " + _cells(sd["ratio_field"], "{:.2f}") + " |",
        "",
        "**Validation 2 (the target): the mock at SDSS's median sky** against the frame's blank σ carried to "
        "the median sky by the noise model (σ_real × σ_model(median) / σ_model(field); this field's sky is "
        f"{10 ** (-0.4 * (cal['field']['sky_mag_arcsec2'][2] - cal['sky_mag_arcsec2'][2])):.2f}x the median in "
        "every band, since the model takes its sky colours from it).",
        "",
        "| band | mock σ (median sky) | real σ at the median sky | mock / real | target ±20 % |",
        "|---|---|---|---|---|",
    ]
    for b, band in enumerate(BANDS):
        r = sd["ratio_median"][b]
        lines.append(f"| {band} | {sd['mock_median_p25'][b]:.4f} | {sd['real_at_median'][b]:.4f} | {r:.2f} | "
                     f"{_ok(r, sky_tol)} |")
    ps = sd["psf"]
    lines += [
        "",
        "Before this calibration the mock's pixel noise was 0.46 (u), 0.70 (g), 0.69 (r), 0.62 (i), 0.46 (z) times "
        "this frame's. The mock's noise-only residual (noisy − noiseless image) has the model σ exactly (median "
        + _cells(sd["mock_median_noise_only"]) + " nmgy).",
        "",
        "**PSF.** Effective width of the rendered mock PSF at the median seeing against SDSS's median `psf_width` "
        "(r published; the other bands derived, see above), and half-maximum FWHM against the real PSF's: the "
        "field's KL PSF (psField HDU 1-5, at the frame centre) has FWHM / psf_width = "
        + ", ".join(f"{b} {f / w:.2f}" for b, f, w in zip(BANDS, ps["field_kl_fwhm"], ps["field_psf_width"]))
        + " (a sharper core and broader wings than a Kolmogorov profile, whose ratio is ~0.89), which carries "
        "the median psf_width to a real median FWHM. The KL PSF's own effective width is "
        + ", ".join(f"{e / w:.2f}" for e, w in zip(ps["field_kl_effective"], ps["field_psf_width"]))
        + "x its psf_width (ugriz): the definition holds to a few per cent.",
        "",
        "| band | SDSS psf_width | mock effective width | ratio | real FWHM (at the median) | mock FWHM | ratio | "
        "target 10 % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b, band in enumerate(BANDS):
        r1 = ps["mock_effective"][b] / ps["published_width_median"][b]
        r2 = ps["mock_fwhm"][b] / ps["real_fwhm_at_median"][b]
        lines.append(f"| {band} | {ps['published_width_median'][b]:.3f} | {ps['mock_effective'][b]:.3f} | {r1:.3f} | "
                     f"{ps['real_fwhm_at_median'][b]:.3f} | {ps['mock_fwhm'][b]:.3f} | {r2:.2f} | "
                     f"{_ok(r1, psf_tol) if abs(r1 - 1) > abs(r2 - 1) else _ok(r2, psf_tol)} |")
    sq = sd["sky_r_quartiles"]
    lines += [
        "",
        "Distributions over the mock cutouts, r band, against the published quartiles: effective width "
        + " / ".join(f"{v:.3f}" for v in ps["mock_r_effective_quartiles"]) + "\" (published "
        + " / ".join(f"{v:.2f}" for v in ps["published_r_quartiles"]) + "\"); sky "
        + " / ".join(f"{v:.2f}" for v in sq["mock"]) + " mag/arcsec² (published "
        + " / ".join(f"{v:.2f}" for v in sq["published"]) + ").",
        "",
        "Caveats: gain, dark variance and calibration are one camcol's (2): the six camcols differ by tens of per "
        "cent in gain and dark variance, and the calibration changes with airmass. The sky colours are one field's, "
        "lit partly by the unresolved light of M2; the commonly quoted medians (u 22.1, g 21.8, r 21.0, i 20.3, "
        "z 18.9, not found in a primary source) give the same colours within 0.2 mag. The z-band PSF width rests on "
        "one field. The real PSF is not Kolmogorov (see the FWHM/width ratios): matching the effective width "
        "leaves the half-maximum FWHM 2-7 % off.",
        "",
        "### Legacy: DR10 cutouts (Tractor residuals, psfsize)",
        "",
        "Real: the 100 cutouts of `legacy_dr10_piczl` (train file, Stripe 82, then run file, Dec −32: two regions "
        "of different depth and seeing). **Rows with an even index calibrate, odd rows validate.** Sky σ: robust σ "
        "of the Tractor residual (image − model) on the border of the 23 × 23 stamp (|dx| or |dy| ≥ 9 px), times "
        "`mw_transmission` (the cutouts are extinction-corrected, mock pixels are not). Mock: "
        f"{lg['mock']['n']} galaxies of the `legacy` preset, noise-only residual (the noisy image minus the same "
        "image without noise: the Tractor residual's counterpart without model errors), central 23 × 23 crop, "
        "same border. The mock draws one depth factor per cutout (log-normal, σ_ln "
        f"{lg['calibration']['sky_sigma_scatter']:.3f}, the calibration half's spread) and one seeing factor "
        "(per-band σ_ln from psfsize).",
        "",
        "| band | real σ, calibration | real σ, validation | mock σ | mock / validation | target ±20 % | "
        "log-spread real / mock |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, band in enumerate("griz"):
        r = lg["ratio_sky"][b]
        lines.append(f"| {band} | {lg['real_cal']['sky_sigma'][b]:.5f} | {lg['real_val']['sky_sigma'][b]:.5f} | "
                     f"{lg['mock']['sky_sigma'][b]:.5f} | {r:.2f} | {_ok(r, sky_tol)} | "
                     f"{lg['real_val']['sky_sigma_log_spread'][b]:.2f} / {lg['mock']['sky_sigma_log_spread'][b]:.2f} |")
    lines += [
        "",
        "| band | psfsize, calibration | psfsize, validation | mock FWHM (median) | ratio | real PSF stamp FWHM "
        "(validation) | mock PSF FWHM, same measure | ratio | target 10 % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b, band in enumerate("griz"):
        r1, r2 = lg["ratio_psf"][b], lg["ratio_psf_stamp"][b]
        lines.append(f"| {band} | {lg['real_cal']['psfsize'][b]:.3f} | {lg['real_val']['psfsize'][b]:.3f} | "
                     f"{lg['mock']['psf_fwhm'][b]:.3f} | {r1:.3f} | {lg['real_val']['psf_stamp_fwhm'][b]:.3f} | "
                     f"{lg['mock']['psf_stamp_fwhm'][b]:.3f} | {r2:.3f} | "
                     f"{_ok(max(r1, r2, key=lambda x: abs(x - 1)), psf_tol)} |")
    lines += [
        "",
        "Before: the preset's sky σ was the robust σ of the *images'* border (galaxy light included): "
        "2.7-4.3x the residuals. On the image itself (not a noise statistic: it holds each galaxy's wings and "
        "neighbours), validation half vs mock: "
        + ", ".join(f"{b} {r:.4f} / {m:.4f}" for b, r, m in
                    zip("griz", lg["real_val"]["image_border_sigma"], lg["mock"]["image_border_sigma"]))
        + ". The source's Poisson term (`poisson_var_per_nmgy`) is not calibrated: the cutouts carry no gain or "
        "sky level; the preset's value is the order of magnitude of a sky-limited coadd (the former 0.0002 made "
        "the mock's border noise ~10 % higher). `legacy-23` is the same preset on the real 23 × 23 stamps.",
        "",
        "### Flux errors on the new pixels: model-fit against Kron",
        "",
        "Median relative flux error in the real validation half's flux quintiles. Real: `MODELFLUX_IVAR` of "
        "`sdss_main_gst10k`. Mock (new pixels, sky drawn per cutout): the error of an optimally weighted flux, "
        "σ_F⁻² = Σ t² / σ², with the galaxy's true noiseless profile t as template and each pixel's variance σ² "
        "(sky + dark + the galaxy's Poisson noise) — what a model-fit photometry reaches"
        + (", and the measured Kron aperture errors of the catalogue section" if sdss else "") + ".",
        "",
        "| band | quintile 1 (faint) | 2 | 3 | 4 | 5 (bright) |",
        "|---|---|---|---|---|---|",
    ]
    kron = _kron_over_real(sdss) if sdss else None
    measured = _measured_over_real(sdss) if sdss and "mock_kron" in sdss["flux_error"] else None
    for b, band in enumerate(BANDS):
        q = fe["quintiles"][b]
        cells = [f"{r:.4f} / {m:.4f} ({m / r:.2f}x)" for r, m in zip(q["real"], q["mock_optimal"])]
        lines.append(f"| {band}: real / optimal | " + " | ".join(cells) + " |")
        if kron is not None:
            lines.append(f"| {band}: Kron / real | " + " | ".join(f"{k:.2f}x" for k in kron[b]) + " |")
        if measured is not None:
            lines.append(f"| {band}: model fit / real | " + " | ".join(f"{k:.2f}x" for k in measured[b]) + " |")
    opt = np.array([np.array(q["mock_optimal"]) / np.array(q["real"]) for q in fe["quintiles"]])
    lines += [
        "",
        f"Optimal errors on the new pixels are {np.nanmin(opt):.2f}-{np.nanmax(opt):.2f}x the real model-flux errors "
        "(lower for bright galaxies, where real model fits carry profile mismatch the true template does not). "
        + (f"Kron apertures on the same pixels give {np.nanmin(kron):.2f}-{np.nanmax(kron):.2f}x. "
           if kron is not None else "")
        + (f"The model fits of the catalogue (`deepdip.photometry.model_fluxes`) reach "
           f"{np.nanmin(measured):.2f}-{np.nanmax(measured):.2f}x. " if measured is not None else "")
        + "What changed: the catalogue's flux-error relation used to be matched by making the pixels too clean; "
        "now the pixels are right, and the sdss catalogue is measured the way SDSS's is, by model fits "
        "(`catalogue_photometry` in the preset; Kron apertures kept as `flux_kron_<band>`).",
        "",
    ]
    return lines
