"""Metrics of a photo-z catalogue of any size in bounded memory: one pass over its Parquet row groups.

``deepdip evaluate --stream`` scores survey-size catalogues (10^8-10^9 rows) that
:func:`deepdip.report.evaluate` cannot load. Each batch of rows updates fixed-size accumulators;
nothing grows with the number of rows. What is exact and what is bounded:

- **exact** (sums and counts of the rows themselves): ``n``, ``bias`` (mean), ``outlier_frac``
  (the fixed threshold), ``crps`` (mean), ``cde_loss``, ``coverage_68``, ``coverage_95``;
- **from a fine histogram** of ``dz = (z_phot - z_spec) / (1 + z_spec)`` on ``[-1, 4]`` in bins of
  ``resolution`` h (default 1e-6; ``dz`` >= -1 for z_phot >= 0, values >= 4 count in an
  overflow bin): each value is replaced by its bin's centre, at most h / 2 away, which moves every
  order statistic by at most h / 2, so ``bias_median`` and the quartiles are within h / 2 of the
  exact ones, ``sigma_iqr`` within h / 1.349 and ``sigma_mad`` within 1.4826 h; the galaxies in
  the one bin at each side of ``outlier_frac_rail``'s threshold count half, their share is its error;
- **PIT**: a histogram of the PIT values in bins of h; ``pit_ks`` is the Kolmogorov-Smirnov
  distance at the bin edges, a lower bound of the exact one and within h of it.
  ``pit_cvm`` and ``pit_ad`` need every sorted PIT value: not computed here.

Every bound is written beside its metric under ``bounds``. Several files (or a folder of Parquet
parts) are read as one catalogue; streaming does not match catalogues by id (``evaluate`` does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from deepdip.catalog import open_catalog
from deepdip.errors import DeepdipError, check_number
from deepdip.metrics import INTERVALS, IQR_PER_SIGMA, RAIL_OUTLIER_FLOOR, _cde_kernel, _crps_kernel, cdf_at, normalise
from deepdip.photometry.noise import MAD_TO_SIGMA
from deepdip.zgrid import ZGrid

DZ_RANGE = (-1.0, 4.0)
RESOLUTION = 1e-6
BATCH_ROWS = 65536


class StreamingMetrics:
    """Accumulates the metrics of :func:`deepdip.metrics.compute_metrics` batch by batch.

    ``update(z_phot, z_spec, pdf)`` with arrays of one batch (rows with a non-finite ``z_spec``
    are skipped); ``result()`` the metrics so far, with their ``bounds``. Memory: two histograms of
    ``(DZ_RANGE width + 1) / resolution`` int64 counts (40 MB + 8 MB at the default 1e-6).
    """

    def __init__(self, zgrid: ZGrid | None = None, *, outlier_threshold: float = 0.05,
                 resolution: float = RESOLUTION):
        check_number("resolution", resolution, above=0, maximum=0.01)
        self.zgrid, self.threshold, self.h = zgrid, float(outlier_threshold), float(resolution)
        self.n_dz = int(round((DZ_RANGE[1] - DZ_RANGE[0]) / self.h))
        self.dz_hist = np.zeros(self.n_dz + 1, np.int64)  # the last bin: dz >= DZ_RANGE[1]
        self.n_pit = int(round(1.0 / self.h))
        self.pit_hist = np.zeros(self.n_pit, np.int64)
        self.n = 0
        self.sums = {"dz": 0.0, "outliers": 0, "crps": 0.0, "int_f2": 0.0, "f_at_z": 0.0, "cov68": 0, "cov95": 0}

    def update(self, z_phot, z_spec, pdf=None) -> None:
        zp = np.asarray(z_phot, dtype=np.float64)
        zs = np.asarray(z_spec, dtype=np.float64)
        known = np.isfinite(zs)
        zp, zs = zp[known], zs[known]
        if not np.all(np.isfinite(zp)):
            raise DeepdipError(f"{int(np.sum(~np.isfinite(zp)))} point estimate(s) are NaN or infinite")
        if not len(zs):
            return
        dz = (zp - zs) / (1.0 + zs)
        self.n += len(dz)
        self.sums["dz"] += float(dz.sum())
        self.sums["outliers"] += int(np.sum(np.abs(dz) > self.threshold))
        idx = np.clip(np.floor((dz - DZ_RANGE[0]) / self.h).astype(np.int64), 0, self.n_dz)
        self.dz_hist += np.bincount(idx, minlength=self.n_dz + 1)
        if pdf is None:
            return
        if self.zgrid is None:
            raise ValueError("StreamingMetrics needs the zgrid of the PDFs")
        p = normalise(np.asarray(pdf)[known])
        pit = cdf_at(p, self.zgrid, zs)
        self.pit_hist += np.bincount(np.clip((pit / self.h).astype(np.int64), 0, self.n_pit - 1),
                                     minlength=self.n_pit)
        for level in (68, 95):
            lo, hi = INTERVALS[level]
            self.sums[f"cov{level}"] += int(np.sum((pit >= lo) & (pit <= hi)))
        self.sums["crps"] += float(_crps_kernel(p, self.zgrid, zs).sum())
        cde = _cde_kernel(p, self.zgrid, zs)
        self.sums["int_f2"] += float(cde["int_f2"].sum())
        self.sums["f_at_z"] += float(cde["f_at_z"].sum())

    # ---------------------------------------------------------------- order statistics
    def _centres(self) -> np.ndarray:
        c = DZ_RANGE[0] + (np.arange(self.n_dz + 1) + 0.5) * self.h
        c[-1] = DZ_RANGE[1]  # overflow: only its rank matters, and a median never falls there in practice
        return c

    def _quantile(self, q: float, cum: np.ndarray, centres: np.ndarray) -> float:
        """numpy's linear-interpolation quantile of dz, each order statistic replaced by its bin's centre."""
        pos = q * (self.n - 1)
        lo, frac = int(np.floor(pos)), pos - np.floor(pos)

        def order_stat(k):  # the centre of the (non-empty) bin holding the k-th smallest value (0-based)
            return centres[np.searchsorted(cum, k + 1)]

        a = order_stat(lo)
        return float(a if frac == 0 else a + frac * (order_stat(min(lo + 1, self.n - 1)) - a))

    def result(self) -> dict:
        nan = float("nan")
        if self.n == 0:
            return {"n": 0, "sigma_mad": nan, "outlier_frac": nan, "bias": nan, "bias_median": nan,
                    "sigma_iqr": nan, "outlier_frac_rail": nan}
        n, h = self.n, self.h
        nonzero = np.flatnonzero(self.dz_hist)
        counts = self.dz_hist[nonzero]
        cum = np.cumsum(counts)
        centres = self._centres()[nonzero]
        median = self._quantile(0.5, cum, centres)
        # median absolute deviation: the weighted median of the bins' distances to the median
        dist = np.abs(centres - median)
        order = np.argsort(dist, kind="stable")
        dcum = np.cumsum(counts[order])
        sorted_dist = dist[order]
        mad = 0.5 * (sorted_dist[np.searchsorted(dcum, (n - 1) // 2 + 1)]
                     + sorted_dist[np.searchsorted(dcum, n // 2 + 1)])
        q25 = self._quantile(0.25, cum, centres)
        q75 = self._quantile(0.75, cum, centres)
        sigma_iqr = (q75 - q25) / IQR_PER_SIGMA
        cut = max(RAIL_OUTLIER_FLOOR, 3.0 * sigma_iqr)
        edges_lo = DZ_RANGE[0] + nonzero * h
        clear = (edges_lo > cut) | (edges_lo + h <= -cut)  # bins wholly beyond the threshold
        straddle = ((edges_lo <= cut) & (edges_lo + h > cut)) | ((edges_lo < -cut) & (edges_lo + h > -cut))
        out: dict[str, Any] = {
            "n": int(n),
            "sigma_mad": float(MAD_TO_SIGMA * mad),
            "outlier_frac": self.sums["outliers"] / n,
            "bias": self.sums["dz"] / n,
            "bias_median": median,
            "sigma_iqr": float(sigma_iqr),
            "outlier_frac_rail": float(counts[clear].sum() + 0.5 * counts[straddle].sum()) / n,
        }
        # moving every value by at most e moves every order statistic by at most e: a value is within h / 2
        # of its bin's centre, its distance to the estimated median within h of its distance to the true one
        bounds = {"sigma_mad": MAD_TO_SIGMA * h, "bias_median": h / 2, "sigma_iqr": h / IQR_PER_SIGMA,
                  "outlier_frac_rail": 0.5 * float(counts[straddle].sum()) / n}
        if self.pit_hist.any():
            pc = np.cumsum(self.pit_hist) / n
            edges = np.arange(1, self.n_pit + 1) * h
            ks = float(np.max(np.abs(np.concatenate([[0.0], pc]) - np.concatenate([[0.0], edges]))))
            out.update(pit_ks=ks, crps=self.sums["crps"] / n, coverage_68=self.sums["cov68"] / n,
                       coverage_95=self.sums["cov95"] / n,
                       cde_loss=self.sums["int_f2"] / n - 2.0 * self.sums["f_at_z"] / n)
            bounds["pit_ks"] = h  # inside a bin [a, a + h], |F_n(x) - x| <= the larger edge deviation + h
        out["bounds"] = bounds
        out["resolution"] = h
        return out


def catalogue_parts(path) -> list[Path]:
    """The Parquet files of a catalogue: the file itself, or a folder's ``*.parquet`` in name order."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            raise DeepdipError(f"{path} holds no .parquet files")
        return parts
    if not path.is_file():
        raise DeepdipError(f"photo-z catalogue not found: {path}")
    return [path]


def iter_batches(parts: Sequence[Path], point: str, batch_rows: int = BATCH_ROWS) -> Iterator[tuple]:
    """(z_phot, z_spec, pdf [rows, nbins]) per batch of rows, file after file, row group by row group."""
    for part in parts:
        pf = pq.ParquetFile(part)
        missing = [c for c in (point, "z_spec", "pdf") if c not in pf.schema_arrow.names]
        if missing:
            raise DeepdipError(f"{part} lacks column(s) {', '.join(missing)} (streaming scores z_spec and {point})")
        for batch in pf.iter_batches(batch_size=batch_rows, columns=[point, "z_spec", "pdf"]):
            pdf = batch.column("pdf")
            width = pdf.type.list_size
            yield (batch.column(point).to_numpy(zero_copy_only=False),
                   batch.column("z_spec").to_numpy(zero_copy_only=False),
                   pdf.flatten().to_numpy(zero_copy_only=False).reshape(len(batch), width))


def stream_metrics(catalog, *, point: str = "z_mean", outlier_threshold: float = 0.05,
                   resolution: float = RESOLUTION, batch_rows: int = BATCH_ROWS) -> dict:
    """The metrics of one catalogue (a Parquet file, several, or a folder of parts) in one pass."""
    parts = [p for c in ([catalog] if isinstance(catalog, (str, Path)) else catalog) for p in catalogue_parts(c)]
    grids = {open_catalog(p)[2] for p in parts}
    if len(grids) != 1:
        raise DeepdipError(f"the parts of one catalogue must share one redshift grid; found {len(grids)}")
    zgrid = grids.pop()
    acc = StreamingMetrics(zgrid, outlier_threshold=outlier_threshold, resolution=resolution)
    n_rows = 0
    for zp, zs, pdf in iter_batches(parts, point, batch_rows):
        if pdf.shape[1] != zgrid.nbins:
            raise DeepdipError(f"pdf column holds {pdf.shape[1]} values per row; the grid has {zgrid.nbins} bins")
        acc.update(zp, zs, pdf)
        n_rows += len(zs)
    if acc.n == 0:
        raise DeepdipError(f"none of the {n_rows} rows has a finite z_spec")
    return {**acc.result(), "n_catalog": n_rows, "point_estimate": point, "parts": len(parts)}


def evaluate_stream(catalogs: Iterable, out_dir, names: Sequence[str] | None = None, *,
                    point: str = "z_mean", outlier_threshold: float = 0.05, resolution: float = RESOLUTION,
                    overwrite: bool = False) -> dict:
    """Score each catalogue apart, streaming; write ``out_dir/metrics.json`` (no figures, no HTML)."""
    from deepdip.report.comparison import _json_safe
    from deepdip.report.output import check_report_dir, report_folder

    catalogs = list(catalogs)
    out_dir = Path(out_dir)
    check_number("outlier_threshold", outlier_threshold, above=0)
    check_report_dir(out_dir, overwrite=overwrite, inputs=catalogs)
    labels = list(names) if names else [Path(c).stem for c in catalogs]
    if len(set(labels)) != len(labels):
        raise DeepdipError(f"catalogue names must differ: {labels}; give --names")
    metrics = {label: stream_metrics(c, point=point, outlier_threshold=outlier_threshold, resolution=resolution)
               for label, c in zip(labels, catalogs)}
    with report_folder(out_dir, overwrite=overwrite, inputs=catalogs) as build:
        (build / "metrics.json").write_text(json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n")
    return metrics
