"""Check a cutout store against the format and report *every* problem found, one line each."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from deepdip.errors import StoreError
from deepdip.store.checks import bad_ebv, bad_folds, nonfinite_image_rows
from deepdip.store.checks import preview as _preview
from deepdip.store.format import (
    BAND_MASK,
    CATALOG,
    IMAGE_DTYPE,
    IMAGES,
    REQUIRED_ATTRS,
    REQUIRED_COLUMNS,
    SUPPORTED_VERSIONS,
    decode_attr,
)
from deepdip.store.reader import open_h5, shard_paths


def _check_file(f: h5py.File) -> tuple[list[str], np.ndarray | None]:
    """Problems of one HDF5 file, and its ids (None when unreadable) for cross-shard checks."""
    problems: list[str] = []
    attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
    for key in REQUIRED_ATTRS:
        if key not in attrs:
            problems.append(f"missing file attribute {key!r}")
    version = attrs.get("format_version")
    if version is not None and version not in SUPPORTED_VERSIONS:
        problems.append(f"unknown format_version {version!r} (this deepdip reads {list(SUPPORTED_VERSIONS)})")

    n = None
    images = f.get(IMAGES)
    if not isinstance(images, h5py.Dataset):
        problems.append(f"missing '{IMAGES}' dataset")
    elif images.ndim != 4:
        problems.append(f"'{IMAGES}' must have rank 4 [N, B, H, W], got shape {list(images.shape)}")
    else:
        n = images.shape[0]
        if images.dtype != IMAGE_DTYPE:
            problems.append(f"'{IMAGES}' must be float32, got {images.dtype}")
        bands = attrs.get("bands")
        if bands is not None:
            if isinstance(bands, str) or not isinstance(bands, list):
                problems.append(f"'bands' attribute must be a list of band names, got {bands!r}")
            elif len(bands) != images.shape[1]:
                problems.append(f"'bands' attribute lists {len(bands)} bands {bands} "
                                f"but images have B={images.shape[1]}")
            elif len(set(bands)) != len(bands):
                problems.append(f"'bands' attribute repeats a band: {bands}")

    ids = None
    catalog = f.get(CATALOG)
    if not isinstance(catalog, h5py.Group):
        problems.append(f"missing '{CATALOG}' group")
        catalog = {}
    for name, dtype in REQUIRED_COLUMNS.items():
        if name not in catalog:
            problems.append(f"missing required catalogue column '{CATALOG}/{name}'")
        elif catalog[name].dtype != dtype:
            problems.append(f"catalogue column '{name}' must be {dtype}, got {catalog[name].dtype}")
    for name in catalog:
        col = catalog[name]
        if not isinstance(col, h5py.Dataset) or col.ndim != 1:
            problems.append(f"catalogue column '{name}' must be a 1-D dataset")
        elif n is not None and col.shape[0] != n:
            problems.append(f"catalogue column '{name}' has length {col.shape[0]} but there are {n} images")

    lengths_ok = n is not None and all(isinstance(catalog[c], h5py.Dataset) and catalog[c].shape == (n,)
                                       for c in REQUIRED_COLUMNS if c in catalog)
    if "id" in catalog and catalog["id"].ndim == 1:
        ids = catalog["id"][:]
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            problems.append(f"duplicate ids: {_preview(unique[counts > 1])}")
    if "fold" in catalog and catalog["fold"].ndim == 1:
        folds = catalog["fold"][:]
        n_folds = attrs.get("n_folds")
        bad = bad_folds(folds, n_folds)
        if bad.any():
            problems.append(f"fold values outside 0..{(n_folds or 1) - 1}: {bad.sum()} rows"
                            + (f" (ids {_preview(ids[bad])})" if lengths_ok and ids is not None else ""))
    if "ebv" in catalog and catalog["ebv"].ndim == 1:
        for bad, kind in zip(bad_ebv(catalog["ebv"][:]), ("non-finite", "negative")):
            if bad.any():
                problems.append(f"{kind} ebv in {bad.sum()} rows"
                                + (f" (ids {_preview(ids[bad])})" if lengths_ok and ids is not None else ""))

    if BAND_MASK in f:
        problems += _check_band_mask(f, n, ids if lengths_ok else None, catalog, attrs.get("bands"))
    if n is not None and images.dtype.kind == "f":
        bad_rows = nonfinite_image_rows(images).tolist()
        if bad_rows:
            who = ids[bad_rows] if lengths_ok and ids is not None else np.asarray(bad_rows)
            label = "ids" if lengths_ok and ids is not None else "rows"
            problems.append(f"NaN or inf pixels in {len(bad_rows)} cutouts ({label} {_preview(who)})")
    return problems, ids


def _check_band_mask(f: h5py.File, n, ids, catalog, bands) -> list[str]:
    """The band mask agrees with the store: its shape, 0/1 values, zero pixels and NaN fluxes where missing.

    (NaN pixels in a band flagged present are the NaN-pixel check's: every pixel must be finite.)
    """
    mask = f[BAND_MASK]
    if n is None:
        return []
    n_bands = f[IMAGES].shape[1]
    if mask.shape != (n, n_bands):
        return [f"'{BAND_MASK}' must have shape [{n}, {n_bands}] like the images, got {list(mask.shape)}"]
    values = mask[:]
    if not np.isin(values, (0, 1)).all():
        odd = sorted(set(np.unique(values).tolist()) - {0, 1})[:5]
        return [f"'{BAND_MASK}' must hold 0 (band missing) or 1 (observed), found {odd}"]
    problems = []
    missing = values == 0
    rows = np.flatnonzero(missing.any(axis=1))
    who = (lambda r: f"ids {_preview(ids[r])}") if ids is not None else (lambda r: f"rows {_preview(r)}")  # noqa: E731
    lit = [r for r in rows if np.any(f[IMAGES][int(r)][missing[r]] != 0)]
    if lit:
        problems.append(f"{len(lit)} cutouts have non-zero pixels in a band '{BAND_MASK}' says is missing "
                        f"({who(np.array(lit))})")
    for b, band in enumerate(bands or []):
        name = f"flux_{band}"
        if name in catalog and missing[:, b].any():
            flux = catalog[name][:]
            bad = missing[:, b] & np.isfinite(flux)
            if bad.any():
                problems.append(f"catalogue column '{name}' holds a flux for {bad.sum()} galaxies whose {band} band "
                                f"'{BAND_MASK}' says is missing ({who(np.flatnonzero(bad))})")
    return problems


def validate_store(path) -> list[str]:
    """Every problem of the store at ``path`` as one-line messages; an empty list means valid."""
    path = Path(path)
    try:
        paths = shard_paths(path)
    except StoreError as exc:
        return [str(exc)]
    problems: list[str] = []
    all_ids, first_layout = [], None
    for p in paths:
        prefix = f"{p.name}: " if len(paths) > 1 else ""
        try:
            f = open_h5(p)
        except StoreError as exc:
            problems.append(str(exc))
            continue
        with f:
            file_problems, ids = _check_file(f)
            layout = (decode_attr(f.attrs.get("bands")), f[IMAGES].shape[1:] if IMAGES in f else None)
        problems.extend(prefix + msg for msg in file_problems)
        if ids is not None:
            all_ids.append(ids)
        if first_layout is None:
            first_layout = layout
        elif layout != first_layout:
            problems.append(f"{prefix}bands or image shape differ from the first shard")
    if len(paths) > 1 and all_ids:
        unique, counts = np.unique(np.concatenate(all_ids), return_counts=True)
        if (counts > 1).any():
            problems.append(f"ids repeated across shards: {_preview(unique[counts > 1])}")
    return problems
