"""Parameters of the catalogue baselines, each declared once with its type, default, help and valid range.

RAIL-style: an estimator's ``PARAMS`` maps names to :class:`Param`; the constructor, ``get_params``,
the CLI options (``deepdip baseline --k 30``), the validity checks and the docs all read the same
declaration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from deepdip.errors import DeepdipValueError


@dataclass(frozen=True)
class Param:
    """One estimator parameter: ``type`` converts CLI strings, ``help`` explains it once.

    The valid values are declared beside them, so the constructor refuses a bad value before any
    fitting: ``minimum``/``maximum`` (inclusive), ``above`` (exclusive lower bound), ``choices``;
    ``band`` marks a band name, checked against the store's bands when fitting on a store.
    """

    type: type
    default: Any
    help: str
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    band: bool = False

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted to ``type``; :class:`DeepdipValueError` naming ``--name`` when invalid."""
        flag = f"--{name.replace('_', '-')}"
        try:
            value = value if self.type is object else self.type(value)
        except (TypeError, ValueError, OverflowError):  # int(inf) overflows
            raise DeepdipValueError(f"{flag} must be of type {self.type.__name__}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise DeepdipValueError(f"{flag} must be one of {', '.join(map(repr, self.choices))}, got {value!r}")
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise DeepdipValueError(f"{flag} must be a finite number, got {value}")
            if self.minimum is not None and value < self.minimum:
                raise DeepdipValueError(f"{flag} must be at least {self.minimum}, got {value}")
            if self.above is not None and value <= self.above:
                raise DeepdipValueError(f"{flag} must be greater than {self.above}, got {value}")
            if self.maximum is not None and value > self.maximum:
                raise DeepdipValueError(f"{flag} must be at most {self.maximum}, got {value}")
        return value


# Shared by every baseline (RAIL's SHARED_PARAMS): the same name means the same thing everywhere.
SHARED_PARAMS: dict[str, Param] = {
    "ref_band": Param(
        str, None,
        "band whose magnitude joins the colours as a feature "
        "(default: the survey's selection band, e.g. r for sdss)", band=True,
    ),
    "extra_columns": Param(
        str, "auto",
        "comma-separated extra MEASURED store columns used as features (log10 of positive-only ones); "
        "'auto' = the measured size (hlr_meas) when the store has it, '' = none; truth columns are refused",
    ),
    "max_train": Param(
        int, 0,
        "fit on at most this many training galaxies, a seeded random subset (0 = all): caps fit time", minimum=0,
    ),
    # 2**32 - 1: the largest seed numpy and scikit-learn accept.
    "seed": Param(int, 0, "seed of every random choice of the estimator (subsets, trees, validation splits)",
                  minimum=0, maximum=2**32 - 1),
    "n_jobs": Param(int, 1, "CPU threads for fitting and prediction", minimum=1),
    "labelled": Param(str, "", "selection file (deepdip select): train only on the galaxies it labels "
                               "('' = every training galaxy with a z_spec)"),
    "augment_store": Param(str, "", "another store (of the same bands) whose galaxies with a z_spec join the training "
                              "set, e.g. generated galaxies for the regions a spectroscopic selection leaves out "
                              "('' = none)"),
    "augment_labelled": Param(str, "", "selection file of --augment-store's store: only the galaxies it labels join"),
    "reweight": Param(str, "none", "weights of the training galaxies: 'lima' = the density ratio of the photometric "
                                   "sample (every training-fold galaxy, labelled or not) to the labelled ones in "
                                   "colour-magnitude space (Lima et al. 2008); 'zbalance' = 1/n(z) of the labelled "
                                   "ones; 'none'", choices=("none", "lima", "zbalance")),
}


#: The smoothing width of vote-histogram PDFs (knn, rf): one declaration, one meaning.
KERNEL_BINS = Param(
    float, 0.0,
    "Gaussian smoothing of the vote histogram, in bins; 0 = choose it on held-out training galaxies "
    "so that their PIT is uniform (leave-one-out for knn, out-of-bag for rf)", minimum=0.0,
)


#: How the ML baselines (knn, rf, boost) predict a galaxy lacking bands; ``nan`` is LightGBM's own
#: missing-value handling, so boost alone accepts it (:mod:`deepdip.baselines.base`, ``ColourBaseline``).
MISSING_BANDS_HELP = (
    "galaxies lacking bands (NaN flux or the store's band mask): 'pattern' = per availability pattern, a "
    "model trained on the training galaxies with just those bands (colours of consecutive available bands), "
    "fitted when the pattern is first met; 'impute' = the missing luptitudes filled by the mean of the 10 "
    "nearest training galaxies in the present bands; 'nan' (boost only) = features touching a missing band "
    "are NaN, LightGBM learns where they go from band-dropout copies of the training galaxies; 'zero' = "
    "the luptitude of zero flux, as before this option (a missing band reads as a dropout)"
)
MISSING_BANDS = Param(str, "pattern", MISSING_BANDS_HELP, choices=("pattern", "impute", "nan", "zero"))


def resolve(declared: dict[str, Param], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given`` (``None`` means default), after rejecting unknown names and
    invalid values (:meth:`Param.check`)."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DeepdipValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(declared))}")
    out = {}
    for name, p in declared.items():
        value = given.get(name)
        out[name] = p.default if value is None else p.check(name, value)
    return out
