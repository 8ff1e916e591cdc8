"""Parameters of the catalogue baselines, each declared once with its type, default and help.

RAIL-style: an estimator's ``PARAMS`` maps names to :class:`Param`; the constructor, ``get_params``,
the CLI options (``deepdip baseline --k 30``) and the docs all read the same declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One estimator parameter: ``type`` converts CLI strings, ``help`` explains it once."""

    type: type
    default: Any
    help: str


# Shared by every baseline (RAIL's SHARED_PARAMS): the same name means the same thing everywhere.
SHARED_PARAMS: dict[str, Param] = {
    "ref_band": Param(
        str, None,
        "band whose magnitude joins the colours as a feature "
        "(default: the survey's selection band, e.g. r for sdss)",
    ),
    "extra_columns": Param(
        str, "auto",
        "comma-separated extra MEASURED store columns used as features (log10 of positive-only ones); "
        "'auto' = the measured size (hlr_meas) when the store has it, '' = none; truth columns are refused",
    ),
    "max_train": Param(
        int, 0,
        "fit on at most this many training galaxies, a seeded random subset (0 = all): caps fit time",
    ),
    "seed": Param(int, 0, "seed of every random choice of the estimator (subsets, trees, validation splits)"),
    "n_jobs": Param(int, 1, "CPU threads for fitting and prediction"),
}


#: The smoothing width of vote-histogram PDFs (knn, rf): one declaration, one meaning.
KERNEL_BINS = Param(
    float, 0.0,
    "Gaussian smoothing of the vote histogram, in bins; 0 = choose it on held-out training galaxies "
    "so that their PIT is uniform (leave-one-out for knn, out-of-bag for rf)",
)


def resolve(declared: dict[str, Param], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given`` (``None`` means default), after rejecting unknown names."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(declared))}")
    out = {}
    for name, p in declared.items():
        value = given.get(name)
        out[name] = p.default if value is None else (value if p.type is object else p.type(value))
    return out
