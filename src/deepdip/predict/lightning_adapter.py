"""CNN inference under Lightning's predict loop: GPUs, several processes, several nodes.

``deepdip predict RUN STORE --out CAT --accelerator gpu --devices 4`` writes exactly the catalogue
of the in-process :func:`deepdip.predict.predict_store` (same rows in the same order, same columns
and metadata; PDFs equal to float rounding, which differs between a GPU and a CPU). It shares
everything else with it: :func:`~deepdip.predict.core.plan_prediction` checks the run against the
store and chooses the rows, each chunk of rows is one predict batch whose PDFs come from the same
core (:func:`~deepdip.predict.core.fold_outputs`, each row by its own fold's ensemble), and
:meth:`~deepdip.predict.core.RunPredictor.catalog_columns` gathers the catalogue columns.

Chunk i goes to process ``i % world_size``; each process saves its chunks' PDFs (``.npy``) in a
temporary folder beside ``--out`` (on a file system every process can read: a multi-node run needs
a shared one), and once all are done rank 0 writes the catalogue from them in row order and
removes the folder. Lightning is imported only here, so the in-process path never loads it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from deepdip._lightning import quiet_lightning
from deepdip.atomic import check_output
from deepdip.predict.core import _read, fold_outputs, plan_prediction

TEMP_PREFIX = ".deepdip-predict-"


class _Chunks(torch.utils.data.Dataset):
    """This process's chunks of the rows to predict: ``{"chunk", "images", "extra", "folds"}``."""

    def __init__(self, store, sel: np.ndarray, row_folds, chunk_size: int, rank: int, world: int):
        self.store, self.sel, self.row_folds, self.chunk_size = store, sel, row_folds, chunk_size
        n_chunks = -(-len(sel) // chunk_size)
        self.chunks = list(range(rank, n_chunks, world))

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, j: int) -> dict:
        i = self.chunks[j]
        part = slice(i * self.chunk_size, (i + 1) * self.chunk_size)
        images, extra = _read(self.store, self.sel[part])
        folds = np.full(len(images), -1) if self.row_folds is None else self.row_folds[part]
        return {"chunk": i, "images": torch.from_numpy(images), "extra": torch.from_numpy(extra),
                "folds": torch.from_numpy(np.asarray(folds, dtype=np.int64))}


class EnsemblePredictModule(L.LightningModule):
    """The run's networks as one LightningModule whose ``predict_step`` is the shared per-chunk core."""

    def __init__(self, predictor, store, sel, row_folds, zgrid, config: dict, out: Path, *, chunk_size: int,
                 num_workers: int, overwrite: bool):
        super().__init__()
        self.predictor, self.store, self.sel, self.row_folds = predictor, store, sel, row_folds
        self.zgrid, self.config, self.out, self.overwrite = zgrid, config, Path(out), overwrite
        self.chunk_size, self.num_workers = chunk_size, num_workers
        # Registered, so Lightning moves every network to the process's device.
        self.nets = nn.ModuleDict({str(k): nn.ModuleList(ns) for k, ns in predictor.nets().items()})
        self.parts: Path | None = None

    def predict_dataloader(self):
        data = _Chunks(self.store, self.sel, self.row_folds, self.chunk_size, self.global_rank,
                       self.trainer.world_size)
        return torch.utils.data.DataLoader(data, batch_size=None, num_workers=self.num_workers,
                                           persistent_workers=False)

    def on_predict_start(self):
        folder = None
        if self.trainer.is_global_zero:
            folder = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.out.absolute().parent)
        self.parts = Path(self.trainer.strategy.broadcast(folder, src=0))

    def predict_step(self, batch, batch_idx):
        folds = None if self.row_folds is None else batch["folds"]
        nets = {int(k): list(ns) for k, ns in self.nets.items()}
        pdf, props = fold_outputs(nets, batch["images"], batch["extra"], folds, tta=self.predictor.tta,
                                  batch_size=self.predictor.batch_size, bf16=False)  # autocast: the Trainer's
        assert self.parts is not None
        for name, values in (("chunk", pdf), ("props", props)):
            if values is None:
                continue
            final = self.parts / f"{name}{int(batch['chunk']):08d}.npy"
            tmp = final.with_suffix(f".{self.global_rank}.tmp.npy")
            np.save(tmp, values.float().cpu().numpy())
            tmp.replace(final)
        return None

    def on_predict_end(self):
        self.trainer.strategy.barrier()   # every process has saved its chunks
        if self.trainer.is_global_zero:
            try:
                self._write_catalog()
            finally:
                assert self.parts is not None
                shutil.rmtree(self.parts, ignore_errors=True)
        self.trainer.strategy.barrier()

    def _write_catalog(self) -> None:
        from deepdip.catalog import CatalogWriter

        assert self.parts is not None
        inputs = (self.store.path, self.config["run"])
        with CatalogWriter(self.out, self.zgrid, method="cnn", config=self.config, overwrite=self.overwrite,
                           inputs=inputs) as writer:
            for i, start in enumerate(range(0, len(self.sel), self.chunk_size)):
                rows = self.sel[start:start + self.chunk_size]
                pdf = np.load(self.parts / f"chunk{i:08d}.npy")
                props_path = self.parts / f"props{i:08d}.npy"
                props = np.load(props_path) if props_path.exists() else None
                writer.write(**self.predictor.catalog_columns(self.store, rows, pdf, props))


def predict_store_lightning(run, store, out, rows="test", *, accelerator="auto", devices="auto", num_nodes: int = 1,
                            strategy="auto", tta: bool = False, chunk_size: int = 2048, batch_size: int = 512,
                            precision: str = "auto", num_workers: int = 1, threads: int | None = None,
                            progress: bool = True, overwrite: bool = False) -> Path:
    """:func:`deepdip.predict.predict_store` under Lightning (``accelerator``/``devices``/``strategy``).

    ``precision``: ``32-true``, ``bf16-mixed`` (the Trainer's autocast on the process's device) or
    ``auto`` (bf16 on GPUs that support it, fp32 on CPUs: the processes cannot share a timing probe).
    ``threads``: torch CPU threads per process (default: torch's, i.e. every core in each process).
    """
    from deepdip.store import CutoutStore

    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    check_output(out, inputs=(store.path, run), overwrite=overwrite)
    quiet_lightning()
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)   # denormal activations are ~100x slower on x86 CPUs
    why = None
    if precision == "auto":
        # Every process must run the same precision, and they cannot agree on a timing probe
        # before Lightning starts them: bf16 on GPUs that have it, fp32 on CPUs.
        cuda = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        precision = "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"
        why = {"reason": "auto under Lightning: bf16 on a GPU that has it, else fp32 (untimed: every process "
                         "must choose the same)", "chosen": precision}
    predictor, sel, row_folds, zgrid, config = plan_prediction(run, store, rows, tta=tta, batch_size=batch_size,
                                                               precision=precision)
    if why is not None:
        config["precision_probe"] = why
    module = EnsemblePredictModule(predictor, store, sel, row_folds, zgrid, config, Path(out), chunk_size=chunk_size,
                                   num_workers=num_workers, overwrite=overwrite)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                        precision=config["precision"], logger=False, enable_checkpointing=False,
                        enable_progress_bar=progress, enable_model_summary=False, use_distributed_sampler=False)
    trainer.predict(module, return_predictions=False)
    return Path(out)
