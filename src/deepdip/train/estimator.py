"""The CNN behind the common :class:`~deepdip.estimators.PhotozEstimator` interface.

``fit`` trains (or resumes) an ensemble on one fold into a run directory; ``predict_pdf`` averages
the members' PDFs; ``predict_catalog`` (inherited) streams rows into the photo-z catalogue.
It lives in ``train`` because ``fit`` trains; it predicts through :mod:`deepdip.predict`, which
never imports ``train`` (dependencies point one way: train -> predict -> models).

Its saved form is a run directory: :meth:`CNNEstimator.save` copies the fitted fold's model files
(``fold{K}/member{M}/model.pt``, loaded ``weights_only``) and ``estimator.json`` (the parameters)
into a new folder, which :meth:`CNNEstimator.load` and ``deepdip predict`` both read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.estimators import PhotozEstimator

ESTIMATOR_FILE = "estimator.json"


class CNNEstimator(PhotozEstimator):
    """CNN photo-z estimator.

    Parameters
    ----------
    model : str
        ``compact`` (fast on CPUs) or ``pasquet19``.
    ensemble : int
        Members trained with different seeds; their PDFs are averaged.
    epochs : int, optional
        Maximum epochs per member (model default when None).
    max_minutes : float, optional
        Wall-clock budget for the whole ``fit`` (all members); the LR schedule is planned to fit it.
    out : path
        Run directory (model files, checkpoints, logs); refitting with the same settings resumes.
    seed : int
        The one seed everything derives from.
    tta : bool
        Average the PDFs over the 8 orientations at prediction.
    train_kwargs : dict, optional
        More keywords for :func:`deepdip.train.run.train` (``batch_size``, ``lr``, ``precision``...).

    Examples
    --------
    >>> est = CNNEstimator(model="compact", max_minutes=8, out="demo/cnn", seed=1).fit(store, 0)
    >>> est.predict_catalog(store, store.split_rows("test", fold=0), "demo/cnn.parquet")
    """

    name = "cnn"

    def __init__(self, model: str = "compact", ensemble: int = 1, epochs: int | None = None,
                 max_minutes: float | None = None, out="runs/cnn", seed: int = 0, tta: bool = False,
                 progress: bool = True, train_kwargs: dict | None = None):
        self.model = model
        self.ensemble = ensemble
        self.epochs = epochs
        self.max_minutes = max_minutes
        self.out = out
        self.seed = seed
        self.tta = tta
        self.progress = progress
        self.train_kwargs = train_kwargs

    def fit(self, store, fold: int) -> CNNEstimator:
        from deepdip.train import train

        run = train(store, fold=int(fold), model=self.model, ensemble=self.ensemble, epochs=self.epochs,
                    max_minutes=self.max_minutes, out=self.out, seed=self.seed, progress=self.progress,
                    **(self.train_kwargs or {}))
        return self._load(run, int(fold), store)

    @classmethod
    def from_run(cls, run, fold: int, store=None, tta: bool = False) -> CNNEstimator:
        """An estimator over the already trained members of ``fold`` in ``run``."""
        return cls(out=run, tta=tta)._load(Path(run), int(fold), store)

    def _load(self, run: Path, fold: int, store) -> CNNEstimator:
        from deepdip.predict.core import find_model_files, load_members

        paths = find_model_files(run).get(fold)
        if not paths:
            raise DeepdipError(f"{run} has no trained model for fold {fold}")
        self.members_ = load_members(paths, store)
        self.zgrid_ = self.members_[0].zgrid
        self.fold_ = fold
        self.model_files_ = [str(p) for p in paths]
        return self

    @property
    def zgrid(self):
        """The redshift grid of the fitted members' PDFs (``zgrid_``)."""
        return self.zgrid_

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Copy the fitted fold's model files and the parameters into the new run directory ``path``.

        ``path`` must not exist (a directory is never replaced; ``overwrite`` is accepted for the
        common interface and changes nothing).
        """
        from deepdip.atomic import atomic_path

        if not hasattr(self, "members_"):
            raise DeepdipError("the cnn estimator must be fitted before it is saved")
        path = Path(path)
        if path.exists():
            raise DeepdipError(f"{path} exists; a CNN is saved into a new run directory")
        params = {k: v for k, v in self.get_params().items() if k != "out"}
        with atomic_path(path, overwrite=False) as tmp:
            for member, src in enumerate(self.model_files_):
                dest = tmp / f"fold{self.fold_}" / f"member{member}" / "model.pt"
                dest.parent.mkdir(parents=True)
                shutil.copyfile(src, dest)
            (tmp / ESTIMATOR_FILE).write_text(json.dumps({"fold": self.fold_, "params": params}, indent=2,
                                                         default=str))
        return path

    @classmethod
    def load(cls, path, fold: int | None = None, store=None) -> CNNEstimator:
        """The estimator saved at ``path`` by :meth:`save` (or any run directory, given ``fold``)."""
        path = Path(path)
        meta_file = path / ESTIMATOR_FILE
        meta = {}
        if meta_file.is_file():
            try:
                meta = json.loads(meta_file.read_text())
                params = dict(meta["params"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DeepdipError(f"{meta_file} is not a readable estimator file ({exc})") from None
        else:
            params = {}
        fold = meta.get("fold") if fold is None else fold
        if fold is None:
            raise DeepdipError(f"{path} does not say which fold to load; give fold=")
        try:
            est = cls(**{**params, "out": path})
        except TypeError as exc:
            raise DeepdipError(f"{meta_file}: {exc}") from None
        return est._load(path, int(fold), store)

    def predict_pdf(self, store, rows) -> np.ndarray:
        """PDFs ``[len(rows), nbins]`` averaged over the ensemble (and orientations with ``tta``)."""
        from deepdip.predict.core import predict_chunk

        if not hasattr(self, "members_"):
            raise DeepdipError("the cnn estimator must be fitted (or loaded) before it predicts")

        for m in self.members_:
            m.check_store(store)
        rows = np.asarray(rows, dtype=np.int64)
        images = store.images(rows)
        extra = store.column("ebv", rows)[:, None].astype(np.float32)
        return predict_chunk([m.net for m in self.members_], images, extra, tta=self.tta)

    def config(self) -> dict:
        return {"estimator": "CNNEstimator", "model": self.model, "ensemble": self.ensemble,
                "epochs": self.epochs, "max_minutes": self.max_minutes, "seed": self.seed, "tta": self.tta,
                "run": str(self.out), "fold": getattr(self, "fold_", None)}
