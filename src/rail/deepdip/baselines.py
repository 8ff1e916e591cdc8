"""RAIL Informer/Estimator stages for deepdip's catalogue baselines: kNN, random forest, boosted trees, BPZ.

Each pair wraps the array face of a deepdip baseline (:meth:`fit_photometry`,
:meth:`predict_pdf_photometry`), so a RAIL pipeline and ``deepdip baseline`` run the same code:

- the Informer reads RAIL's usual training table (``hdf5_groupname`` group, magnitudes in
  ``bands`` with errors in ``err_bands``, spec-z in ``redshift_col``), turns it into fluxes
  (:func:`rail.deepdip.tables.table_photometry`: ``nondetect_val``, ``nonobserved_val``,
  ``mag_limits``) and fits on the rows with a finite redshift. The model is deepdip's own ``.npz``
  model file (:class:`~rail.deepdip.handles.DeepdipModelHandle`, never a pickle), readable by
  ``deepdip.baselines.load_baseline``;
- the Estimator streams the input table chunk by chunk (``_process_chunk``) into a ``qp.hist``
  ensemble on the model's redshift bins with ancil ``id``, ``zmode``, ``zmean``, ``zmedian``,
  ``zstd``, ``zlo68``, ``zhi68`` (:func:`deepdip.catalog.qp_ensemble`).

The redshift bins: deepdip's bin *edges* are RAIL's grid points ``np.linspace(zmin, zmax, nzbins)``
(so ``nzbins - 1`` bins; ``zmin=0, zmax=0.4, nzbins=181`` is the ``sdss`` preset's 180 bins).
Every parameter of the deepdip baseline is a stage option of the same name, type and default
(``k`` for kNN, ``n_trees`` for the forest...; ``deepdip baseline --help`` documents them), except
``ref_band`` (RAIL's: a band *column*) and ``extra_columns`` (here: table columns).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import TableHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from deepdip.errors import DeepdipError, DeepdipValueError
from rail.deepdip.handles import DeepdipModelHandle
from rail.deepdip.tables import column, table_photometry

#: Conversion options shared by the informer and the estimator of a pair (they must agree).
_TABLE_OPTIONS = ("bands", "err_bands", "nondetect_val", "nonobserved_val", "mag_limits", "ref_band")
#: deepdip baseline parameters that are not forwarded as they are.
_NOT_FORWARDED = ("ref_band", "extra_columns")


def _table_options() -> dict:
    options: dict[str, Any] = {name: SharedParams.copy_param(name) for name in _TABLE_OPTIONS}
    options.update(
        filters=Param(list, [], required=False,
                      msg="filter names (speclite, or rail:<curve> for RAIL's curves), one per band (BPZ and "
                          "ebv_col need them); default: the survey preset's"),
        survey=Param(str, "", required=False, msg="a deepdip survey preset (sdss, legacy, cfhtls-wide...) whose "
                                                  "filters are used when 'filters' is empty"),
        ebv_col=Param(str, "", required=False, msg="column of Galactic E(B-V) to deredden with (Fitzpatrick 99); "
                                                   "'' = the magnitudes are already dereddened"),
        extra_columns=Param(list, [], required=False, msg="more measured table columns used as features "
                                                          "(log10 of positive-only ones), e.g. a size"),
    )
    return options


def _baseline_options(method: str) -> dict:
    """Every deepdip parameter of ``method`` as a ceci option (same name, type, default and help)."""
    from deepdip.baselines import baseline_class

    options = {}
    for name, p in baseline_class(method).PARAMS.items():
        if name in _NOT_FORWARDED:
            continue
        options[name] = Param(p.type, p.default, required=False, msg=p.help)
    return options


def _photometry(stage, table):
    return table_photometry(table, stage.config, need_filters=stage.method == "bpz")


class _BaselineInformer:
    """Fit a deepdip baseline on a RAIL training table (mixed into a ``CatInformer``)."""

    method = ""
    config: Any

    def _zgrid(self):
        from deepdip.zgrid import ZGrid

        cfg = self.config
        if cfg.nzbins < 2 or not cfg.zmax > cfg.zmin:
            raise DeepdipValueError(f"need zmax > zmin and nzbins >= 2 grid points, got {cfg.zmin}, {cfg.zmax}, "
                                    f"{cfg.nzbins}")
        return ZGrid(float(cfg.zmin), float(cfg.zmax), int(cfg.nzbins) - 1)

    def run(self) -> None:
        from deepdip.baselines import baseline_class

        cfg = self.config
        data = self.get_data("input")  # type: ignore[attr-defined]
        table = data[cfg.hdf5_groupname] if cfg.hdf5_groupname else data
        cls = baseline_class(self.method)
        params = {name: cfg[name] for name in cls.PARAMS if name not in _NOT_FORWARDED}
        params["ref_band"] = cfg.ref_band if cfg.ref_band in cfg.bands else None
        est = cls(self._zgrid(), **params)
        phot = _photometry(self, table)
        z = column(table, cfg.redshift_col)
        known = np.isfinite(z)
        if est.uses_training_redshifts and not known.any():
            raise DeepdipError(f"no training galaxy has a finite {cfg.redshift_col!r}")
        est.fit_photometry(phot.subset(np.flatnonzero(known)), z[known])
        self.model = est
        self.add_data("model", est)  # type: ignore[attr-defined]


class _BaselineEstimator:
    """Predict qp ensembles with a fitted deepdip baseline (mixed into a ``CatEstimator``)."""

    method = ""
    config: Any
    model: Any

    def open_model(self, **kwargs: Any):
        CatEstimator.open_model(self, **kwargs)  # type: ignore[arg-type]
        if self.model is not None and getattr(self.model, "name", None) != self.method:
            raise DeepdipError(f"{type(self).__name__} needs a {self.method} model, got {type(self.model).__name__}")
        return self.model

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        from deepdip.catalog import qp_ensemble

        phot = _photometry(self, data)
        n_model = len(self.model.extra_columns_) if hasattr(self.model, "extra_columns_") else len(phot.extra_names)
        if len(phot.extra_names) != n_model:
            raise DeepdipValueError(f"the model was fitted with {n_model} extra column(s); extra_columns gives "
                                    f"{len(phot.extra_names)}")
        pdf = self.model.predict_pdf_photometry(phot)
        id_col = self.config.id_col
        ids = column(data, id_col).astype(np.int64) if _has(data, id_col) else np.arange(start, end, dtype=np.int64)
        ensemble = qp_ensemble(pdf, self.model.zgrid_, ids)
        self._do_chunk_output(ensemble, start, end, first, data=data)  # type: ignore[attr-defined]


def _has(table, name: str) -> bool:
    try:
        return name in table.keys()
    except AttributeError:
        return False


def _informer_options(method: str) -> dict:
    options = CatInformer.config_options.copy()
    options.update(zmin=SharedParams.copy_param("zmin"), zmax=SharedParams.copy_param("zmax"),
                   nzbins=SharedParams.copy_param("nzbins"), redshift_col=SharedParams.copy_param("redshift_col"))
    options.update(_table_options())
    options.update(_baseline_options(method))
    return options


def _estimator_options(method: str) -> dict:
    options = CatEstimator.config_options.copy()
    options.update(_table_options())
    return options


_IO_INFORM = {"inputs": [("input", TableHandle)], "outputs": [("model", DeepdipModelHandle)]}
_IO_ESTIMATE = {"inputs": [("model", DeepdipModelHandle), ("input", TableHandle)]}


class DeepdipKNNInformer(_BaselineInformer, CatInformer):
    """deepdip's kNN baseline (luptitude colours + reference magnitude, distance-weighted votes): fit."""

    name = "DeepdipKNNInformer"
    method = "knn"
    config_options = _informer_options("knn")
    inputs, outputs = _IO_INFORM["inputs"], _IO_INFORM["outputs"]


class DeepdipKNNEstimator(_BaselineEstimator, CatEstimator):
    """deepdip's kNN baseline: PDFs as a qp ensemble."""

    name = "DeepdipKNNEstimator"
    method = "knn"
    config_options = _estimator_options("knn")
    inputs = _IO_ESTIMATE["inputs"]


class DeepdipRandomForestInformer(_BaselineInformer, CatInformer):
    """deepdip's random-forest baseline (leaf-vote PDFs): fit."""

    name = "DeepdipRandomForestInformer"
    method = "rf"
    config_options = _informer_options("rf")
    inputs, outputs = _IO_INFORM["inputs"], _IO_INFORM["outputs"]


class DeepdipRandomForestEstimator(_BaselineEstimator, CatEstimator):
    """deepdip's random-forest baseline: PDFs as a qp ensemble."""

    name = "DeepdipRandomForestEstimator"
    method = "rf"
    config_options = _estimator_options("rf")
    inputs = _IO_ESTIMATE["inputs"]


class DeepdipBoostInformer(_BaselineInformer, CatInformer):
    """deepdip's boosted-trees baseline (LightGBM, multiclass over redshift bins): fit."""

    name = "DeepdipBoostInformer"
    method = "boost"
    config_options = _informer_options("boost")
    inputs, outputs = _IO_INFORM["inputs"], _IO_INFORM["outputs"]


class DeepdipBoostEstimator(_BaselineEstimator, CatEstimator):
    """deepdip's boosted-trees baseline: PDFs as a qp ensemble."""

    name = "DeepdipBoostEstimator"
    method = "boost"
    config_options = _estimator_options("boost")
    inputs = _IO_ESTIMATE["inputs"]


class DeepdipBPZInformer(_BaselineInformer, CatInformer):
    """deepdip's BPZ template fitting (desc-bpz CWW+SB templates, trained prior, zero-point offsets): fit.

    Needs the bands' filter curves: ``filters`` (speclite names or ``rail:<curve>``) or ``survey``.
    """

    name = "DeepdipBPZInformer"
    method = "bpz"
    config_options = _informer_options("bpz")
    inputs, outputs = _IO_INFORM["inputs"], _IO_INFORM["outputs"]


class DeepdipBPZEstimator(_BaselineEstimator, CatEstimator):
    """deepdip's BPZ template fitting: PDFs as a qp ensemble."""

    name = "DeepdipBPZEstimator"
    method = "bpz"
    config_options = _estimator_options("bpz")
    inputs = _IO_ESTIMATE["inputs"]


BASELINE_STAGES = {
    "knn": (DeepdipKNNInformer, DeepdipKNNEstimator),
    "rf": (DeepdipRandomForestInformer, DeepdipRandomForestEstimator),
    "boost": (DeepdipBoostInformer, DeepdipBoostEstimator),
    "bpz": (DeepdipBPZInformer, DeepdipBPZEstimator),
}
