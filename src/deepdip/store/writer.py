"""Create cutout stores: stream galaxies in, never hold the whole image array in memory.

The store is written under a unique temporary name beside its destination and renamed only when
the writer closes without error, so a crash or Ctrl-C never leaves a half-written store behind and
two writers of one destination never share a temporary. An existing destination is replaced only
with ``overwrite=True`` and only if it is a store (a file, or a folder of ``part-*.h5`` shards):
never a directory of other files, never one of the command's inputs (see :mod:`deepdip.atomic`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

from deepdip import __version__
from deepdip.atomic import check_output, publish, remove_path, replace_dir, unique_temporary
from deepdip.errors import StoreError
from deepdip.store.folds import assign_folds
from deepdip.store.format import (
    BAND_MASK,
    BAND_MASK_DTYPE,
    CATALOG,
    FORMAT_VERSION,
    IMAGE_DTYPE,
    IMAGES,
    REQUIRED_COLUMNS,
)

# Rows per HDF5 chunk of `images`: a DataLoader batch reads a few chunks, and a chunk of 64
# SDSS stamps (64*5*64*64*4 B = 5 MB) keeps h5py's per-chunk overhead small.
CHUNK_ROWS = 64


class StoreWriter:
    """Write a cutout store incrementally.

    Parameters
    ----------
    path : str or Path
        Destination: a ``.h5`` file, or a folder when ``shard_size`` is given.
    bands : sequence of str
        Band names in image-plane order.
    image_shape : (int, int)
        Stamp height and width in pixels.
    survey, pixel_scale, flux_unit :
        Stored as file attributes (pixel scale in arcsec/pixel).
    n_folds, seed :
        Cross-validation folds assigned from a hash of (id, seed) when ``fold`` is not given.
    attrs : dict, optional
        Extra provenance stored as JSON text in ``attrs["provenance"]``.
    shard_size : int, optional
        Write a folder of shard files with at most this many galaxies each.
    overwrite : bool
        Replace an existing store at ``path`` (never a directory of other files).
    inputs : iterable of path-like
        Files the caller reads from; ``path`` may not be one of them or a folder holding one.
    """

    def __init__(self, path, *, bands, image_shape, survey: str, pixel_scale: float,
                 flux_unit: str = "nanomaggy", n_folds: int = 5, seed: int = 0,
                 attrs: dict | None = None, shard_size: int | None = None, overwrite: bool = False,
                 inputs=()):
        self.path = Path(path)
        self.overwrite = bool(overwrite)
        # Refuse a bad destination now, before any galaxy is made; close() checks again.
        check_store_output(self.path, sharded=shard_size is not None, overwrite=self.overwrite, inputs=inputs)
        self.bands = [str(b) for b in bands]
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 2:
            raise ValueError(f"image_shape must be (H, W), got {image_shape}")
        self.n_folds = int(n_folds)
        self.seed = int(seed)
        self.shard_size = None if shard_size is None else int(shard_size)
        self._attrs = {
            "format_version": FORMAT_VERSION,
            "survey": str(survey),
            "bands": self.bands,
            "pixel_scale": float(pixel_scale),
            "flux_unit": str(flux_unit),
            "n_folds": self.n_folds,
            "fold_seed": self.seed,
            "provenance": json.dumps(attrs or {}, sort_keys=True, default=str),
            "deepdip_version": __version__,
        }
        self._tmp: Path | None = None
        self._file: h5py.File | None = None
        self._shard_index = -1
        self._columns: list[str] | None = None
        self._has_mask: bool | None = None
        self._ids_seen: set[int] = set()
        self.n_written = 0
        self._closed = False
        self._start()

    # -- lifecycle -----------------------------------------------------------------------------
    def _start(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = unique_temporary(self.path, ".h5" if self.shard_size is None else "")
        # Stays installed after the writer is done: HDF5 may still report failed writes of the
        # (removed) temporary as its last objects are released at exit.
        self._failures = _WriteFailures(self._tmp)
        if self.shard_size is not None:
            self._tmp.mkdir()
        else:
            self._file = self._open_file(self._tmp)

    def _open_file(self, path: Path) -> h5py.File:
        f = h5py.File(path, "w")
        for key, value in self._attrs.items():
            f.attrs[key] = value
        n_bands = len(self.bands)
        f.create_dataset(IMAGES, shape=(0, n_bands, *self.image_shape), maxshape=(None, n_bands, *self.image_shape),
                         dtype=IMAGE_DTYPE, chunks=(CHUNK_ROWS, n_bands, *self.image_shape))
        f.create_group(CATALOG)
        return f

    def _next_shard(self) -> h5py.File:
        if self._file is not None:
            self._file.close()
        self._shard_index += 1
        assert self._tmp is not None  # set by _start
        self._file = self._open_file(self._tmp / f"part-{self._shard_index:05d}.h5")
        return self._file

    def close(self):
        """Finish the store and move it to its final name."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_file()
            gc.collect()  # release every h5py object now, so a failed flush is reported here
            self._failures.raise_if_any(self.path)
            if self.n_written == 0:
                raise StoreError(f"no galaxies were written to {self.path}")
            if self.shard_size is None:
                publish(self._tmp, self.path, overwrite=self.overwrite)
            else:
                replace_dir(self._tmp, self.path, is_ours=_is_shard_folder, overwrite=self.overwrite,
                            what="sharded store")
        finally:
            remove_path(self._tmp)
            self._failures.done()

    def abort(self):
        """Drop everything written so far; the destination is left untouched."""
        self._closed = True
        try:
            with contextlib.suppress(Exception):  # a file whose writes failed (disk full) may fail to close
                self._close_file()
        finally:
            if self._tmp is not None:
                remove_path(self._tmp)
                self._failures.done()

    def _close_file(self):
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    # -- writing -------------------------------------------------------------------------------
    def append(self, images, catalog: dict, band_mask=None):
        """Append galaxies: ``images`` float ``[n, B, H, W]`` and 1-D catalogue columns of length n.

        ``band_mask`` (bool or 0/1 ``[n, B]``, optional): which bands each galaxy has. Given once,
        it must be given with every append (a store has a mask for all its galaxies or none). The
        pixels of a missing band are written as 0 (whatever they held, NaN included) and its
        ``flux_<band>``/``flux_err_<band>`` columns, if any, as NaN.
        """
        images = np.asarray(images)
        n = images.shape[0] if images.ndim else 0
        expected = (len(self.bands), *self.image_shape)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise StoreError(f"images must have shape [n, {', '.join(map(str, expected))}], got {list(images.shape)}")
        if self._has_mask is None:
            self._has_mask = band_mask is not None
        elif self._has_mask != (band_mask is not None):
            raise StoreError("band_mask must be given with every append or with none")
        if band_mask is not None:
            images, catalog = self._apply_mask(images, catalog, band_mask, n)
            catalog = {**catalog, BAND_MASK: band_mask}
        columns = self._prepare_columns(catalog, n)
        if self.shard_size is None:
            self._write(images, columns)
            return
        start = 0
        while start < n:
            f = self._file
            if f is None or f[IMAGES].shape[0] >= self.shard_size:
                f = self._next_shard()
            room = self.shard_size - f[IMAGES].shape[0]
            stop = min(n, start + room)
            self._write(images[start:stop], {k: v[start:stop] for k, v in columns.items()})
            start = stop

    def _apply_mask(self, images, catalog: dict, band_mask, n: int):
        mask = np.asarray(band_mask)
        if mask.shape != (n, len(self.bands)) or not np.isin(mask, (0, 1)).all():
            raise StoreError(f"band_mask must be 0/1 of shape [{n}, {len(self.bands)}], got {list(mask.shape)}")
        mask = mask.astype(bool)
        if mask.all():
            return images, catalog
        images = np.where(mask[:, :, None, None], images, 0).astype(IMAGE_DTYPE, copy=False)
        catalog = dict(catalog)
        for b, band in enumerate(self.bands):
            for name in (f"flux_{band}", f"flux_err_{band}"):
                if name in catalog:
                    col = np.asarray(catalog[name])
                    col = col.astype(col.dtype if col.dtype.kind == "f" else np.float64, copy=True)
                    col[~mask[:, b]] = np.nan
                    catalog[name] = col
        return images, catalog

    def _prepare_columns(self, catalog: dict, n: int) -> dict[str, np.ndarray]:
        columns = {str(k): np.asarray(v) for k, v in catalog.items()}
        for name in ("id", "z_spec", "ebv"):
            if name not in columns:
                raise StoreError(f"catalogue column {name!r} is required")
        if "fold" not in columns:
            columns["fold"] = assign_folds(columns["id"], self.n_folds, self.seed)
        for name, values in columns.items():
            if name == BAND_MASK:
                columns[name] = values.astype(BAND_MASK_DTYPE)
                continue
            if values.ndim != 1 or len(values) != n:
                raise StoreError(f"catalogue column {name!r} must be 1-D of length {n}, got shape {list(values.shape)}")
        for name, dtype in REQUIRED_COLUMNS.items():
            columns[name] = columns[name].astype(dtype)
        unique, counts = np.unique(columns["id"], return_counts=True)
        dup = set(unique[counts > 1].tolist()) | self._ids_seen.intersection(unique.tolist())
        if dup:
            raise StoreError(f"duplicate galaxy ids ({len(dup)}): {sorted(dup)[:10]}")
        if self._columns is None:
            self._columns = sorted(columns)
        elif sorted(columns) != self._columns:
            raise StoreError(f"catalogue columns changed between appends: {sorted(columns)} vs {self._columns}")
        self._ids_seen.update(unique.tolist())
        return columns

    def _write(self, images: np.ndarray, columns: dict[str, np.ndarray]):
        f = self._file
        if f is None:
            raise StoreError(f"{self.path}: the store writer is closed")
        n0, n = f[IMAGES].shape[0], images.shape[0]
        f[IMAGES].resize(n0 + n, axis=0)
        f[IMAGES][n0:n0 + n] = images.astype(IMAGE_DTYPE, copy=False)
        group = f[CATALOG]
        if BAND_MASK in columns:
            if BAND_MASK not in f:
                f.create_dataset(BAND_MASK, shape=(0, len(self.bands)), maxshape=(None, len(self.bands)),
                                 dtype=BAND_MASK_DTYPE, chunks=(max(1024, CHUNK_ROWS), len(self.bands)))
            f[BAND_MASK].resize(n0 + n, axis=0)
            f[BAND_MASK][n0:n0 + n] = columns[BAND_MASK]
        for name, values in columns.items():
            if name == BAND_MASK:
                continue
            if values.dtype.kind in "OU":
                values = values.astype("S")  # HDF5 has no variable-width unicode numpy dtype
            if name not in group:
                group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=values.dtype,
                                     chunks=(max(1024, CHUNK_ROWS),))
            group[name].resize(n0 + n, axis=0)
            group[name][n0:n0 + n] = values
        # HDF5 caches writes: without a flush a full disk shows up only at close (or not at all,
        # as a crash at exit). Flushed here, it is an OSError of this append, and the writer aborts.
        f.flush()
        self._failures.raise_if_any(self.path)
        self.n_written += n


class _WriteFailures:
    """h5py reports some failed writes (a full disk while HDF5 flushes its cache as an object is
    released) only as printed "ignored" exceptions, never as one the writer could catch: the file
    would be renamed into place corrupt. One pair of process-wide hooks (installed once) collects
    the failures that name a temporary store being written, and keeps them off the terminal;
    everything else passes through to the previous hooks.
    """

    _watched: dict[str, list[str]] = {}   # temporary path -> failures seen
    _installed = False

    def __init__(self, tmp: Path):
        self.tmp = str(tmp)
        self._watched[self.tmp] = []
        if not _WriteFailures._installed:
            _WriteFailures._installed = True
            previous_unraisable, previous_except = sys.unraisablehook, sys.excepthook

            def unraisable_hook(unraisable):
                if not self._collect(str(unraisable.exc_value)):
                    previous_unraisable(unraisable)

            def except_hook(kind, value, tb):  # h5py prints some dealloc errors through PyErr_Print
                if not self._collect(str(value)):
                    previous_except(kind, value, tb)

            sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook

    @classmethod
    def _collect(cls, text: str) -> bool:
        for tmp, errors in cls._watched.items():
            if tmp in text:
                errors.append(text)
                return True
        return False

    @property
    def errors(self) -> list[str]:
        return self._watched.get(self.tmp, [])

    def done(self):
        """Stop watching a store that was written without failure (a failed one stays watched:
        HDF5 may report its removed temporary again as its last objects are released at exit)."""
        if not self.errors:
            self._watched.pop(self.tmp, None)

    def raise_if_any(self, path: Path):
        if self.errors:
            found = re.search(r"error message = '([^']*)'", self.errors[0])
            reason = found.group(1) if found else self.errors[0].splitlines()[0]
            raise StoreWriteError(f"writing {path} failed ({reason}); nothing was written")


class StoreWriteError(StoreError):
    """HDF5 could not write the store (disk full...). The HDF5 library is then left holding objects
    it cannot release, and its own clean-up at interpreter exit would crash: the CLI exits at once
    after reporting this error (the temporary is already removed)."""


def is_store_file(path) -> bool:
    """True if ``path`` is an HDF5 file with deepdip's ``format_version``: a store ``--overwrite`` may replace."""
    try:
        with h5py.File(path, "r") as f:
            return "format_version" in f.attrs
    except Exception:  # noqa: BLE001 - anything h5py cannot open is not a store
        return False


def _is_shard_folder(path: Path) -> bool:
    """A folder of ours: nothing but ``part-*.h5`` shard files (what a sharded StoreWriter writes)."""
    return all(p.is_file() and p.name.startswith("part-") and p.suffix == ".h5" and is_store_file(p)
               for p in path.iterdir())


def check_store_output(path, *, sharded: bool, overwrite: bool = False, inputs=()) -> Path:
    """Refuse a store destination that would lose something (see the module docstring); cheap."""
    path = Path(path)
    check_output(path, inputs=inputs, overwrite=overwrite, kind="dir" if sharded else "file",
                 replaceable=is_store_file, what="cutout store")
    if sharded and path.exists() and not path.is_dir():
        raise StoreError(f"output {path} is an existing file; a sharded store is a folder (nothing was written)")
    if not sharded or not path.is_dir() or not any(path.iterdir()):
        return path  # an empty folder holds nothing to lose
    if not _is_shard_folder(path):
        raise StoreError(f"output {path} is a folder holding other files than a sharded store; "
                         "choose another output name (nothing was written)")
    if not overwrite:
        raise StoreError(f"output {path} holds a sharded store; pass --overwrite to replace it")
    return path


def create_store(path, images, catalog: dict, band_mask=None, **kwargs) -> Path:
    """Write a whole store in one call (small stores, tests). ``kwargs`` go to :class:`StoreWriter`;
    ``band_mask`` as in :meth:`StoreWriter.append`."""
    images = np.asarray(images)
    kwargs.setdefault("image_shape", images.shape[2:])
    with StoreWriter(path, **kwargs) as writer:
        writer.append(images, catalog, band_mask=band_mask)
    return Path(path)


def add_columns(path, columns: dict) -> None:
    """Add (or replace) catalogue columns of an existing single-file store, e.g. measured photometry.

    Written into a copy that replaces the original only when complete.
    """
    path = Path(path)
    if path.is_dir():
        raise StoreError("add_columns on a sharded store: add the columns to each shard with add_columns(shard, ...)")
    tmp = unique_temporary(path, ".h5")
    shutil.copyfile(path, tmp)
    try:
        with h5py.File(tmp, "r+") as f:
            n = f[IMAGES].shape[0]
            for name, values in columns.items():
                values = np.asarray(values)
                if values.ndim != 1 or len(values) != n:
                    raise StoreError(f"column {name!r} must be 1-D of length {n}, got shape {list(values.shape)}")
                if name in f[CATALOG]:
                    del f[CATALOG][name]
                f[CATALOG].create_dataset(name, data=values)
        tmp.replace(path)  # replaces the store the caller asked to extend, never anything else
    except BaseException:
        remove_path(tmp)
        raise
