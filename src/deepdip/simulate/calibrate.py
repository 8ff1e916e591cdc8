"""Learn the SDSS-like population from real galaxies (the data-driven route of the mock).

The real reference is the SDSS main sample matched to 2MASS (``sdss_main_gst10k``, kcorrect's test
file). A Gaussian mixture learns the joint density of (z, r, u-g, g-r, r-i, i-z) of its
extinction-corrected model photometry on one half (the other half is kept for validation,
``benchmarks/realism/``). Each component's covariance is then reduced by the measurement
covariance of the galaxies it holds (averaged with the mixture's responsibilities), so that the
rendered images, which add their own noise, do not count it twice: a first-order stand-in for
extreme deconvolution, which matters for u-g of faint, distant galaxies. Only the mixture
parameters are shipped.

Deep presets take the colours of their galaxies from HSC PDR2 spectroscopic galaxies
(``hsc_pdr2_specz``: i, g-z, spec-z): a mixture of (z, i, g-z) at i <= 22.5, from which the
simulator draws g-z given each galaxy's z and i (``population.py``). Again only the mixture
parameters are shipped, fitted on one half.

The fit is a study, not library work: ``python benchmarks/calibrate_population.py sdss
PATH/gst_tests_small.fits`` or ``... hsc PATH/hsc_ratios_and_specz.hdf5`` refits and rewrites the
shipped file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipValueError
from deepdip.photometry.units import flux_to_mag

SDSS_BANDS = ("u", "g", "r", "i", "z")
SDSS_FILTERS = tuple(f"sdss2010-{b}" for b in SDSS_BANDS)
FEATURES = ("z", "r", "u-g", "g-r", "r-i", "i-z")
DATA = Path(__file__).resolve().parent.parent / "data"
POPULATION_FILE = DATA / "sdss_population_gmm.json"
HSC_COLOUR_FILE = DATA / "hsc_colour_gmm.json"
HSC_FILTERS = ("hsc2017-g", "hsc2017-i", "hsc2017-z")
HSC_I_MAX = 22.5
SPLIT_SEED = 20190101  # fixes which half of the real galaxies calibrates and which validates


def load_sdss_reference(path: str | Path) -> dict:
    """Read the real SDSS reference catalogue.

    Returns a dict with ``z``, ``flux`` and ``flux_err`` [n, 5] (extinction-corrected model fluxes,
    nanomaggies), ``flux_obs`` (not corrected), ``extinction`` [n, 5] (mag), ``ebv`` (E(B-V)
    from the r-band SFD coefficient 2.751; the presets' log-normal was fitted to it) and
    ``k_vega`` (2MASS K_ext, NaN when missing).
    """
    from astropy.table import Table

    t = Table.read(path)
    flux = np.asarray(t["MODELFLUX"], dtype=np.float64)
    ivar = np.asarray(t["MODELFLUX_IVAR"], dtype=np.float64)
    ext = np.asarray(t["EXTINCTION"], dtype=np.float64)
    corr = 10 ** (0.4 * ext)
    k = np.asarray(t["K_M_EXT"], dtype=np.float64)
    with np.errstate(divide="ignore"):
        err = np.where(ivar > 0, 1 / np.sqrt(ivar), np.inf)
    return {
        "z": np.asarray(t["Z"], dtype=np.float64),
        "flux_obs": flux,
        "flux": flux * corr,
        "flux_err": err * corr,
        "extinction": ext,
        "ebv": ext[:, 2] / 2.751,
        "k_vega": np.where(k > 0, k, np.nan),
    }


def reference_from_store(store, rows: np.ndarray) -> dict:
    """The labelled galaxies ``rows`` of a ugriz store as a reference for :func:`fit_population`:
    ``z`` (their z_spec), ``flux`` and ``flux_err`` (extinction-corrected measured fluxes,
    nanomaggies), the keys :func:`load_sdss_reference` gives for the real catalogue.

    What a user who has only a spectroscopic training set can fit a generator on (issue 13: a
    population refitted on the labelled galaxies and drawn where they are missing). A galaxy without
    a z_spec, or a store whose bands are not ugriz, is refused.
    """
    from deepdip.photometry import Photometry

    if tuple(store.bands) != SDSS_BANDS:
        raise DeepdipValueError(f"store {store.path}: bands {''.join(store.bands)}; the population mixture "
                                f"needs {''.join(SDSS_BANDS)}")
    rows = np.asarray(rows, dtype=np.int64)
    z = np.asarray(store.column("z_spec"), dtype=np.float64)[rows]
    if not np.all(np.isfinite(z)):
        raise DeepdipValueError(f"store {store.path}: {int(np.sum(~np.isfinite(z)))} of the rows have no z_spec")
    flux, err = Photometry.from_store(store, rows).dereddened()
    return {"z": z, "flux": flux, "flux_err": np.where(np.isfinite(err), err, np.inf)}


def split_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the calibration half and the validation half (fixed, seeded)."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def features_from_fluxes(z: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Feature matrix (z, r, u-g, g-r, r-i, i-z) from ugriz fluxes in nanomaggies."""
    mag = flux_to_mag(flux)
    return np.column_stack([z, mag[:, 2], mag[:, :-1] - mag[:, 1:]])


def good_rows(ref: dict) -> np.ndarray:
    """Galaxies with positive, finite fluxes in every band (the density needs colours)."""
    return np.all((ref["flux"] > 0) & np.isfinite(ref["flux_err"]), axis=1)


def fit_population(ref: dict, rows: np.ndarray, max_components: int = 40, seed: int = 0,
                   measurement: MeasurementBias | None = None, source: dict | None = None) -> dict:
    """Fit the mixture on ``rows`` of the reference; the number of components minimises the BIC.

    ``source``: ``{"selection": ..., "source": ...}`` describing another reference than the real SDSS
    catalogue (e.g. a store's labelled galaxies, :func:`reference_from_store`).

    ``measurement``: the mock's measurement bias (:class:`MeasurementBias`), removed from the real
    features before the fit, so that the mock's *measured* photometry, not its true photometry,
    lands on the real catalogue's (calibration through the measurement).
    """
    from sklearn.mixture import GaussianMixture

    rows = rows[good_rows(ref)[rows]]
    x = features_from_fluxes(ref["z"][rows], ref["flux"][rows])
    if measurement is not None:
        x = x - measurement.predict(x)
    best = None
    for k in range(4, max_components + 1, 4):
        gmm = GaussianMixture(k, covariance_type="full", random_state=seed, n_init=2).fit(x)
        bic = gmm.bic(x)
        if best is None or bic < best[0]:
            best = (bic, gmm)
    if best is None:
        raise DeepdipValueError(f"max_components={max_components}: need at least 4 mixture components")
    gmm = best[1]
    resp = gmm.predict_proba(x)  # [n, K]
    noise = _noise_covariances(ref["flux"][rows], ref["flux_err"][rows])  # [n, 6, 6]
    mean_noise = np.einsum("nk,nij->kij", resp, noise) / resp.sum(0)[:, None, None]
    covs = np.array([_nearest_psd(c - m) for c, m in zip(gmm.covariances_, mean_noise)])
    return {
        "model": "gmm",
        "features": list(FEATURES),
        "bands": list(SDSS_BANDS),
        "filters": list(SDSS_FILTERS),
        "weights": gmm.weights_.tolist(),
        "means": gmm.means_.tolist(),
        "covariances": covs.tolist(),
        "n_fit": int(len(rows)),
        "selection": {"r_max": 17.77, "note": "SDSS main sample matched to 2MASS (K_ext < ~14.3 Vega)"},
        "source": "kcorrect 5.1.9 data/test/gst_tests_small.fits (SDSS DR main sample x 2MASS), "
                  f"calibration half of split seed {SPLIT_SEED}",
        **(source or {}),
        **({"measurement": measurement.summary} if measurement is not None else {}),
    }


class MeasurementBias:
    """How a mock's catalogue photometry shifts its galaxies' features: E[measured - true | true]
    of (z, r, u-g, g-r, r-i, i-z), a k-nearest-neighbour mean over the mock's galaxies in the
    standardised true features (z is exact: 0).

    Regressed on the *true* features so that the noise, unbiased in flux, averages out: the noise
    is deconvolved separately (``_noise_covariances``), and a regression on the measured features
    would shrink the real galaxies towards the mean a second time. Applied at a real galaxy's
    measured features, a first-order correction (the bias is a few hundredths of a magnitude and
    varies slowly). Fitted on a mock drawn from the population being corrected; refitting the
    population with it and repeating would remove the second-order remainder.
    """

    def __init__(self, true_features: np.ndarray, measured_features: np.ndarray, k: int = 200, note: str = ""):
        from sklearn.neighbors import KNeighborsRegressor

        true_features = np.asarray(true_features, dtype=np.float64)
        delta = np.asarray(measured_features, dtype=np.float64) - true_features
        delta[:, 0] = 0.0  # the redshift is not measured from the pixels
        ok = np.all(np.isfinite(true_features), axis=1) & np.all(np.isfinite(delta), axis=1)
        if ok.sum() < k:
            raise DeepdipValueError(f"MeasurementBias needs at least k={k} galaxies with finite features, "
                                    f"got {int(ok.sum())}")
        self.centre = true_features[ok].mean(0)
        self.scale = true_features[ok].std(0) + 1e-12
        self.knn = KNeighborsRegressor(k).fit((true_features[ok] - self.centre) / self.scale, delta[ok])
        median = np.median(delta[ok], axis=0)
        self.summary = {"n_mock": int(ok.sum()), "k": int(k), "note": note,
                        "median_measured_minus_true": dict(zip(FEATURES, np.round(median, 4).tolist()))}

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The bias [n, 6] at ``features`` [n, 6]."""
        return self.knn.predict((np.asarray(features, dtype=np.float64) - self.centre) / self.scale)


def _noise_covariances(flux: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Measurement covariance [n, 6, 6] of each galaxy's features (z and r taken as exact:
    spec-z, and r errors of ~0.005 mag are negligible beside the r spread)."""
    var = (2.5 / np.log(10) * err / flux) ** 2  # mag variances [n, 5]
    cov = np.zeros((len(flux), 6, 6))
    for j in range(4):  # colour j = band j - band j+1
        cov[:, 2 + j, 2 + j] = var[:, j] + var[:, j + 1]
        if j < 3:  # adjacent colours share a band, with opposite signs
            cov[:, 2 + j, 3 + j] = cov[:, 3 + j, 2 + j] = -var[:, j + 1]
    return cov


def _nearest_psd(c: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Symmetric matrix with eigenvalues clipped at ``floor`` (a valid covariance)."""
    w, v = np.linalg.eigh(0.5 * (c + c.T))
    return (v * np.maximum(w, floor)) @ v.T


def load_hsc_reference(path: str | Path) -> dict:
    """HSC PDR2 spec-z galaxies with i <= 22.5: ``z``, ``i`` and ``g-z`` (the file's three columns).

    The file is a pandas HDF5 table; its one block is read with h5py (no PyTables needed).
    """
    import h5py

    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f["data/block0_items"][:]]
        values = f["data/block0_values"][:]
    col = {n: values[:, j].astype(np.float64) for j, n in enumerate(names)}
    keep = (col["mag"] <= HSC_I_MAX) & np.isfinite(col["color"]) & (col["specz"] > 0)
    return {"z": col["specz"][keep], "i": col["mag"][keep], "g-z": col["color"][keep]}


def fit_hsc_colours(ref: dict, rows: np.ndarray, n_fit: int = 40_000, seed: int = 0) -> dict:
    """Mixture of (z, i, g-z) on (a random ``n_fit`` of) ``rows``; components minimise the BIC."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    rows = rng.choice(rows, min(n_fit, len(rows)), replace=False)
    x = np.column_stack([ref["z"][rows], ref["i"][rows], ref["g-z"][rows]])
    best = min((GaussianMixture(k, covariance_type="full", random_state=seed).fit(x) for k in range(8, 33, 8)),
               key=lambda g: g.bic(x))
    return {"model": "gmm", "features": ["z", "i", "g-z"], "filters": list(HSC_FILTERS),
            "weights": best.weights_.tolist(), "means": best.means_.tolist(),
            "covariances": best.covariances_.tolist(), "n_fit": int(len(rows)),
            "selection": {"i_max": HSC_I_MAX},
            "source": "pz-rail-astro-tools 2.0.5 hsc_ratios_and_specz.hdf5 (HSC PDR2 spec-z), "
                      f"calibration half of split seed {SPLIT_SEED}; a spectroscopic compilation, "
                      "so its colours at fixed (z, i) carry the targeting of its surveys"}
