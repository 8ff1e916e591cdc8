"""The photo-z catalogue: the one prediction format every estimator writes (DESIGN.md).

A Parquet file with one row per galaxy: ``id``, optional ``z_spec`` and ``fold``, the point
estimates of :func:`deepdip.metrics.point_estimates`, any extra 1-D columns (``mag_r``, ``ra``...),
and ``pdf``, a fixed-length float32 list of probabilities per redshift bin (each row sums to 1).
The redshift grid, producing method, its configuration and the deepdip version are stored as
JSON under the ``deepdip`` key of the Parquet schema metadata.

Files are written under a temporary name and renamed when complete, so a crash never leaves a
half-written catalogue. Exports: LSST DESC ``qp`` ensembles (:func:`to_qp`, :func:`write_qp`), the
truth table RAIL's evaluators read (:func:`truth_table`, :func:`write_truth_table`) and FITS tables
(:func:`to_fits`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deepdip import __version__
from deepdip.atomic import atomic_path, check_output, publish
from deepdip.errors import DeepdipError
from deepdip.metrics import normalise, point_estimates
from deepdip.zgrid import ZGrid

FORMAT_VERSION = 1
METADATA_KEY = b"deepdip"
POINT_COLUMNS = ("z_mean", "z_median", "z_mode", "z_std", "z_lo68", "z_hi68")
RESERVED = ("id", "z_spec", "fold", *POINT_COLUMNS, "pdf")


@dataclass
class PhotozCatalog:
    """A photo-z catalogue in memory.

    Attributes
    ----------
    ids : ndarray of int64, shape (N,)
    pdf : ndarray of float32, shape (N, nbins)
        Probability per redshift bin; rows sum to 1.
    zgrid : ZGrid
    method : str
        Name of the estimator that produced it.
    config : dict
        Its configuration, as written.
    table : pandas.DataFrame
        Every scalar column (``id``, ``z_spec``, ``fold``, point estimates, extras).
    metadata : dict
        The whole ``deepdip`` metadata record (includes ``deepdip_version``).
    """

    ids: np.ndarray
    pdf: np.ndarray
    zgrid: ZGrid
    method: str
    config: dict = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def _metadata(zgrid: ZGrid, method: str, config: dict | None) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "method": method,
        "config": config or {},
        "zgrid": zgrid.to_dict(),
        "bin_edges": zgrid.edges.tolist(),
        "pdf": "probability per redshift bin, each row sums to 1",
        "deepdip_version": __version__,
    }


def _column(name: str, values, n: int, dtype) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.shape != (n,):
        raise DeepdipError(f"catalogue column '{name}' has shape {arr.shape}; expected ({n},)")
    return arr


def is_photoz_catalog(path) -> bool:
    """True if ``path`` is a Parquet file carrying deepdip's metadata: a catalogue ``--overwrite`` may replace."""
    try:
        return METADATA_KEY in (pq.read_schema(os.fspath(path)).metadata or {})
    except Exception:  # noqa: BLE001 - anything unreadable as Parquet is not a catalogue
        return False


class CatalogWriter:
    """Write a photo-z catalogue chunk by chunk (for predictors that stream over a store).

    Use as a context manager; the file appears at ``path`` only when the block succeeds::

        with CatalogWriter("cnn.parquet", zgrid, method="cnn", config=cfg) as w:
            for ids, pdf, z_spec in chunks:
                w.write(ids, pdf, z_spec=z_spec)

    Every chunk must carry the same optional columns as the first one. Ids are checked for
    uniqueness within a chunk only (a global check would hold every id in memory).
    """

    def __init__(self, path, zgrid: ZGrid, *, method: str, config: dict | None = None,
                 overwrite: bool = False, inputs=()):
        self.path = Path(path)
        self.overwrite = bool(overwrite)
        self.inputs = tuple(inputs)
        check_output(self.path, inputs=self.inputs, overwrite=self.overwrite, replaceable=is_photoz_catalog,
                     what="photo-z catalogue")  # before any prediction
        self.zgrid = zgrid
        self._meta = json.dumps(_metadata(zgrid, method, config), default=str).encode()
        self._stack = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self.n_rows = 0

    def __enter__(self) -> CatalogWriter:
        self._tmp = self._stack.enter_context(atomic_path(self.path, suffix=".parquet", overwrite=self.overwrite,
                                                          inputs=self.inputs))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None and self._writer is None:
            try:  # nothing written: still produce a valid, empty catalogue
                self._open(self._table([], np.zeros((0, self.zgrid.nbins))).schema)
            except BaseException:
                self._stack.__exit__(*sys.exc_info())  # removes the temporary file
                raise
        # Closes the Parquet writer, then renames the file on success or deletes it on failure.
        return bool(self._stack.__exit__(exc_type, exc, tb))

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        assert self._tmp is not None  # set by __enter__; write and __exit__ run inside the with block
        schema = schema.with_metadata({METADATA_KEY: self._meta})
        writer = self._writer = pq.ParquetWriter(os.fspath(self._tmp), schema)
        self._stack.callback(writer.close)
        return writer

    def _table(self, ids, pdf, *, z_spec=None, fold=None, extra=None) -> pa.Table:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1:
            raise DeepdipError(f"ids must be 1-D, got shape {ids.shape}")
        n = len(ids)
        pdf = np.asarray(pdf)
        if pdf.shape != (n, self.zgrid.nbins):
            raise DeepdipError(f"pdf has shape {pdf.shape}; expected ({n}, {self.zgrid.nbins}) for {n} ids")
        n_repeated = n - np.unique(ids).size
        if n_repeated:
            raise DeepdipError(f"duplicate ids in catalogue chunk ({n_repeated} repeated)")
        prob = normalise(pdf)
        cols = {"id": ids}
        if z_spec is not None:
            cols["z_spec"] = _column("z_spec", z_spec, n, np.float64)
        if fold is not None:
            cols["fold"] = _column("fold", fold, n, np.int8)
        cols.update(point_estimates(prob, self.zgrid))
        for name, values in (extra or {}).items():
            if name in RESERVED:
                raise DeepdipError(f"extra column '{name}' clashes with a standard catalogue column")
            cols[name] = _column(name, values, n, np.asarray(values).dtype)
        flat = pa.array(prob.astype(np.float32).ravel())
        cols["pdf"] = pa.FixedSizeListArray.from_arrays(flat, self.zgrid.nbins)
        return pa.table(cols)

    def write(self, ids, pdf, *, z_spec=None, fold=None, extra: dict | None = None) -> None:
        """Append rows: ``ids`` (N,), ``pdf`` (N, nbins) non-negative weights, optional columns.

        PDFs are normalised and the point estimates computed here, so every estimator's
        catalogue is summarised the same way.
        """
        if self._tmp is None:
            raise RuntimeError("CatalogWriter.write called outside its 'with' block")
        table = self._table(ids, pdf, z_spec=z_spec, fold=fold, extra=extra)
        writer = self._writer
        if writer is None:
            writer = self._open(table.schema)
        elif table.schema.names != writer.schema.names:
            raise DeepdipError(
                f"catalogue chunk has columns {table.schema.names}; earlier chunks had {writer.schema.names}"
            )
        writer.write_table(table.cast(writer.schema))
        self.n_rows += table.num_rows


def write_catalog(path, ids, pdf, zgrid: ZGrid, *, z_spec=None, fold=None, method: str,
                  config: dict | None = None, extra: dict | None = None, overwrite: bool = False,
                  inputs=()) -> Path:
    """Write a whole photo-z catalogue at once (see :class:`CatalogWriter` for chunks).

    Parameters
    ----------
    path : path-like
        Destination ``.parquet`` file; written atomically.
    ids : array_like of int, shape (N,)
        Unique galaxy ids (the store's ``id``).
    pdf : array_like, shape (N, nbins)
        Non-negative weights per redshift bin of ``zgrid``; normalised here.
    zgrid : ZGrid
    z_spec : array_like, shape (N,), optional
        Spectroscopic redshifts, NaN where unknown.
    fold : array_like of int, shape (N,), optional
    method : str
        Estimator name; becomes the method's name in reports.
    config : dict, optional
        JSON-serialisable estimator configuration, kept for provenance.
    extra : dict of str to array_like, optional
        More 1-D columns (magnitudes, coordinates...).
    overwrite : bool
        Replace an existing file at ``path`` (a directory is never replaced).

    Returns
    -------
    Path
    """
    with CatalogWriter(path, zgrid, method=method, config=config, overwrite=overwrite, inputs=inputs) as writer:
        writer.write(ids, pdf, z_spec=z_spec, fold=fold, extra=extra)
    return Path(path)


def open_catalog(path) -> tuple[pq.ParquetFile, dict, ZGrid]:
    """The Parquet file of a photo-z catalogue, its deepdip metadata and grid, checked (no rows read).

    Raises DeepdipError as :func:`read_catalog` does.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepdipError(f"photo-z catalogue not found: {path}")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DeepdipError(f"{path} is not a Parquet file ({exc})") from None
    raw = (pf.schema_arrow.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DeepdipError(f"{path} is not a deepdip photo-z catalogue (no '{METADATA_KEY.decode()}' metadata)")
    try:
        meta = json.loads(raw)
        version = meta.get("format_version")
        zgrid = ZGrid(**meta["zgrid"])
        _ = str(meta["method"])  # every catalogue names the method that wrote it
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DeepdipError(f"{path}: corrupt deepdip metadata ({type(exc).__name__}: {exc})") from None
    if version != FORMAT_VERSION:
        raise DeepdipError(f"{path}: unsupported catalogue format_version {version!r}")
    return pf, meta, zgrid


def read_catalog(path) -> PhotozCatalog:
    """Read a photo-z catalogue written by :func:`write_catalog` or :class:`CatalogWriter`.

    Raises
    ------
    DeepdipError
        If the file is missing, is not Parquet, lacks the deepdip metadata or a required column,
        or its PDFs do not match its redshift grid.
    """
    path = Path(path)
    pf, meta, zgrid = open_catalog(path)
    method = str(meta["method"])
    missing = [c for c in ("id", *POINT_COLUMNS, "pdf") if c not in pf.schema_arrow.names]
    if missing:
        raise DeepdipError(f"{path} lacks required column(s): {', '.join(missing)}")
    table = pf.read()
    pdf_col = table.column("pdf").combine_chunks()
    width = getattr(pdf_col.type, "list_size", None)
    if width != zgrid.nbins:
        raise DeepdipError(f"{path}: pdf column holds {width} values per row; its grid has {zgrid.nbins} bins")
    pdf = pdf_col.flatten().to_numpy().reshape(len(table), zgrid.nbins)
    scalars = table.drop_columns(["pdf"]).to_pandas()
    return PhotozCatalog(
        ids=scalars["id"].to_numpy(np.int64),
        pdf=pdf,
        zgrid=zgrid,
        method=method,
        config=meta.get("config", {}),
        table=scalars,
        metadata=meta,
    )


def qp_ensemble(pdf, zgrid: ZGrid, ids, *, z_spec=None, points: dict | None = None):
    """Binned PDFs as a ``qp.hist`` ensemble on ``zgrid``, with RAIL's ancil names.

    ``ancil``: ``id``, ``zmean``, ``zmedian``, ``zmode`` (the point estimates RAIL's evaluators read
    by ``point_estimate_key``), ``zstd``, ``zlo68``, ``zhi68`` (from ``points``, the
    :func:`deepdip.metrics.point_estimates` of ``pdf``, computed here when not given) and ``z_spec``
    when given. ``qp.hist`` holds the density (probability / bin width), so qp's CDF, PIT, mean
    and median are exactly deepdip's piecewise-uniform ones (:mod:`deepdip.metrics`). The one
    definition of the ancil for :func:`to_qp` and the RAIL stages (``rail.deepdip``).
    """
    import qp  # heavy import, only needed for this export

    prob = normalise(pdf)
    if points is None:
        points = point_estimates(prob, zgrid)
    ancil = {"id": np.asarray(ids, dtype=np.int64)}
    for col in POINT_COLUMNS:
        ancil[col.replace("_", "")] = np.asarray(points[col], dtype=np.float64)
    if z_spec is not None:
        ancil["z_spec"] = np.asarray(z_spec, dtype=np.float64)
    return qp.hist.create_ensemble(bins=zgrid.edges, pdfs=prob / zgrid.width, ancil=ancil)


def to_qp(cat: PhotozCatalog):
    """The catalogue as a ``qp.hist`` ensemble on its redshift bins (:func:`qp_ensemble`).

    ``ancil`` holds RAIL's names (``id``, ``zmean``, ``zmedian``, ``zmode``, ``zstd``, ``zlo68``,
    ``zhi68``, ``z_spec`` when the catalogue has it) and ``ids``, the same ids under the name
    earlier exports used.
    """
    z_spec = cat.table["z_spec"] if "z_spec" in cat.table else None
    ensemble = qp_ensemble(cat.pdf, cat.zgrid, cat.ids, z_spec=z_spec,
                           points={col: cat.table[col] for col in POINT_COLUMNS})
    ensemble.ancil["ids"] = cat.ids
    return ensemble


#: Suffixes :func:`write_qp` writes: those ``qp.read`` reads back. qp's writer also takes ``.hd5``,
#: ``.fit``, ``.parq`` and ``.parquet``, but qp 1.x cannot read those files back, so they are refused.
#: ``.pq`` is written by qp as one file per table (``Xmeta.pq``, ``Xdata.pq``, ``Xancil.pq``), which
#: ``qp.read("X.pq")`` reads together.
QP_SUFFIXES = (".hdf5", ".h5", ".hf5", ".fits", ".pq")


def _publish_files(path: Path, write, *, overwrite: bool) -> list[Path]:
    """Run ``write(target)`` in a private folder beside ``path``, then publish what it wrote.

    qp and tables_io derive the file names they write from the name they are given (they cut it at
    the last dot, and ``.pq`` adds a table key to the stem), so a unique temporary *name* would come
    out under another name. Instead the writer gets the final name inside a unique temporary
    folder on the same file system; each file it made is then renamed beside ``path`` under the
    rules of :mod:`deepdip.atomic` (an existing file only with ``overwrite``). A failure leaves
    nothing behind: the folder and everything in it are removed.
    """
    check_output(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent) as scratch:
        write(Path(scratch) / path.name)
        made = sorted(Path(scratch).iterdir())
        if not made:
            raise DeepdipError(f"writing {path} produced no file")
        finals = [path.parent / f.name for f in made]
        for final in finals:  # every check before the first rename: all files or none
            check_output(final, overwrite=overwrite)
        for tmp, final in zip(made, finals):
            publish(tmp, final, overwrite=overwrite)
    return finals


def write_qp(cat: PhotozCatalog, path, *, overwrite: bool = False) -> Path:
    """Write the catalogue as a qp ensemble file (:func:`to_qp`), atomically; returns ``path``.

    ``path`` ends in one of :data:`QP_SUFFIXES` (``.hdf5``, ``.h5``, ``.hf5``, ``.fits``, ``.pq``);
    ``qp.read(path)`` reads it back. RAIL's ``QPHandle`` reads ``.hdf5`` (its default suffix).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in QP_SUFFIXES:
        raise DeepdipError(f"qp output must end in {', '.join(QP_SUFFIXES)}, not '{path.name}' "
                           "(qp writes .hd5, .fit, .parq and .parquet but cannot read them back)")
    ensemble = to_qp(cat)
    _publish_files(path, lambda target: ensemble.write_to(os.fspath(target)), overwrite=overwrite)
    return path


def truth_table(cat: PhotozCatalog, *, groupname: str = "photometry", redshift_col: str = "redshift",
                id_col: str = "id") -> dict:
    """The ``truth`` table RAIL's evaluators read by default, row for row with :func:`to_qp`.

    ``{groupname: {id_col: ids, redshift_col: z_spec}}``: RAIL's ``PointToPointEvaluator`` and
    ``DistToPointEvaluator`` read the reference redshift from ``truth[hdf5_groupname][reference_dictionary_key]``
    with defaults ``"photometry"`` and ``"redshift"``. Rows whose ``z_spec`` is unknown hold NaN: qp
    counts a NaN PIT as 0, so evaluate only rows with a known redshift.
    """
    if "z_spec" not in cat.table:
        raise DeepdipError("the catalogue has no z_spec column: there is no truth to export")
    table = {id_col: cat.ids, redshift_col: cat.table["z_spec"].to_numpy(np.float64)}
    return {groupname: table} if groupname else table


def write_truth_table(cat: PhotozCatalog, path, *, overwrite: bool = False, **names) -> Path:
    """Write :func:`truth_table` to an ``.hdf5`` file (RAIL's ``Hdf5Handle`` format), atomically."""
    import tables_io

    path = Path(path)
    if path.suffix.lower() != ".hdf5":
        raise DeepdipError(f"the truth table is written as .hdf5 (what RAIL's table handles read), not '{path.name}'")
    table = truth_table(cat, **names)
    _publish_files(path, lambda target: tables_io.write(table, os.fspath(target.with_suffix("")), "hdf5"),
                   overwrite=overwrite)
    return path


def to_fits(cat: PhotozCatalog, path, *, overwrite: bool = False) -> Path:
    """Write the catalogue as a FITS binary table (``PDF`` as a vector column), atomically.

    The header carries ``METHOD``, ``ZMIN``, ``ZMAX``, ``NBINS``, ``DDVERS`` (deepdip version)
    and ``CONFIG`` (JSON).
    """
    from astropy.table import Table

    table = Table.from_pandas(cat.table)
    table["pdf"] = cat.pdf.astype(np.float32)
    table.meta.update(
        METHOD=cat.method,
        ZMIN=cat.zgrid.zmin,
        ZMAX=cat.zgrid.zmax,
        NBINS=cat.zgrid.nbins,
        DDVERS=cat.metadata.get("deepdip_version", __version__),
        CONFIG=json.dumps(cat.config, default=str),
    )
    path = Path(path)
    with atomic_path(path, suffix=".fits", overwrite=overwrite) as tmp:
        table.write(tmp, format="fits")
    return path
