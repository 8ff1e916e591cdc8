"""Physical parameters predicted beside the redshift (issue 14): their names, labels and catalogue columns.

A network trained with ``deepdip train --properties logmstar,logsfr`` has a Gaussian head per
quantity (:class:`deepdip.models.heads.GaussianHead`) beside its redshift head; its photo-z
catalogue gets ``<name>_mean`` and ``<name>_std`` for each (:func:`catalog_columns`).

Where the labels come from: a catalogue column of the store with the property's own name (a real
training set brings e.g. ``logmstar`` from the MPA-JHU catalogue), else the quantity derived from
the columns a deepdip mock writes (:data:`DERIVED`). Any other catalogue column may be named too
(a regression of that column as it is). A galaxy whose label is NaN is trained on for the redshift
only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepdip.errors import DeepdipValueError

#: Below this SFR [Msun/yr] a galaxy is quiescent: the mock's 300-Myr SFR of an old population is
#: the templates' residual (down to 1e-11), which no survey measures (SDSS's MPA-JHU rates of
#: quiescent galaxies sit near 10^-2 to 10^-1 Msun/yr, from D4000, with an uncertainty of ~1 dex).
#: ``logsfr`` is floored here so that the label means something observable.
SFR_FLOOR = 1e-3


@dataclass(frozen=True)
class DerivedProperty:
    """A property computed from mock catalogue columns."""

    sources: tuple[str, ...]
    compute: Callable[..., np.ndarray]
    unit: str
    description: str


DERIVED: dict[str, DerivedProperty] = {
    "logmstar": DerivedProperty(("stellar_mass",), lambda m: np.log10(m), "dex (Msun)",
                                "log10 stellar mass"),
    "logsfr": DerivedProperty(("sfr",), lambda s: np.log10(np.maximum(s, SFR_FLOOR)), "dex (Msun/yr)",
                              f"log10 star-formation rate over the last 300 Myr, floored at {SFR_FLOOR:g}"),
    "logssfr": DerivedProperty(("sfr", "stellar_mass"),
                               lambda s, m: np.log10(np.maximum(s, SFR_FLOOR)) - np.log10(m), "dex (1/yr)",
                               "log10 specific star-formation rate (logsfr - logmstar)"),
}


def parse_properties(value) -> list[str]:
    """``"logmstar,logsfr"`` (or a list) -> ``["logmstar", "logsfr"]``; None or "" -> []."""
    if value is None:
        return []
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise DeepdipValueError(f"--properties names a quantity twice: {','.join(names)}")
    return names


def check_properties(store, names) -> None:
    """Refuse (one line naming the problem) a property the store cannot provide labels for."""
    columns = set(store.columns)
    for name in names:
        if name in columns:
            continue
        derived = DERIVED.get(name)
        if derived is None:
            raise DeepdipValueError(f"--properties: {name!r} is neither a catalogue column of {store.path} nor one of "
                                    f"the derived quantities {', '.join(DERIVED)}")
        missing = [c for c in derived.sources if c not in columns]
        if missing:
            raise DeepdipValueError(f"--properties {name}: the store has no column {name!r} and none of "
                                    f"{', '.join(missing)} to derive it from")


def property_labels(store, names, rows=None) -> np.ndarray:
    """float32 ``[n, P]`` labels of ``names`` for ``rows`` (NaN where unknown or not finite)."""
    check_properties(store, names)
    n = len(store) if rows is None else len(rows)
    out = np.full((n, len(names)), np.nan, dtype=np.float32)
    columns = set(store.columns)
    for j, name in enumerate(names):
        if name in columns:
            values = store.column(name, rows).astype(np.float64)
        else:
            derived = DERIVED[name]
            with np.errstate(divide="ignore", invalid="ignore"):
                values = derived.compute(*(store.column(c, rows).astype(np.float64) for c in derived.sources))
        out[:, j] = np.where(np.isfinite(values), values, np.nan)
    return out


def catalog_columns(names) -> list[str]:
    """The photo-z catalogue columns of ``names``: ``<name>_mean`` and ``<name>_std`` each."""
    return [f"{n}_{kind}" for n in names for kind in ("mean", "std")]
