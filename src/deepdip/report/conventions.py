"""A survey's own photo-z conventions: outlier thresholds and magnitude bins from its preset.

Deep surveys quote sigma_MAD with the outlier fractions eta at |dz| > 0.15 (Ilbert et al. 2006;
Coupon et al. 2009) and often > 0.05, per 1-mag bin of the selection band; SDSS work quotes
eta at 0.05. A preset states its conventions under ``"evaluation"``::

    "evaluation": {"outlier_thresholds": [0.15, 0.05], "magnitude": "i",
                   "mag_edges": [17.5, 18.5, 19.5, 20.5, 21.5, 22.5],
                   "z_edges": [0, 0.25, 0.5, 0.75, 1, 1.5, 3]}

and :func:`convention_scores` computes them for one catalogue (``deepdip demo`` and
``benchmarks/deep_comparison.py`` print them with :func:`convention_table`).
"""

from __future__ import annotations

import numpy as np

from deepdip.metrics import binned_metrics, compute_metrics

DEFAULT = {"outlier_thresholds": [0.15, 0.05], "magnitude": None, "mag_edges": None,
           "z_edges": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 3.0]}


def conventions(survey) -> dict:
    """The preset's ``evaluation`` settings over the defaults (deep-survey thresholds, no magnitude bins)."""
    return {**DEFAULT, **(survey.get("evaluation") or {})}


def convention_scores(z_phot, z_spec, pdf, zgrid, conv: dict, magnitude=None) -> dict:
    """sigma_MAD, eta at each threshold, median bias, PIT KS and 68 % coverage: overall, per
    magnitude bin (``conv["mag_edges"]``, with ``magnitude`` [N]) and per z_spec bin."""
    thresholds = [float(t) for t in conv["outlier_thresholds"]]

    def summary(rows_by_threshold):
        first = rows_by_threshold[0]
        out = {"n": first["n"], "sigma_mad": first["sigma_mad"], "bias_median": first["bias_median"]}
        for t, m in zip(thresholds, rows_by_threshold):
            out[f"eta_{t:g}"] = m["outlier_frac"]
        if "pit_ks" in first:
            out.update(pit_ks=first["pit_ks"], coverage_68=first["coverage_68"])
        return out

    overall = [compute_metrics(z_phot, z_spec, pdf if k == 0 else None, zgrid, t) for k, t in enumerate(thresholds)]
    result = summary(overall)
    bins = [("by_z", z_spec, conv["z_edges"])]
    if magnitude is not None and conv.get("mag_edges"):
        bins.insert(0, ("by_mag", magnitude, conv["mag_edges"]))
    for key, by, edges in bins:
        per = [binned_metrics(z_phot, z_spec, by, edges, pdf if k == 0 else None, zgrid, t)
               for k, t in enumerate(thresholds)]
        result[key] = [{"lo": rows[0]["lo"], "hi": rows[0]["hi"], **summary(rows)} for rows in zip(*per)]
    return result


def convention_table(scores: dict[str, dict], conv: dict) -> str:
    """Markdown tables (overall; sigma_MAD / first eta per magnitude and z bin) of several methods."""
    thresholds = [float(t) for t in conv["outlier_thresholds"]]
    head = "| method | n | σ_MAD | " + " | ".join(f"η({t:g})" for t in thresholds) + " | bias | PIT KS | 68 % cov. |"
    lines = [head, "|---" * (6 + len(thresholds)) + "|"]
    for name, s in scores.items():
        etas = " | ".join(f"{100 * s[f'eta_{t:g}']:.2f} %" for t in thresholds)
        lines.append(f"| {name} | {s['n']} | {s['sigma_mad']:.4f} | {etas} | {s['bias_median']:+.4f} | "
                     f"{s.get('pit_ks', np.nan):.3f} | {s.get('coverage_68', np.nan):.3f} |")
    t0 = thresholds[0]
    for key, label in (("by_mag", f"per {conv.get('magnitude') or 'magnitude'} bin"), ("by_z", "per z_spec bin")):
        first = next(iter(scores.values())).get(key)
        if not first:
            continue
        lines += ["", f"σ_MAD / η({t0:g}) (n) {label}:", "",
                  "| method | " + " | ".join(f"{b['lo']:g}–{b['hi']:g}" for b in first) + " |",
                  "|---" * (1 + len(first)) + "|"]
        for name, s in scores.items():
            cells = " | ".join(f"{b['sigma_mad']:.3f} / {100 * b[f'eta_{t0:g}']:.1f} % ({b['n']})" for b in s[key])
            lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def score_catalog(path, conv: dict, keep_ids=None) -> dict:
    """:func:`convention_scores` of a photo-z catalogue file (its ``z_mean``; the magnitude column
    ``mag_<conv["magnitude"]>`` when it has one), optionally on the galaxies ``keep_ids`` only."""
    from deepdip.catalog import read_catalog

    cat = read_catalog(path)
    table, pdf = cat.table, cat.pdf
    if keep_ids is not None:
        sel = np.isin(table["id"].to_numpy(), keep_ids)
        table, pdf = table[sel].reset_index(drop=True), pdf[sel]
    column = f"mag_{conv['magnitude']}" if conv.get("magnitude") else None
    magnitude = table[column].to_numpy() if column in table else None
    return convention_scores(table["z_mean"].to_numpy(), table["z_spec"].to_numpy(), pdf, cat.zgrid, conv, magnitude)
