"""Filter names to transmission curves: the one resolver every part of deepdip uses.

Two kinds of name, usable anywhere a filter is named (a preset's ``filters``, ``--filters``, BPZ):

- a speclite name, ``<group>-<band>`` (``sdss2010-u``, ``decamDR1-g``, ``lsst2023-y``,
  ``Euclid-H``): loaded by ``speclite.filters.load_filter``, unchanged;
- ``rail:<curve>``, a ``.res`` curve shipped with LSST DESC RAIL (``pip install deepdip[rail]``,
  i.e. ``pz-rail-base``) in ``rail/examples_data/estimation_data/data/FILTER/``, for surveys speclite
  lacks: ``rail:roman_Y106``, ``rail:roman_J129``, ``rail:roman_H158``, ``rail:roman_F184`` (Roman),
  ``rail:lsstcam_<ugrizy>`` (LSST DP2 standard passbands), ``rail:comcam_<ugrizy>``,
  ``rail:DC2LSST_<ugrizy>``, ``rail:DECam_<grizy>``, ``rail:hsc_<grizy>``, ``rail:euclid_<YJH>``.
  The folder is found through the installed package, never downloaded.

A RAIL curve (two columns: wavelength in Angstrom, throughput) becomes a speclite
``FilterResponse`` named ``rail-<curve>``: negative throughputs (noise in the HSC and Euclid
curves) are set to zero, an end that is not zero gets a zero one sampling step further out (speclite
requires curves that go to zero), and a curve in percent (the lsstcam ones, max > 1.5) is divided by
100; none of this changes a magnitude beyond the clipped noise. Loading registers the curve in
speclite's cache, so ``speclite.filters.load_filters`` (and skypy, which calls it) accepts the
``.name`` of what :func:`load_filter` returned.

The curves are not copied into deepdip: RAIL maintains them (its lsstcam set follows the
survey's calibration releases), and no built-in preset names one.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipValueError

RAIL_PREFIX = "rail:"
#: Where RAIL's filter curves and BPZ SEDs live, relative to the ``rail.examples_data`` package.
RAIL_DATA = Path("estimation_data") / "data"


def rail_data_dir() -> Path | None:
    """RAIL's ``estimation_data/data`` folder (``FILTER/``, ``SED/``), or ``None`` when RAIL is absent.

    ``rail`` is a namespace package (deepdip's own plugin lives in it too), so ``import rail``
    succeeds without pz-rail-base; what tells is the ``rail.examples_data`` folder it installs.
    """
    try:
        spec = importlib.util.find_spec("rail.examples_data")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / RAIL_DATA
        if (folder / "FILTER").is_dir():
            return folder
    return None


def rail_filter_names() -> list[str]:
    """The ``rail:<curve>`` names the installed RAIL provides (empty without RAIL)."""
    folder = rail_data_dir()
    return sorted(RAIL_PREFIX + p.stem for p in folder.glob("FILTER/*.res")) if folder else []


def is_rail_name(name: str) -> bool:
    return isinstance(name, str) and name.startswith(RAIL_PREFIX)


@cache
def load_filter(name: str):
    """The speclite ``FilterResponse`` of one filter name (see the module docstring for the names).

    Raises :class:`DeepdipValueError` (one line, naming the filter) for an unknown name, or a
    ``rail:`` name without RAIL installed.
    """
    if not isinstance(name, str) or not name:
        raise DeepdipValueError(f"a filter name must be a non-empty string, got {name!r}")
    if is_rail_name(name):
        return _load_rail(name)
    import speclite.filters

    try:
        return speclite.filters.load_filter(name)
    except (ValueError, OSError, RuntimeError) as exc:
        raise DeepdipValueError(f"unknown filter {name!r}: not a speclite filter ({exc}) nor a RAIL curve "
                                f"'{RAIL_PREFIX}<curve>' (pip install deepdip[rail])") from None


def load_filters(names) -> list:
    """:func:`load_filter` of each name, in order."""
    return [load_filter(n) for n in names]


def speclite_names(names) -> list[str]:
    """The names speclite's ``load_filters`` knows these filters by (RAIL curves loaded into its cache)."""
    return [load_filter(n).name for n in names]


def effective_wavelengths(names) -> np.ndarray:
    """speclite's effective wavelength of each filter, Angstrom."""
    return np.array([f.effective_wavelength.to_value("Angstrom") for f in load_filters(names)], dtype=np.float64)


def curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Angstrom) and throughput of one filter, as plain arrays (e.g. for a BPZ ``.res`` file)."""
    f = load_filter(name)
    return np.asarray(f.wavelength, dtype=np.float64), np.asarray(f.response, dtype=np.float64)


def _load_rail(name: str):
    import speclite.filters

    stem = name[len(RAIL_PREFIX):]
    folder = rail_data_dir()
    if folder is None:
        raise DeepdipValueError(f"filter {name!r} is a RAIL curve but RAIL is not installed: "
                                f"pip install deepdip[rail]")
    path = folder / "FILTER" / f"{stem}.res"
    if "/" in stem or not path.is_file():
        known = ", ".join(n[len(RAIL_PREFIX):] for n in rail_filter_names())
        raise DeepdipValueError(f"unknown filter {name!r}: RAIL ships no curve {stem!r} (known: {known}; "
                                f"pip install deepdip[rail] for a newer RAIL)")
    table = np.loadtxt(path, ndmin=2)
    wave, resp = _clean(table[:, 0], table[:, 1])
    band = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    band = band if not band[0].isdigit() else f"_{band}"
    return speclite.filters.FilterResponse(wave * _angstrom(), resp, meta={
        "group_name": "rail", "band_name": band, "source": f"RAIL {path.name}"})


def _clean(wave: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, non-negative, in [0, ~1], zero at both ends (what speclite requires)."""
    order = np.argsort(wave, kind="stable")
    wave, resp = wave[order], np.clip(resp[order], 0.0, None)
    keep = np.concatenate([[True], np.diff(wave) > 0])
    wave, resp = wave[keep], resp[keep]
    if resp.max() > 1.5:  # throughput in percent
        resp = resp / 100.0
    if resp[0] != 0:
        wave, resp = np.concatenate([[2 * wave[0] - wave[1]], wave]), np.concatenate([[0.0], resp])
    if resp[-1] != 0:
        wave, resp = np.concatenate([wave, [2 * wave[-1] - wave[-2]]]), np.concatenate([resp, [0.0]])
    return wave, resp


def _angstrom():
    import astropy.units as u

    return u.Angstrom
