"""Inference: ensemble PDFs for chunks of a store, streamed into the photo-z catalogue.

``predict_chunk`` is the one core (images in memory -> PDFs); :func:`predict_store` streams a
store through it chunk by chunk with the next chunk read in a background thread, so memory stays
flat in the number of galaxies. Each chunk goes through one :class:`RunPredictor` step (read,
ensemble PDFs, catalogue columns); the Dask adapter (:mod:`deepdip.predict.dask_adapter`) runs the
same step on workers, and :class:`EnsemblePredictor` is the bare ``images -> PDFs`` function for
``ddf.map_partitions``, so a laptop and a cluster run one code path.
"""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepdip.atomic import check_output
from deepdip.errors import DeepdipError, check_number
from deepdip.estimators import passthrough_columns
from deepdip.models.dihedral import allowed_symmetries, dihedral
from deepdip.models.modelfile import ModelFile
from deepdip.store.checks import check_rows


def find_model_files(run) -> dict[int, list[Path]]:
    """Model files of a run directory (``fold{K}/member{M}/model.pt``), by fold; or one ``.pt`` file."""
    run = Path(run)
    if run.is_file():
        return {-1: [run]}
    if not run.is_dir():
        raise DeepdipError(f"no such run directory or model file: {run}")
    by_fold: dict[int, list[Path]] = {}
    for path in sorted(run.glob("fold*/member*/model.pt")):
        fold = int(path.parent.parent.name[4:])
        by_fold.setdefault(fold, []).append(path)
    if not by_fold:
        raise DeepdipError(f"{run} holds no trained model (fold*/member*/model.pt); train one first")
    return by_fold


def load_members(paths, store=None) -> list[ModelFile]:
    """Load model files (``weights_only``) and check they agree with each other and with ``store``."""
    members = [ModelFile(p) for p in paths]
    first = members[0]
    for m in members[1:]:
        if m.zgrid != first.zgrid or m.bands != first.bands or m.image_shape != first.image_shape:
            raise DeepdipError(f"{m.path} and {first.path} differ in bands, image size or redshift bins")
    if store is not None:
        for m in members:
            m.check_store(store)
    return members


@torch.no_grad()
def ensemble_outputs(nets, x_all: torch.Tensor, e_all: torch.Tensor, *, tta: bool = False, batch_size: int = 512,
                     bf16: bool = False, channels_last: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Average PDF of ``nets`` (and of the 8 orientations with ``tta``), and the physical parameters.

    The one inference core, on whatever device ``x_all`` and the networks are: :func:`predict_chunk`
    (numpy, CPU), :class:`RunPredictor` and the Lightning path
    (:mod:`deepdip.predict.lightning_adapter`, GPUs) all go through it.

    Returns the PDFs ``[n, K]`` and, when the networks predict physical parameters
    (``PhotozNet.properties``), ``[n, P, 2]``: the mean and standard deviation of the equal-weight
    mixture of the members' (and orientations') Gaussians (mean of the means; variance = mean of
    the variances + variance of the means); else None.
    """
    syms = allowed_symmetries(*x_all.shape[-2:]) if tta else (0,)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    nets = [net.to(memory_format=fmt) for net in nets]  # in place for modules; cheap when already so
    names = [list(getattr(net, "properties", []) or []) for net in nets]
    if any(n != names[0] for n in names):
        raise DeepdipError("the members predict different physical parameters: "
                           + "; ".join(",".join(n) or "none" for n in names))
    with_props = bool(nets and names[0])
    out: list[torch.Tensor] = []
    props_out: list[torch.Tensor] = []
    n_draws = len(nets) * len(syms)
    for start in range(0, len(x_all), batch_size):
        x, e = x_all[start:start + batch_size], e_all[start:start + batch_size]
        acc: torch.Tensor | None = None
        m1 = m2 = None
        for net in nets:
            for k in syms:
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                    xk = dihedral(x, k).contiguous(memory_format=fmt)
                    logits, raw = net.forward_outputs(xk, e) if with_props else (net(xk, e), None)
                p = logits.float().softmax(dim=1)                                       # [b, K]
                if getattr(net, "calibration", None) is not None:                       # PIT maps
                    p = net.calibrate(p, x)
                acc = p if acc is None else acc + p
                if raw is not None:
                    mean, std = net.property_mean_std(raw.float())                      # [b, P]
                    m1 = mean if m1 is None else m1 + mean
                    m2 = (std ** 2 + mean ** 2) if m2 is None else m2 + std ** 2 + mean ** 2
        if acc is None:
            raise DeepdipError("predict_chunk needs at least one network")
        out.append(acc / n_draws)
        if m1 is not None and m2 is not None:
            mean = m1 / n_draws
            props_out.append(torch.stack([mean, (m2 / n_draws - mean ** 2).clamp_min(0).sqrt()], dim=-1))
    if not out:
        empty = torch.zeros((0, 0), dtype=torch.float32, device=x_all.device)
        return empty, (torch.zeros((0, len(names[0]), 2), device=x_all.device) if with_props else None)
    return torch.cat(out), (torch.cat(props_out) if with_props else None)


def ensemble_pdf(nets, x_all: torch.Tensor, e_all: torch.Tensor, **kw) -> torch.Tensor:
    """The PDFs of :func:`ensemble_outputs` alone."""
    return ensemble_outputs(nets, x_all, e_all, **kw)[0]


def fold_outputs(nets_by_fold: dict, x: torch.Tensor, e: torch.Tensor, folds: torch.Tensor | None, **kw
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PDFs (and physical parameters) of one chunk: each row by its own fold's ensemble
    (``folds``), or by every member (None); see :func:`ensemble_outputs`."""
    if folds is None:
        return ensemble_outputs([n for ns in nets_by_fold.values() for n in ns], x, e, **kw)
    pdf = props = None
    for k in torch.unique(folds).tolist():
        m = folds == k
        p, q = ensemble_outputs(nets_by_fold[int(k)], x[m], e[m], **kw)
        if pdf is None:
            pdf = torch.empty((len(folds), p.shape[1]), dtype=torch.float32, device=x.device)
            if q is not None:
                props = torch.empty((len(folds), *q.shape[1:]), dtype=torch.float32, device=x.device)
        pdf[m] = p
        if props is not None and q is not None:
            props[m] = q
    if pdf is None:
        return torch.zeros((0, 0), dtype=torch.float32, device=x.device), None
    return pdf, props


def fold_pdf(nets_by_fold: dict, x: torch.Tensor, e: torch.Tensor, folds: torch.Tensor | None, **kw) -> torch.Tensor:
    """PDFs of one chunk: each row by its own fold's ensemble (``folds``), or by every member (None)."""
    return fold_outputs(nets_by_fold, x, e, folds, **kw)[0]


def predict_chunk(nets, images: np.ndarray, extra: np.ndarray, *, tta: bool = False, batch_size: int = 512,
                  bf16: bool = False, channels_last: bool = True) -> np.ndarray:
    """Average PDF of ``nets`` (and of the 8 orientations with ``tta``) for one chunk.

    Parameters
    ----------
    nets : list of torch.nn.Module
        Networks mapping raw fluxes ``[n, B, H, W]`` and extras ``[n, E]`` to logits ``[n, K]``
        (``ModelFile.net``), in eval mode.
    images : float32 ``[n, B, H, W]`` raw fluxes, in the store's band order and flux unit.
    extra : float32 ``[n, E]`` (E(B-V)).
    channels_last : bool
        Run the convolutions in NHWC layout (faster with oneDNN; results equal to rounding).

    Returns
    -------
    float32 ``[n, K]`` PDFs over the redshift bins, each row summing to 1.
    """
    x_all = torch.as_tensor(np.ascontiguousarray(images, dtype=np.float32))
    e_all = torch.as_tensor(np.ascontiguousarray(extra, dtype=np.float32))
    return ensemble_pdf(nets, x_all, e_all, tta=tta, batch_size=batch_size, bf16=bf16,
                        channels_last=channels_last).numpy()


class EnsemblePredictor:
    """A picklable ``images, extra -> PDFs`` function over model files, for any executor.

    Holds only paths; each process loads the models (``weights_only``) on first call, so the
    object can be shipped to Dask workers, e.g. ``ddf.map_partitions`` over a catalogue whose
    partitions carry cutouts, or ``client.map(predictor, chunks)``.
    """

    def __init__(self, model_paths, *, tta: bool = False, batch_size: int = 512, bf16: bool = False):
        self.model_paths = [str(p) for p in model_paths]
        self.tta, self.batch_size, self.bf16 = tta, batch_size, bf16
        self._nets: list[torch.nn.Module] | None = None

    def __getstate__(self):
        return {**self.__dict__, "_nets": None}

    def __call__(self, images: np.ndarray, extra: np.ndarray) -> np.ndarray:
        if self._nets is None:
            self._nets = [m.net for m in load_members(self.model_paths)]
        return predict_chunk(self._nets, images, extra, tta=self.tta, batch_size=self.batch_size, bf16=self.bf16)


BANDS_USED = "bands_used"


def bands_used(mask: np.ndarray, bands) -> np.ndarray:
    """Strings [n] naming the bands of each row of ``mask`` [n, B] in the store's order ("griz")."""
    names = np.array(list(bands))
    return np.array(["".join(names[m]) for m in np.asarray(mask, dtype=bool)])


def _read(store, rows):
    return store.images(rows), store.column("ebv", rows)[:, None].astype(np.float32)


class RunPredictor:
    """The models of a run as a picklable ``(store, rows) -> catalogue chunk`` function.

    The one per-chunk step of :func:`predict_store` and of its Dask adapter
    (:func:`deepdip.predict.dask_adapter.predict_store_dask`): read the rows' cutouts, average the
    PDFs of the right models (each row's own fold with ``folds``, else every member), and gather
    the columns copied into the catalogue. The result is the keyword arguments of
    :meth:`deepdip.catalog.CatalogWriter.write`, which normalises the PDFs and computes the point
    estimates. Holds only model paths; each process loads the networks on first use.

    Parameters
    ----------
    by_fold : dict of int to list of path
        Model files by fold (:func:`find_model_files`).
    columns : list of str
        Store columns passed through to the catalogue (:func:`deepdip.estimators.passthrough_columns`).
    """

    def __init__(self, by_fold, *, columns=(), tta: bool = False, batch_size: int = 512, bf16: bool = False):
        self.by_fold = {int(k): [str(Path(p).absolute()) for p in paths] for k, paths in by_fold.items()}
        self.columns = list(columns)
        self.tta, self.batch_size, self.bf16 = tta, batch_size, bf16
        self._nets: dict[int, list[torch.nn.Module]] | None = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {**self.__dict__, "_nets": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def nets(self) -> dict[int, list[torch.nn.Module]]:
        """The networks by fold, loaded (``weights_only``) on first use in this process."""
        with self._lock:
            if self._nets is None:
                self._nets = {k: [m.net for m in load_members(paths)] for k, paths in self.by_fold.items()}
            return self._nets

    def outputs(self, images: np.ndarray, extra: np.ndarray, folds: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """PDFs of one chunk (by each row's fold ensemble with ``folds``, else by all members) and
        the physical parameters ``[n, P, 2]`` (mean, std) when the models predict them."""
        kw: dict[str, Any] = {"tta": self.tta, "batch_size": self.batch_size, "bf16": self.bf16}
        x = torch.as_tensor(np.ascontiguousarray(images, dtype=np.float32))
        e = torch.as_tensor(np.ascontiguousarray(extra, dtype=np.float32))
        pdf, props = fold_outputs(self.nets(), x, e, None if folds is None else torch.as_tensor(folds), **kw)
        return pdf.numpy(), None if props is None else props.numpy()

    def pdf(self, images: np.ndarray, extra: np.ndarray, folds: np.ndarray | None = None) -> np.ndarray:
        """PDFs of one chunk: by each row's fold ensemble (``folds``) or by all members (None)."""
        return self.outputs(images, extra, folds)[0]

    @property
    def properties(self) -> list[str]:
        """The physical parameters the models predict (``deepdip.properties``), [] if none."""
        first = next(iter(self.nets().values()))[0]
        return list(getattr(first, "properties", []) or [])

    def catalog_columns(self, store, rows: np.ndarray, pdf: np.ndarray, props: np.ndarray | None = None) -> dict:
        """``CatalogWriter.write`` keyword arguments for ``rows`` of ``store``, given their PDFs
        (and physical parameters ``[n, P, 2]``, written as ``<name>_mean`` / ``<name>_std``)."""
        cat = store.catalog(["id", "z_spec", "fold", *self.columns], rows=rows)
        extra = {c: cat[c] for c in self.columns}
        if store.has_band_mask:  # which bands each prediction used, e.g. "griz"
            extra[BANDS_USED] = bands_used(store.band_mask(rows), store.bands)
        if props is not None:
            from deepdip.properties import catalog_columns

            for j, name in enumerate(self.properties):
                mean_col, std_col = catalog_columns([name])
                extra[mean_col] = props[:, j, 0].astype(np.float32)
                extra[std_col] = props[:, j, 1].astype(np.float32)
        return {"ids": cat["id"], "pdf": pdf, "z_spec": cat["z_spec"], "fold": cat["fold"], "extra": extra}

    def catalog_chunk(self, store, rows: np.ndarray, folds: np.ndarray | None = None, data=None) -> dict:
        """Read ``rows`` of ``store`` (unless ``data`` holds them already), predict, and gather the columns."""
        images, extra = _read(store, rows) if data is None else data
        return self.catalog_columns(store, rows, *self.outputs(images, extra, folds))


def resolve_precision(precision: str, net, store, rows: np.ndarray, batch_size: int) -> tuple[bool, dict | None]:
    """Whether to run in bf16 for ``precision`` (``32-true``, ``bf16-mixed`` or ``auto``: a timing
    probe of ``net`` on a batch of the rows to predict, :func:`deepdip.hardware.choose_precision`)."""
    from deepdip.hardware import BF16, FP32, check_precision, choose_precision

    check_precision(precision)
    if precision != "auto":
        return precision == BF16, None
    sample = np.sort(rows[:batch_size])
    images, extra = _read(store, sample)
    torch.set_flush_denormal(True)
    chosen, probe = choose_precision(net, torch.as_tensor(images), torch.as_tensor(extra), train=False)
    return chosen != FP32, probe


def plan_prediction(run, store, rows="test", *, tta: bool = False, batch_size: int = 512,
                    precision: str = "auto"):
    """Check a run against a store and choose the rows: the set-up shared by every executor.

    Returns
    -------
    predictor : RunPredictor
        With the networks already loaded in this process.
    sel : int64 array
        Store rows to predict, in catalogue order.
    row_folds : int64 array or None
        Fold of each row of ``sel`` (whose ensemble predicts it), or None for all members.
    zgrid : ZGrid
    config : dict
        Recorded in the catalogue metadata.
    """
    check_number("--batch-size", batch_size, minimum=1, integer=True, allow_none=False)
    by_fold = find_model_files(run)
    members = {k: load_members(paths, store) for k, paths in by_fold.items()}
    every = [m for ms in members.values() for m in ms]
    if not all(m.config["net"].get("band_mask") for m in every):
        store.warn_if_bands_missing("a CNN trained without band dropout (deepdip train --band-dropout)")
    zgrid = every[0].zgrid
    if any(m.zgrid != zgrid for m in every):
        raise DeepdipError(f"models in {run} use different redshift bins")

    if isinstance(rows, str) and rows == "test":
        if -1 in members:
            raise DeepdipError("a single model file has no test fold: use --rows all")
        folds = store.column("fold")
        sel = np.flatnonzero(np.isin(folds, list(members)))
        if not len(sel):
            raise DeepdipError(f"the store has no rows in the trained folds {sorted(members)}")
        row_folds = folds[sel].astype(np.int64)
    elif isinstance(rows, str) and rows == "all":
        sel, row_folds = np.arange(len(store), dtype=np.int64), None
    elif isinstance(rows, str):
        raise DeepdipError(f"--rows must be test or all, got {rows!r}")
    else:
        sel, row_folds = np.asarray(rows, dtype=np.int64), None

    # Refuse NaN/inf pixels, NaN or negative E(B-V) and folds out of range in the rows to predict,
    # before any prediction: the network would otherwise turn them into confident nonsense.
    check_rows(store, sel, what="the rows to predict")
    bf16, probe = resolve_precision(precision, every[0].net, store, sel, batch_size)
    predictor = RunPredictor(by_fold, columns=passthrough_columns(store), tta=tta, batch_size=batch_size, bf16=bf16)
    predictor._nets = {k: [m.net for m in ms] for k, ms in members.items()}
    config = {"run": str(run), "models": [str(m.path) for m in every], "tta": tta,
              "model": every[0].config["net"]["model"], "n_members": len(every),
              "precision": "bf16-mixed" if bf16 else "32-true"}
    if probe is not None:
        config["precision_probe"] = probe
    return predictor, sel, row_folds, zgrid, config


def predict_store(run, store, out, rows="test", *, tta: bool = False, chunk_size: int = 2048,
                  batch_size: int = 512, precision: str = "auto", progress: bool = True, threads: int | None = None,
                  overwrite: bool = False) -> Path:
    """Predict rows of ``store`` with the models of ``run`` into the photo-z catalogue ``out``.

    ``out`` must not be a directory, the store or inside the run; an existing file there is
    replaced only with ``overwrite=True``.

    ``rows="test"``: each galaxy of fold K is predicted by the fold-K ensemble only (the models
    that never saw it), so with ``--fold all`` every labelled galaxy gets a cross-validated PDF;
    folds with no trained model are skipped. ``rows="all"`` (or an array of row indices): every
    requested galaxy, by all members of all folds, as for new, unlabelled data.
    :func:`deepdip.predict.dask_adapter.predict_store_dask` writes the same catalogue on a Dask cluster.
    """
    from tqdm.auto import tqdm

    from deepdip.catalog import CatalogWriter
    from deepdip.store import CutoutStore

    check_number("--chunk-size", chunk_size, minimum=1, integer=True, allow_none=False)
    check_number("--batch-size", batch_size, minimum=1, integer=True, allow_none=False)
    check_number("--threads", threads, minimum=1, integer=True)
    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    inputs = (store.path, run)
    check_output(out, inputs=inputs, overwrite=overwrite)
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormal activations are ~100x slower on x86 CPUs
    predictor, sel, row_folds, zgrid, config = plan_prediction(run, store, rows, tta=tta, batch_size=batch_size,
                                                               precision=precision)
    with CatalogWriter(out, zgrid, method="cnn", config=config, overwrite=overwrite, inputs=inputs) as writer, \
            concurrent.futures.ThreadPoolExecutor(1) as pool, \
            tqdm(total=len(sel), desc="predict cnn", unit="gal", disable=not progress) as bar:
        # Read chunk i+1 while the network works on chunk i.
        future = pool.submit(_read, store, sel[:chunk_size]) if len(sel) else None
        for start in range(0, len(sel), chunk_size):
            chunk = sel[start:start + chunk_size]
            assert future is not None  # submitted before the loop or by the previous step
            data = future.result()
            if start + chunk_size < len(sel):
                future = pool.submit(_read, store, sel[start + chunk_size:start + 2 * chunk_size])
            folds = None if row_folds is None else row_folds[start:start + chunk_size]
            writer.write(**predictor.catalog_chunk(store, chunk, folds, data=data))
            bar.update(len(chunk))
    return Path(out)
