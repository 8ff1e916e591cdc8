"""Value checks of a cutout store, shared by ``deepdip validate`` and by every reader that must refuse bad rows.

``validate`` reports every problem of a whole file; :func:`check_rows` refuses, with one line naming
the store, the column and the number of bad rows, the rows a command is about to use (``train``
and ``predict`` call it before any long work). The pixel scan streams ``SCAN_ROWS`` cutouts at a
time: stores can be tens of GB and are never loaded whole.
"""

from __future__ import annotations

import numpy as np

from deepdip.errors import StoreValueError

# Cutouts read per block by the pixel scans: 512 SDSS stamps are 42 MB.
SCAN_ROWS = 512


def preview(values, limit: int = 5) -> str:
    """``"1, 2, 3, ... (12 in all)"``: the first few of many values, for one-line messages."""
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def bad_folds(folds: np.ndarray, n_folds) -> np.ndarray:
    """bool mask of fold values outside ``0..n_folds-1`` (only negative ones when ``n_folds`` is unknown)."""
    folds = np.asarray(folds)
    if isinstance(n_folds, (int, np.integer)):
        return (folds < 0) | (folds >= n_folds)
    return folds < 0


def bad_ebv(ebv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bool masks of non-finite and of negative E(B-V) (a reddening is never negative)."""
    ebv = np.asarray(ebv, dtype=np.float64)
    finite = np.isfinite(ebv)
    return ~finite, finite & (ebv < 0)


def nonfinite_image_rows(images, rows=None, chunk: int | None = None) -> np.ndarray:
    """Positions (into ``rows``, or into the dataset when ``rows`` is None) of cutouts with a NaN or inf pixel.

    ``images`` is an h5py dataset (read in contiguous blocks) or a :class:`~deepdip.store.CutoutStore`
    (read with ``store.images(rows)`` in chunks of ``chunk`` rows, default ``SCAN_ROWS``).
    """
    chunk = chunk or SCAN_ROWS
    bad: list[np.ndarray] = []
    if rows is None:
        n = images.shape[0]
        for start in range(0, n, chunk):
            block = images[start:start + chunk]
            bad.append(start + np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1)))
    else:
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")  # sorted reads are contiguous within each shard
        for start in range(0, len(rows), chunk):
            pos = order[start:start + chunk]
            block = images.images(rows[pos])
            bad.append(pos[~np.isfinite(block).reshape(len(block), -1).all(axis=1)])
    return np.sort(np.concatenate(bad)) if bad else np.zeros(0, np.int64)


def check_rows(store, rows=None, *, pixels: bool = True, what: str = "the rows used") -> None:
    """Refuse ``rows`` of ``store`` (all rows when None) holding values no estimator may use.

    Checked: ``fold`` within ``0..n_folds-1`` (every row: a fold out of range means a broken
    store, whichever rows are used), ``ebv`` finite and non-negative, and, with ``pixels``, every
    pixel finite. Raises :class:`~deepdip.errors.StoreValueError` with one line naming the store,
    each bad column and its count of bad rows (and the first ids); ``deepdip validate STORE`` lists
    every problem of the store.
    """
    rows = np.arange(len(store), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    problems = []
    folds = store.column("fold")
    n_folds = store.attrs.get("n_folds")
    bad = bad_folds(folds, int(n_folds) if n_folds is not None else None)
    if bad.any():
        ids = store.column("id")[bad]
        problems.append(f"column 'fold' outside 0..{int(n_folds or 1) - 1} in {int(bad.sum())} rows "
                        f"(ids {preview(ids)})")
    if len(rows):
        ebv = store.column("ebv", rows)
        nan, negative = bad_ebv(ebv)
        for mask, kind in ((nan, "NaN or inf"), (negative, "negative")):
            if mask.any():
                ids = store.column("id", rows[mask])
                problems.append(f"column 'ebv' is {kind} in {int(mask.sum())} of {what} (ids {preview(ids)})")
        if pixels:
            pos = nonfinite_image_rows(store, rows)
            if len(pos):
                ids = store.column("id", rows[pos])
                problems.append(f"NaN or inf pixels in {len(pos)} cutouts of {what} (ids {preview(ids)})")
    if problems:
        raise StoreValueError(f"store {store.path}: {'; '.join(problems)}; see `deepdip validate {store.path}`")
