"""Survey presets are data (one JSON file per survey in this folder), not code paths.

A preset fixes bands (speclite filter names), pixel scale, stamp size, PSF, photometric zero
point and flux unit, the selection (magnitude limit), and the redshift grid of the PDFs.
The simulator may add more keys (depth, noise, population calibration); unknown keys are kept.

A preset may ``"extends"`` another one by name: it is that preset with the keys it gives replaced
(e.g. ``legacy-23``: the ``legacy`` preset with the real DR10 cutouts' 23-pixel stamps).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.zgrid import ZGrid


@dataclass(frozen=True)
class Survey:
    name: str
    bands: tuple[str, ...]
    filters: tuple[str, ...]
    pixel_scale: float
    stamp_size: int
    zmin: float
    zmax: float
    nbins: int
    params: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def zgrid(self) -> ZGrid:
        return ZGrid(self.zmin, self.zmax, self.nbins)

    def __getitem__(self, key):
        return self.params[key]

    def get(self, key, default=None):
        return self.params.get(key, default)


def available_surveys() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def load_survey(name_or_path: str | Path) -> Survey:
    """Load a preset by name (``sdss``, ``cfhtls-wide``, ``legacy``) or from a JSON file path.

    A preset file that is not valid JSON, lacks a key or holds a value of the wrong type or range
    raises :class:`~deepdip.errors.DeepdipValueError` naming the file and the key.
    """
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        label = str(path)
        try:
            params = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise DeepdipValueError(f"survey preset {label} cannot be read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise DeepdipValueError(f"survey preset {label} is not valid JSON: {exc}") from None
    else:
        res = resources.files(__name__) / f"{name_or_path}.json"
        if not res.is_file():
            raise DeepdipError(
                f"unknown survey {name_or_path!r}; available: {', '.join(available_surveys())} (or a preset .json path)"
            )
        label = repr(name_or_path)
        params = json.loads(res.read_text())
    if not isinstance(params, dict):
        raise DeepdipValueError(f"survey preset {label} must be a JSON object of keys, got {type(params).__name__}")
    params = _resolve_extends(params, label, seen=(str(name_or_path),))
    if label == str(path):
        params = _resolve_population_files(params, path.parent)
    try:
        survey = Survey(
            name=_get(params, "name", str, label),
            bands=tuple(_get(params, "bands", list, label)),
            filters=tuple(_get(params, "filters", list, label)),
            pixel_scale=float(_get(params, "pixel_scale", (int, float), label)),
            stamp_size=_get(params, "stamp_size", int, label),
            zmin=float(_get(params, "zmin", (int, float), label)),
            zmax=float(_get(params, "zmax", (int, float), label)),
            nbins=_get(params, "nbins", int, label),
            params=params,
        )
    except KeyError as exc:
        raise DeepdipError(f"survey preset {label} lacks the key {exc.args[0]!r}") from None
    _check(survey, label)
    return survey


def _resolve_extends(params: dict, label: str, seen: tuple) -> dict:
    """``params`` on top of the preset it ``"extends"`` (by name, itself resolved; nested objects
    merge), the key dropped."""
    base_name = params.get("extends")
    if base_name is None:
        return params
    if not isinstance(base_name, str) or not base_name:
        raise DeepdipValueError(f"survey preset {label}: 'extends' must name a preset, got {base_name!r}")
    if base_name in seen:
        raise DeepdipValueError(f"survey preset {label}: 'extends' loops through {' -> '.join((*seen, base_name))}")
    res = resources.files(__name__) / f"{base_name}.json"
    if not res.is_file():
        raise DeepdipValueError(f"survey preset {label} extends {base_name!r}, which is not a preset; available: "
                                f"{', '.join(available_surveys())}")
    base = _resolve_extends(json.loads(res.read_text()), repr(base_name), (*seen, base_name))
    return _merge(base, {k: v for k, v in params.items() if k != "extends"})


def _resolve_population_files(params: dict, folder: Path) -> dict:
    """A preset file may name its own population mixture (``population.file``, ``colour_file``) by a
    path relative to the file's folder: made absolute here, so that the simulator and the mock's
    provenance find it from anywhere. A name that is no file there stays a shipped file's name."""
    pop = params.get("population")
    if not isinstance(pop, dict):
        return params
    pop = dict(pop)
    for key in ("file", "colour_file"):
        name = pop.get(key)
        if isinstance(name, str) and name and (folder / name).is_file():
            pop[key] = str((folder / name).resolve())
    return {**params, "population": pop}


def _merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``; a dict over a dict merges key by key (a preset can change one
    population or noise setting without repeating the others), anything else replaces."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _get(params: dict, key: str, kind, label: str):
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DeepdipValueError(f"survey preset {label}: {key!r} must be a {names}, got {value!r}")
    return value


def _check(survey: Survey, label: str) -> None:
    """Values every reader of a preset relies on: what a bad preset file would otherwise break deep inside."""
    def bad(msg):
        raise DeepdipValueError(f"survey preset {label}: {msg}")

    if not survey.bands or not all(isinstance(b, str) and b for b in survey.bands):
        bad(f"'bands' must be a non-empty list of band names, got {list(survey.bands)}")
    if len(set(survey.bands)) != len(survey.bands):
        bad(f"'bands' repeats a band: {list(survey.bands)}")
    if len(survey.filters) != len(survey.bands) or not all(isinstance(f, str) for f in survey.filters):
        bad(f"'filters' must name one speclite filter per band ({len(survey.bands)}), got {list(survey.filters)}")
    if not (math.isfinite(survey.pixel_scale) and survey.pixel_scale > 0):
        bad(f"'pixel_scale' must be positive (arcsec/pixel), got {survey.pixel_scale}")
    if survey.stamp_size < 1:
        bad(f"'stamp_size' must be at least 1 pixel, got {survey.stamp_size}")
    if not (math.isfinite(survey.zmin) and math.isfinite(survey.zmax) and 0 <= survey.zmin < survey.zmax):
        bad(f"'zmin' and 'zmax' must satisfy 0 <= zmin < zmax, got {survey.zmin}, {survey.zmax}")
    if survey.nbins < 2:
        bad(f"'nbins' must be at least 2, got {survey.nbins}")


def check_simulatable(survey: Survey) -> None:
    """Refuse a preset that lacks (or has a wrong type for) a key the simulator reads, before it starts."""
    label = repr(survey.name)
    for key, kind in (("noise", dict), ("population", dict), ("psf_fwhm", list), ("zero_point", (int, float)),
                      ("flux_unit", str), ("mag_limit", (int, float)), ("mag_limit_band", str)):
        if key not in survey.params:
            raise DeepdipValueError(f"survey preset {label} has no {key!r}: it cannot be simulated")
        _get(survey.params, key, kind, label)
    nb = len(survey.bands)
    psf = survey["psf_fwhm"]
    if len(psf) != nb or not all(_number(v) and v > 0 for v in psf):
        raise DeepdipValueError(f"survey preset {label}: 'psf_fwhm' must hold one positive width (arcsec) per "
                                f"band ({nb}), got {psf}")
    spread = survey.get("psf_fwhm_scatter", 0.1)
    if not ((_number(spread) and spread >= 0)
            or (isinstance(spread, list) and len(spread) == nb and all(_number(v) and v >= 0 for v in spread))):
        raise DeepdipValueError(f"survey preset {label}: 'psf_fwhm_scatter' must be a non-negative log-scatter, or "
                                f"one per band ({nb}), got {spread!r}")
    if survey["mag_limit_band"] not in survey.bands:
        raise DeepdipValueError(f"survey preset {label}: 'mag_limit_band' {survey['mag_limit_band']!r} is not one "
                                f"of its bands {list(survey.bands)}")
    bright = survey.get("mag_bright_limit")
    if bright is not None and not (_number(bright) and bright < survey["mag_limit"]):
        raise DeepdipValueError(f"survey preset {label}: 'mag_bright_limit' must be a magnitude brighter than "
                                f"'mag_limit' {survey['mag_limit']}, got {bright!r}")
    noise = survey["noise"]
    model = noise.get("model", "fixed")
    if model not in ("fixed", "ccd"):
        raise DeepdipValueError(f"survey preset {label}: 'noise' model must be 'ccd' or absent (fixed sky sigma), "
                                f"got {model!r}")
    # per band, what rendering.sky_sigma and rendering.add_noise read
    per_band = (("sky_mag_arcsec2", "poisson_var_per_nmgy", "dark_variance_nmgy2") if model == "ccd"
                else ("sky_sigma", "poisson_var_per_nmgy"))
    for key in per_band:
        values = noise.get(key)
        if (not isinstance(values, list) or len(values) != nb
                or not all(_number(v) and (v >= 0 or key == "sky_mag_arcsec2") for v in values)):
            what = "one value" if key == "sky_mag_arcsec2" else "one non-negative value"
            raise DeepdipValueError(f"survey preset {label}: 'noise' needs {key!r}, {what} per band ({nb}), "
                                    f"got {values!r}")
    cap = survey["population"].get("M_star_z_max")
    if cap is not None and not (_number(cap) and cap > 0):
        raise DeepdipValueError(f"survey preset {label}: population 'M_star_z_max' must be a positive redshift or "
                                f"null, got {cap!r}")
    beta = survey.get("morphology", {}).get("size_evolution_beta", 0.0)
    if not _number(beta):
        raise DeepdipValueError(f"survey preset {label}: morphology 'size_evolution_beta' must be a number, "
                                f"got {beta!r}")
    slope = survey.get("morphology", {}).get("size_wavelength_slope")
    if slope is not None and not (isinstance(slope, dict) and _number(slope.get("mean"))
                                  and _number(slope.get("scatter")) and slope["scatter"] >= 0):
        raise DeepdipValueError(f"survey preset {label}: morphology 'size_wavelength_slope' must be "
                                f"{{\"mean\": number, \"scatter\": non-negative number}}, got {slope!r}")
    for key in ("sky_mag_scatter", "sky_sigma_scatter"):
        if key in noise and not (_number(noise[key]) and noise[key] >= 0):
            raise DeepdipValueError(f"survey preset {label}: noise {key!r} must be a non-negative number, "
                                    f"got {noise[key]!r}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
