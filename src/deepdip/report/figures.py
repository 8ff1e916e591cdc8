"""PNG figures of the evaluation report, each a function ``data -> saved file``.

Figures are built on :class:`matplotlib.figure.Figure` without pyplot, so no global state or
interactive backend is touched (safe in workers and notebooks); the PNG goes through the Agg
canvas and is written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from deepdip.atomic import atomic_path
from deepdip.photometry.noise import robust_sigma
from deepdip.zgrid import ZGrid


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def _density(ax, x, y, extent, bins=80):
    """2-D histogram on a log colour scale: scatter plots saturate beyond a few thousand points."""
    counts, xe, ye = np.histogram2d(x, y, bins=bins, range=extent)
    counts[counts == 0] = np.nan
    mesh = ax.pcolormesh(xe, ye, counts.T, norm=LogNorm(), cmap="viridis")
    ax.figure.colorbar(mesh, ax=ax, label="galaxies per cell")


def zphot_vs_zspec(z_spec, z_phot, zgrid: ZGrid, path, *, title: str, threshold: float) -> Path:
    """Density of z_phot against z_spec, with the 1:1 line and the outlier boundaries."""
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    lo, hi = zgrid.zmin, zgrid.zmax
    _density(ax, z_spec, z_phot, [[lo, hi], [lo, hi]])
    z = np.array([lo, hi])
    ax.plot(z, z, "k-", lw=0.8)
    for sign in (-1, 1):
        ax.plot(z, z + sign * threshold * (1 + z), "k--", lw=0.6)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="$z_{spec}$", ylabel="$z_{phot}$", title=title)
    return _save(fig, Path(path))


def residual_vs(x, dz, path, *, xlabel: str, title: str, threshold: float, nbins: int = 12) -> Path:
    """Density of dz against ``x`` with the running median and +-sigma_MAD band in bins of ``x``."""
    fig = Figure(figsize=(5.6, 4.0))
    ax = fig.add_subplot()
    lim = 3 * threshold
    lo, hi = float(np.min(x)), float(np.max(x))
    extent = [[lo, hi if hi > lo else lo + 1.0], [-lim, lim]]
    _density(ax, x, np.clip(dz, -lim, lim), extent)
    edges = np.linspace(extent[0][0], extent[0][1], nbins + 1)
    idx = np.clip(np.digitize(x, edges) - 1, 0, nbins - 1)
    centres, med_bins, smad_bins = [], [], []
    for b in range(nbins):
        d = dz[idx == b]
        if d.size:
            m = np.median(d)
            centres.append(0.5 * (edges[b] + edges[b + 1]))
            med_bins.append(m)
            smad_bins.append(robust_sigma(d))
    med, smad = np.array(med_bins), np.array(smad_bins)
    ax.plot(centres, med, "r-", label="median")
    ax.fill_between(centres, med - smad, med + smad, color="r", alpha=0.2, label=r"$\pm\sigma_{MAD}$")
    ax.axhline(0, color="k", lw=0.6)
    for sign in (-1, 1):
        ax.axhline(sign * threshold, color="k", ls="--", lw=0.6)
    ax.set(xlabel=xlabel, ylabel=r"$\Delta z = (z_{phot}-z_{spec})/(1+z_{spec})$", title=title)
    ax.legend(loc="upper right", fontsize="small")
    return _save(fig, Path(path))


def binned_scatter_and_outliers(tables: Mapping[str, Sequence[dict]], path, *, xlabel: str) -> Path:
    """sigma_MAD and outlier fraction per bin (rows of :func:`deepdip.metrics.binned_metrics`)."""
    fig = Figure(figsize=(9.5, 3.8))
    axes = fig.subplots(1, 2)
    for name, rows in tables.items():
        x = [0.5 * (r["lo"] + r["hi"]) for r in rows]
        axes[0].plot(x, [r["sigma_mad"] for r in rows], "o-", label=name)
        axes[1].plot(x, [r["outlier_frac"] for r in rows], "o-", label=name)
    axes[0].set(xlabel=xlabel, ylabel=r"$\sigma_{MAD}$")
    axes[1].set(xlabel=xlabel, ylabel=r"outlier fraction $\eta$")
    axes[0].legend(fontsize="small")
    return _save(fig, Path(path))


def pit_histogram(pits: Mapping[str, np.ndarray], path, *, nbins: int = 20) -> Path:
    """PIT histograms (flat when the PDFs are calibrated)."""
    fig = Figure(figsize=(5.2, 4.0))
    ax = fig.add_subplot()
    for name, pit in pits.items():
        ax.hist(pit, bins=nbins, range=(0, 1), density=True, histtype="step", lw=1.5, label=name)
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set(xlabel="PIT", ylabel="density", title="Probability integral transform")
    ax.legend(fontsize="small")
    return _save(fig, Path(path))


def nz_true_vs_stacked(z_spec, stacked: Mapping[str, tuple[ZGrid, np.ndarray]], path) -> Path:
    """n(z): histogram of z_spec against each method's stacked (averaged) PDF, as densities."""
    fig = Figure(figsize=(5.6, 4.0))
    ax = fig.add_subplot()
    edges = next(iter(stacked.values()))[0].edges
    # Coarser truth bins for small samples (about sqrt(N) bins), so shot noise does not dominate.
    step = max(1, int(np.ceil((len(edges) - 1) / max(np.sqrt(len(z_spec)), 1.0))))
    # matplotlib's stub types bins as Sequence[float]; an array of edges is what it documents (array-like)
    ax.hist(z_spec, bins=edges[::step], density=True, color="0.8", label="true $z_{spec}$")  # type: ignore[arg-type]
    for name, (zgrid, mean_pdf) in stacked.items():
        ax.stairs(mean_pdf / zgrid.width, zgrid.edges, lw=1.5, label=name)
    ax.set(xlabel="z", ylabel="n(z)", title="Redshift distribution")
    ax.legend(fontsize="small")
    return _save(fig, Path(path))
