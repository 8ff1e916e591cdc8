"""Galaxy populations: redshift, SED (kcorrect coefficients), magnitudes, morphology, mass, SFR.

Two models, chosen by the preset's ``population.model``:

``gmm``  (sdss) — the density learned from real SDSS galaxies (``calibrate.py``): sample
         (z, r, ugriz colours), turn them into template coefficients by non-negative least squares
         so that the SED, and thus fluxes in any other filter, stellar mass and SFR, follow.
         Valid where the real sample is: z < ~0.35, r < 17.8.
``skypy`` (deep presets) — SkyPy's blue + red Schechter luminosity functions (Herbel et al. 2017
         parameters, SkyPy's example configuration) with Dirichlet template mixtures; with a
         ``colour_file``, each galaxy then takes, from the block's pool of SEDs, the one whose
         HSC g-z matches a g-z drawn from real HSC galaxies at its z and i (``calibrate.py``).
         ``M_star_z_max`` stops M*(z) brightening beyond a redshift; the deep presets calibrate it,
         the blue faint-end slope and the amplitudes on deep-field counts and n(z)
         (``benchmarks/deep_calibration.py``, docs/deep.md). :func:`draw_area` draws every galaxy
         of a sky area, for counts per deg^2.

Both then draw sizes (Shen et al. 2003; times ((1 + z) / 1.1)^-beta with a preset's
``morphology.size_evolution_beta``), bulge fractions, inclinations and Galactic E(B-V), and
split each galaxy's coefficients into a red bulge, a bluer disk and young knots
(:mod:`deepdip.simulate.structure`) that add up to its fluxes.
All randomness comes from the ``rng`` given, so a block of galaxies is reproducible. Everything
slow to set up (template tables, distances, filter constants) is computed once by :func:`prepare`
in the parent process and handed to the workers, which then need neither astropy nor speclite.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.optimize import nnls

from deepdip.errors import DeepdipError
from deepdip.extinction import extinction_coefficients
from deepdip.simulate import reddening, rendering, structure
from deepdip.simulate.templates import TemplateTable, cosmology, template_properties, template_table

ZMIN = 0.01  # below this, distances (and the real sample) are meaningless for photo-z
EARLY_UR = 2.22  # rest-frame u-r separating early from late types (Strateva et al. 2001)
MAX_ROUNDS = 50  # oversampling rounds before a selection is declared (nearly) empty
YEAR_300MYR = 3.0e8  # yr: the window of the kcorrect ``mass300`` column, used for the SFR
SHEN03_Z = 0.1  # typical redshift of the SDSS galaxies of the Shen et al. (2003) size relations
DRAW_PIECE = 200  # selected galaxies per piece of a draw_area (as pipeline.BLOCK_SIZE)


def prepare(survey) -> dict:
    """Precompute what sampling and rendering ``survey`` need (seconds; done once per run).

    Keys: ``survey`` (template table through the survey's filters), ``calib`` (through the
    calibration filters of a ``gmm`` population), the template constants of
    :func:`~deepdip.simulate.templates.template_properties`, ``kpc_per_arcsec`` (redshift grid,
    values), ``ext_coeffs`` (A_band / E(B-V)), ``wave_eff`` (effective wavelengths, Angstrom)
    and ``render`` (the renderer's Fourier constants).
    """
    from deepdip.filters import effective_wavelengths

    zmax = float(survey.zmax) * 1.05 + 0.05
    ctx = {"survey": template_table(tuple(survey.filters), zmax), **template_properties()}
    pop = survey.get("population", {})
    if pop.get("model") == "gmm":
        ctx["calib"] = template_table(tuple(_gmm_params(pop["file"])["filters"]), zmax)
    if pop.get("colour_file"):
        ctx["colour"] = template_table(tuple(_gmm_params(pop["colour_file"])["filters"]), zmax)
    z = np.linspace(1e-3, zmax, 1000)
    ctx["kpc_per_arcsec"] = (z, cosmology().angular_diameter_distance(z).to_value("kpc") / 206264.806)
    ctx["ext_coeffs"] = extinction_coefficients(survey.filters)
    ctx["wave_eff"] = effective_wavelengths(survey.filters)
    ctx["render"] = rendering.transforms()
    return ctx


def sample_population(survey, n: int, rng: np.random.Generator, ctx: dict) -> dict:
    """Sample ``n`` galaxies passing the survey selection (``mag_limit_band`` at most ``mag_limit`` and, if
    the preset sets ``mag_bright_limit``, fainter than it; ``zmin <= z < zmax``).

    Returns a dict of 1-D arrays (``z``, ``mag_<band>`` without Galactic extinction,
    ``abs_mag_r`` and ``rest_u_r`` (rest-frame SDSS, AB), ``stellar_mass`` [Msun],
    ``sfr`` [Msun/yr, last 300 Myr], ``is_early``, ``hlr`` (disk half-light radius, arcsec),
    ``bulge_frac``, ``q_disk``, ``q_bulge``, ``pa`` [deg], ``ebv``; the colour structure of
    :func:`deepdip.simulate.structure.columns`: ``bulge_share_<band>`` and ``knot_share_<band>``,
    the bulge's and the knots' shares of each band's flux, ``bulge_rest_u_r``, ``disk_rest_u_r``)
    plus ``flux`` [n, B] (nanomaggies, extinction applied, what the telescope receives).
    """
    pop = survey.get("population", {"model": "skypy"})
    sampler = {"gmm": _sample_gmm, "skypy": _sample_skypy}.get(pop.get("model"))
    if sampler is None:
        raise DeepdipError(f"survey {survey.name!r}: unknown population model {pop.get('model')!r}")
    limit_band = survey.bands.index(survey["mag_limit_band"])
    zp = float(survey["zero_point"])
    bright = survey.get("mag_bright_limit")
    parts, have = [], 0
    for _ in range(MAX_ROUNDS):  # oversample, select, repeat until enough
        z, coeffs, flux = sampler(survey, pop, max(2 * (n - have), 64), rng, ctx)
        mag = zp - 2.5 * np.log10(np.maximum(flux[:, limit_band], 1e-30))
        keep = (mag <= survey["mag_limit"]) & (z >= max(ZMIN, survey.zmin)) & (z < survey.zmax)
        if bright is not None:  # a generator drawing only the faint end (issue 13's gap)
            keep &= mag > bright
        parts.append((z[keep], coeffs[keep], flux[keep]))
        have += int(keep.sum())
        if have >= n:
            break
    else:
        raise DeepdipError(f"survey {survey.name!r}: too few galaxies pass its selection "
                           f"({'' if bright is None else f'{bright} < '}{survey['mag_limit_band']} <= "
                           f"{survey['mag_limit']}, {survey.zmin} <= z < {survey.zmax})")
    z, coeffs, flux = (np.concatenate(p)[:n] for p in zip(*parts))
    out = _galaxy_columns(survey, z, coeffs, flux, rng, ctx)
    out.update(structure.columns(survey, coeffs, z, out["bulge_frac"], ctx))  # bulge, disk, knot SEDs
    out["ebv"] = reddening.sample_ebv(survey, n, rng)
    out["flux"] = flux * reddening.transmission(ctx["ext_coeffs"], out["ebv"])
    return out


# --- gmm: the density learned from real SDSS galaxies -------------------------------------------

def population_file(name: str):
    """The population data file a preset names: an absolute path (a preset file's own mixture, made
    absolute by :func:`deepdip.surveys.load_survey`), else a file shipped in ``deepdip/data``."""
    from pathlib import Path

    path = Path(name)
    if path.is_absolute():
        if not path.is_file():
            raise DeepdipError(f"population file {path} does not exist")
        return path
    res = resources.files("deepdip") / "data" / name
    if not res.is_file():
        raise DeepdipError(f"population file {name!r} is neither shipped with deepdip nor an existing path")
    return res


def population_digest(survey) -> str | None:
    """SHA-256 of the population data file a preset samples from (recorded in mock provenance)."""
    name = survey.get("population", {}).get("file")
    if not name:
        return None
    import hashlib

    return hashlib.sha256(population_file(name).read_bytes()).hexdigest()


@lru_cache(maxsize=4)
def _gmm_params(name: str) -> dict:
    return gmm_from_dict(json.loads(population_file(name).read_text()))


def gmm_from_dict(p: dict) -> dict:
    """A population mixture as stored (JSON lists) -> arrays, with Cholesky factors and normalised weights."""
    p = dict(p)
    p["covariances"] = np.asarray(p["covariances"])
    p["chol"] = np.linalg.cholesky(p["covariances"])
    p["means"] = np.asarray(p["means"])
    p["weights"] = np.asarray(p["weights"]) / np.sum(p["weights"])
    return p


def _sample_gmm(survey, pop, n, rng, ctx):
    p = _gmm_params(pop["file"])
    comp = rng.choice(len(p["weights"]), size=n, p=p["weights"])
    x = p["means"][comp] + np.einsum("nij,nj->ni", p["chol"][comp], rng.standard_normal((n, 6)))
    z, r, colours = x[:, 0], x[:, 1], x[:, 2:]
    ok = z > 1e-3
    z, r, colours = z[ok], r[ok], colours[ok]
    # ugriz magnitudes from r and adjacent colours
    mag = np.empty((len(z), 5))
    mag[:, 2] = r
    mag[:, 1] = r + colours[:, 1]
    mag[:, 0] = mag[:, 1] + colours[:, 0]
    mag[:, 3] = r - colours[:, 2]
    mag[:, 4] = mag[:, 3] - colours[:, 3]
    calib_flux = 10 ** (-0.4 * (mag - 22.5))  # nanomaggies
    coeffs = fit_coefficients(calib_flux * 1e-9, z, ctx["calib"])
    flux = ctx["survey"].fluxes(coeffs, z) * 1e9
    # in the calibration filters keep the sampled fluxes: the templates miss ~0.05 mag in u
    calib = list(p["filters"])
    for b, f in enumerate(survey.filters):
        if f in calib:
            flux[:, b] = calib_flux[:, calib.index(f)]
    return z, coeffs, flux


def fit_coefficients(maggies: np.ndarray, z: np.ndarray, table: TemplateTable,
                     rel_err: float = 0.02) -> np.ndarray:
    """Non-negative template coefficients [n, 5] (Msun formed) reproducing ``maggies`` [n, nf].

    Each band is weighted by a relative error ``rel_err`` so that every band counts alike.
    """
    t = table.maggies(z)  # [n, 5, nf]
    coeffs = np.empty((len(z), t.shape[1]))
    for k in range(len(z)):
        a = (t[k] / (rel_err * maggies[k])).T  # [nf, 5], rows weighted by 1 / error
        norm = np.linalg.norm(a, axis=0)  # unit columns: NNLS converges on well-scaled problems
        coeffs[k] = nnls(a / norm, np.full(len(a), 1.0 / rel_err), maxiter=50 * a.shape[1])[0] / norm
    return coeffs


# --- skypy: Schechter luminosity functions + Dirichlet SED mixtures ------------------------------

def draw_area(survey, area_deg2: float, rng: np.random.Generator, ctx: dict) -> dict:
    """Every galaxy of a ``skypy`` population in ``area_deg2`` of sky, before the survey's selection.

    For counts and n(z) against published deep fields (number per deg^2 is ``len / area``):
    ``z``, ``mag_<band>`` (no Galactic extinction), ``abs_mag_B`` (rest-frame Bessell B, the
    band of the luminosity functions) and the population's physical and morphological columns.
    """
    pop = survey.get("population", {})
    if pop.get("model") != "skypy":
        raise DeepdipError(f"survey {survey.name!r}: draw_area needs a skypy population (counts per area)")
    # in pieces the size of a simulation block's first draw: the recolouring's SED pool (and its
    # cost, quadratic in the pool) is then the one the simulator uses
    pieces = max(1, int(np.ceil(area_deg2 / (pop.get("area_deg2_per_galaxy", 2e-5) * 2 * DRAW_PIECE))))
    parts = [_sample_skypy(survey, pop, 0, rng, ctx, area_deg2=area_deg2 / pieces) for _ in range(pieces)]
    z, coeffs, flux = (np.concatenate(p) for p in zip(*parts))
    ok = (z >= max(ZMIN, survey.zmin)) & (z < survey.zmax)
    out = _galaxy_columns(survey, z[ok], coeffs[ok], flux[ok], rng, ctx)
    out["abs_mag_B"] = -2.5 * np.log10(coeffs[ok] @ ctx["rest_maggies"][:, 2])
    return out


def _galaxy_columns(survey, z, coeffs, flux, rng, ctx) -> dict:
    """``z``, ``mag_<band>`` (no Galactic extinction), physical truths and morphology of galaxies."""
    zp = float(survey["zero_point"])
    out = {"z": z, **{f"mag_{band}": zp - 2.5 * np.log10(flux[:, b]) for b, band in enumerate(survey.bands)}}
    out.update(_physical(coeffs, ctx))
    out.update(_morphology(survey, z, out["abs_mag_r"], out["is_early"], rng, ctx))
    return out


def _sample_skypy(survey, pop, n, rng, ctx, area_deg2: float | None = None):
    from astropy import units as u
    from astropy.modeling.models import Exponential1D, Linear1D

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skypy imports astropy's deprecated TestRunner
        from skypy.galaxies.luminosity import schechter_lf_magnitude
        from skypy.galaxies.redshift import schechter_lf_redshift
        from skypy.galaxies.spectrum import dirichlet_coefficients

    # SkyPy draws from numpy's global generator: seed it from ours so that a block is
    # reproducible, and give the caller's global state back afterwards
    saved = np.random.get_state()
    np.random.seed(int(rng.integers(2**32)))
    zgrid = np.linspace(max(ZMIN, survey.zmin), survey.zmax, 200)
    zs, cs = [], []
    if area_deg2 is None:
        area_deg2 = pop.get("area_deg2_per_galaxy", 2e-5) * n
    area = area_deg2 * u.deg**2
    try:
        for kind in ("blue", "red"):
            q = pop[kind]
            m_star = Linear1D(*q["M_star"])
            if pop.get("M_star_z_max") is not None:  # M* stops brightening beyond this redshift
                z_stop = float(pop["M_star_z_max"])
                m_star = _frozen_beyond(m_star, z_stop)
            # skypy.galaxies.schechter_lf's two steps (the same draws), so that a small area that
            # holds no galaxy of this kind gives none instead of failing in astropy
            z = schechter_lf_redshift(zgrid, m_star, Exponential1D(*q["phi_star"]), q["alpha"],
                                      pop["m_lim_B"], area, cosmology())
            if len(z) == 0:
                continue
            M = schechter_lf_magnitude(z, m_star, q["alpha"], pop["m_lim_B"], cosmology())
            frac = dirichlet_coefficients(z, np.array(q["alpha0"]), np.array(q["alpha1"]),
                                          weight=np.array(q["weight"]))
            # absolute B magnitude -> mass formed, through the rest-frame Bessell B of each mixture
            unit_mag = -2.5 * np.log10(frac @ ctx["rest_maggies"][:, 2])
            cs.append(frac * 10 ** (-0.4 * (M - unit_mag))[:, None])
            zs.append(z)
    finally:
        np.random.set_state(saved)
    if not zs:
        return np.empty(0), np.empty((0, len(ctx["rest_maggies"]))), np.empty((0, len(survey.bands)))
    z = np.concatenate(zs)
    coeffs = np.concatenate(cs)
    order = rng.permutation(len(z))  # mix blue and red before the caller truncates to n
    z, coeffs = z[order], coeffs[order]
    if pop.get("colour_file"):
        coeffs = _recolour(z, coeffs, _gmm_params(pop["colour_file"]), ctx["colour"], rng)
    return z, coeffs, ctx["survey"].fluxes(coeffs, z) * 1e9


def _frozen_beyond(model, z_stop: float):
    """``model(z)`` up to ``z_stop``, ``model(z_stop)`` beyond (a callable SkyPy accepts for M*)."""
    return lambda z: model(np.minimum(z, z_stop))


def _recolour(z, coeffs, params, table: TemplateTable, rng) -> np.ndarray:
    """Swap each galaxy's SED for the one of the pool (the given SEDs plus the 5 pure templates)
    whose g-z at its redshift is nearest a g-z drawn from ``params`` given its (z, i), keeping
    its i flux. ``table`` holds the g, i, z filters of ``params``."""
    t = table.maggies(z)  # [n, 5, 3]
    i_flux = np.einsum("nt,nt->n", coeffs, t[:, :, 1])
    target = _conditional_draw(params, np.column_stack([z, -2.5 * np.log10(i_flux)]), rng)
    pool = np.vstack([coeffs / coeffs.sum(1, keepdims=True), np.eye(coeffs.shape[1])])
    gz = -2.5 * np.log10(np.einsum("pt,nt->np", pool, t[:, :, 0]) / np.einsum("pt,nt->np", pool, t[:, :, 2]))
    new = pool[np.argmin(np.abs(gz - target[:, None]), axis=1)]
    return new * (i_flux / np.einsum("nt,nt->n", new, t[:, :, 1]))[:, None]


def _conditional_draw(p: dict, cond: np.ndarray, rng) -> np.ndarray:
    """Draw the last feature of a Gaussian mixture given the others (``cond`` [n, d-1])."""
    mu, cov, d = p["means"], p["covariances"], cond.shape[1]
    inv = np.linalg.inv(cov[:, :d, :d])  # [K, d, d]
    diff = cond[:, None, :] - mu[None, :, :d]  # [n, K, d]
    logw = (np.log(p["weights"]) - 0.5 * np.einsum("nki,kij,nkj->nk", diff, inv, diff)
            - 0.5 * np.log(np.linalg.det(cov[:, :d, :d])))
    resp = np.exp(logw - logw.max(1, keepdims=True))
    cum = np.cumsum(resp / resp.sum(1, keepdims=True), axis=1)
    comp = np.minimum((cum < rng.uniform(size=(len(cond), 1))).sum(1), len(mu) - 1)
    gain = np.einsum("ki,kij->kj", cov[:, d, :d], inv)  # [K, d]
    rows = np.arange(len(cond))
    mean = mu[comp, d] + np.einsum("nj,nj->n", gain[comp], diff[rows, comp])
    var = cov[comp, d, d] - np.einsum("nj,nj->n", gain[comp], cov[comp, d, :d])
    return mean + np.sqrt(np.maximum(var, 0)) * rng.standard_normal(len(cond))


# --- physical truth and morphology -------------------------------------------------------------

def _physical(coeffs: np.ndarray, ctx: dict) -> dict:
    """Rest-frame magnitudes, type, stellar mass and SFR of template coefficients."""
    mu, mr = (-2.5 * np.log10(coeffs @ ctx["rest_maggies"][:, :2])).T
    return {
        "abs_mag_r": mr,
        "rest_u_r": mu - mr,
        "is_early": (mu - mr) >= EARLY_UR,
        "stellar_mass": coeffs @ ctx["mremain"],
        "sfr": coeffs @ ctx["mass300"] / YEAR_300MYR,
    }


def _morphology(survey, z, abs_mag_r, is_early, rng, ctx) -> dict:
    """Half-light radii from the Shen et al. (2003) size-luminosity relations, bulge fractions,
    inclinations and position angles."""
    m = survey.get("morphology", {})
    sz = m.get("shen03", {"late": [0.21, 0.53, -1.31, -20.52, 0.48, 0.25],
                          "early": [0.6, 0.6, -4.63, -20.52, 0.48, 0.25]})
    n = len(z)
    r_kpc = np.empty(n)
    for kind, sel in (("early", is_early), ("late", ~is_early)):
        alpha, beta, gamma, m0, s1, s2 = sz[kind]
        mag = abs_mag_r[sel]
        mean = 10 ** (-0.4 * alpha * mag + (beta - alpha) * np.log10(1 + 10 ** (-0.4 * (mag - m0))) + gamma)
        sigma = s2 + (s1 - s2) / (1 + 10 ** (-0.8 * (mag - m0)))
        r_kpc[sel] = mean * rng.lognormal(0.0, sigma)
    # Shen et al. fit SDSS galaxies (median z ~ 0.1); at fixed luminosity galaxies were smaller
    # before, by ((1 + z) / 1.1)^-beta; beta is calibrated per deep preset (0: no evolution)
    beta = float(m.get("size_evolution_beta", 0.0))
    if beta:
        r_kpc = r_kpc * ((1 + z) / (1 + SHEN03_Z)) ** -beta
    kpc_per_arcsec = np.interp(z, *ctx["kpc_per_arcsec"])
    hlr = np.clip(r_kpc / kpc_per_arcsec, 0.15, m.get("max_hlr_arcsec", 8.0))
    beta_ab = m.get("bulge_frac_beta", {"early": [7, 3], "late": [1.2, 6]})
    bt = np.where(is_early, rng.beta(*beta_ab["early"], n), rng.beta(*beta_ab["late"], n))
    # thin disks seen at random inclination (intrinsic thickness q0)
    q0 = m.get("disk_q0", 0.15)
    cosi = rng.uniform(0, 1, n)
    q_disk = np.sqrt(cosi**2 * (1 - q0**2) + q0**2)
    q_bulge = rng.uniform(0.6, 1.0, n)
    return {"hlr": hlr, "bulge_frac": bt, "q_disk": q_disk, "q_bulge": q_bulge,
            "pa": rng.uniform(0, 180, n)}
