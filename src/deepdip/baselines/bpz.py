"""Template fitting with BPZ (Benitez 2000; the LSST DESC ``desc-bpz`` package).

The CWW+SB template set shipped with ``desc-bpz`` (``CWWSB4.list``: El, Sbc, Scd, Im, SB3, SB2 and
two young SSPs; ``templates='cwwsb4'``, the default) or the 31 COSMOS templates RAIL ships
(``COSMOS_seds.list``: Polletta et al. 2007 + BC03, Ilbert et al. 2009; ``templates='cosmos'``, needs
``pip install deepdip[rail]``) is integrated through the survey's own filter curves
(:mod:`deepdip.filters`: speclite names, or ``rail:<curve>`` for RAIL's Roman, LSSTCam, ... curves)
with ``desc_bpz.bpz_tools_py3.ABflux``; each galaxy's likelihood over (z, template) comes from
``p_c_z_t`` and the magnitude-dependent prior from ``desc_bpz.prior_from_dict.prior_function``, as
in RAIL's ``BPZliteEstimator``. As in classic BPZ (``INTERP``), templates are also interpolated
linearly between neighbours.

Two standard calibrations use the training spec-z when there are any: per-band zero-point
offsets (BPZ's ``ZP_OFFSETS``), and the prior's parameters fitted to the training galaxies in
Benitez's functional form (RAIL's ``BPZliteInformer``). The HDF-N prior of Benitez (2000) is
calibrated on I = 20-28 galaxies and misplaces bright SDSS ones (see docs/baselines-real-sdss.md).

Fluxes are scaled from nanomaggies to maggies because ``p_c_z_t`` treats any error above 1 as
"band not observed".
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from deepdip.baselines.base import CatalogueBaseline
from deepdip.baselines.bpz_prior import BROAD_TYPES, HDFN_PRIOR, broad_type, fit_prior
from deepdip.baselines.params import SHARED_PARAMS, Param
from deepdip.errors import DeepdipValueError
from deepdip.photometry.units import flux_to_mag

#: Template sets: where the SEDs come from, their ``.list`` file, and how many templates of each
#: broad type (E/S0, spiral, Im/SB) they hold in order, for the prior (the ``nt_array`` of RAIL's
#: ``CWW_HDFN_prior.pkl`` and ``COSMOS31_HDFN_prior.pkl``). RAIL's copy of CWWSB4 is byte-identical
#: to desc_bpz's, so ``cwwsb4`` reads desc_bpz's (a required dependency).
TEMPLATE_SETS = {
    "cwwsb4": ("desc_bpz", "CWWSB4.list", BROAD_TYPES),
    "cosmos": ("rail", "COSMOS_seds.list", (10, 5, 16)),
}
TEMPLATE_LIST = TEMPLATE_SETS["cwwsb4"][1]
NOT_OBSERVED_ERR = 1e108  # BPZ's convention: zero flux with a huge error gives a flat likelihood
F814W = 8140.0  # Angstrom: the HDFN prior is a function of the I814 magnitude
CALIBRATION_MAX = 5000  # training galaxies used for zero points and the trained prior


class BPZBaseline(CatalogueBaseline):
    """BPZ: chi^2 likelihood over SED templates x a Benitez-form prior, marginalised over type.

    Training spec-z are optional: with them (the default) the zero points and the prior are fitted
    to the training galaxies; without them the HDF-N prior and no offsets are used
    (``prior_used_`` says which).
    """

    name = "bpz"
    uses_training_redshifts = False
    min_train = 0  # templates fit without training galaxies (HDF-N prior, no zero-point offsets)
    PARAMS = {
        **SHARED_PARAMS,
        "prior": Param(str, "trained", "redshift-type prior: 'trained' (Benitez's form fitted to the training "
                       "spec-z, as RAIL's BPZliteInformer), 'hdfn' (Benitez 2000 HDF-N values) or 'flat'",
                       choices=("trained", "hdfn", "flat")),
        "calibrate": Param(int, 1, "1 = fit per-band zero-point offsets on the training spec-z (BPZ's ZP_OFFSETS), "
                           "0 = off", choices=(0, 1)),
        "prior_band": Param(str, None, "band whose magnitude feeds the prior (default: the one nearest I814)",
                            band=True),
        "interp": Param(int, 2, "templates interpolated between each adjacent pair (BPZ's INTERP)", minimum=0),
        "err_floor": Param(float, 0.05, "fractional flux error added in quadrature: template mismatch and zero points",
                           minimum=0.0),
        "templates": Param(str, "cwwsb4", "SED template set: 'cwwsb4' (CWW+SB, 8 templates, from desc-bpz) or "
                           "'cosmos' (31 COSMOS templates, from RAIL: pip install deepdip[rail])",
                           choices=tuple(TEMPLATE_SETS)),
        "madau": Param(str, "no", "'yes' to apply Madau (1995) IGM absorption to the templates (only matters at z > 2)",
                       choices=("yes", "no")),
    }

    def _extra_columns(self, store) -> list[str]:
        return []  # templates predict fluxes only: sizes and other extra features have no place in chi^2

    def _fit(self, phot, z_spec):
        s = self.settings
        base = template_fluxes(tuple(phot.filters), s["madau"], s["templates"])  # [nz_ab, nt, nf], desc_bpz's z
        self.broad_types_ = tuple(TEMPLATE_SETS[s["templates"]][2])
        z_ab = np.arange(0.0, 12.0, 0.01)[: base.shape[0]]
        centres = self.zgrid_.centres
        grid = np.stack([[np.interp(centres, z_ab, base[:, t, f]) for f in range(base.shape[2])]
                         for t in range(base.shape[1])])  # [nt, nf, nz]
        self.flux_templates_ = _interpolate_types(grid.transpose(2, 0, 1), s["interp"])  # [nz, nti, nf]
        self.n_templates_ = self.flux_templates_.shape[1]
        band = s["prior_band"]
        if band is None:
            from deepdip.filters import effective_wavelengths

            eff = effective_wavelengths(phot.filters)
            band = phot.bands[int(np.argmin(np.abs(np.array(eff) - F814W)))]
        self.prior_band_ = band
        self.zp_offsets_ = np.ones(len(phot.bands))
        self.prior_params_ = dict(HDFN_PRIOR)
        self.prior_used_ = "flat" if s["prior"] == "flat" else "hdfn"
        known = np.isfinite(z_spec) & (z_spec >= self.zgrid_.zmin) & (z_spec < self.zgrid_.zmax)
        if known.sum() >= 50 and (s["calibrate"] or s["prior"] == "trained"):
            sel = np.flatnonzero(known)
            sel = np.random.default_rng(s["seed"]).choice(sel, min(len(sel), CALIBRATION_MAX), replace=False)
            sub = phot.subset(np.sort(sel))
            zs = z_spec[np.sort(sel)]
            if s["calibrate"]:
                self.zp_offsets_ = self._fit_zero_points(sub, zs)
            if s["prior"] == "trained":
                flux, err = self._fluxes(sub)
                types = broad_type(self._best_template(flux, err, zs, base_only=True), self.broad_types_)
                self.prior_params_ = fit_prior(_mag(flux[:, sub.bands.index(band)]), zs, types)
                self.prior_used_ = "trained"

    # ---------------------------------------------------------------- calibration on training spec-z
    def _fluxes(self, phot):
        """Dereddened fluxes in maggies with the error floor; unobserved bands -> 0 +- 1e108."""
        flux, err = phot.dereddened()
        flux, err = flux * 1e-9 / self.zp_offsets_, err * 1e-9 / self.zp_offsets_  # nmgy -> maggies
        err = np.sqrt(err**2 + (self.settings["err_floor"] * np.abs(flux)) ** 2)
        unobserved = ~np.isfinite(flux)
        return np.where(unobserved, 0.0, flux), np.where(unobserved, NOT_OBSERVED_ERR, err)

    def _best_template(self, flux, err, z, base_only=False):
        """Index of the best-fitting template at each galaxy's spec-z, and its scaled model fluxes."""
        step = self.settings["interp"] + 1 if base_only else 1
        models = self.flux_templates_[self.zgrid_.bin_index(z)][:, ::step, :]  # [n, nt, nf]
        w = 1.0 / err**2
        amp = np.einsum("ntf,nf->nt", models, flux * w) / np.maximum(np.einsum("ntf,nf->nt", models**2, w), 1e-300)
        chi2 = np.einsum("ntf,nf->nt", (flux[:, None, :] - amp[:, :, None] * models) ** 2, w)
        best = np.argmin(chi2, axis=1)
        rows = np.arange(len(z))
        return (best, amp[rows, best][:, None] * models[rows, best]) if not base_only else best

    def _fit_zero_points(self, phot, z):
        """Multiplicative offsets per band: median observed / best-model flux at spec-z, iterated."""
        for _ in range(3):
            flux, err = self._fluxes(phot)
            _, model = self._best_template(flux, err, z)
            ok = (err < 1.0) & (model > 0) & (flux > 0)
            ratio = np.array([np.median(flux[ok[:, j], j] / model[ok[:, j], j]) if ok[:, j].sum() > 10 else 1.0
                              for j in range(flux.shape[1])])
            self.zp_offsets_ = self.zp_offsets_ * ratio
        return self.zp_offsets_

    def _predict(self, phot):
        from desc_bpz.bpz_tools_py3 import p_c_z_t
        from desc_bpz.prior_from_dict import prior_function

        flux, err = self._fluxes(phot)
        mag = _prior_magnitudes(flux, phot.observed, phot.bands.index(self.prior_band_))
        z = self.zgrid_.centres
        prior = self.prior_params_
        n_base = sum(self.broad_types_)
        out = np.zeros((len(phot), self.zgrid_.nbins))
        priors = {}
        s = self.settings
        for i in range(len(phot)):
            like = p_c_z_t(flux[i], err[i], self.flux_templates_).likelihood  # [nz, nti]
            if s["prior"] != "flat":
                m = round(float(np.clip(mag[i], prior["mo"], 32.0)), 1)  # BPZ caches priors per 0.1 mag
                if m not in priors:
                    p = prior_function(z, m, {**prior, "nt_array": list(self.broad_types_)}, n_base)
                    p = np.maximum(p, 0.0)  # beyond the fitted magnitudes the last type's share may go negative
                    priors[m] = _interpolate_types(p[:, :, None], s["interp"])[:, :, 0]
                like = like * priors[m]
            out[i] = like.sum(axis=1)
        return out  # normalised (a row of zeros -> uniform) by predict_pdf_photometry below

    def _state(self):
        prior = {f"prior_{k}": np.asarray(v, dtype=np.float64) if isinstance(v, np.ndarray) else v
                 for k, v in self.prior_params_.items()}
        return {**super()._state(), "flux_templates_": self.flux_templates_, "n_templates_": self.n_templates_,
                "prior_band_": self.prior_band_, "zp_offsets_": self.zp_offsets_, "prior_used_": self.prior_used_,
                "broad_types_": list(self.broad_types_),
                "prior_keys": list(self.prior_params_), **prior}

    def _set_state(self, state):
        super()._set_state(state)
        self.flux_templates_ = np.asarray(state["flux_templates_"], dtype=np.float64)
        self.n_templates_ = int(state["n_templates_"])
        self.prior_band_ = str(state["prior_band_"])
        self.zp_offsets_ = np.asarray(state["zp_offsets_"], dtype=np.float64)
        self.prior_used_ = str(state["prior_used_"])
        self.broad_types_ = tuple(int(n) for n in state.get("broad_types_", BROAD_TYPES))  # older files: CWWSB4
        self.prior_params_ = {k: state[f"prior_{k}"] for k in state["prior_keys"]}

    def predict_pdf_photometry(self, phot):
        from deepdip.baselines.pdf import normalise_or_uniform

        return normalise_or_uniform(super().predict_pdf_photometry(phot)).astype(np.float32)


def _prior_magnitudes(flux_maggies, observed, band: int) -> np.ndarray:
    """The prior band's magnitude of each galaxy; where that band was not observed, the magnitude in
    the observed band nearest to it in band order (the redder on a tie): a neighbour's magnitude is
    off by a colour (a few tenths), where 99 would give the prior of a galaxy far below the sample."""
    observed = np.asarray(observed, dtype=bool)
    distance = np.abs(np.arange(observed.shape[1]) - band) - 1e-3 * np.arange(observed.shape[1])  # redder wins ties
    order = np.argsort(distance)
    nearest = order[np.argmax(observed[:, order], axis=1)]  # first observed band in that order (the band itself first)
    nearest = np.where(observed.any(axis=1), nearest, band)
    return _mag(flux_maggies[np.arange(len(flux_maggies)), nearest])


def _mag(flux_maggies):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux_maggies > 0, flux_to_mag(flux_maggies, zero_point=0), 99.0)


def _interpolate_types(grid: np.ndarray, n_interp: int) -> np.ndarray:
    """Insert ``n_interp`` linear mixtures between adjacent templates along axis 1 (BPZ's INTERP)."""
    if n_interp <= 0:
        return grid
    nt = grid.shape[1]
    pos = np.arange(nt + (nt - 1) * n_interp) / (n_interp + 1.0)
    lo = np.minimum(np.floor(pos).astype(int), nt - 2)
    w = (pos - lo)[None, :, None]
    return (1 - w) * grid[:, lo, :] + w * grid[:, lo + 1, :]


def template_dir(templates: str = "cwwsb4") -> Path:
    """The ``SED`` folder holding template set ``templates`` (a key of :data:`TEMPLATE_SETS`)."""
    if templates not in TEMPLATE_SETS:
        raise DeepdipValueError(f"unknown BPZ template set {templates!r}; known: {', '.join(TEMPLATE_SETS)}")
    source = TEMPLATE_SETS[templates][0]
    if source == "desc_bpz":
        from desc_bpz import paths

        return Path(paths.__file__).parent / "data_files" / "SED"
    from deepdip.filters import rail_data_dir

    folder = rail_data_dir()
    if folder is None or not (folder / "SED" / TEMPLATE_SETS[templates][1]).is_file():
        raise DeepdipValueError(f"BPZ template set {templates!r} comes with RAIL, which is not installed: "
                                f"pip install deepdip[rail]")
    return folder / "SED"


def _link_sed(source: Path, target: str) -> None:
    """Link an SED into desc_bpz's folder, or write a copy without repeated wavelengths: every COSMOS
    SED repeats 10000 A, where desc_bpz's interpolation would divide by zero."""
    table = np.loadtxt(source, comments="#", usecols=(0, 1), ndmin=2)
    if np.all(np.diff(table[:, 0]) > 0):
        os.symlink(source, target)
        return
    _, first = np.unique(table[:, 0], return_index=True)  # sorted, the first of each repeated wavelength
    np.savetxt(target, table[first])


@lru_cache(maxsize=8)
def template_fluxes(filters: tuple, madau: str = "no", templates: str = "cwwsb4") -> np.ndarray:
    """AB fluxes ``[1200, n_templates, n_filters]`` of template set ``templates`` on desc_bpz's grid
    z = 0, 0.01, ..., 11.99, through the filters' curves (:mod:`deepdip.filters`; computed once per
    process).

    desc_bpz reads SEDs, filters and writes AB files in one data folder; a private temporary
    folder (the set's SEDs linked in, the curves written as ``.res``) keeps this free of shared
    state between processes.
    """
    from desc_bpz import paths
    from desc_bpz.bpz_tools_py3 import ABflux
    from desc_bpz.useful_py3 import get_data, get_str

    from deepdip.filters import curve

    sed_dir = template_dir(templates)
    seds = [s[:-4] for s in get_str(str(sed_dir / TEMPLATE_SETS[templates][1]))]
    with tempfile.TemporaryDirectory(prefix="deepdip-bpz-") as tmp:
        for sub in ("SED", "FILTER", "AB"):
            os.makedirs(os.path.join(tmp, sub))
        for sed in seds:
            _link_sed(sed_dir / f"{sed}.sed", os.path.join(tmp, "SED", f"{sed}.sed"))
        names = [f"band{j}" for j in range(len(filters))]  # filter names (rail:...) need not be file names
        for f, name in zip(filters, names):
            np.savetxt(os.path.join(tmp, "FILTER", f"{name}.res"), np.column_stack(curve(f)))
        old = (paths.data_dir, paths.sed_dir, paths.fil_dir, paths.ab_dir)
        paths.set_data_dir(tmp)
        try:
            out = np.zeros((int(round(12.0 / 0.01)), len(seds), len(filters)))
            for t, sed in enumerate(seds):
                for j, name in enumerate(names):
                    with contextlib.redirect_stdout(io.StringIO()):  # ABflux narrates every step
                        ABflux(sed, name, madau)
                    (ab_file,) = glob.glob(os.path.join(tmp, "AB", f"{sed}.{name}.*AB"))
                    _, fnu = get_data(ab_file, (0, 1))
                    out[: len(fnu), t, j] = fnu[: out.shape[0]]
        finally:
            paths.data_dir, paths.sed_dir, paths.fil_dir, paths.ab_dir = old
    return out
