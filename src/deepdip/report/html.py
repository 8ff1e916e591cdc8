"""HTML fragments of the evaluation report; :func:`page` joins fragments into one document.

Each function returns a string so other pages (the demo's gallery) can reuse them.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence

# Summary rows of the comparison table: metrics.json key -> (label, format, how "best" is judged).
# best: "low" (smallest), "abs" (closest to 0), a number (closest to that ideal), None (not judged).
METRIC_ROWS = {
    "n": ("galaxies with z_spec", "{:d}", None),
    "sigma_mad": ("σ_MAD", "{:.4f}", "low"),
    "sigma_iqr": ("σ_IQR (RAIL)", "{:.4f}", "low"),
    "outlier_frac": ("outlier fraction η (|Δz| > threshold)", "{:.2%}", "low"),
    "outlier_frac_rail": ("outlier rate, RAIL (|Δz| > max(0.06, 3σ_IQR))", "{:.2%}", "low"),
    "bias": ("bias ⟨Δz⟩ (mean)", "{:+.5f}", "abs"),
    "bias_median": ("median Δz (RAIL's bias)", "{:+.5f}", "abs"),
    "pit_ks": ("PIT KS distance", "{:.3f}", "low"),
    "pit_cvm": ("PIT Cramér–von Mises", "{:.3g}", "low"),
    "crps": ("mean CRPS", "{:.4f}", "low"),
    "coverage_68": ("68 % coverage (ideal 0.68)", "{:.3f}", 0.6827),
    "coverage_95": ("95 % coverage (ideal 0.95)", "{:.3f}", 0.9545),
    "cde_loss": ("CDE loss", "{:.3f}", "low"),
}
SUMMARY_ROWS = {key: label for key, (label, _, _) in METRIC_ROWS.items()}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 90em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; background: #e8f4e8; }
p.header { font-size: 1.05em; max-width: 60em; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.9em; color: #444; }
.grid { display: grid; grid-template-columns: 9em repeat(3, minmax(0, 1fr)); gap: 0.3em; align-items: center; }
.grid img { width: 100%; }
.grid .method { font-weight: bold; }
details { margin: 0.5em 0; }
"""


def _fmt(value, spec: str = "{:.5g}") -> str:
    if isinstance(value, (bool, type(None))):
        return html.escape(str(value))
    if isinstance(value, (int, float)):
        if value != value:
            return "–"  # NaN: an empty bin, or a metric this method lacks
        try:
            return spec.format(value)
        except ValueError:  # an integer spec for a float, or the reverse
            return f"{value:.5g}"
    return html.escape(str(value))


def _best(values: dict, rule) -> set:
    """The methods whose value is best by ``rule`` (ties all marked); none when fewer than two compete."""
    finite = {k: v for k, v in values.items() if isinstance(v, (int, float)) and v == v}
    if rule is None or len(finite) < 2:
        return set()
    score = {k: (v if rule == "low" else abs(v) if rule == "abs" else abs(v - rule)) for k, v in finite.items()}
    top = min(score.values())
    return {k for k, v in score.items() if v <= top + 1e-12 * max(1.0, abs(top))}


def metrics_table(metrics: Mapping[str, Mapping], rows: Mapping | None = None) -> str:
    """One column per method, one row per summary metric, each rounded to what it resolves; the best
    method of each row is marked (bold; lowest, nearest 0 for biases, nearest the ideal for coverage).

    ``rows``: metrics.json key -> label (values formatted ``{:.5g}``, not judged), or the default
    :data:`METRIC_ROWS`.
    """
    names = list(metrics)
    spec = METRIC_ROWS if rows is None else {k: (label, "{:.5g}", None) for k, label in rows.items()}
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for key, (label, fmt, rule) in spec.items():
        if not any(key in metrics[n] for n in names):
            continue
        values = {n: metrics[n].get(key, float("nan")) for n in names}
        best = _best(values, rule)
        cells = "".join(f'<td{" class=best" if n in best else ""}>{_fmt(values[n], fmt)}</td>' for n in names)
        body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"


def figure_grid(rows: Sequence[tuple[str, Sequence[tuple[str | os.PathLike, str]]]], *,
                relative_to: str | os.PathLike) -> str:
    """Figures in a compact grid, one row per method: ``[(method, [(path, caption), ...]), ...]``."""
    cells = []
    for name, figs in rows:
        cells.append(f'<div class="method">{html.escape(name)}</div>')
        for path, caption in figs:
            src = html.escape(os.path.relpath(path, relative_to).replace(os.sep, "/"))
            cells.append(f'<a href="{src}"><img src="{src}" alt="{html.escape(caption)}" '
                         f'title="{html.escape(caption)}"></a>')
        cells.extend("<div></div>" for _ in range(3 - len(figs)))
    return f'<div class="grid">{"".join(cells)}</div>'


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
    return f'<figure><img src="{src}" alt="{text}" width="640"><figcaption>{text}</figcaption></figure>'


def section(title: str, *fragments: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n" + "\n".join(fragments)


def paragraph(text: str, css_class: str | None = None) -> str:
    return f'<p class="{css_class}">{html.escape(text)}</p>' if css_class else f"<p>{html.escape(text)}</p>"


def collapsed(summary: str, *fragments: str) -> str:
    """Fragments folded under a one-line summary (per-bin tables a reader opens on demand)."""
    return f"<details><summary>{html.escape(summary)}</summary>\n" + "\n".join(fragments) + "</details>"


def page(title: str, fragments: Iterable[str]) -> str:
    """A complete, self-contained HTML document (inline CSS, images by relative path)."""
    body = "\n".join(fragments)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
