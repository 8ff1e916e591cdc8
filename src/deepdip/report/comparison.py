"""Evaluate and compare photo-z catalogues: ``metrics.json`` and an HTML report with figures.

Strategy: read every catalogue, keep the galaxies present in all of them (inner join on ``id``)
so every method is scored on the same objects, then score the rows with a finite ``z_spec``.
The pieces (:func:`match_catalogs`, :func:`score`, :func:`make_figures`, :mod:`.html`) are
public so other pages, such as the demo's gallery, can reuse them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepdip.catalog import PhotozCatalog, read_catalog
from deepdip.errors import DeepdipError, check_number
from deepdip.metrics import binned_metrics, compute_metrics, delta_z, pit_values
from deepdip.report import figures, html
from deepdip.report.output import check_report_dir, report_folder

POINT_ESTIMATES = ("z_mean", "z_median", "z_mode")


@dataclass
class Matched:
    """Catalogues restricted to their common ids, rows in the same order (sorted by id)."""

    catalogs: dict[str, PhotozCatalog]  # name -> catalogue of the common rows only
    z_spec: np.ndarray  # shared spectroscopic redshift, NaN where unknown
    n_input: dict[str, int]  # name -> rows in the file

    @property
    def n_common(self) -> int:
        return len(self.z_spec)


def _subset(cat: PhotozCatalog, rows: np.ndarray) -> PhotozCatalog:
    return PhotozCatalog(
        ids=cat.ids[rows], pdf=cat.pdf[rows], zgrid=cat.zgrid, method=cat.method, config=cat.config,
        table=cat.table.iloc[rows].reset_index(drop=True), metadata=cat.metadata,
    )


def _names(paths: Sequence[Path], cats: Sequence[PhotozCatalog], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(cats):
            raise DeepdipError(f"{len(names)} name(s) given for {len(cats)} catalogue(s)")
        if len(set(names)) != len(names):
            raise DeepdipError(f"names must be unique, got {list(names)}")
        return list(names)
    # Default to each catalogue's method; two runs of one method are told apart by file name.
    methods = [c.method for c in cats]
    out = [m if methods.count(m) == 1 else f"{m} ({p.stem})" for m, p in zip(methods, paths)]
    return out if len(set(out)) == len(out) else [f"{n} #{i + 1}" for i, n in enumerate(out)]


def match_catalogs(catalog_paths: Sequence, names: Sequence[str] | None = None) -> Matched:
    """Read catalogues and keep the ids present in all of them.

    Raises
    ------
    DeepdipError
        On an unreadable catalogue, duplicate ids, no common id, no ``z_spec`` in any catalogue,
        or catalogues that disagree on ``z_spec``.
    """
    paths = [Path(p) for p in catalog_paths]
    if not paths:
        raise DeepdipError("no catalogue to evaluate")
    cats = [read_catalog(p) for p in paths]
    labels = _names(paths, cats, names)
    for label, cat in zip(labels, cats):
        n_unique = np.unique(cat.ids).size
        if n_unique != len(cat):
            raise DeepdipError(f"catalogue '{label}' has {len(cat) - n_unique} duplicate id(s)")
    common = np.sort(cats[0].ids)
    for cat in cats[1:]:
        common = np.intersect1d(common, cat.ids, assume_unique=True)  # sorted
    if common.size == 0:
        raise DeepdipError("the catalogues have no id in common")
    matched = {}
    for label, cat in zip(labels, cats):
        order = np.argsort(cat.ids)
        matched[label] = _subset(cat, order[np.searchsorted(cat.ids[order], common)])
    with_z = [(label, c.table["z_spec"].to_numpy(np.float64)) for label, c in matched.items() if "z_spec" in c.table]
    if not with_z:
        raise DeepdipError("no catalogue has a z_spec column: metrics need spectroscopic redshifts")
    z_spec = with_z[0][1]
    for label, z in with_z[1:]:
        if not np.allclose(z, z_spec, rtol=0, atol=1e-6, equal_nan=True):
            raise DeepdipError(f"z_spec of '{label}' differs from that of '{with_z[0][0]}' for the same ids")
    return Matched(matched, z_spec, {label: len(c) for label, c in zip(labels, cats)})


def _magnitude_column(matched: Matched, magnitude: str | None) -> str | None:
    columns = [col for cat in matched.catalogs.values() for col in cat.table.columns]
    if magnitude is not None:
        if magnitude not in columns:
            available = ", ".join(dict.fromkeys(columns))
            raise DeepdipError(f"no catalogue has a '{magnitude}' column (available: {available})")
        return magnitude
    # Surveys select on r (SDSS) or i (deep surveys): prefer those to the first mag_* (often u).
    preferred = [c for c in ("mag_r", "mag_i") if c in columns]
    candidates = preferred or [c for c in columns if c.startswith("mag_")]
    return candidates[0] if candidates else None


def _column_from_any(matched: Matched, column: str) -> np.ndarray:
    cat = next(c for c in matched.catalogs.values() if column in c.table)
    return cat.table[column].to_numpy(np.float64)


def score(matched: Matched, *, point: str = "z_mean", outlier_threshold: float = 0.05,
          magnitude: str | None = None, z_bins: int = 8, mag_bins: int = 8) -> dict:
    """Metrics of each matched catalogue: summary, plus per-bin tables of z_spec and magnitude.

    Returns
    -------
    dict
        name -> {``n``, ``sigma_mad``, ``outlier_frac``, ``bias``, ``bias_median``, ``pit_ks``,
        ``crps``, ``coverage_68``, ``coverage_95``, ``cde_loss``, ``n_catalog``, ``n_common``,
        ``point_estimate``, ``by_z_spec`` [, ``magnitude``, ``by_magnitude``]}.
    """
    if z_bins < 1 or mag_bins < 1:
        raise DeepdipError(f"bin counts must be at least 1 (z_bins={z_bins}, mag_bins={mag_bins})")
    if point not in POINT_ESTIMATES:
        raise DeepdipError(f"point estimate must be one of {', '.join(POINT_ESTIMATES)}, not '{point}'")
    known = np.isfinite(matched.z_spec)
    if not known.any():
        raise DeepdipError(f"none of the {matched.n_common} common galaxies has a finite z_spec")
    zs = matched.z_spec[known]
    z_edges = np.linspace(zs.min(), zs.max() if zs.max() > zs.min() else zs.min() + 1e-3, z_bins + 1)
    mag_col = _magnitude_column(matched, magnitude)
    mag = _column_from_any(matched, mag_col)[known] if mag_col else None
    if mag is not None and not np.isfinite(mag).any():
        mag_col, mag = None, None  # a column of NaN cannot be binned
    out = {}
    for name, cat in matched.catalogs.items():
        zp = cat.table[point].to_numpy(np.float64)[known]
        pdf = cat.pdf[known]
        args = dict(pdf=pdf, zgrid=cat.zgrid, outlier_threshold=outlier_threshold)
        m = compute_metrics(zp, zs, **args)
        m.update(n_catalog=matched.n_input[name], n_common=matched.n_common, point_estimate=point)
        m["by_z_spec"] = binned_metrics(zp, zs, zs, z_edges, **args)
        if mag is not None:
            m["magnitude"] = mag_col
            m["by_magnitude"] = binned_metrics(zp, zs, mag, mag_bins, **args)
        out[name] = m
    return out


def _json_safe(value):
    """NaN (an empty bin's metrics) becomes null: strict JSON readers reject NaN."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "method"


def make_figures(matched: Matched, metrics: dict, out_dir: Path, *, point: str = "z_mean",
                 outlier_threshold: float = 0.05) -> list[tuple[Path, str]]:
    """Write the report's PNG figures into ``out_dir``; return (path, caption) pairs: each method's
    panels (prefixed with its slug), then the figures with every method overlaid."""
    known = np.isfinite(matched.z_spec)
    zs = matched.z_spec[known]
    first = next(iter(metrics.values()))
    mag_col = first.get("magnitude")
    mag = _column_from_any(matched, mag_col)[known] if mag_col else None
    made = []
    for name, cat in matched.catalogs.items():
        zp = cat.table[point].to_numpy(np.float64)[known]
        dz = delta_z(zp, zs)
        slug = _slug(name)
        made.append((figures.zphot_vs_zspec(zs, zp, cat.zgrid, out_dir / f"{slug}_zphot_zspec.png", title=name,
                                            threshold=outlier_threshold), f"{name}: {point} vs z_spec"))
        made.append((figures.residual_vs(zs, dz, out_dir / f"{slug}_dz_zspec.png", xlabel="$z_{spec}$", title=name,
                                         threshold=outlier_threshold), f"{name}: Δz vs z_spec"))
        if mag is not None:
            ok = np.isfinite(mag)
            made.append((figures.residual_vs(mag[ok], dz[ok], out_dir / f"{slug}_dz_mag.png", xlabel=mag_col,
                                             title=name, threshold=outlier_threshold), f"{name}: Δz vs {mag_col}"))
    made.append((figures.binned_scatter_and_outliers({n: m["by_z_spec"] for n, m in metrics.items()},
                                                     out_dir / "binned_zspec.png", xlabel="$z_{spec}$"),
                 "σ_MAD and outlier fraction in bins of z_spec"))
    if mag is not None:
        made.append((figures.binned_scatter_and_outliers({n: m["by_magnitude"] for n, m in metrics.items()},
                                                         out_dir / "binned_mag.png", xlabel=mag_col),
                     f"σ_MAD and outlier fraction in bins of {mag_col}"))
    pits = {n: pit_values(c.pdf[known], c.zgrid, zs) for n, c in matched.catalogs.items()}
    made.append((figures.pit_histogram(pits, out_dir / "pit.png"), "PIT histograms (flat = calibrated)"))
    stacked = {n: (c.zgrid, c.pdf[known].mean(axis=0, dtype=np.float64)) for n, c in matched.catalogs.items()}
    made.append((figures.nz_true_vs_stacked(zs, stacked, out_dir / "nz.png"), "n(z): true vs stacked PDFs"))
    return made


def report_sections(matched: Matched, metrics: dict, made: list[tuple[Path, str]], out_dir: Path) -> list[str]:
    """HTML fragments of the report: what was compared on which galaxies, the comparison table (best
    value per row marked), the figures with every method overlaid, then each method's panels in a
    grid, and the per-bin tables folded."""
    n_known = int(np.isfinite(matched.z_spec).sum())
    names = list(metrics)
    point = next(iter(metrics.values()))["point_estimate"]
    inputs = ", ".join(f"{name} {n}" for name, n in matched.n_input.items())
    zs = matched.z_spec[np.isfinite(matched.z_spec)]
    header = (f"{len(names)} method{'s' if len(names) > 1 else ''} ({', '.join(names)}) scored on the same "
              f"{n_known} galaxies with a spectroscopic redshift ({zs.min():.3f} ≤ z_spec ≤ {zs.max():.3f}), the ids "
              f"common to every catalogue ({matched.n_common} common rows; rows per catalogue: {inputs}). "
              f"Point estimate: {point}; Δz = (z_phot − z_spec)/(1 + z_spec). Bold: the best value of each row.")
    slugs = {name: _slug(name) for name in names}
    per_method = {name: [(p, c) for p, c in made if Path(p).name.startswith(slugs[name] + "_")] for name in names}
    own = {p for figs in per_method.values() for p, _ in figs}
    overlaid = [(p, c) for p, c in made if p not in own]
    parts = [
        html.paragraph(header, "header"),
        html.section("Comparison", html.metrics_table(metrics)),
        html.section("All methods", *(html.figure(p, caption, relative_to=out_dir) for p, caption in overlaid)),
        html.section("Each method", html.paragraph(
            "z_phot vs z_spec, Δz vs z_spec and Δz vs magnitude; click a panel for the full size."),
            html.figure_grid([(name, per_method[name]) for name in names], relative_to=out_dir)),
    ]
    for name, m in metrics.items():
        tables = [html.binned_table(m["by_z_spec"], label="z_spec bin")]
        if "by_magnitude" in m:
            tables.append(html.binned_table(m["by_magnitude"], label=f"{m['magnitude']} bin"))
        parts.append(html.collapsed(f"Per-bin metrics: {name}", *tables))
    return parts


def evaluate(catalog_paths: Sequence, out_dir, names: Sequence[str] | None = None, *,
             outlier_threshold: float = 0.05, point: str = "z_mean", magnitude: str | None = None,
             z_bins: int = 8, mag_bins: int = 8, title: str = "deepdip photo-z evaluation",
             extra_sections: Sequence[str] = (), overwrite: bool = False) -> dict:
    """Compare photo-z catalogues; write ``metrics.json``, ``index.html`` and PNGs into ``out_dir``.

    Parameters
    ----------
    catalog_paths : sequence of path-like
        Photo-z catalogues (:func:`deepdip.catalog.write_catalog`), matched by id.
    out_dir : path-like
        Report folder. Created if absent; an existing folder keeps its other files, but a report
        already there (``metrics.json``, ``index.html``) is replaced only with ``overwrite``, and
        then the figures of the old report that the new one lacks are removed. The report is
        built in a temporary folder and moved in when complete: a failure adds nothing.
    names : sequence of str, optional
        Method names in the report; default: each catalogue's method.
    outlier_threshold : float
        ``|Δz|`` above which a galaxy is an outlier.
    point : {"z_mean", "z_median", "z_mode"}
        The point estimate scored as z_phot.
    magnitude : str, optional
        Catalogue column for the per-magnitude metrics and figure; default: ``mag_r``, else
        ``mag_i``, else the first ``mag_*`` column, if any.
    z_bins, mag_bins : int
        Number of equal-width bins of z_spec and of magnitude.
    overwrite : bool
        Replace a report already in ``out_dir``.
    title : str
        Page title.
    extra_sections : sequence of str
        HTML fragments appended to the page (e.g. a gallery).

    Returns
    -------
    dict
        The content of ``metrics.json`` (see :func:`score`).
    """
    out_dir = Path(out_dir)
    check_number("outlier_threshold", outlier_threshold, above=0)
    check_number("z_bins", z_bins, minimum=1)
    check_number("mag_bins", mag_bins, minimum=1)
    check_report_dir(out_dir, overwrite=overwrite, inputs=catalog_paths)  # before any work
    matched = match_catalogs(catalog_paths, names)
    metrics = score(matched, point=point, outlier_threshold=outlier_threshold, magnitude=magnitude,
                    z_bins=z_bins, mag_bins=mag_bins)
    with report_folder(out_dir, overwrite=overwrite, inputs=catalog_paths) as build:
        made = make_figures(matched, metrics, build, point=point, outlier_threshold=outlier_threshold)
        (build / "metrics.json").write_text(json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n")
        fragments = report_sections(matched, metrics, made, build) + list(extra_sections)
        (build / "index.html").write_text(html.page(title, fragments), encoding="utf-8")
    return metrics
