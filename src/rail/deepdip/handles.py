"""RAIL data handles for deepdip's files: cutout stores, fitted baselines and CNN runs.

- :class:`CutoutStoreHandle`: a deepdip cutout store (one ``.h5`` file or a folder of shards) as a
  RAIL input. Its data is a lazy :class:`~deepdip.store.CutoutStore` (opening it reads no pixel);
  its iterator yields row ranges as :class:`StoreChunk` dicts, so a stage streams the store chunk
  by chunk and never holds the whole image array.
- :class:`DeepdipModelHandle`: a fitted catalogue baseline, written and read with deepdip's own
  ``.npz`` model files (:mod:`deepdip.baselines.modelfile`: numpy arrays and JSON, never a pickle),
  so ``deepdip.baselines.load_baseline`` reads what a RAIL informer wrote, and back.
- :class:`DeepdipRunHandle`: a trained CNN, i.e. a deepdip run directory or one ``model.pt``; as a
  RAIL output it is a small JSON file naming the run directory (the networks stay in the run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rail.core.data import DataHandle, ModelHandle
from tables_io import hdf5 as tab_hdf5

from deepdip.errors import DeepdipError

#: Catalogue columns every store chunk carries (besides ``rows`` and ``images``).
CHUNK_COLUMNS = ("id", "z_spec", "fold", "ebv")
RUN_FORMAT = "deepdip-cnn-run"


class StoreChunk(dict):
    """One chunk of a cutout store: ``rows`` (store row indices), ``images`` float32 ``[n, B, H, W]``
    and the catalogue columns ``id``, ``z_spec``, ``fold``, ``ebv`` (a dict, as RAIL's table chunks are)."""


def as_store(data):
    """A :class:`~deepdip.store.CutoutStore` from a store, a path (file or folder of shards) or a handle."""
    from deepdip.store import CutoutStore

    if isinstance(data, DataHandle):
        data = data.data if data.has_data else data.path
    if isinstance(data, CutoutStore):
        return data
    if data is None or str(data) in ("None", "none", ""):
        raise DeepdipError("no cutout store given")
    return CutoutStore(os.path.expandvars(str(data)))


def iter_store_chunks(store, chunk_size: int = 2048, rank: int = 0, parallel_size: int = 1,
                      **_ignored: Any) -> Iterator[tuple[int, int, StoreChunk]]:
    """``(start, end, chunk)`` over the rows of ``store`` this process (``rank`` of ``parallel_size``) owns.

    The ranges are RAIL's (``tables_io.hdf5.data_ranges_by_rank``), so a store splits over MPI
    ranks as a table does; each chunk reads only its own rows.
    """
    for start, end in tab_hdf5.data_ranges_by_rank(len(store), int(chunk_size), int(parallel_size), int(rank)):
        rows = np.arange(start, end, dtype=np.int64)
        chunk = StoreChunk(store.catalog(list(CHUNK_COLUMNS), rows=slice(start, end)))
        chunk["rows"] = rows
        chunk["images"] = store.images(slice(start, end))
        yield start, end, chunk


class CutoutStoreHandle(DataHandle):
    """A deepdip cutout store as a RAIL input (read-only: stores are written by deepdip)."""

    suffix = "h5"
    interactive_type = "deepdip.store.CutoutStore"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        return as_store(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any):
        return as_store(path)  # lazy: the catalogue and pixels are read chunk by chunk later

    @classmethod
    def _validate_data(cls, data) -> None:
        from deepdip.store import CutoutStore

        if not isinstance(data, CutoutStore):
            raise TypeError(f"a CutoutStoreHandle holds a deepdip.store.CutoutStore, not {type(data).__name__}")

    def _size(self, path: str, **kwargs: Any) -> int:
        return len(as_store(path))

    def _data_size(self, data, **kwargs: Any) -> int:
        return len(data)

    def _in_memory_iterator(self, **kwargs: Any):
        return iter_store_chunks(self.data, **kwargs)

    @classmethod
    def _iterator(cls, path: str, **kwargs: Any):
        return iter_store_chunks(as_store(path), **kwargs)

    @classmethod
    def _write(cls, data, path: str, **kwargs: Any) -> None:
        raise DeepdipError("cutout stores are written by deepdip (simulate, ingest), not by a RAIL stage")

    @classmethod
    def _check_data_columns(cls, path: str, columns_to_check: list[str], parent_groupname: str | None = None,
                            **kwargs: Any) -> None:
        missing = sorted(set(columns_to_check) - set(as_store(path).columns))
        if missing:
            raise KeyError(f"cutout store {path} lacks the column(s) {', '.join(missing)}")


def store_handle(data, tag: str = "input") -> CutoutStoreHandle:
    """A :class:`CutoutStoreHandle` (with its path, so RAIL streams it) for a store, a path or a handle."""
    if isinstance(data, CutoutStoreHandle):
        if data.has_data or data.has_path:
            return data
    store = as_store(data)
    return CutoutStoreHandle(tag, data=store, path=str(store.path))


class DeepdipModelHandle(ModelHandle):
    """A fitted deepdip catalogue baseline in deepdip's ``.npz`` model format (no pickle)."""

    suffix = "npz"
    interactive_type = "deepdip.baselines.base.CatalogueBaseline"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        if kwargs.get("mode", "r") == "w":
            return open(path, mode="wb")  # noqa: SIM115 - RAIL's ModelHandle contract returns the open file
        return cls._read(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any):
        from deepdip.baselines import load_baseline

        return load_baseline(path)

    @classmethod
    def _write(cls, data, path: str, **kwargs: Any) -> None:
        data.save(path, overwrite=True)  # RAIL stages replace their outputs; deepdip writes atomically

    @classmethod
    def _validate_data(cls, data) -> None:
        from deepdip.baselines.base import CatalogueBaseline

        if not isinstance(data, CatalogueBaseline):
            raise TypeError(f"a DeepdipModelHandle holds a fitted deepdip baseline, not {type(data).__name__}")


class CNNModel:
    """A trained CNN: a deepdip run directory (``fold*/member*/model.pt``) or one ``model.pt`` file."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"CNNModel({str(self.path)!r})"

    def model_files(self) -> dict[int, list[Path]]:
        """Model files by fold (``-1`` for a lone ``model.pt``): :func:`deepdip.predict.find_model_files`."""
        from deepdip.predict import find_model_files

        return find_model_files(self.path)


def read_run(path) -> CNNModel:
    """A :class:`CNNModel` from a run directory, a ``.pt`` model file or a run manifest (``.json``)."""
    path = Path(os.path.expandvars(str(path)))
    if path.is_dir() or path.suffix == ".pt":
        return CNNModel(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeepdipError(f"{path} is neither a deepdip run directory, a model.pt nor a run manifest "
                           f"({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
        raise DeepdipError(f"{path} is not a deepdip run manifest (format {RUN_FORMAT!r})")
    return CNNModel(path.parent / manifest["run"])  # relative to the manifest: the two move together


class DeepdipRunHandle(ModelHandle):
    """A trained CNN for RAIL: read from a run directory, a ``model.pt`` or a JSON run manifest;
    written as the manifest ``{"format": "deepdip-cnn-run", "run": <run directory, relative>}``."""

    suffix = "json"
    interactive_type = "rail.deepdip.handles.CNNModel"

    @classmethod
    def _open(cls, path: str, **kwargs: Any):
        if kwargs.get("mode", "r") == "w":
            return open(path, mode="w")  # noqa: SIM115 - RAIL's ModelHandle contract returns the open file
        return cls._read(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> CNNModel:
        return read_run(path)

    @classmethod
    def _write(cls, data, path: str, **kwargs: Any) -> None:
        from deepdip.atomic import write_json_atomic

        where = Path(path).absolute().parent
        run = os.path.relpath(Path(data.path).absolute(), where)
        write_json_atomic(path, {"format": RUN_FORMAT, "version": 1, "run": run})

    @classmethod
    def _validate_data(cls, data) -> None:
        if not isinstance(data, CNNModel):
            raise TypeError(f"a DeepdipRunHandle holds a rail.deepdip.CNNModel, not {type(data).__name__}")
