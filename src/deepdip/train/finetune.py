"""Fine-tuning: training that starts from a trained model file instead of random weights.

``deepdip train STORE --out RUN --init-model MODEL.pt`` (or ``--init-model MOCK_RUN``: member m of
every fold starts from the m-th model of that run, cycling) runs the same engine as training from
scratch — :class:`~deepdip.train.module.PhotozModule` in the same Lightning loop, with its folds,
ensembles, checkpoints, resume, time budget and DDP — with three differences:

- the network (model, its keywords, apertures, stretch), its fitted input normaliser and the
  redshift bins come from the model file: the new pixels are scaled exactly as the old ones were,
  and the normaliser is not refitted (its statistics are buffers, never trained);
- the peak learning rate defaults to ``FINETUNE_LR_FACTOR`` (a tenth) of the model's;
- ``freeze="backbone"`` trains the head only (a linear probe of the learnt features), and
  ``freeze_bn`` keeps the batch-norm statistics of the initial model (a few dozen galaxies of
  another survey would otherwise overwrite them with noisy ones).

The store must have the bands, band order, stamp size and flux unit the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepdip.errors import DeepdipValueError
from deepdip.zgrid import ZGrid


@dataclass
class InitModels:
    """The model files a fine-tuning run starts from, checked against the store."""

    paths: list[Path]
    net_kwargs: dict         # PhotozNet keywords of every initial model (they agree)
    zgrid: ZGrid
    freeze: str
    freeze_bn: bool

    @property
    def model(self) -> str:
        return str(self.net_kwargs["model"])

    @property
    def network(self) -> dict:
        """The run.json keys that describe the network, as a run trained from scratch records them."""
        return dict(model_kwargs=dict(self.net_kwargs.get("model_kwargs") or {}),
                    stretch=self.net_kwargs.get("stretch", "asinh"),
                    apertures=[float(r) for r in self.net_kwargs.get("apertures") or []])

    def path_for(self, member: int) -> Path:
        return self.paths[member % len(self.paths)]

    def record(self) -> dict:
        """What run.json keeps (part of the run's identity: another start is another experiment)."""
        return dict(init_model=[str(p) for p in self.paths], freeze=self.freeze, freeze_bn=bool(self.freeze_bn))


def resolve_init_models(cfg, store, zgrid: ZGrid | None = None) -> InitModels:
    """The model files named by ``cfg.init_model`` (a file or a run directory), loaded and checked."""
    from deepdip.predict.core import find_model_files, load_members

    if cfg.model_kwargs is not None or cfg.apertures is not None:
        given = "--model-kwargs" if cfg.model_kwargs is not None else "--apertures"
        raise DeepdipValueError(f"{given} cannot be combined with --init-model: the network is the initial model's")
    paths = [p.absolute() for ps in find_model_files(cfg.init_model).values() for p in ps]
    members = load_members(paths, store)     # same bands, stamp and bins; the store matches them
    kwargs = [m.config["net"] for m in members]
    if any(k != kwargs[0] for k in kwargs[1:]):
        raise DeepdipValueError(f"the models in {cfg.init_model} are different networks; give one model file")
    if zgrid is not None and zgrid != members[0].zgrid:
        raise DeepdipValueError("a fine-tuned model keeps the redshift bins of --init-model; drop --survey/zgrid")
    # The initial model's PIT maps describe its PDFs, not those of the fine-tuned network: not carried over
    # (--recalibrate pit fits new ones).
    net_kwargs = {k: v for k, v in kwargs[0].items() if k != "pit_calibration"}
    return InitModels(paths=[Path(p) for p in paths], net_kwargs=net_kwargs, zgrid=members[0].zgrid,
                      freeze=cfg.freeze, freeze_bn=bool(cfg.freeze_bn))


def load_initial_weights(net, path: Path) -> None:
    """Copy the initial model's weights and normaliser statistics into ``net`` (same architecture)."""
    from deepdip.models.modelfile import ModelFile

    state = {k: v for k, v in ModelFile(path).net.state_dict().items() if not k.startswith("calibration.")}
    net.load_state_dict(state)
