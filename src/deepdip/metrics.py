"""Photo-z metrics from point estimates and from PDFs binned on a :class:`~deepdip.zgrid.ZGrid`.

A binned PDF is an ``[N, nbins]`` array of probabilities per bin. Inside a bin the density is
taken as uniform, so the CDF is piecewise linear: this one model gives the point estimates,
PIT, CRPS, coverage and CDE loss, all exactly (no numerical integration). Its mean is therefore
the probability-weighted mean of the bin *centres*.

Every PDF function works through the rows in chunks, so a catalogue of any size costs memory
proportional to ``chunk_size x nbins``, not ``N x nbins``.

Conventions (Pasquet et al. 2019; Beck et al. 2016): ``dz = (z_phot - z_spec) / (1 + z_spec)``,
``sigma_mad = 1.4826 * median(|dz - median(dz)|)``, outliers are ``|dz| > threshold``.

Two statistics have two conventions in the literature, and both are reported under distinct names:

- bias: ``bias`` is the *mean* of ``dz`` (Pasquet et al. 2019); ``bias_median`` is its *median*,
  which is what LSST DESC RAIL/qp call ``point_bias`` (the LSST Science Book's definition).
- outliers: ``outlier_frac`` counts ``|dz| > 0.05`` (a fixed threshold, Pasquet et al.);
  ``outlier_frac_rail`` counts ``|dz| > max(0.06, 3 sigma_iqr)`` (RAIL/qp ``point_outlier_rate``).

``sigma_iqr`` is the interquartile range of ``dz`` over 1.349 (RAIL/qp ``point_stats_iqr``), and
``pit_cvm`` / ``pit_ad`` are the Cramér-von Mises and Anderson-Darling statistics of the PIT values
as qp's ``PIT`` computes them. ``tests/test_rail.py`` checks each against qp/RAIL's own code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
from scipy import stats

from deepdip.errors import DeepdipError
from deepdip.photometry.noise import robust_sigma
from deepdip.zgrid import ZGrid

CHUNK_SIZE = 16384  # rows per chunk: ~25 MB per float64 [chunk, 181] temporary
# Central intervals: the quantile pairs bounding z_lo68/z_hi68 and the 95 % interval.
INTERVALS = {68: (0.16, 0.84), 95: (0.025, 0.975)}


# --------------------------------------------------------------------------- point metrics
def delta_z(z_phot, z_spec) -> np.ndarray:
    """Scaled residual ``(z_phot - z_spec) / (1 + z_spec)``."""
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_spec = np.asarray(z_spec, dtype=np.float64)
    return (z_phot - z_spec) / (1.0 + z_spec)


def sigma_mad(z_phot, z_spec) -> float:
    """Normalised median absolute deviation of ``delta_z``: ``1.4826 median(|dz - median(dz)|)``."""
    dz = delta_z(z_phot, z_spec)
    if dz.size == 0:
        return float("nan")
    return float(robust_sigma(dz))


def outlier_frac(z_phot, z_spec, threshold: float = 0.05) -> float:
    """Fraction of objects with ``|delta_z| > threshold`` (catastrophic outliers, eta)."""
    dz = delta_z(z_phot, z_spec)
    return float(np.mean(np.abs(dz) > threshold)) if dz.size else float("nan")


def bias(z_phot, z_spec) -> float:
    """Mean of ``delta_z``."""
    dz = delta_z(z_phot, z_spec)
    return float(np.mean(dz)) if dz.size else float("nan")


def bias_median(z_phot, z_spec) -> float:
    """Median of ``delta_z`` (robust to outliers, unlike :func:`bias`): RAIL/qp's ``point_bias``."""
    dz = delta_z(z_phot, z_spec)
    return float(np.median(dz)) if dz.size else float("nan")


#: The IQR of a normal distribution in units of its sigma (2 * 0.6745): RAIL/qp's constant.
IQR_PER_SIGMA = 1.349
#: RAIL's outlier threshold: ``|dz| > max(RAIL_OUTLIER_FLOOR, 3 sigma_iqr)`` (LSST Science Book).
RAIL_OUTLIER_FLOOR = 0.06


def sigma_iqr(z_phot, z_spec) -> float:
    """Interquartile width of ``delta_z``: ``(P75 - P25) / 1.349`` (RAIL/qp ``point_stats_iqr``).

    Percentiles interpolate linearly between order statistics (numpy's default, as qp).
    """
    dz = delta_z(z_phot, z_spec)
    if dz.size == 0:
        return float("nan")
    q75, q25 = np.percentile(dz, [75.0, 25.0])
    return float((q75 - q25) / IQR_PER_SIGMA)


def outlier_frac_rail(z_phot, z_spec) -> float:
    """RAIL's catastrophic-outlier rate: fraction with ``|delta_z| > max(0.06, 3 sigma_iqr)``.

    The threshold grows with the scatter, so it differs from :func:`outlier_frac` (a fixed 0.05);
    this is RAIL/qp's ``point_outlier_rate``.
    """
    dz = delta_z(z_phot, z_spec)
    if dz.size == 0:
        return float("nan")
    cut = max(RAIL_OUTLIER_FLOOR, 3.0 * sigma_iqr(z_phot, z_spec))
    return float(np.mean(np.abs(dz) > cut))


# --------------------------------------------------------------------------- PDF machinery
def _row_chunks(n: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def _chunked(kernel: Callable, pdf, zgrid: ZGrid, *per_row, chunk_size: int = CHUNK_SIZE):
    """Apply ``kernel(p, zgrid, *per_row_chunk)`` to normalised row chunks and concatenate."""
    pdf = np.asarray(pdf)
    if pdf.ndim != 2 or pdf.shape[1] != zgrid.nbins:
        raise DeepdipError(f"PDF array has shape {pdf.shape}; expected [N, {zgrid.nbins}] for this redshift grid")
    columns = [np.asarray(a, dtype=np.float64) for a in per_row]
    for a in columns:
        if a.shape != (pdf.shape[0],):
            raise DeepdipError(f"{pdf.shape[0]} PDFs but {a.shape[0] if a.ndim else 1} redshifts")
    parts = [kernel(normalise(pdf[s]), zgrid, *(a[s] for a in columns)) for s in _row_chunks(len(pdf), chunk_size)]
    if not parts:
        return kernel(np.zeros((0, zgrid.nbins)), zgrid, *(a[:0] for a in columns))
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def normalise(pdf) -> np.ndarray:
    """Return the rows of ``pdf`` as float64 probabilities summing to one.

    Raises
    ------
    DeepdipError
        If a row has a negative or non-finite value or sums to zero: such a row is not a PDF, and
        silently renormalising it would hide a broken estimator.
    """
    p = np.asarray(pdf, dtype=np.float64)
    total = p.sum(axis=1)
    bad = ~np.isfinite(total) | (total <= 0) | (p < 0).any(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DeepdipError(
            f"{rows.size} PDF row(s) are not valid (negative, non-finite or all zero), e.g. row {rows[0]}"
        )
    return p / total[:, None]


def _cumulative(p: np.ndarray) -> np.ndarray:
    """CDF at the bin edges, ``[n, nbins + 1]``, starting at 0."""
    cum = np.zeros((p.shape[0], p.shape[1] + 1))
    np.cumsum(p, axis=1, out=cum[:, 1:])
    return cum


def _cdf_kernel(p, zgrid, z):
    cum = _cumulative(p)
    t = (np.nan_to_num(z, nan=zgrid.zmin) - zgrid.zmin) / zgrid.width
    k = np.clip(np.floor(t), 0, zgrid.nbins - 1).astype(np.int64)
    frac = np.clip(t - k, 0.0, 1.0)  # 0 below the grid, 1 above: F is 0 and 1 there
    rows = np.arange(len(p))
    out = cum[rows, k] + p[rows, k] * frac
    out[~np.isfinite(z)] = np.nan
    return out


def cdf_at(pdf, zgrid: ZGrid, z, *, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """CDF of each row's PDF at its own redshift ``z[i]`` (linear inside a bin; NaN where ``z`` is).

    With ``z = z_spec`` these are the PIT values.
    """
    return _chunked(_cdf_kernel, pdf, zgrid, z, chunk_size=chunk_size)


pit_values = cdf_at


def _quantile_kernel(p, zgrid, q):
    """Inverse of the piecewise-linear CDF at probability ``q`` (a scalar in (0, 1))."""
    cum = _cumulative(p)
    # The bin holding the quantile is the first whose upper CDF reaches q; it has p > 0.
    k = np.minimum(np.sum(cum[:, 1:] < q, axis=1), zgrid.nbins - 1)
    rows = np.arange(len(p))
    pk = p[rows, k]
    frac = np.divide(q - cum[rows, k], pk, out=np.full(len(p), 0.5), where=pk > 0)
    return zgrid.edges[k] + np.clip(frac, 0.0, 1.0) * zgrid.width


def quantile(pdf, zgrid: ZGrid, q: float, *, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """Redshift at which each row's CDF equals ``q``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    return _chunked(lambda p, g: _quantile_kernel(p, g, q), pdf, zgrid, chunk_size=chunk_size)


def _point_kernel(p, zgrid):
    c = zgrid.centres
    mean = p @ c
    # Variance of the piecewise-uniform density: spread of the centres plus w^2/12 within bins.
    var = p @ c**2 - mean**2 + zgrid.width**2 / 12.0
    out = {
        "z_mean": mean,
        "z_median": _quantile_kernel(p, zgrid, 0.5),
        "z_mode": c[np.argmax(p, axis=1)],
        "z_std": np.sqrt(np.maximum(var, 0.0)),
    }
    lo, hi = INTERVALS[68]
    out["z_lo68"] = _quantile_kernel(p, zgrid, lo)
    out["z_hi68"] = _quantile_kernel(p, zgrid, hi)
    return out


def point_estimates(pdf, zgrid: ZGrid, *, chunk_size: int = CHUNK_SIZE) -> dict[str, np.ndarray]:
    """Point estimates of binned PDFs.

    Parameters
    ----------
    pdf : array_like, shape (N, nbins)
        Non-negative bin weights; each row is normalised here.
    zgrid : ZGrid
        The redshift bins.

    Returns
    -------
    dict of str to ndarray (N,)
        ``z_mean`` (weighted mean of bin centres), ``z_median``, ``z_mode`` (centre of the most
        probable bin), ``z_std`` (standard deviation of the piecewise-uniform density, so a PDF
        inside one bin has ``width / sqrt(12)``), ``z_lo68`` and ``z_hi68`` (the 16 % and 84 %
        quantiles: the central 68 % interval).
    """
    return _chunked(_point_kernel, pdf, zgrid, chunk_size=chunk_size)


def _crps_kernel(p, zgrid, y):
    w, nb = zgrid.width, zgrid.nbins
    cum = _cumulative(p)
    c_lo = cum[:, :-1]  # CDF at each bin's lower edge
    # Integral of F^2 over the grid: F = C + p u on each bin, u in [0, 1].
    f2 = w * np.sum(c_lo**2 + c_lo * p + p**2 / 3.0, axis=1)
    # Running integral of F up to each edge.
    int_f = np.zeros_like(cum)
    np.cumsum(w * (c_lo + p / 2.0), axis=1, out=int_f[:, 1:])
    a = np.clip(y, zgrid.zmin, zgrid.zmax)
    k = np.minimum(np.floor((a - zgrid.zmin) / w), nb - 1).astype(np.int64)
    t = a - zgrid.edges[k]
    rows = np.arange(len(p))
    int_f_to_a = int_f[rows, k] + c_lo[rows, k] * t + p[rows, k] * t**2 / (2.0 * w)
    inside = f2 - 2.0 * (int_f[:, -1] - int_f_to_a) + (zgrid.zmax - a)
    # Outside the grid F is 0 below and 1 above, so (F - H)^2 = 1 between y and the grid.
    return inside + np.maximum(zgrid.zmin - y, 0.0) + np.maximum(y - zgrid.zmax, 0.0)


def crps(pdf, zgrid: ZGrid, z_spec, *, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """Continuous ranked probability score of each PDF at its ``z_spec``, in redshift units.

    ``CRPS = integral (F(z) - H(z - z_spec))^2 dz`` over the whole real line, computed exactly
    (closed form) for the piecewise-uniform density; ``z_spec`` must be finite.
    """
    return _chunked(_crps_kernel, pdf, zgrid, z_spec, chunk_size=chunk_size)


def _cde_kernel(p, zgrid, y):
    inside = (y >= zgrid.zmin) & (y < zgrid.zmax)
    density_at_y = np.where(inside, p[np.arange(len(p)), zgrid.bin_index(y)], 0.0) / zgrid.width
    return {"int_f2": np.sum(p**2, axis=1) / zgrid.width, "f_at_z": density_at_y}


def cde_loss(pdf, zgrid: ZGrid, z_spec, *, chunk_size: int = CHUNK_SIZE) -> float:
    """Conditional density estimation loss of Izbicki & Lee (2017), as in RAIL/qp.

    ``L = E[integral f(z|x)^2 dz] - 2 E[f(z_spec|x)]`` (lower is better), with the exact
    piecewise-uniform density rather than qp's evaluation on a grid of points.
    """
    terms = _chunked(_cde_kernel, pdf, zgrid, z_spec, chunk_size=chunk_size)
    if terms["int_f2"].size == 0:
        return float("nan")
    return float(np.mean(terms["int_f2"]) - 2.0 * np.mean(terms["f_at_z"]))


def pit_ks(pit) -> float:
    """Kolmogorov-Smirnov distance between the PIT values and a uniform distribution on [0, 1]."""
    pit = np.asarray(pit, dtype=np.float64)
    return float(stats.kstest(pit, "uniform").statistic) if pit.size else float("nan")


def pit_cvm(pit) -> float:
    """Cramér-von Mises statistic of the PIT values against a uniform distribution on [0, 1].

    ``scipy.stats.cramervonmises``, as qp's ``PIT.evaluate_PIT_CvM``; NaN for fewer than two values.
    """
    pit = np.asarray(pit, dtype=np.float64)
    if pit.size < 2:
        return float("nan")
    return float(stats.cramervonmises(pit, "uniform").statistic)


def pit_ad(pit) -> float:
    """Anderson-Darling statistic of the PIT values, as qp's ``PIT.evaluate_PIT_anderson_ksamp``.

    qp (and so RAIL) compares the PIT values with as many evenly spaced values on [0, 1] by the
    *k-sample* Anderson-Darling test (``scipy.stats.anderson_ksamp``, midrank variant), not the
    one-sample test against the uniform CDF; this is that number, so the two can be compared.
    It can be negative (the standardised statistic); NaN for fewer than two values.
    """
    pit = np.asarray(pit, dtype=np.float64)
    pit = pit[(pit >= 0.0) & (pit <= 1.0)]  # qp trims to [0, 1]; PIT values always are
    if pit.size < 2:
        return float("nan")
    samples = [pit, np.linspace(0.0, 1.0, pit.size)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "p-value capped/floored": only the statistic is used
        try:
            result = stats.anderson_ksamp(samples, variant="midrank")
        except TypeError:  # scipy < 1.17: no ``variant``; midrank is the default there too
            result = stats.anderson_ksamp(samples)
    return float(result.statistic)


def coverage(pit, level: int) -> float:
    """Fraction of ``z_spec`` inside the central ``level`` % interval (68 or 95) of their PDF.

    ``z_spec`` lies inside the central interval ``[F^-1(lo), F^-1(hi)]`` exactly when its PIT is
    in ``[lo, hi]`` (the CDF is monotonic), so coverage is read from the PIT values.
    """
    lo, hi = INTERVALS[level]
    pit = np.asarray(pit, dtype=np.float64)
    return float(np.mean((pit >= lo) & (pit <= hi))) if pit.size else float("nan")


# --------------------------------------------------------------------------- summaries
def compute_metrics(z_phot, z_spec, pdf=None, zgrid: ZGrid | None = None,
                    outlier_threshold: float = 0.05) -> dict:
    """All metrics of one set of estimates, over the rows whose ``z_spec`` is finite.

    Parameters
    ----------
    z_phot, z_spec : array_like, shape (N,)
        Point estimates and spectroscopic redshifts (NaN where unknown: those rows are skipped).
    pdf : array_like, shape (N, nbins), optional
        Binned PDFs; adds ``pit_ks``, ``pit_cvm``, ``pit_ad``, ``crps`` (mean), ``coverage_68``,
        ``coverage_95``, ``cde_loss``.
    zgrid : ZGrid, optional
        Required with ``pdf``.
    outlier_threshold : float
        ``|delta_z|`` above which an object is an outlier for ``outlier_frac``.

    Returns
    -------
    dict
        ``n``, ``sigma_mad``, ``sigma_iqr``, ``outlier_frac`` (``|dz| > outlier_threshold``),
        ``outlier_frac_rail`` (``|dz| > max(0.06, 3 sigma_iqr)``), ``bias`` (mean ``dz``),
        ``bias_median`` (median ``dz``, RAIL's bias) (+ PDF metrics); NaN values when ``n == 0``.
    """
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_spec = np.asarray(z_spec, dtype=np.float64)
    if z_phot.shape != z_spec.shape or z_phot.ndim != 1:
        raise DeepdipError(f"z_phot {z_phot.shape} and z_spec {z_spec.shape} must be 1-D of the same length")
    known = np.isfinite(z_spec)
    zp, zs = z_phot[known], z_spec[known]
    if not np.all(np.isfinite(zp)):
        raise DeepdipError(f"{int(np.sum(~np.isfinite(zp)))} point estimate(s) are NaN or infinite")
    out = {
        "n": int(known.sum()),
        "sigma_mad": sigma_mad(zp, zs),
        "outlier_frac": outlier_frac(zp, zs, outlier_threshold),
        "bias": bias(zp, zs),
        "bias_median": bias_median(zp, zs),
        "sigma_iqr": sigma_iqr(zp, zs),
        "outlier_frac_rail": outlier_frac_rail(zp, zs),
    }
    if pdf is not None:
        if zgrid is None:
            raise ValueError("compute_metrics needs the zgrid of the PDFs")
        pdf_known = pdf if known.all() else np.asarray(pdf)[known]  # no copy in the common case
        pit = pit_values(pdf_known, zgrid, zs)
        out.update(
            pit_ks=pit_ks(pit),
            pit_cvm=pit_cvm(pit),
            pit_ad=pit_ad(pit),
            crps=float(np.mean(crps(pdf_known, zgrid, zs))) if zs.size else float("nan"),
            coverage_68=coverage(pit, 68),
            coverage_95=coverage(pit, 95),
            cde_loss=cde_loss(pdf_known, zgrid, zs),
        )
    return out


def binned_metrics(z_phot, z_spec, by, bins, pdf=None, zgrid: ZGrid | None = None,
                   outlier_threshold: float = 0.05) -> list[dict]:
    """:func:`compute_metrics` in bins of another quantity (``z_spec`` itself, a magnitude...).

    Parameters
    ----------
    by : array_like, shape (N,)
        The binning quantity; rows where it is not finite are left out.
    bins : int or array_like
        Bin edges, or a number of equal-width bins spanning the finite ``by`` of rows with a
        known ``z_spec``. Bins are half-open ``[lo, hi)`` except the last, which includes ``hi``.

    Returns
    -------
    list of dict
        One dict per bin: ``lo``, ``hi`` and the metrics of :func:`compute_metrics`.
    """
    z_spec = np.asarray(z_spec, dtype=np.float64)
    by = np.asarray(by, dtype=np.float64)
    usable = np.isfinite(by) & np.isfinite(z_spec)
    if np.ndim(bins) == 0:
        if not usable.any():
            return []
        lo, hi = by[usable].min(), by[usable].max()
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    # Clipping puts by == edges[-1] into the last bin.
    index = np.clip(np.searchsorted(edges, by, side="right") - 1, 0, len(edges) - 2)
    inside = usable & (by >= edges[0]) & (by <= edges[-1])
    z_phot = np.asarray(z_phot, dtype=np.float64)
    table = []
    for b in range(len(edges) - 1):
        sel = inside & (index == b)
        sub_pdf = None if pdf is None else np.asarray(pdf)[sel]
        row = {"lo": float(edges[b]), "hi": float(edges[b + 1])}
        row.update(compute_metrics(z_phot[sel], z_spec[sel], sub_pdf, zgrid, outlier_threshold))
        table.append(row)
    return table


# --------------------------------------------------------------------------- physical parameters
#: |predicted - true| beyond which a physical-parameter estimate is an outlier (dex: a factor 2).
PROPERTY_OUTLIER_DEX = 0.3


def property_metrics(true, mean, std, outlier_dex: float = PROPERTY_OUTLIER_DEX) -> dict:
    """Scores of Gaussian estimates ``N(mean, std)`` of a physical parameter in dex (issue 14).

    Over the rows where all three are finite: ``bias`` (median of mean - true), ``nmad``
    (1.4826 x the median absolute deviation of mean - true about its median: the scatter),
    ``rms``, ``outlier_frac`` (|mean - true| > ``outlier_dex``), ``pit_ks`` (of the Gaussian CDF at
    the truth: calibration of ``std``), ``coverage_68`` (truth within mean +- std), ``n``.
    """
    true, mean, std = (np.asarray(a, dtype=np.float64) for a in (true, mean, std))
    ok = np.isfinite(true) & np.isfinite(mean) & np.isfinite(std) & (std > 0)
    d = mean[ok] - true[ok]
    if not d.size:
        return {k: float("nan") for k in ("bias", "nmad", "rms", "outlier_frac", "pit_ks", "coverage_68")} | {"n": 0}
    pit = stats.norm.cdf(true[ok], loc=mean[ok], scale=std[ok])
    med = np.median(d)
    return {"bias": float(med), "nmad": float(1.4826 * np.median(np.abs(d - med))),
            "rms": float(np.sqrt(np.mean(d ** 2))),
            "outlier_frac": float(np.mean(np.abs(d) > outlier_dex)), "pit_ks": pit_ks(pit),
            "coverage_68": float(np.mean(np.abs(d) <= std[ok])), "n": int(d.size)}


# --------------------------------------------------------------------------- tomography
#: LSST DESC SRD (Y10) requirement on the mean redshift of a tomographic bin: |Δ<z>| <= 0.002 (1 + z).
TOMO_MEAN_Z_REQUIREMENT = 0.002


def tomographic_mean_bias(z_phot, z_spec, pdf, zgrid: ZGrid, edges) -> list[dict]:
    """Error of each tomographic bin's mean redshift (issue 13).

    Galaxies are binned by ``z_phot`` on ``edges``; in each bin the estimated n(z) is the stack of
    their PDFs and its mean is compared with the mean true redshift of the same galaxies:
    ``dz_mean`` = <z>_stack - <z_spec>, and ``requirement`` = 0.002 (1 + <z_spec>) (LSST DESC SRD Y10).
    """
    z_phot, z_spec = np.asarray(z_phot, dtype=np.float64), np.asarray(z_spec, dtype=np.float64)
    pdf = normalise(pdf)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (z_phot >= lo) & (z_phot < hi) & np.isfinite(z_spec)
        if not sel.any():
            out.append({"lo": float(lo), "hi": float(hi), "n": 0})
            continue
        stack = pdf[sel].sum(axis=0)
        mean_est = float(stack @ zgrid.centres / stack.sum())
        mean_true = float(z_spec[sel].mean())
        out.append({"lo": float(lo), "hi": float(hi), "n": int(sel.sum()), "mean_true": mean_true,
                    "mean_stack": mean_est, "dz_mean": mean_est - mean_true,
                    "requirement": TOMO_MEAN_Z_REQUIREMENT * (1 + mean_true)})
    return out
