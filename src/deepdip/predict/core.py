"""Inference: ensemble PDFs for chunks of a store, streamed into the photo-z catalogue.

``predict_chunk`` is the one core (images in memory -> PDFs); :func:`predict_store` streams a
store through it chunk by chunk with the next chunk read in a background thread, so memory stays
flat in the number of galaxies. A Lightning or Dask adapter calls the same ``predict_chunk`` on
its own partitions (e.g. ``ddf.map_partitions``), so a laptop and a cluster run one code path.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import torch

from deepdip.errors import DeepdipError
from deepdip.estimators import passthrough_columns
from deepdip.train.augment import allowed_symmetries, dihedral
from deepdip.train.modelfile import ModelFile


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
        raise DeepdipError(f"{run} holds no trained model (fold*/member*/model.pt); run `deepdip train` first")
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
    syms = allowed_symmetries(*x_all.shape[-2:]) if tta else (0,)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    nets = [net.to(memory_format=fmt) for net in nets]  # in place for modules; cheap when already so
    out = []
    for start in range(0, len(x_all), batch_size):
        x, e = x_all[start:start + batch_size], e_all[start:start + batch_size]
        acc = None
        for net in nets:
            for k in syms:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    p = net(dihedral(x, k).contiguous(memory_format=fmt), e).float().softmax(dim=1)  # [b, K]
                acc = p if acc is None else acc + p
        out.append(acc / (len(nets) * len(syms)))
    if not out:
        return np.zeros((0, 0), np.float32)
    return torch.cat(out).numpy()


class EnsemblePredictor:
    """A picklable ``images, extra -> PDFs`` function over model files, for any executor.

    Holds only paths; each process loads the models (``weights_only``) on first call, so the
    object can be shipped to Dask workers, e.g. ``ddf.map_partitions`` over a catalogue whose
    partitions carry cutouts, or ``client.map(predictor, chunks)``.
    """

    def __init__(self, model_paths, *, tta: bool = False, batch_size: int = 512, bf16: bool = False):
        self.model_paths = [str(p) for p in model_paths]
        self.tta, self.batch_size, self.bf16 = tta, batch_size, bf16
        self._nets = None

    def __getstate__(self):
        return {**self.__dict__, "_nets": None}

    def __call__(self, images: np.ndarray, extra: np.ndarray) -> np.ndarray:
        if self._nets is None:
            self._nets = [m.net for m in load_members(self.model_paths)]
        return predict_chunk(self._nets, images, extra, tta=self.tta, batch_size=self.batch_size, bf16=self.bf16)


def _read(store, rows):
    return store.images(rows), store.column("ebv", rows)[:, None].astype(np.float32)


def predict_store(run, store, out, rows="test", *, tta: bool = False, chunk_size: int = 2048,
                  batch_size: int = 512, bf16: bool = False, progress: bool = True, threads: int | None = None) -> Path:
    """Predict rows of ``store`` with the models of ``run`` into the photo-z catalogue ``out``.

    ``rows="test"``: each galaxy of fold K is predicted by the fold-K ensemble only (the models
    that never saw it), so with ``--fold all`` every labelled galaxy gets a cross-validated PDF;
    folds with no trained model are skipped. ``rows="all"`` (or an array of row indices): every
    requested galaxy, by all members of all folds, as for new, unlabelled data.
    """
    from tqdm.auto import tqdm

    from deepdip.catalog import CatalogWriter
    from deepdip.store import CutoutStore

    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormal activations are ~100x slower on x86 CPUs
    by_fold = find_model_files(run)
    members = {k: load_members(paths, store) for k, paths in by_fold.items()}
    every = [m for ms in members.values() for m in ms]
    zgrid = every[0].zgrid
    if any(m.zgrid != zgrid for m in every):
        raise DeepdipError(f"models in {run} use different redshift bins")

    folds = store.column("fold")
    if isinstance(rows, str) and rows == "test":
        if -1 in members:
            raise DeepdipError("a single model file has no test fold: use --rows all")
        sel = np.flatnonzero(np.isin(folds, list(members)))
        if not len(sel):
            raise DeepdipError(f"the store has no rows in the trained folds {sorted(members)}")
        per_row_fold = folds[sel].astype(np.int64)
    elif isinstance(rows, str) and rows == "all":
        sel, per_row_fold = np.arange(len(store), dtype=np.int64), None
    elif isinstance(rows, str):
        raise DeepdipError(f"--rows must be test or all, got {rows!r}")
    else:
        sel, per_row_fold = np.asarray(rows, dtype=np.int64), None

    nets_all = [m.net for m in every]
    extra_cols = passthrough_columns(store)
    config = {"run": str(run), "models": [str(m.path) for m in every], "tta": tta,
              "model": every[0].config["net"]["model"], "n_members": len(every)}
    starts = range(0, len(sel), chunk_size)
    with CatalogWriter(out, zgrid, method="cnn", config=config) as writer, \
            concurrent.futures.ThreadPoolExecutor(1) as pool, \
            tqdm(total=len(sel), desc="predict cnn", unit="gal", disable=not progress) as bar:
        # Read chunk i+1 while the network works on chunk i.
        future = pool.submit(_read, store, sel[:chunk_size]) if len(sel) else None
        for start in starts:
            chunk = sel[start:start + chunk_size]
            images, extra = future.result()
            if start + chunk_size < len(sel):
                future = pool.submit(_read, store, sel[start + chunk_size:start + 2 * chunk_size])
            if per_row_fold is None:
                pdf = predict_chunk(nets_all, images, extra, tta=tta, batch_size=batch_size, bf16=bf16)
            else:
                pdf = np.empty((len(chunk), zgrid.nbins), np.float32)
                chunk_folds = per_row_fold[start:start + chunk_size]
                for k in np.unique(chunk_folds):
                    m = chunk_folds == k
                    pdf[m] = predict_chunk([mf.net for mf in members[int(k)]], images[m], extra[m], tta=tta,
                                           batch_size=batch_size, bf16=bf16)
            cat = store.catalog(["id", "z_spec", "fold", *extra_cols], rows=chunk)
            writer.write(cat["id"], pdf, z_spec=cat["z_spec"], fold=cat["fold"],
                         extra={c: cat[c] for c in extra_cols})
            bar.update(len(chunk))
    return Path(out)
