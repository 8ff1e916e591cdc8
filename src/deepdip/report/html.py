"""HTML fragments of the evaluation report; :func:`page` joins fragments into one document.

Each function returns a string so other pages (the demo's gallery) can reuse them.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence

# Summary rows of the comparison table: metrics.json key -> label (lower is better unless noted).
SUMMARY_ROWS = {
    "n": "galaxies with z_spec",
    "sigma_mad": "σ_MAD",
    "outlier_frac": "outlier fraction η",
    "bias": "bias ⟨Δz⟩",
    "bias_median": "median Δz",
    "pit_ks": "PIT KS distance",
    "crps": "mean CRPS",
    "coverage_68": "68 % coverage (ideal 0.68)",
    "coverage_95": "95 % coverage (ideal 0.95)",
    "cde_loss": "CDE loss",
}

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 80em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; }
figcaption { font-size: 0.9em; color: #444; }
"""


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.5g}"  # NaN: an empty bin
    return html.escape(str(value))


def metrics_table(metrics: Mapping[str, Mapping], rows: Mapping[str, str] = SUMMARY_ROWS) -> str:
    """A table with one column per method and one row per summary metric."""
    names = list(metrics)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for key, label in rows.items():
        if any(key in metrics[n] for n in names):
            cells = "".join(f"<td>{_fmt(metrics[n].get(key, float('nan')))}</td>" for n in names)
            body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"


def binned_table(rows: Sequence[Mapping], *, label: str,
                 keys: Sequence[str] = ("n", "sigma_mad", "outlier_frac", "bias")) -> str:
    """A per-bin table (rows of :func:`deepdip.metrics.binned_metrics`)."""
    head = "".join(f"<th>{html.escape(SUMMARY_ROWS.get(k, k))}</th>" for k in keys)
    body = "".join(
        f"<tr><td>[{r['lo']:.3g}, {r['hi']:.3g})</td>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>"
        for r in rows
    )
    return f"<table><tr><th>{html.escape(label)}</th>{head}</tr>{body}</table>"


def figure(path: str | os.PathLike, caption: str, *, relative_to: str | os.PathLike) -> str:
    """An ``<img>`` with a caption; ``path`` is linked relative to the page's folder."""
    src = html.escape(os.path.relpath(path, relative_to).replace(os.sep, "/"))
    text = html.escape(caption)
    return f'<figure><img src="{src}" alt="{text}" width="520"><figcaption>{text}</figcaption></figure>'


def section(title: str, *fragments: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n" + "\n".join(fragments)


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def page(title: str, fragments: Iterable[str]) -> str:
    """A complete, self-contained HTML document (inline CSS, images by relative path)."""
    body = "\n".join(fragments)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
