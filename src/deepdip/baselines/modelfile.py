"""Fitted baselines saved to one ``.npz`` archive and read back without unpickling anything.

The archive (numpy's zip of ``.npy`` arrays, read with ``allow_pickle=False``) holds:

- ``meta``: a JSON string: ``format`` (``deepdip-baseline``), ``version``, ``method`` and
  ``estimator`` (class), ``params`` (the resolved constructor parameters), ``zgrid`` (the
  constructor's grid or null) and ``zgrid_`` (the grid of the PDFs), the JSON part of the learnt
  state, which ``blobs`` are bytes, and the library versions that wrote it;
- one array per learnt array (kNN's scaled training features and spec-z, BPZ's template fluxes
  and prior, boosted trees' residual quantiles, the colour softening...); with
  ``missing_bands="pattern"`` the training photometry and spec-z (``train.*``: the per-pattern
  models are refitted from them when first needed), with ``"impute"`` the training luptitudes the
  kNN imputer is refitted on (``impute.mags``);
- bytes as ``uint8`` arrays: LightGBM models in LightGBM's own text format, the random forest in
  ``skops.io``'s format loaded with an explicit list of trusted types
  (:func:`deepdip.baselines.forest.load_forest`).

A loaded model predicts the same PDFs, bit for bit, as the one that was saved.
"""

from __future__ import annotations

import json
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from deepdip.atomic import atomic_path
from deepdip.errors import DeepdipError
from deepdip.zgrid import ZGrid

FORMAT = "deepdip-baseline"
VERSION = 1
_META = "meta"


def save_baseline(est, path, *, overwrite: bool = False) -> Path:
    """Write the fitted baseline ``est`` to ``path`` atomically (an existing file only with ``overwrite``)."""
    if not hasattr(est, "n_train_"):
        raise DeepdipError(f"the {est.name} baseline must be fitted before it is saved")
    arrays: dict[str, np.ndarray] = {}
    state: dict = {}
    blobs = []
    for key, value in est._state().items():
        if key == _META:
            raise AssertionError(f"{key!r} is reserved")
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, bytes):
            arrays[key] = np.frombuffer(value, dtype=np.uint8)
            blobs.append(key)
        else:
            state[key] = value.item() if isinstance(value, np.generic) else value
    meta = {
        "format": FORMAT, "version": VERSION, "method": est.name, "estimator": type(est).__name__,
        "params": est.settings, "zgrid": None if est.zgrid is None else est.zgrid.to_dict(),
        "zgrid_": est.zgrid_.to_dict(), "state": state, "blobs": blobs, "versions": _versions(),
    }
    text = json.dumps(meta, allow_nan=False)  # refuse what would not read back as written
    members = {_META: np.array(text), **arrays}
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, allow_pickle=False, **members)  # type: ignore[arg-type]  # numpy's stub
    return Path(path)


def load_baseline(path):
    """The fitted baseline saved at ``path`` by :func:`save_baseline`; :class:`DeepdipError` otherwise."""
    from deepdip.baselines import METHODS, baseline_class

    path = Path(path)
    if not path.is_file():
        raise DeepdipError(f"no such baseline model file: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files") or _META not in archive.files:
                raise ValueError("no metadata")
            meta = json.loads(str(archive[_META][()]))
            arrays = {k: archive[k] for k in archive.files if k != _META}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DeepdipError(f"{path} is not a readable deepdip baseline model file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DeepdipError(f"{path} is not a deepdip baseline model file")
    if meta.get("version") != VERSION:
        raise DeepdipError(f"{path} is a baseline model file of version {meta.get('version')}; "
                           f"this deepdip reads version {VERSION}")
    method = meta.get("method")
    if method not in METHODS:
        raise DeepdipError(f"{path}: unknown baseline method {method!r}")
    try:
        cls = baseline_class(method)
        zgrid = None if meta["zgrid"] is None else ZGrid(**meta["zgrid"])
        params = dict(meta["params"])
        if "augment" in params:   # files written before the option was renamed --augment-store
            params["augment_store"] = params.pop("augment")
        est = cls(zgrid, **params)  # the parameters are checked like any constructor's
        est.zgrid_ = ZGrid(**meta["zgrid_"])
        state = dict(meta["state"])
        for key, value in arrays.items():
            state[key] = value.tobytes() if key in meta["blobs"] else value
        est._set_state(state)
    except DeepdipError as exc:
        raise DeepdipError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DeepdipError(f"{path} is a damaged {method} model file ({type(exc).__name__}: {exc})") from None
    return est


def _versions() -> dict:
    out = {}
    for package in ("deepdip", "numpy", "scikit-learn", "lightgbm", "skops"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out
