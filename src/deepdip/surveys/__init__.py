"""Survey presets are data (one JSON file per survey in this folder), not code paths.

A preset fixes bands (speclite filter names), pixel scale, stamp size, PSF, photometric zero
point and flux unit, the selection (magnitude limit), and the redshift grid of the PDFs.
The simulator may add more keys (depth, noise, population calibration); unknown keys are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from deepdip.errors import DeepdipError
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


def load_survey(name_or_path: str) -> Survey:
    """Load a preset by name (``sdss``, ``cfhtls-wide``, ``legacy``) or from a JSON file path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        params = json.loads(path.read_text())
    else:
        res = resources.files(__name__) / f"{name_or_path}.json"
        if not res.is_file():
            raise DeepdipError(
                f"unknown survey {name_or_path!r}; available: {', '.join(available_surveys())} (or a preset .json path)"
            )
        params = json.loads(res.read_text())
    try:
        return Survey(
            name=params["name"],
            bands=tuple(params["bands"]),
            filters=tuple(params["filters"]),
            pixel_scale=float(params["pixel_scale"]),
            stamp_size=int(params["stamp_size"]),
            zmin=float(params["zmin"]),
            zmax=float(params["zmax"]),
            nbins=int(params["nbins"]),
            params=params,
        )
    except KeyError as exc:
        raise DeepdipError(f"survey preset {name_or_path!r} lacks the key {exc.args[0]!r}") from None
