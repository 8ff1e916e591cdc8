"""SDSS-pipeline photometry of cutouts: model and Petrosian fluxes as SDSS's ``photo`` defines them.

- **Model flux** (``MODELFLUX``; Stoughton et al. 2002, Abazajian et al. 2004): in the reference
  band (r) an exponential and a de Vaucouleurs profile, each convolved with the PSF, are fitted
  (centre, half-light radius, axis ratio, position angle, amplitude); the one of lower chi^2 is
  kept and, with its shape fixed, convolved with each band's PSF and fitted for its amplitude
  alone, band by band. The profiles are truncated as SDSS's: the exponential at 4 r_e, the de
  Vaucouleurs at 8 r_e (SDSS tapers them to zero from 3 and 7 r_e; here a sharp edge, GalSim's
  ``trunc``). The fit is a Levenberg-Marquardt on the pixels, vectorised over galaxies, the
  amplitude solved linearly at each step (variable projection); models are drawn in Fourier
  space on a grid twice the stamp, profile x PSF x shift, as ``deepdip.simulate.rendering`` draws
  galaxies. SDSS fits the azimuthally binned profile; a pixel fit weighted by the same noise
  estimates the same thing.
- **Petrosian flux** (``PETROFLUX``; Blanton et al. 2001, Strauss et al. 2002): the Petrosian
  ratio R_P(r), the mean surface brightness in the annulus 0.8 r - 1.25 r over the mean within r,
  falls to 0.2 at the Petrosian radius r_P, set in the reference band; the flux of every band is
  the flux within 2 r_P (circular, about the model-fit centre). The curves of growth come from exact
  circular pixel overlaps (``photutils.geometry``) at 0.5-pixel steps, interpolated monotonically
  (PCHIP).

Pixel variances (the fits' weights and the flux errors) are the sky noise, the robust sigma of the
stamp's 4-pixel border unless given, plus the source's Poisson variance ``poisson_var_per_flux`` x
the (1-pixel Gaussian smoothed) image; the weights are the same for both profiles.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import ndimage

from deepdip.photometry.noise import robust_sigma

PETRO_RATIO = 0.2  # R_P at the Petrosian radius
PETRO_FACTOR = 2.0  # the Petrosian aperture is PETRO_FACTOR x r_P (SDSS's N_P)
PETRO_ANNULUS = (0.8, 1.25)  # annulus of the local surface brightness, in units of r
EXP_TRUNCATION = 4.0  # half-light radii (SDSS: smoothly to zero between 3 and 4 r_e)
DEV_TRUNCATION = 8.0  # half-light radii (SDSS: between 7 and 8 r_e)
PROFILES = ("exp", "dev")  # model_type 0 and 1
BORDER = 4  # pixels of the stamp edge giving the sky noise (as deepdip.photometry.measure)
COG_STEP = 0.5  # pixels between the radii of the curve of growth
_K_LO, _K_HI, _K_STEPS = 1e-3, 1e3, 2500
_K_TABLE = np.concatenate([[0.0], np.geomspace(_K_LO, _K_HI, _K_STEPS)])  # k x half-light radius
# segment of k on that grid = ln k x _K_PER_LOG + _K_SEG_OFFSET, floored (1 at _K_LO)
_K_PER_LOG = np.float32((_K_STEPS - 1) / np.log(_K_HI / _K_LO))
_K_SEG_OFFSET = np.float32(1 - np.log(_K_LO) * (_K_STEPS - 1) / np.log(_K_HI / _K_LO))
# caps of the LM steps of the parameters (x, y [px], ln r_e, eta_1, eta_2)
_MAX_MOVE = np.array([2.0, 2.0, 0.5, 0.5, 0.5])
_TOLERANCE = 1e-5  # relative chi^2 gain below which a fit has converged (64 x 64 stamps: flux changes < 0.1 sigma)


class _KTable:
    """f(k) tabulated at ``_K_TABLE`` and interpolated linearly between its nodes, 0 from the last on.

    The same piecewise-linear function as ``np.interp(k, _K_TABLE, values, right=0)`` (but for k = _K_HI
    exactly, where the tables are < 1e-4 of their peak and no fit's k reaches), evaluated by
    index arithmetic on the geometric grid (a log and two gathers) instead of a binary search per
    element: the fits evaluate it on every Fourier pixel of every step, where np.interp cost as much
    as the inverse FFTs. float32 in and out, as the transforms are.
    """

    def __init__(self, values: np.ndarray):
        values = np.asarray(values, dtype=np.float64)
        slope = np.diff(values) / np.diff(_K_TABLE)
        # segment s joins nodes s and s + 1; the extra last segment is the zero beyond _K_HI
        self.slope = np.append(slope, 0.0).astype(np.float32)
        self.intercept = np.append(values[:-1] - slope * _K_TABLE[:-1], 0.0).astype(np.float32)

    @staticmethod
    def segments(k: np.ndarray) -> np.ndarray:
        """The segment of each k: 0 below _K_LO (from k = 0 to the first geometric node), s between
        nodes s and s + 1, _K_STEPS (the zero) from _K_HI on. Computed once for all tables at the same k."""
        pos = np.log(np.maximum(k, np.float32(1e-30)))
        pos *= _K_PER_LOG
        pos += _K_SEG_OFFSET
        np.clip(pos, 0, _K_STEPS, out=pos)  # before the cast: an infinite k must not wrap to a negative int
        return pos.astype(np.int32)

    def at(self, k: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """f at finite k (the fits' k always are: an infinite one would give 0 x inf)."""
        out = self.slope.take(seg)  # take: ~1.4x faster than fancy indexing here
        out *= k
        out += self.intercept.take(seg)
        return out

    def __call__(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=np.float32)
        return self.at(k, self.segments(k))


@lru_cache(maxsize=1)
def profile_tables() -> dict[str, tuple[_KTable, _KTable]]:
    """Fourier transforms of the unit-flux, unit half-light-radius truncated profiles at ``_K_TABLE``,
    and their derivatives d/dk (the Jacobian's), as interpolators of k x half-light radius."""
    import galsim

    profiles = {"exp": galsim.Sersic(n=1, half_light_radius=1.0, trunc=EXP_TRUNCATION),
                "dev": galsim.DeVaucouleurs(half_light_radius=1.0, trunc=DEV_TRUNCATION)}
    out = {}
    for name, prof in profiles.items():
        table = np.array([prof.kValue(k, 0.0).real for k in _K_TABLE]) / prof.flux
        out[name] = (_KTable(table), _KTable(np.gradient(table, _K_TABLE)))
    return out


@lru_cache(maxsize=1)
def kolmogorov_constant() -> float:
    """c of the Kolmogorov transform exp(-c (k FWHM)^(5/3)) (GalSim's profile, as deepdip's mocks draw)."""
    import galsim

    return float(-np.log(galsim.Kolmogorov(fwhm=1.0).kValue(1.0, 0.0).real))


def _grid(size: int, scale: float) -> dict:
    """Fourier grid (rad/arcsec) of a ``size`` stamp drawn on a grid twice its width; the stamp is
    ``[lo:lo + size]`` of the grid, centred like GalSim's (the central pixel of odd stamps)."""
    grid = 2 * size
    ky = (2 * np.pi * np.fft.fftfreq(grid, d=scale)).astype(np.float32)[None, :, None]
    kx = (2 * np.pi * np.fft.rfftfreq(grid, d=scale)).astype(np.float32)[None, None, :]
    lo = size // 2
    # the ellipse's k^2 is cosh(eta) K2 + sinh(eta)/eta (e1 C + e2 D) for the shape (e1, e2) = eta (cos 2pa, sin 2pa)
    k2, c2, d2 = kx**2 + ky**2, kx**2 - ky**2, 2 * kx * ky
    return {"grid": grid, "kx": kx, "ky": ky, "lo": lo, "centre": lo + (size - 1) / 2.0, "size": size,
            "scale": scale, "K2": k2, "C": c2, "D": d2}


def psf_transform(psf: np.ndarray, g: dict) -> np.ndarray:
    """Fourier transforms [..., nky, nkx] of PSF images [..., P, P] (centred at (P - 1) / 2, pixel
    response included, as a survey's PSF model is), normalised to unit flux, on the grid ``g``."""
    psf = np.asarray(psf, dtype=np.float32)
    p = psf.shape[-1]
    if p > g["grid"]:
        cut = (p - g["grid"]) // 2
        psf = psf[..., cut:cut + g["grid"], cut:cut + g["grid"]]
        p = psf.shape[-1]
    pad = np.zeros((*psf.shape[:-2], g["grid"], g["grid"]), dtype=np.float32)
    pad[..., :p, :p] = psf
    k = np.fft.rfft2(pad)
    c = (p - 1) / 2.0 * g["scale"]
    k = k * np.exp(1j * (g["kx"][0] + g["ky"][0]) * c)  # move the PSF's centre to the origin
    return (k / k[..., :1, :1].real).astype(np.complex64)


def kolmogorov_transform(fwhm: np.ndarray, g: dict) -> np.ndarray:
    """Fourier transforms [..., nky, nkx] of Kolmogorov PSFs of ``fwhm`` [...] (arcsec) times the
    square pixel: the PSF deepdip's mocks are drawn with, known exactly (as a survey knows its PSF model)."""
    fwhm = np.asarray(fwhm, dtype=np.float32)[..., None, None]
    kx, ky, scale = g["kx"][0], g["ky"][0], g["scale"]
    pixel = np.sinc(kx * scale / (2 * np.pi)) * np.sinc(ky * scale / (2 * np.pi))
    k53 = (kx**2 + ky**2) ** (5 / 6)
    return (np.exp(-kolmogorov_constant() * fwhm ** (5 / 3) * k53) * pixel).astype(np.complex64)


def _shape(p: np.ndarray):
    """Half-light radius (arcsec), axis ratio and position angle (radians) of parameters [n, 5]."""
    eta = np.hypot(p[:, 3], p[:, 4])
    return np.exp(p[:, 2]), np.exp(-eta), 0.5 * np.arctan2(p[:, 4], p[:, 3])


def _transform(p: np.ndarray, psf_k: np.ndarray, table, g: dict, derivatives: bool = False):
    """Fourier transforms [n, nky, nkx] of unit-flux models of parameters ``p`` [n, 5] through PSFs
    ``psf_k``; with ``derivatives``, [n, 6, nky, nkx]: the model and its derivatives by the 5 parameters."""
    col = lambda v: np.asarray(v, dtype=np.float32)[:, None, None]  # noqa: E731
    e1, e2 = p[:, 3], p[:, 4]
    eta = np.hypot(e1, e2)
    small = eta < 1e-3
    safe = np.where(small, 1.0, eta)
    s = np.where(small, 1 + eta**2 / 6, np.sinh(safe) / safe)  # sinh(eta) / eta
    f = col(np.cosh(eta)) * g["K2"] + col(s) * (col(e1) * g["C"] + col(e2) * g["D"])
    kappa = np.sqrt(np.maximum(f, 0)) * col(np.exp(p[:, 2]))
    scale = g["scale"]
    x, y = (g["centre"] + p[:, 0]) * scale, (g["centre"] + p[:, 1]) * scale
    shifted = psf_k * (np.exp(-1j * g["kx"] * col(x)).astype(np.complex64)
                       * np.exp(-1j * g["ky"] * col(y)).astype(np.complex64))
    seg = _KTable.segments(kappa)
    model = table[0].at(kappa, seg) * shifted
    if not derivatives:
        return model
    # d kappa / d ln r_e = kappa; d kappa / d e_j = kappa (d f / d e_j) / (2 f)
    slope = table[1].at(kappa, seg) * kappa * shifted
    ds = np.where(small, 1 / 3 + eta**2 / 30, (safe * np.cosh(safe) - np.sinh(safe)) / safe**3)  # s'(eta) / eta
    lin = col(e1) * g["C"] + col(e2) * g["D"]
    half_over_f = 0.5 / np.maximum(f, 1e-30)
    df1 = col(s * e1) * g["K2"] + col(ds * e1) * lin + col(s) * g["C"]
    df2 = col(s * e2) * g["K2"] + col(ds * e2) * lin + col(s) * g["D"]
    return np.stack([model, (-1j * scale) * g["kx"] * model, (-1j * scale) * g["ky"] * model, slope,
                     slope * (df1 * half_over_f), slope * (df2 * half_over_f)], axis=1)


def _image(k: np.ndarray, g: dict) -> np.ndarray:
    """Stamps [..., S, S] of Fourier transforms [..., nky, nkx]."""
    # irfft2 in its two passes, the second only on the stamp's rows: the stamp holds half the grid's
    # rows, so half the row transforms are never needed (irfft2 and the crop to float32 rounding: the
    # 1/G normalisations are applied per pass). scipy.fft keeps float32 throughout (numpy's is ~1.5x
    # slower here).
    lo, size = g["lo"], g["size"]
    rows = scipy.fft.ifft(k, axis=-2)[..., lo:lo + size, :]
    return scipy.fft.irfft(rows, n=g["grid"], axis=-1)[..., lo:lo + size]


def _draw(p: np.ndarray, psf_k: np.ndarray, table, g: dict) -> np.ndarray:
    """Unit-flux model images [n, S, S] of parameters ``p`` [n, 5] through PSFs ``psf_k`` [n, nky, nkx]."""
    return _image(_transform(p, psf_k, table, g), g)


def _project(model, data, w2):
    """Best amplitude, weighted residuals [n, S*S] and chi^2 of unit models against the data."""
    mw = model * w2
    amp = (mw * data).sum((1, 2)) / np.maximum((mw * model).sum((1, 2)), 1e-30)
    res = (np.sqrt(w2) * (data - amp[:, None, None] * model)).reshape(len(data), -1)
    return amp, res, np.einsum("np,np->n", res, res, dtype=np.float64)


def _jacobian(p, data, w2, psf_k, table, g):
    """Weighted residuals [n, S*S] and their Jacobian [n, S*S, 5] at ``p``, the amplitude solved
    linearly at every ``p`` (variable projection: d amp / d p enters through the normal equation)."""
    images = _image(_transform(p, psf_k, table, g, derivatives=True), g)  # [n, 6, S, S]
    model, dm = images[:, 0], images[:, 1:]
    mw = model * w2
    norm = np.maximum((mw * model).sum((1, 2)), 1e-30)
    amp = (mw * data).sum((1, 2)) / norm
    damp = (((dm * (w2 * data)[:, None]).sum((2, 3)) - 2 * amp[:, None] * (dm * mw[:, None]).sum((2, 3)))
            / norm[:, None])  # [n, 5]
    sw = np.sqrt(w2)
    res = (sw * (data - amp[:, None, None] * model)).reshape(len(data), -1)
    jac = -(sw[:, None] * (amp[:, None, None, None] * dm + damp[:, :, None, None] * model[:, None]))
    return res, jac.reshape(len(data), dm.shape[1], -1).transpose(0, 2, 1)


def _fit_profile(data, w2, psf_k, table, p0, g, iterations):
    """Levenberg-Marquardt fit of one profile to images [n, S, S]: parameters, amplitudes, chi^2."""
    p = p0.astype(np.float64).copy()
    lam = np.full(len(p), 1e-2)
    amp, _, chi2 = _project(_draw(p, psf_k, table, g), data, w2)
    res, jac = _jacobian(p, data, w2, psf_k, table, g)
    active = np.ones(len(p), bool)
    for _ in range(iterations):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        jj = jac[idx]
        jtj = (jj.transpose(0, 2, 1) @ jj).astype(np.float64)  # float32 BLAS: ample for the LM step
        grad = (jj.transpose(0, 2, 1) @ res[idx][..., None])[..., 0].astype(np.float64)
        damp = jtj + lam[idx, None, None] * (jtj * np.eye(p.shape[1])) + 1e-9 * np.eye(p.shape[1])
        step = -np.linalg.solve(damp, grad[..., None])[..., 0]
        step = np.clip(step, -_MAX_MOVE, _MAX_MOVE)
        trial = p[idx] + step
        # a half-light radius beyond the crop is unconstrained by the data (the profile is then a
        # tilted sky), so ln r_e stays below the crop's half-diagonal
        trial[:, 2] = np.minimum(trial[:, 2], np.log(0.7 * g["size"] * g["scale"]))
        amp_t, _, chi2_t = _project(_draw(trial, psf_k[idx], table, g), data[idx], w2[idx])
        # a step that turns a galaxy's light negative is rejected however it lowers chi^2
        better = (chi2_t < chi2[idx]) & ((amp_t > 0) | (amp[idx] <= 0))
        gain = np.where(better, (chi2[idx] - chi2_t) / np.maximum(chi2[idx], 1e-30), 0.0)
        acc = idx[better]
        p[acc], amp[acc], chi2[acc] = trial[better], amp_t[better], chi2_t[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3, 1e-7), lam[idx] * 4)
        # converged: a step gained < TOLERANCE of chi^2, or the damping says no step helps
        done = idx[(better & (gain < _TOLERANCE)) | (lam[idx] > 1e6)]
        active[done] = False
        refresh = acc[active[acc]]
        if len(refresh):
            res[refresh], jac[refresh] = _jacobian(p[refresh], data[refresh], w2[refresh], psf_k[refresh], table, g)
    return p, amp, chi2


def _sky_sigma(images):
    h, w = images.shape[-2:]
    border = np.ones((h, w), bool)
    border[BORDER:-BORDER, BORDER:-BORDER] = False
    return np.maximum(robust_sigma(images[..., border], axis=-1), 1e-12)


def pixel_variance(images, sky_sigma=None, poisson_var_per_flux=None) -> np.ndarray:
    """Per-pixel variance [n, B, H, W]: sky sigma^2 (border robust sigma unless given, [n, B])
    plus ``poisson_var_per_flux`` [B] x the 1-pixel Gaussian smoothed image (clipped at 0)."""
    images = np.asarray(images, dtype=np.float32)
    sky = _sky_sigma(images) if sky_sigma is None else np.asarray(sky_sigma, dtype=np.float32)
    var = np.broadcast_to((sky**2)[..., None, None], images.shape).astype(np.float32)
    if poisson_var_per_flux is not None:
        smooth = ndimage.gaussian_filter(images, sigma=(0, 0, 1, 1))
        pv = np.asarray(poisson_var_per_flux, dtype=np.float32)[None, :, None, None]
        var = var + pv * np.maximum(smooth, 0)
    return var


def _initial(ref: np.ndarray, g: dict) -> np.ndarray:
    """Starting parameters [n, 5] from the positive light of the reference band near the centre."""
    n, h, w = ref.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - (w - 1) / 2, yy - (h - 1) / 2
    light = np.maximum(ndimage.gaussian_filter(ref, sigma=(0, 1, 1)), 0) * ((dx**2 + dy**2) < (0.3 * h) ** 2)
    tot = np.maximum(light.sum((1, 2)), 1e-30)
    cx, cy = (light * dx).sum((1, 2)) / tot, (light * dy).sum((1, 2)) / tot
    ddx, ddy = dx - cx[:, None, None], dy - cy[:, None, None]
    mxx, myy, mxy = ((light * v).sum((1, 2)) / tot for v in (ddx**2, ddy**2, ddx * ddy))
    size = np.sqrt(np.maximum(mxx + myy, 1.0))  # pixels: ~ 1.2 r_e for the light we see
    e1, e2 = (mxx - myy) / np.maximum(mxx + myy, 1e-12), 2 * mxy / np.maximum(mxx + myy, 1e-12)
    e = np.minimum(np.hypot(e1, e2), 0.9)
    eta = np.arctanh(e) / np.maximum(np.hypot(e1, e2), 1e-12)
    r_e = np.maximum(0.7 * size * g["scale"], 0.3 * g["scale"])
    return np.column_stack([np.clip(cx, -3, 3), np.clip(cy, -3, 3), np.log(r_e), e1 * eta, e2 * eta])


CROP_EXTENT = 6.0  # half-light radii (first guess) a crop must hold on each side of the centre
CROP_MIN = 24  # pixels


def _crop_sizes(start: np.ndarray, size: int, pixel_scale: float) -> np.ndarray:
    """Side of the central crop each galaxy is fitted on: ``CROP_EXTENT`` first-guess half-light
    radii plus its offset on each side, rounded up to a multiple of 8 of the stamp's parity, at most
    the stamp. (A de Vaucouleurs profile holds ~90 % of its light within 6 r_e; beyond, its pixels
    are sky-dominated and weigh nothing in the fit.)"""
    r_e_px = np.exp(start[:, 2]) / pixel_scale
    half = CROP_EXTENT * r_e_px + np.abs(start[:, :2]).max(1)
    side = np.maximum(CROP_MIN, 8 * np.ceil(2 * half / 8)).astype(int)
    side += (side - size) % 2  # same parity as the stamp: the crop shares its centre
    return np.minimum(side, size)


def model_fluxes(images, psf, pixel_scale: float, ref_band: int, *, sky_sigma=None, poisson_var_per_flux=None,
                 iterations: int = 20, chunk: int = 32, shape: dict | None = None, psf_fwhm=None) -> dict:
    """SDSS model fluxes of the central galaxy of each cutout.

    Parameters
    ----------
    images : array [n, B, S, S]
        Sky-subtracted cutouts, galaxy near the centre (as deepdip stores hold them).
    psf : array [n, B, P, P] or [B, P, P], or None
        Each band's PSF image (unit flux once normalised, centred at (P - 1) / 2, pixel included).
    psf_fwhm : array [n, B], optional (instead of ``psf``)
        FWHM (arcsec) of Kolmogorov PSFs (times the pixel): the PSF of deepdip's mocks, exactly.
    pixel_scale : float
        arcsec / pixel.
    ref_band : int
        Index of the band whose fit sets the shape (SDSS: r).
    sky_sigma, poisson_var_per_flux : see :func:`pixel_variance`.
    shape : dict, optional
        The output of an earlier call on the same reference-band images: its profile and shape are
        taken as they are (no fit; forced photometry of the other bands).

    Returns
    -------
    dict: ``flux`` and ``flux_err`` [n, B] (model fluxes, images' unit); ``model_type`` [n] (0
    exponential, 1 de Vaucouleurs); ``chi2`` [n, 2] (reference band, exp and deV); ``r_e``
    (arcsec), ``q``, ``pa`` (degrees from +x towards +y), ``x``, ``y`` (pixels from the stamp
    centre) of the chosen profile [n].
    """
    images = np.asarray(images, dtype=np.float32)
    n, nb, size, _ = images.shape
    if (psf is None) == (psf_fwhm is None):
        raise ValueError("model_fluxes takes one of psf (images) and psf_fwhm (Kolmogorov widths)")
    if psf is not None:
        psf = np.asarray(psf, dtype=np.float32)
        if psf.ndim == 3:
            psf = np.broadcast_to(psf, (n, *psf.shape))
    var = pixel_variance(images, sky_sigma, poisson_var_per_flux)
    tables = profile_tables()
    out = {"flux": np.empty((n, nb)), "flux_err": np.empty((n, nb)), "model_type": np.empty(n, np.int8),
           "chi2": np.empty((n, 2)), "params": np.empty((n, 5))}
    if shape is None:
        start = _initial(images[:, ref_band], {"scale": pixel_scale})
    else:
        eta = -np.log(np.asarray(shape["q"]))
        pa = np.radians(np.asarray(shape["pa"]))
        start = np.column_stack([np.asarray(shape["x"]), np.asarray(shape["y"]), np.log(np.asarray(shape["r_e"])),
                                 eta * np.cos(2 * pa), eta * np.sin(2 * pa)])
    # Each galaxy is fitted on the central crop that holds its light (most SDSS galaxies need a
    # quarter of the stamp; the cost scales with the crop's area), galaxies of one crop size together.
    crops = _crop_sizes(start, size, pixel_scale)
    order = np.argsort(crops, kind="stable")
    for crop in np.unique(crops):
        rows_of_crop = order[crops[order] == crop]
        g = _grid(int(crop), pixel_scale)
        cut = slice((size - crop) // 2, (size - crop) // 2 + crop)
        for lo in range(0, len(rows_of_crop), chunk):
            sl = rows_of_crop[lo:lo + chunk]
            psf_k = (psf_transform(psf[sl], g) if psf is not None
                     else kolmogorov_transform(np.asarray(psf_fwhm)[sl], g))  # [m, B, nky, nkx]
            data, w2 = images[sl][..., cut, cut], 1.0 / var[sl][..., cut, cut]
            if shape is None:
                fits = [_fit_profile(data[:, ref_band], w2[:, ref_band], psf_k[:, ref_band], tables[name], start[sl],
                                     g, iterations) for name in PROFILES]
                chi2 = np.column_stack([f[2] for f in fits])
                kind = np.argmin(chi2, axis=1)
                p = np.where(kind[:, None] == 0, fits[0][0], fits[1][0])
            else:
                kind, chi2, p = np.asarray(shape["model_type"])[sl], np.asarray(shape["chi2"])[sl], start[sl]
            for b in range(nb):
                model = np.empty(data.shape[:1] + data.shape[2:], dtype=np.float32)
                for t, name in enumerate(PROFILES):
                    rows = np.flatnonzero(kind == t)
                    if len(rows):
                        model[rows] = _draw(p[rows], psf_k[rows, b], tables[name], g)
                norm = (model * model * w2[:, b]).sum((1, 2), dtype=np.float64)
                out["flux"][sl, b] = ((model * w2[:, b] * data[:, b]).sum((1, 2), dtype=np.float64)
                                      / np.maximum(norm, 1e-30))
                out["flux_err"][sl, b] = 1.0 / np.sqrt(np.maximum(norm, 1e-30))
            out["model_type"][sl], out["chi2"][sl], out["params"][sl] = kind, chi2, p
    params = out.pop("params")
    r_e, q, pa = _shape(params)
    return {**out, "r_e": r_e, "q": q, "pa": np.degrees(pa) % 180.0, "x": params[:, 0], "y": params[:, 1]}


def petrosian_fluxes(images, pixel_scale: float, ref_band: int, centre=None, *, sky_sigma=None,
                     poisson_var_per_flux=None, ratio: float = PETRO_RATIO, factor: float = PETRO_FACTOR,
                     r_petro=None) -> dict:
    """SDSS Petrosian fluxes: r_P from the reference band's Petrosian ratio, fluxes within ``factor`` r_P.

    ``centre`` [n, 2]: (x, y) in pixels from the stamp centre (e.g. the model fit's ``x``, ``y``);
    the stamp centre by default. Returns ``flux``, ``flux_err`` [n, B]; ``r_petro``, ``r50``,
    ``r90`` (arcsec: Petrosian radius, radii holding 50 and 90 % of the reference band's
    Petrosian flux); ``clipped`` (the aperture reaches beyond the stamp: its flux misses light);
    ``no_petro`` (R_P never fell to ``ratio`` inside the stamp: r_P is the largest radius tried).
    ``r_petro`` [n] (arcsec), optional: known Petrosian radii (e.g. of an earlier call on the same
    reference-band images), used as they are; only the aperture fluxes are measured.
    """
    from photutils.geometry import circular_overlap_grid
    from scipy.interpolate import PchipInterpolator

    images = np.asarray(images, dtype=np.float64)
    n, nb, h, w = images.shape
    centre = np.zeros((n, 2)) if centre is None else np.asarray(centre, dtype=np.float64)
    var = pixel_variance(images.astype(np.float32), sky_sigma, poisson_var_per_flux).astype(np.float64)
    inner, outer = PETRO_ANNULUS
    radii = np.arange(COG_STEP, 0.5 * np.hypot(h, w), COG_STEP)
    keys = ("r_petro", "r50", "r90")
    out: dict = {"flux": np.empty((n, nb)), "flux_err": np.empty((n, nb)), **{k: np.empty(n) for k in keys},
                 "clipped": np.zeros(n, bool), "no_petro": np.zeros(n, bool)}

    def overlap(x0, y0, radius):
        return circular_overlap_grid(x0, x0 + w, y0, y0 + h, w, h, radius, 1, 1).ravel()

    for k in range(n):
        cx, cy = (w - 1) / 2 + centre[k, 0], (h - 1) / 2 + centre[k, 1]
        x0, y0 = -cx - 0.5, -cy - 0.5  # pixel edges relative to the centre
        flat = images[k].reshape(nb, -1)
        if r_petro is not None:
            r_p = float(r_petro[k]) / pixel_scale
            aperture = min(factor * r_p, radii[-1])
            out["clipped"][k] = factor * r_p > min(cx + 0.5, cy + 0.5, w - cx - 0.5, h - cy - 0.5)
            a = overlap(x0, y0, aperture)
            out["flux"][k] = flat @ a
            out["flux_err"][k] = np.sqrt((a * a) @ var[k].reshape(nb, -1).T)
            out["r_petro"][k], out["r50"][k], out["r90"][k] = r_petro[k], np.nan, np.nan
            continue
        wts = np.stack([overlap(x0, y0, r) for r in radii])  # [J, H*W]
        cog = PchipInterpolator(np.concatenate([[0.0], radii]),
                                np.concatenate([np.zeros((1, nb)), wts @ flat.T]), axis=0)
        fine = np.arange(COG_STEP, radii[-1] / outer, 0.05)
        ref = cog(fine)[:, ref_band]
        petro = (cog(outer * fine)[:, ref_band] - cog(inner * fine)[:, ref_band]) / (
            (outer**2 - inner**2) * np.where(ref > 0, ref, np.nan))
        below = np.flatnonzero(petro < ratio)
        if len(below) and below[0] > 0:
            j = below[0]
            t = (petro[j - 1] - ratio) / (petro[j - 1] - petro[j])
            r_p = fine[j - 1] + t * (fine[j] - fine[j - 1])
        else:
            r_p = fine[-1]
            out["no_petro"][k] = True
        aperture = min(factor * r_p, radii[-1])
        out["clipped"][k] = factor * r_p > min(cx + 0.5, cy + 0.5, w - cx - 0.5, h - cy - 0.5)
        a = overlap(x0, y0, aperture)
        out["flux"][k] = flat @ a
        out["flux_err"][k] = np.sqrt((a * a) @ var[k].reshape(nb, -1).T)
        total = out["flux"][k, ref_band]
        grow = cog(np.arange(0.0, aperture + 1e-9, 0.05))[:, ref_band]
        for key, frac in (("r50", 0.5), ("r90", 0.9)):
            hit = np.flatnonzero(grow >= frac * total)
            out[key][k] = (hit[0] * 0.05 if len(hit) else aperture) * pixel_scale
        out["r_petro"][k] = r_p * pixel_scale
    return out


def sdss_photometry(images, psf, pixel_scale: float, bands, ref_band: str = "r", *, sky_sigma=None,
                    poisson_var_per_flux=None, iterations: int = 20) -> dict:
    """Model and Petrosian fluxes as catalogue columns: ``flux_model_<band>``, ``flux_model_err_<band>``,
    ``flux_petro_<band>``, ``flux_petro_err_<band>``, ``model_type`` (0 exp, 1 deV), ``r_e_model``,
    ``q_model``, ``petro_radius``, ``petro_r50``, ``petro_r90`` (arcsec), ``petro_clipped``.
    Arguments as :func:`model_fluxes`; the Petrosian aperture is centred on the model's centre."""
    bands = list(bands)
    ref = bands.index(ref_band)
    model = model_fluxes(images, psf, pixel_scale, ref, sky_sigma=sky_sigma,
                         poisson_var_per_flux=poisson_var_per_flux, iterations=iterations)
    petro = petrosian_fluxes(images, pixel_scale, ref, np.column_stack([model["x"], model["y"]]),
                             sky_sigma=sky_sigma, poisson_var_per_flux=poisson_var_per_flux)
    out = {}
    for b, band in enumerate(bands):
        out[f"flux_model_{band}"] = model["flux"][:, b].astype(np.float32)
        out[f"flux_model_err_{band}"] = model["flux_err"][:, b].astype(np.float32)
        out[f"flux_petro_{band}"] = petro["flux"][:, b].astype(np.float32)
        out[f"flux_petro_err_{band}"] = petro["flux_err"][:, b].astype(np.float32)
    out["model_type"] = model["model_type"]
    out["r_e_model"], out["q_model"] = model["r_e"].astype(np.float32), model["q"].astype(np.float32)
    out["petro_radius"] = petro["r_petro"].astype(np.float32)
    out["petro_r50"], out["petro_r90"] = petro["r50"].astype(np.float32), petro["r90"].astype(np.float32)
    out["petro_clipped"] = petro["clipped"]
    return out
