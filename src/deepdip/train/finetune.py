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

from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.zgrid import ZGrid


@dataclass
class InitModels:
    """The model files a fine-tuning run starts from, checked against the store."""

    paths: list[Path]
    net_kwargs: dict         # PhotozNet keywords of the network trained (the initial models', or with
    zgrid: ZGrid             # ``transfer`` the same network rebuilt for the store)
    freeze: str
    freeze_bn: bool
    transfer: bool = False

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
        record = dict(init_model=[str(p) for p in self.paths], freeze=self.freeze, freeze_bn=bool(self.freeze_bn))
        if self.transfer:
            record["transfer"] = True
        return record


def resolve_init_models(cfg, store, zgrid: ZGrid | None = None) -> InitModels:
    """The model files named by ``cfg.init_model`` (a file or a run directory), loaded and checked."""
    from deepdip.predict.core import find_model_files, load_members

    if cfg.model_kwargs is not None or cfg.apertures is not None:
        given = "--model-kwargs" if cfg.model_kwargs is not None else "--apertures"
        raise DeepdipValueError(f"{given} cannot be combined with --init-model: the network is the initial model's")
    paths = [p.absolute() for ps in find_model_files(cfg.init_model).values() for p in ps]
    if cfg.transfer:
        return _transfer_init(cfg, store, paths, zgrid)
    members = load_members(paths)     # the same bands, stamp and bins as each other
    for m in members:                 # ... and as the store, or the hint for another survey's model
        try:
            m.check_store(store)
        except DeepdipError as exc:
            raise DeepdipValueError(f"{exc} (a model of another survey: fine-tune it with --transfer)") from None
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


def _transfer_init(cfg, store, paths: list[Path], zgrid: ZGrid | None) -> InitModels:
    """``--transfer``: the initial models' network rebuilt for ``store`` (its bands, stamp size, apertures
    and redshift bins); :func:`transfer_weights` copies what carries over."""
    from deepdip.models.modelfile import ModelFile
    from deepdip.train.config import MODEL_DEFAULTS
    from deepdip.train.run import resolve_apertures, resolve_zgrid

    members = [ModelFile(p) for p in paths]
    source = members[0].config["net"]
    if any(m.config["net"] != source or m.bands != members[0].bands for m in members[1:]):
        raise DeepdipValueError(f"the models in {cfg.init_model} are different networks; give one model file")
    if source.get("head", "binned") != "binned" or source.get("properties"):
        raise DeepdipValueError("--transfer starts from a softmax-head model without physical parameters "
                                f"({paths[0]} has another head or property heads)")
    if not set(members[0].bands) & set(store.bands):
        raise DeepdipValueError(f"--transfer: the model's bands {''.join(members[0].bands)} and the store's "
                                f"{''.join(store.bands)} have none in common")
    zgrid = zgrid if zgrid is not None else resolve_zgrid(store)
    model = source["model"]
    auto = MODEL_DEFAULTS.get(model, {}).get("apertures", "none") if source.get("apertures") else "none"
    net_kwargs = {k: v for k, v in source.items() if k not in ("pit_calibration",)}
    net_kwargs.update(in_chans=store.n_bands, img_size=store.image_shape[0], num_bins=zgrid.nbins,
                      apertures=resolve_apertures(auto, store.image_shape[0]))
    if not store.band_mask().all():
        net_kwargs["band_mask"] = True
    return InitModels(paths=list(paths), net_kwargs=net_kwargs, zgrid=zgrid, freeze=cfg.freeze,
                      freeze_bn=bool(cfg.freeze_bn), transfer=True)


def transfer_weights(net, path: Path, bands) -> dict:
    """Copy into ``net`` (built for a store of ``bands``) the convolutions of the model file at ``path``
    (another survey's): the first convolution's filters band by band by name (a band the model lacks
    starts from the mean of the model's filters, as timm's ``adapt_input_conv`` does for new input
    channels), the later ones as they are. The dense head (``backbone.head``: it reads per-band aperture
    fluxes and ends in the model's bins), the normaliser and the PIT maps are not copied: the head trains
    from its fresh start, the normaliser is fitted on the store.
    Returns the names copied, mapped band by band and left fresh."""
    import torch

    from deepdip.models.modelfile import ModelFile

    source = ModelFile(path)
    src_bands = list(source.bands)
    src_state = source.net.state_dict()
    state = net.state_dict()
    # The input convolution: the first 4-D weight, which sees one channel per band.
    first = next(k for k, v in state.items() if k.startswith("backbone.") and v.ndim == 4)
    report: dict = {"copied": [], "mapped": [], "fresh": []}
    for name, value in state.items():
        if name.startswith(("normalizer.", "calibration.")) or not torch.is_floating_point(value):
            continue     # refitted / not carried; counters (batch norm's num_batches_tracked)
        src = src_state.get(name)
        if name == first and src is not None and src.shape[0] == value.shape[0] and src.shape[2:] == value.shape[2:]:
            mapped = src.mean(dim=1, keepdim=True).repeat(1, len(bands), 1, 1)
            for j, band in enumerate(bands):
                if band in src_bands:
                    mapped[:, j] = src[:, src_bands.index(band)]
            state[name] = mapped
            report["mapped"].append(name)
        elif src is not None and src.shape == value.shape and not name.startswith("backbone.head."):
            state[name] = src.clone()
            report["copied"].append(name)
        else:
            report["fresh"].append(name)
    net.load_state_dict(state)
    return report


def load_initial_weights(net, path: Path) -> None:
    """Copy the initial model's weights and normaliser statistics into ``net`` (same architecture)."""
    from deepdip.models.modelfile import ModelFile

    state = {k: v for k, v in ModelFile(path).net.state_dict().items() if not k.startswith("calibration.")}
    net.load_state_dict(state)
