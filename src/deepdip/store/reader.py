"""Read cutout stores lazily, in chunks, from any process.

A :class:`CutoutStore` holds only paths and small metadata; HDF5 handles are opened on first use
*in the current process* (h5py handles must not cross ``fork``), so the same object can be handed
to DataLoader workers or Dask tasks and each opens its own file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from deepdip.errors import StoreError
from deepdip.store.format import BAND_MASK, CATALOG, IMAGES, SHARD_GLOB, SUPPORTED_VERSIONS, decode_attr


def shard_paths(path) -> list[Path]:
    """The HDF5 files that make up the store at ``path`` (itself, or the shards of a folder)."""
    path = Path(path)
    if path.is_dir():
        shards = sorted(path.glob(SHARD_GLOB))
        if not shards:
            raise StoreError(f"{path} is a folder with no {SHARD_GLOB} shard files")
        return shards
    if not path.exists():
        raise StoreError(f"no such store: {path}")
    return [path]


def open_h5(path: Path) -> h5py.File:
    """Open one HDF5 file read-only with a one-line error for non-HDF5 or truncated files."""
    if not h5py.is_hdf5(path):
        raise StoreError(f"{path} is not an HDF5 file (or is truncated)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"{path} cannot be opened as HDF5 (truncated or corrupt?): {exc}") from None


class CutoutStore:
    """Read-only view of a cutout store (one file or a folder of shards).

    Parameters
    ----------
    path : str or Path
        A ``.h5`` store file or a folder of shard files.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._paths = shard_paths(self.path)
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()
        sizes, attrs = [], None
        for p in self._paths:
            f = open_h5(p)
            with f:
                if IMAGES not in f or CATALOG not in f:
                    raise StoreError(f"{p} lacks the '{IMAGES}' dataset or the '{CATALOG}' group; "
                                     "run `deepdip validate`")
                shard_attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
                if shard_attrs.get("format_version") not in SUPPORTED_VERSIONS:
                    raise StoreError(f"{p}: unknown format_version {shard_attrs.get('format_version')!r}")
                if attrs is None:
                    attrs, shape, columns = shard_attrs, f[IMAGES].shape[1:], sorted(f[CATALOG])
                    has_mask = BAND_MASK in f
                elif f[IMAGES].shape[1:] != shape or shard_attrs.get("bands") != attrs.get("bands"):
                    raise StoreError(f"shard {p.name} has other bands or image shape than {self._paths[0].name}")
                elif sorted(f[CATALOG]) != columns:
                    raise StoreError(f"shard {p.name} has other catalogue columns than {self._paths[0].name}")
                elif (BAND_MASK in f) != has_mask:
                    raise StoreError(f"shard {p.name} {'lacks' if has_mask else 'has'} the '{BAND_MASK}' of "
                                     f"{self._paths[0].name}")
                sizes.append(f[IMAGES].shape[0])
        self.attrs: dict = attrs
        self.columns: list[str] = columns
        self.has_band_mask: bool = has_mask
        self._shape = tuple(int(s) for s in shape)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    # -- metadata ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return (f"CutoutStore({str(self.path)!r}, n={len(self)}, survey={self.survey!r}, "
                f"bands={''.join(self.bands)}, image_shape={self.image_shape})")

    @property
    def bands(self) -> list[str]:
        return list(self.attrs["bands"])

    @property
    def n_bands(self) -> int:
        return self._shape[0]

    @property
    def image_shape(self) -> tuple[int, int]:
        return self._shape[1:]

    @property
    def provenance(self) -> dict:
        """The store's ``provenance`` attribute as a dict (how a mock or an ingest made it).

        {} if none or unreadable.
        """
        prov = self.attrs.get("provenance") or {}
        if isinstance(prov, str):
            try:
                prov = json.loads(prov)
            except ValueError:
                return {}
        return prov if isinstance(prov, dict) else {}

    @property
    def survey(self) -> str:
        return self.attrs.get("survey", "")

    @property
    def pixel_scale(self) -> float:
        return float(self.attrs.get("pixel_scale", float("nan")))

    @property
    def flux_unit(self) -> str:
        return self.attrs.get("flux_unit", "")

    @property
    def n_folds(self) -> int:
        return int(self.attrs.get("n_folds", int(self.column("fold").max()) + 1))

    # -- per-process handles -------------------------------------------------------------------
    def _handle(self, shard: int) -> h5py.File:
        if os.getpid() != self._pid:  # forked: the parent's handles are not ours
            self._handles, self._pid = {}, os.getpid()
        f = self._handles.get(shard)
        if f is None:
            f = self._handles[shard] = open_h5(self._paths[shard])
        return f

    def close(self):
        for f in self._handles.values():
            f.close()
        self._handles = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reading -------------------------------------------------------------------------------
    def _rows(self, rows) -> np.ndarray:
        if rows is None:
            return np.arange(len(self), dtype=np.int64)
        if isinstance(rows, slice):
            return np.arange(len(self), dtype=np.int64)[rows]
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for a store of {len(self)} galaxies")
        return rows

    def _gather(self, dataset: str, rows) -> np.ndarray:
        """Read ``dataset`` (``images`` or ``catalog/<col>``) at ``rows`` (any order, repeats allowed)."""
        rows = self._rows(rows)
        out = None
        shard_of = np.searchsorted(self._offsets, rows, side="right") - 1
        shards = np.unique(shard_of)
        if len(shards) == 1:   # one shard (a single file, or rows of one part): no copy into place
            return self._read_sorted(self._handle(int(shards[0]))[dataset], rows - self._offsets[shards[0]])
        for shard in shards:
            sel = np.flatnonzero(shard_of == shard)
            local = rows[sel] - self._offsets[shard]
            data = self._read_sorted(self._handle(int(shard))[dataset], local)
            if out is None:
                out = np.empty((len(rows), *data.shape[1:]), dtype=data.dtype)
            out[sel] = data
        if out is None:  # no rows asked: an empty array of the right shape and dtype
            ds = self._handle(0)[dataset]
            out = np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
        return out

    @staticmethod
    def _read_sorted(ds: h5py.Dataset, local: np.ndarray) -> np.ndarray:
        # The training loader asks for sorted, distinct rows (a block of the store): then no
        # reordering copy is made, and none for picking when the rows are one contiguous range.
        in_order = bool(np.all(local[1:] > local[:-1]))
        uniq, inverse = (local, None) if in_order else np.unique(local, return_inverse=True)
        lo, hi = int(uniq[0]), int(uniq[-1]) + 1
        # h5py point selection is slow; when the rows are dense enough, read the span and pick.
        if hi - lo == len(uniq):
            data = ds[lo:hi]
        elif hi - lo <= 4 * len(uniq):
            data = ds[lo:hi][uniq - lo]
        else:
            data = ds[uniq]
        return data if inverse is None else data[inverse]

    def images(self, rows=None) -> np.ndarray:
        """float32 ``[n, B, H, W]`` cutouts of ``rows`` (int array, bool mask or slice)."""
        return self._gather(IMAGES, rows)

    def warn_if_bands_missing(self, who: str) -> None:
        """Warn that ``who`` sees missing bands as zero pixels: it does not read the band mask."""
        if self.has_band_mask and not self.band_mask().all():
            import warnings

            frac = 1 - self.band_mask().mean(axis=0)
            which = ", ".join(f"{b} {f:.1%}" for b, f in zip(self.bands, frac) if f > 0)
            warnings.warn(f"{self.path}: bands are missing for some galaxies ({which}); {who} does not read the "
                          "band mask and sees them as blank sky", UserWarning, stacklevel=3)

    def band_mask(self, rows=None) -> np.ndarray:
        """bool ``[n, B]``: which bands each galaxy of ``rows`` has (all, for a store without a mask)."""
        if not self.has_band_mask:
            return np.ones((len(self._rows(rows)), self.n_bands), dtype=bool)
        return self._gather(BAND_MASK, rows).astype(bool)

    def column(self, name: str, rows=None) -> np.ndarray:
        """One catalogue column (strings decoded)."""
        if name not in self.columns:
            raise StoreError(f"store {self.path} has no catalogue column {name!r}; it has: {', '.join(self.columns)}")
        values = self._gather(f"{CATALOG}/{name}", rows)
        if values.dtype.kind == "S":
            values = values.astype(str)
        return values

    def catalog(self, columns=None, rows=None) -> dict[str, np.ndarray]:
        """Several catalogue columns as a dict of arrays (all columns when ``columns`` is None)."""
        return {name: self.column(name, rows) for name in (columns or self.columns)}

    def split_rows(self, split: str, fold: int | None = None) -> np.ndarray:
        """Row indices of ``split``: ``train`` (fold != K), ``test`` (fold == K) or ``all``."""
        if split == "all":
            return np.arange(len(self), dtype=np.int64)
        if split not in ("train", "test"):
            raise StoreError(f"unknown split {split!r}: use train, test or all")
        folds = self.column("fold")
        if fold is None or not 0 <= int(fold) < self.n_folds:
            raise StoreError(f"fold must be in 0..{self.n_folds - 1}, got {fold}")
        mask = folds == int(fold) if split == "test" else folds != int(fold)
        return np.flatnonzero(mask).astype(np.int64)

    def iter_chunks(self, rows=None, chunk_size: int = 1024):
        """Yield ``(rows_chunk, images_chunk)`` so a catalogue of any size streams through memory."""
        rows = self._rows(rows)
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start:start + chunk_size]
            yield chunk, self.images(chunk)
