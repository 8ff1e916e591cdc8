"""Read a user's catalogue (FITS, CSV, Parquet or the 1-D/2-D arrays of an .npz) into store columns.

The store needs ``id`` (int64), ``z_spec`` (NaN when unknown) and ``ebv``; ``ra``/``dec`` are kept
when present and required only when positions are used (frames, WCS centring). Catalogue names
are matched case-insensitively, through ``IngestOptions.columns`` or a few common spellings.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.extinction import (
    DECAM_LAW,
    EXTINCTION_LAW,
    ebv_from_transmission,
    extinction_coefficients,
    extinction_record,
    transmission_coefficients,
)
from deepdip.ingest.options import STANDARD_COLUMNS, IngestOptions
from deepdip.ingest.rejects import IngestWarning

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")  # int() alone would also accept "1_000" as 1000
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
_GIVEN = "given by the user (extinction_coeffs)"


def read_table(path) -> dict[str, np.ndarray]:
    """Columns of a catalogue file as numpy arrays (masked entries become NaN or raise later)."""
    path = Path(path)
    if not path.is_file():
        raise DeepdipError(f"catalogue {path} not found")
    name = path.name.lower()
    try:
        if name.endswith(FITS_SUFFIXES):
            from astropy.table import Table

            table = Table.read(path, format="fits")
            return {c: _unmask(table[c]) for c in table.colnames}
        if name.endswith((".csv", ".csv.gz", ".txt")):
            import pandas as pd

            frame = pd.read_csv(path)
            return {c: frame[c].to_numpy() for c in frame.columns}
        if name.endswith((".parquet", ".pq")):
            import pandas as pd

            frame = pd.read_parquet(path)
            return {c: _stack_lists(frame[c].to_numpy()) for c in frame.columns}
        if name.endswith(".npz"):
            return _npz_columns(path)
    except DeepdipError:
        raise
    except Exception as exc:  # astropy/pandas raise many types; the user needs the file and the reason
        raise DeepdipError(f"catalogue {path} could not be read: {str(exc).splitlines()[0]}") from None
    raise DeepdipError(f"catalogue {path}: unsupported format (use FITS, CSV, Parquet or .npz)")


def _unmask(column) -> np.ndarray:
    values = np.asarray(column)
    mask = getattr(column, "mask", None)
    if mask is not None and np.any(mask):
        if values.dtype.kind == "f":
            values = np.where(mask, np.nan, values)
        else:
            # Integer/string columns cannot hold NaN: keep a float copy so missing entries show up.
            values = np.where(mask, np.nan, values.astype(np.float64)) if values.dtype.kind in "iub" else values
    if values.dtype.kind == "S":
        values = values.astype(str)
    return values


def _stack_lists(values: np.ndarray) -> np.ndarray:
    # Parquet list columns arrive as an object array of arrays: stack them into [N, k].
    if values.dtype == object and len(values) and isinstance(values[0], (list, np.ndarray)):
        return np.stack([np.asarray(v) for v in values])
    return values


def _npz_columns(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if data[k].ndim in (1, 2)}
    lengths = [a.shape[0] for a in arrays.values() if a.ndim == 1 and a.shape[0] > 1]
    if not lengths:
        raise DeepdipError(f"catalogue {path}: no 1-D arrays to use as columns")
    n = max(set(lengths), key=lengths.count)  # the catalogue length is the most common 1-D length
    return {k: a for k, a in arrays.items() if a.shape[0] == n}


@dataclass
class Catalog:
    """Store-ready catalogue columns plus the key of each row used in file-name patterns."""

    columns: dict[str, np.ndarray]
    keys: list[str]
    transmission: np.ndarray | None = None  # [N, B] Milky-Way transmission, for dereddened inputs
    # provenance entries (deepdip.extinction.extinction_record): the A_b/E(B-V) its ebv relates to
    extinction: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["id"])

    @property
    def ids(self) -> np.ndarray:
        return self.columns["id"]


def _find(table: dict, store_name: str, options: IngestOptions, required: bool, why: str = "") -> str | None:
    lower = {c.lower(): c for c in table}
    mapped = options.columns.get(store_name)
    if mapped is not None:
        if str(mapped).lower() not in lower:
            raise DeepdipError(f"catalogue has no column {mapped!r} (mapped to {store_name!r}); "
                               f"columns: {', '.join(list(table)[:30])}")
        return lower[str(mapped).lower()]
    for candidate in STANDARD_COLUMNS.get(store_name, (store_name,)):
        if candidate in lower:
            return lower[candidate]
    if required:
        raise DeepdipError(f"catalogue has no {store_name!r} column{why}; map one with --column {store_name}=NAME")
    return None


def _ids(table: dict, options: IngestOptions, need_keys: bool) -> tuple[np.ndarray, list[str], dict]:
    n = len(next(iter(table.values())))
    name = _find(table, "id", options, required=need_keys, why=" (needed to find each galaxy's files)")
    if name is None:
        warnings.warn("catalogue has no id column: ids are row numbers 0..N-1", IngestWarning, stacklevel=3)
        return np.arange(n, dtype=np.int64), [str(i) for i in range(n)], {}
    raw = np.asarray(table[name])
    if raw.ndim != 1:
        raise DeepdipError(f"id column {name!r} must be 1-D")
    keys = [str(v) for v in raw.tolist()]
    if raw.dtype.kind == "f" and np.any(~np.isfinite(raw)):
        raise DeepdipError(f"id column {name!r} has missing values")
    try:
        if raw.dtype.kind in "iu" or (raw.dtype.kind == "f" and np.array_equal(raw, np.round(raw))):
            ids = raw.astype(np.int64)
        elif raw.dtype.kind in "US" and all(_INTEGER.fullmatch(k) for k in keys):
            ids = np.array([int(k) for k in keys], dtype=np.int64)
        else:
            raise ValueError
        extra = {}
        keys = [str(i) for i in ids.tolist()]  # "7", not "7.0", in file-name patterns
    except (ValueError, OverflowError):
        # Non-integer ids (e.g. Legacy Survey "release_brick_objid"): number the rows, keep the original.
        warnings.warn(f"id column {name!r} is not integer: ids are row numbers 0..N-1, the original is kept "
                      "as 'source_id'", IngestWarning, stacklevel=3)
        ids, extra = np.arange(n, dtype=np.int64), {"source_id": np.asarray(keys)}
    unique, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise DeepdipError(f"id column {name!r} has duplicates, e.g. {unique[counts > 1][:5].tolist()}")
    return ids, keys, extra


def _per_band(table: dict, name: str, bands, options: IngestOptions) -> np.ndarray:
    """A per-band quantity as [N, B]: one 2-D column or columns ``<name>_<band>``."""
    lower = {c.lower(): c for c in table}
    if name.lower() in lower:
        values = np.asarray(table[lower[name.lower()]])
        if values.ndim == 2 and values.shape[1] == len(bands):
            return values
        raise DeepdipError(f"column {name!r} must hold one value per band ({len(bands)}), "
                           f"got shape {list(values.shape)}")
    cols = [f"{name}_{options.band_name(b)}".lower() for b in bands]
    missing = [c for c in cols if c not in lower]
    if missing:
        raise DeepdipError(f"catalogue has no column {name!r} nor {', '.join(missing)}")
    return np.stack([np.asarray(table[lower[c]], dtype=np.float64) for c in cols], axis=1)


def _extinction_coeffs(bands, options: IngestOptions) -> tuple[np.ndarray, str]:
    """A_b / E(B-V) and where they come from: the user's values, else deepdip's law at the survey
    preset's filters."""
    if all(b in options.extinction_coeffs for b in bands):
        return np.array([float(options.extinction_coeffs[b]) for b in bands]), _GIVEN
    from deepdip.surveys import available_surveys, load_survey

    preset = load_survey(options.survey) if options.survey in available_surveys() else None
    by_band = dict(zip(preset.bands, preset.filters)) if preset else {}
    if not all(b in by_band for b in bands):
        raise DeepdipError("dereddened input needs A/E(B-V) per band: give extinction_coeffs (--extinction-coeff "
                           "g=3.214,...) or a survey preset")
    return extinction_coefficients(tuple(by_band[b] for b in bands)), EXTINCTION_LAW


def _recorded_extinction(bands, options: IngestOptions) -> dict:
    """What the store records as the A_b / E(B-V) of its ``ebv`` column (see :mod:`deepdip.extinction`).

    E(B-V) inverted from Milky-Way transmissions relates to per-band extinction by the coefficients of
    that inversion (for Legacy Survey ``mw_transmission``, DECam's), so readers deredden with exactly
    the A_b the survey applied; any other ``ebv`` by the user's coefficients, else by deepdip's law at
    the preset's filters (nothing is recorded when there is neither).
    """
    if options.ebv_from_transmission:
        given = [b for b in bands if b in options.extinction_coeffs]
        law = (_GIVEN if len(given) == len(bands) else
               DECAM_LAW + (f"; band(s) {', '.join(given)}: {_GIVEN}" if given else ""))
        return extinction_record(transmission_coefficients(bands, options.extinction_coeffs), law)
    try:
        return extinction_record(*_extinction_coeffs(bands, options))
    except DeepdipError:
        return {}


def _ebv(table: dict, n: int, bands, options: IngestOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """E(B-V) per galaxy, and the per-band transmission when the catalogue gives it."""
    if options.ebv_from_transmission:
        t = _per_band(table, options.ebv_from_transmission, bands, options)
        return ebv_from_transmission(t, bands, options.extinction_coeffs).astype(np.float32), t
    name = _find(table, "ebv", options, required=False)
    if name is not None:
        return np.asarray(table[name], dtype=np.float32), None
    value = 0.0 if options.ebv is None else float(options.ebv)
    warnings.warn(f"catalogue has no E(B-V) column: ebv = {value} for every galaxy"
                  + ("" if options.ebv is not None else " (give --ebv or map a column)"), IngestWarning, stacklevel=3)
    return np.full(n, value, dtype=np.float32), None


def build_catalog(table: dict, options: IngestOptions, bands, *, need_keys: bool = False,
                  need_positions: bool = False) -> Catalog:
    """Map a raw table onto store columns (``id``, ``z_spec``, ``ebv``, ``ra``/``dec``, kept extras)."""
    if not table:
        raise DeepdipError("catalogue has no columns")
    ids, keys, columns = _ids(table, options, need_keys)
    n = len(ids)
    columns["id"] = ids
    for coord in ("ra", "dec"):
        name = _find(table, coord, options, required=need_positions, why=" (positions are needed here)")
        if name is not None:
            columns[coord] = np.asarray(table[name], dtype=np.float64)
    z_name = _find(table, "z_spec", options, required=False)
    if z_name is None:
        warnings.warn("catalogue has no z_spec column: z_spec = NaN (unlabelled galaxies)", IngestWarning,
                      stacklevel=2)
        columns["z_spec"] = np.full(n, np.nan, dtype=np.float32)
    else:
        columns["z_spec"] = np.asarray(table[z_name], dtype=np.float32)
    columns["ebv"], transmission = _ebv(table, n, bands, options)
    if options.dereddened_input and transmission is None:
        r, _ = _extinction_coeffs(bands, options)
        transmission = 10.0 ** (-0.4 * columns["ebv"].astype(np.float64)[:, None] * r[None, :])
    lower = {c.lower(): c for c in table}
    for name in options.keep:
        if name.lower() not in lower:
            raise DeepdipError(f"catalogue has no column {name!r} to keep")
        values = np.asarray(table[lower[name.lower()]])
        if values.ndim == 1:
            columns[name] = values
        elif values.ndim == 2 and values.shape[1] == len(bands):
            for i, band in enumerate(bands):
                columns[f"{name}_{band}"] = values[:, i]
        else:
            raise DeepdipError(f"column {name!r} to keep has shape {list(values.shape)}: "
                               "need 1-D or one value per band")
    return Catalog(columns=columns, keys=keys,
                   transmission=transmission if options.dereddened_input else None,
                   extinction=_recorded_extinction(bands, options))
