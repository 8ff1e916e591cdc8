"""Everything a user can tell ``ingest`` about their data, in one dataclass with its help text.

Options come from keyword arguments, from a small config file (YAML, JSON or TOML, same keys),
or from the command line; the CLI lets explicit flags override the file. Keeping the help text
beside each field (as RAIL's ``Param`` does) means the library, the config file and ``--help``
describe one option the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from deepdip.errors import DeepdipError, check_number

# Store columns the catalogue can provide, with the catalogue names tried when no mapping is
# given (first match wins, case-insensitive).
STANDARD_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "objid", "object_id", "source_id", "galaxy_id"),
    "ra": ("ra", "ra_deg", "alpha"),
    "dec": ("dec", "dec_deg", "delta"),
    # Not plain "z": in many catalogues that is the z-band magnitude.
    "z_spec": ("z_spec", "zspec", "specz", "spec_z"),
    "ebv": ("ebv", "e_bv", "ebv_sfd"),
}


MISSING_BAND_MODES = ("mask", "reject")


def _help(text: str, default=None, **kw):
    if "default_factory" not in kw:
        kw["default"] = default
    return field(metadata={"help": text}, **kw)


@dataclass
class IngestOptions:
    """How to read a user's images and catalogue; every field is also a config-file key."""

    bands: tuple[str, ...] = _help("store band names in image-plane order (default: the survey preset's)", ())
    survey: str = _help("survey name stored in the file; a preset name also fills bands and pixel scale", "custom")
    pixel_scale: float | None = _help("arcsec/pixel (default: the preset's, else read from the WCS)")
    columns: dict = _help("store column -> catalogue column (id, ra, dec, z_spec, ebv), e.g. z_spec=ZSPEC",
                          default_factory=dict)
    band_names: dict = _help("store band -> name used in file names, EXTNAME/FILTER keywords and npz 'bands'",
                             default_factory=dict)
    keep: tuple[str, ...] = _help("extra catalogue columns copied into the store (2-D ones become <col>_<band>)", ())
    flux_unit: str = _help("unit of the input pixels: nanomaggy, maggy, nJy, uJy, Jy or counts", "nanomaggy")
    zero_point: float | dict | None = _help("AB zero point of counts (one value, or band -> value)")
    ebv: float | None = _help("constant E(B-V) for every galaxy when the catalogue has no column (warns)")
    ebv_from_transmission: str | None = _help(
        "catalogue column of per-band Milky-Way transmissions (Legacy Survey mw_transmission_*) to turn into E(B-V)")
    extinction_coeffs: dict = _help("band -> A_band/E(B-V) used with ebv_from_transmission (default: DECam values)",
                                    default_factory=dict)
    dereddened_input: bool = _help(
        "input pixels are already corrected for Galactic extinction (e.g. the piczl Legacy cutouts): multiply them "
        "by the Milky-Way transmission so the store holds observed fluxes, like the mocks", False)
    size: int | None = _help("output stamp size in pixels: crop or pad every stamp to size x size")
    centre: str = _help("none (stamps are centred), wcs (re-centre on ra/dec through the WCS), centroid", "none")
    pad: str = _help("how to fill pixels added when padding: noise (Gaussian, sky level from the border) or zeros",
                     "noise")
    image_key: str = _help("array name inside an .npz file", "images")
    hdu: int | str | None = _help("FITS HDU holding a cutout or cube (default: the first with data)")
    reference_band: str | None = _help("frames: band whose pixel grid the other bands are resampled onto")
    missing_bands: str = _help("a band with NaN/inf pixels or no signal at all (all zero): mask (keep the galaxy, "
                               "the band flagged missing in the store's band mask, its pixels zero) or reject "
                               "(the galaxy is bad)", "mask")
    skip_bad: bool = _help("skip bad galaxies and write a rejects list instead of stopping at the first", False)
    rejects: str | None = _help("rejects CSV path (default: <out>.rejects.csv)")
    photometry: bool = _help("measure flux_<band>/flux_err_<band> on the stamps with deepdip.photometry", True)
    n_folds: int = _help("cross-validation folds", 5)
    seed: int = _help("seed of the folds and of the padding noise", 0)
    chunk_size: int = _help("galaxies per write", 256)
    overwrite: bool = _help("replace an existing store at --out (never a folder or an input)", False)

    def __post_init__(self):
        """Refuse nonsense values at once, naming the CLI flag (and the config key), before any file is read.

        (``centre`` and ``pad`` are checked against the pipeline's own lists when it starts.)
        """
        if self.missing_bands not in MISSING_BAND_MODES:
            raise DeepdipError(f"--missing-bands (missing_bands): {self.missing_bands!r} is not one of "
                               f"{', '.join(MISSING_BAND_MODES)}")
        # assign_folds stores folds as int8: 1..127.
        check_number("--folds (n_folds)", self.n_folds, minimum=1, maximum=127, integer=True, allow_none=False)
        check_number("--pixel-scale (pixel_scale)", self.pixel_scale, above=0)
        # A reddening is never negative; NaN would reach every estimator as a silent zero.
        check_number("--ebv (ebv)", self.ebv, minimum=0)
        check_number("--size (size)", self.size, minimum=1, integer=True)
        # numpy's SeedSequence (folds, padding noise) takes non-negative integers only.
        check_number("--seed (seed)", self.seed, minimum=0, integer=True, allow_none=False)
        check_number("--chunk-size (chunk_size)", self.chunk_size, minimum=1, integer=True, allow_none=False)
        zero_points = self.zero_point.values() if isinstance(self.zero_point, dict) else [self.zero_point]
        for zp in zero_points:
            check_number("--zero-point (zero_point)", zp)
        for band, coeff in (self.extinction_coeffs or {}).items():
            check_number(f"--extinction-coeff {band} (extinction_coeffs)", coeff, minimum=0)

    @classmethod
    def from_mapping(cls, mapping: dict, source: str = "options") -> IngestOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise DeepdipError(f"{source}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(mapping)
        for name in ("bands", "keep"):
            if isinstance(values.get(name), str):
                values[name] = tuple(s.strip() for s in values[name].split(",") if s.strip())
            elif values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)

    def band_name(self, band: str) -> str:
        """The name a band goes by in the user's files."""
        return str(self.band_names.get(band, band))


def help_texts() -> dict[str, str]:
    return {f.name: f.metadata["help"] for f in fields(IngestOptions)}


def load_config(path) -> dict:
    """Read a YAML, JSON or TOML config file into a dict of option values.

    Frames and cutout patterns may also be given there (keys ``frames``, ``cutouts``, ``arrays``,
    ``catalog``); the caller takes those out before building :class:`IngestOptions`.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepdipError(f"config file {path} not found")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise DeepdipError("YAML config files need PyYAML (pip install pyyaml); JSON and TOML work "
                                   "without it") from None
            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise DeepdipError(f"config file {path}: use .yaml, .yml, .json or .toml")
    except DeepdipError:
        raise
    except Exception as exc:  # each parser has its own exception type; the message is what matters
        raise DeepdipError(f"config file {path} could not be parsed: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise DeepdipError(f"config file {path} must hold a mapping of option names to values")
    return data


def parse_mapping(items, what: str, value_type=str) -> dict:
    """Turn ``["g=DECam_g", "r=DECam_r"]`` or ``"g=1,r=2"`` into a dict (CLI helper)."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    out = {}
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise DeepdipError(f"{what}: expected KEY=VALUE, got {part!r}")
            try:
                out[key.strip()] = value_type(value.strip())
            except ValueError:
                raise DeepdipError(f"{what}: {value.strip()!r} is not a valid value for {key.strip()!r}") from None
    return out
