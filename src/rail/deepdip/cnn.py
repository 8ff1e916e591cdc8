"""RAIL Informer/Estimator stages for deepdip's CNN on pixels.

- :class:`DeepdipCNNInformer` trains the CNN on a cutout store with :func:`deepdip.train.train`
  (Lightning: checkpoints, resume, early stopping, DDP), into a deepdip run directory; its RAIL
  model output is a JSON manifest naming that directory (:class:`~rail.deepdip.handles.DeepdipRunHandle`).
- :class:`DeepdipCNNEstimator` reads the cutout store through :class:`~rail.deepdip.handles.CutoutStoreHandle`
  chunk by chunk (``chunk_size`` rows per ``_process_chunk``, never the whole store), averages the
  PDFs of the run's networks (:class:`deepdip.predict.RunPredictor`, the per-chunk core of
  ``deepdip predict``) and writes a ``qp.hist`` ensemble on the model's redshift bins with ancil
  ``id``, ``zmode``, ``zmean``, ``zmedian``, ``zstd``, ``zlo68``, ``zhi68``, ``z_spec``.

The model input of the estimator may be the manifest, a run directory or one ``model.pt``.
``rows="all"`` predicts every row with every member (new data); ``rows="test"`` predicts each
row with the ensemble of its own fold, the cross-validated PDFs of ``deepdip predict --rows test``
(the run needs a model for every fold the store holds: ``fold="all"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ceci.config import StageParameter as Param
from rail.core.data import ModelHandle
from rail.core.stage import RailStage
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from deepdip.errors import DeepdipError, DeepdipValueError
from rail.deepdip.handles import (
    CNNModel,
    CutoutStoreHandle,
    DeepdipRunHandle,
    as_store,
    iter_store_chunks,
    read_run,
    store_handle,
)


class DeepdipCNNInformer(CatInformer):
    """Train deepdip's CNN (cutouts + E(B-V) -> binned PDF) on the training folds of a cutout store."""

    name = "DeepdipCNNInformer"
    config_options = RailStage.config_options.copy()
    config_options.update(
        model_name=Param(str, "compact", required=False, msg="registered network: compact or pasquet19"),
        fold=Param(str, "0", required=False,
                   msg="test fold K (train on fold != K), a comma list or 'all' (one ensemble per fold)"),
        ensemble=Param(int, 1, required=False, msg="members per fold, PDFs averaged"),
        epochs=Param(int, None, required=False, msg="maximum epochs per member [the model's default]"),
        max_minutes=Param(float, None, required=False, msg="wall-clock budget for the whole training"),
        seed=Param(int, 0, required=False, msg="the one seed every random choice derives from"),
        run_dir=Param(str, "", required=False,
                      msg="the deepdip run directory to train into (resumed when rerun with the same settings); "
                          "default: beside the model output, '<model file stem>_run'"),
        train_config=Param(dict, {}, required=False,
                           msg="any other deepdip.train.TrainConfig keyword (lr, batch_size, model_kwargs, "
                               "accelerator, devices...), see `deepdip train --help`"),
    )
    inputs = [("input", CutoutStoreHandle)]
    outputs = [("model", DeepdipRunHandle)]

    def inform(self, training_data, **kwargs):
        """Train on ``training_data``: a cutout store, its path (file or folder of shards) or a handle."""
        return super().inform(store_handle(training_data), **kwargs)

    def _run_dir(self) -> Path:
        if self.config.run_dir:
            return Path(self.config.run_dir)
        if self.config.output_mode == "return":
            raise DeepdipValueError("with output_mode='return' give run_dir: the networks need a directory")
        model = Path(self.get_output(self.get_aliased_tag("model"), final_name=True))
        return model.with_name(model.stem + "_run")

    def run(self) -> None:
        from deepdip.train import train

        store = as_store(self.get_handle("input"))
        settings = dict(self.config.train_config or {})
        overlap = sorted(set(settings) & {"model", "fold", "ensemble", "epochs", "max_minutes", "seed", "out"})
        if overlap:
            raise DeepdipValueError(f"train_config repeats the stage option(s) {', '.join(overlap)}; set them directly "
                                    "(model is 'model_name', out is 'run_dir')")
        settings.update(model=self.config.model_name, fold=self.config.fold, ensemble=self.config.ensemble,
                        epochs=self.config.epochs, max_minutes=self.config.max_minutes, seed=self.config.seed)
        run = train(store, out=self._run_dir(), **settings)
        self.model = CNNModel(run)
        self.add_data("model", self.model)


class DeepdipCNNEstimator(CatEstimator):
    """Predict redshift PDFs of a cutout store with a trained deepdip CNN, chunk by chunk."""

    name = "DeepdipCNNEstimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update(
        chunk_size=Param(int, 2048, required=False,
                         msg="galaxies per chunk (a 64x64x5 float32 cutout is 82 kB: 2048 of them ~170 MB)"),
        rows=Param(str, "all", required=False,
                   msg="'all': every row by every member; 'test': each row by its own fold's ensemble "
                       "(cross-validated PDFs of a run trained with fold='all')"),
        tta=Param(bool, False, required=False, msg="average the PDFs of the 8 rotations/flips of each cutout"),
        batch_size=Param(int, 512, required=False, msg="galaxies per forward pass"),
        threads=Param(int, None, required=False, msg="torch threads [torch's default]"),
    )
    inputs = [("model", DeepdipRunHandle), ("input", CutoutStoreHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self._predictor: Any = None  # deepdip.predict.RunPredictor, set by _initialize_run
        self._zgrid: Any = None

    def estimate(self, input_data, **kwargs):
        """PDFs of every row of ``input_data``: a cutout store, its path (file or folder of shards) or a handle."""
        return super().estimate(store_handle(input_data), **kwargs)

    def open_model(self, **kwargs: Any):
        """The model: a :class:`CNNModel`, its handle, a run manifest, a run directory or a ``model.pt``."""
        model = kwargs.get("model")
        if isinstance(model, (str, Path)) and str(model) not in ("", "None", "none") and Path(model).is_dir():
            # RAIL's open_model reads files only; a run directory is read here
            self.model = read_run(model)
            self.config["model"] = str(model)
            return self.model
        if isinstance(model, CNNModel):
            self.model = model
            return model
        if isinstance(model, ModelHandle) and not isinstance(model, DeepdipRunHandle) and model.has_data:
            model = model.data
            self.model = model if isinstance(model, CNNModel) else read_run(model)
            return self.model
        return super().open_model(**kwargs)

    def input_iterator(self, tag: str, **kwargs: Any):
        if tag != "input":
            return super().input_iterator(tag, **kwargs)
        # A store is never read whole: chunk it whether it came as a path or as a CutoutStore.
        store = as_store(self.get_handle(tag, allow_missing=True))
        self._input_length = len(store)
        return iter_store_chunks(store, chunk_size=kwargs.get("chunk_size", self.config.chunk_size),
                                 rank=self.rank, parallel_size=self.size)

    def _initialize_run(self) -> None:
        super()._initialize_run()
        import torch

        from deepdip.predict import RunPredictor, load_members

        if self.model is None:
            raise DeepdipError("DeepdipCNNEstimator needs a model (a run directory, model.pt or run manifest)")
        if self.config.rows not in ("all", "test"):
            raise DeepdipValueError(f"rows must be 'all' or 'test', got {self.config.rows!r}")
        store = as_store(self.get_handle("input", allow_missing=True))
        by_fold = self.model.model_files()
        members = {k: load_members(paths, store) for k, paths in by_fold.items()}  # checks bands, stamp, unit
        zgrids = {m.zgrid for ms in members.values() for m in ms}
        if len(zgrids) != 1:
            raise DeepdipError(f"the models of {self.model.path} use different redshift bins")
        if self.config.rows == "test":
            missing = sorted(set(np.unique(store.column("fold")).tolist()) - set(members))
            if -1 in members or missing:
                raise DeepdipError(f"rows='test' needs a model for every fold of the store; {self.model.path} has "
                                   f"none for fold(s) {missing or 'any (one model file)'}: train with fold='all' or "
                                   "use rows='all'")
        if self.config.threads:
            torch.set_num_threads(int(self.config.threads))
        torch.set_flush_denormal(True)
        predictor = RunPredictor(by_fold, tta=self.config.tta, batch_size=self.config.batch_size)
        predictor._nets = {k: [m.net for m in ms] for k, ms in members.items()}  # loaded once, above
        self._predictor, self._zgrid = predictor, next(iter(zgrids))

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        from deepdip.catalog import qp_ensemble
        from deepdip.store.checks import check_rows

        assert self._predictor is not None and self._zgrid is not None  # set by _initialize_run
        store = as_store(self.get_handle("input", allow_missing=True))
        check_rows(store, data["rows"], pixels=False, what=f"rows {start}-{end}")
        bad = ~np.isfinite(data["images"]).reshape(len(data["rows"]), -1).all(axis=1)
        if bad.any():
            raise DeepdipError(f"{int(bad.sum())} cutout(s) of rows {start}-{end} hold NaN or inf pixels "
                               f"(ids {data['id'][bad][:5].tolist()}); run `deepdip validate`")
        folds = data["fold"].astype(np.int64) if self.config.rows == "test" else None
        pdf = self._predictor.pdf(data["images"], data["ebv"][:, None].astype(np.float32), folds)
        ensemble = qp_ensemble(pdf, self._zgrid, data["id"], z_spec=data["z_spec"])
        self._do_chunk_output(ensemble, start, end, first, data=data)
