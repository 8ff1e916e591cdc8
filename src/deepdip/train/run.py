"""Training entry point: folds x ensemble members, each a resumable Lightning run.

Layout of a run directory ``RUN``::

    RUN/run.json                          settings (the same command continues the same run)
    RUN/fold{K}/member{M}/model.pt        the finished member (see :mod:`deepdip.models.modelfile`)
    RUN/fold{K}/member{M}/checkpoints/    last.ckpt (resume) and best.ckpt (lowest validation loss)
    RUN/fold{K}/member{M}/logs/           CSV logs (version_N/metrics.csv, one per session) and TensorBoard (tb/)

Running the same command after a kill skips finished members and resumes the interrupted one
from its last epoch checkpoint. Every random choice derives from ``seed``: the validation split
from (seed, fold), each member's initialisation, shuffling, augmentation and dropout from
(seed, fold, member).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from deepdip._lightning import is_launcher
from deepdip.atomic import OutputError, check_output, exclusive_lock, write_json_atomic
from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.models import model_defaults
from deepdip.properties import check_properties, parse_properties
from deepdip.train.config import FINETUNE_LR_FACTOR, IDENTITY_KEYS, MODEL_DEFAULTS, TrainConfig
from deepdip.zgrid import ZGrid

log = logging.getLogger(__name__)

# Aperture radii as fractions of the stamp size ("auto"): from PSF scale to most of the stamp.
AUTO_APERTURES = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 0.45)


def resolve_apertures(apertures, img_size: int) -> list[float]:
    """Aperture radii in pixels from ``"auto"``, ``"none"``/None, a comma string or a list."""
    if apertures is None or apertures == "none":
        return []
    if apertures == "auto":
        return [round(f * img_size, 3) for f in AUTO_APERTURES]
    if isinstance(apertures, str):
        try:
            apertures = [float(r) for r in apertures.split(",")]
        except ValueError:
            raise DeepdipError(f"apertures must be auto, none or comma-separated radii, got {apertures!r}") from None
    radii = [float(r) for r in apertures]
    if any(r <= 0 for r in radii):
        raise DeepdipError("aperture radii must be positive (pixels)")
    return radii


def member_seed(seed: int, fold: int, member: int) -> int:
    """An independent 31-bit seed for each (fold, member), derived from the run's seed."""
    return int(np.random.SeedSequence([int(seed), int(fold), int(member)]).generate_state(1)[0] % (2**31 - 1))


def split_train_val(store, fold: int, seed: int, val_fraction: float = 0.1, max_val: int = 5000,
                    max_train: int | None = None, labelled=None):
    """Training and validation rows for ``fold``: both from the training folds (``fold != K``),
    labelled rows only; the test fold is never touched. Deterministic in (seed, fold).
    ``max_train`` keeps a random subset of that many training rows (learning curves);
    ``labelled`` (a selection file of ``deepdip select``, or a bool mask over the store's rows)
    keeps only the galaxies it labels."""
    rows = store.split_rows("train", fold=fold)
    z = store.column("z_spec", rows)
    keep = np.isfinite(z)
    if labelled is not None:
        from deepdip.selection import read_selection

        mask = read_selection(labelled, store) if isinstance(labelled, (str, Path)) else np.asarray(labelled, bool)
        keep &= mask[rows]
    rows = rows[keep]
    if len(rows) < 10:
        raise DeepdipError(f"fold {fold}: only {len(rows)} training galaxies with a z_spec; need at least 10")
    rng = np.random.default_rng([int(seed), int(fold), 7])
    n_val = int(min(max_val, max(1, round(val_fraction * len(rows)))))
    perm = rng.permutation(len(rows))
    train_rows = rows[perm[n_val:]]
    if max_train is not None and max_train < len(train_rows):
        train_rows = train_rows[:max_train]  # already in random order
    return np.sort(train_rows), np.sort(rows[perm[:n_val]])


def resolve_zgrid(store, survey: str | None = None, zgrid: ZGrid | None = None) -> ZGrid:
    """The redshift bins: given explicitly, else from the survey preset named by ``survey`` or the store."""
    if zgrid is not None:
        return zgrid
    from deepdip.surveys import load_survey

    name = survey or store.survey
    if not name:
        raise DeepdipError("the store names no survey; pass --survey to choose the redshift bins")
    return load_survey(name).zgrid


def fit_normalizer(normalizer, store, rows, seed: int, n_sample: int = 1000):
    """Fit ``normalizer`` on a deterministic sample of training images (a few seconds)."""
    rng = np.random.default_rng([int(seed), 11])
    sample = np.sort(rng.choice(rows, size=min(n_sample, len(rows)), replace=False))
    normalizer.fit(store.images(sample), store.column("ebv", sample)[:, None])
    return normalizer


def _check_run_config(run_dir: Path, config: dict) -> None:
    """Refuse to continue a run with other settings, unless it has trained nothing yet.

    A run directory whose ``run.json`` is there but that holds no checkpoint and no ``model.pt``
    (a run that failed or was stopped before its first epoch ended) has nothing to mix up: it is
    re-configured (the caller overwrites ``run.json``) so that the corrected command just works.
    """
    path = run_dir / "run.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None  # unreadable settings: only safe to replace when nothing was trained
        diff = ["run.json"] if not isinstance(old, dict) else [
            k for k in IDENTITY_KEYS
            if json.dumps(old.get(k), sort_keys=True) != json.dumps(config.get(k), sort_keys=True)]
        if diff and _has_trained(run_dir):
            raise DeepdipError(f"{run_dir} holds a run with other settings ({', '.join(diff)}); "
                               "use another --out, or the same options to continue it")
        if diff:
            log.info("re-configuring %s: it holds settings but no checkpoint or model yet", run_dir)


def _has_trained(run_dir: Path) -> bool:
    """Whether any member of the run has a checkpoint or a finished model."""
    return (any(run_dir.glob("fold*/member*/model.pt"))
            or any(run_dir.glob("fold*/member*/checkpoints/*.ckpt")))


def network_kwargs(store, config: dict, init=None) -> dict:
    """The :class:`~deepdip.models.net.PhotozNet` keywords of a run: the initial model's when
    fine-tuning, else built from run.json's ``config`` and the store's bands and stamp size."""
    if init is not None:
        if config.get("band_dropout", 0.0) > 0 and not init.net_kwargs.get("band_mask"):
            raise DeepdipValueError("--band-dropout needs a network that reads the band mask; the initial model was "
                                    "trained without (train it with --band-dropout, or fine-tune without)")
        return dict(init.net_kwargs)
    kwargs = dict(model=config["model"], in_chans=store.n_bands, num_bins=ZGrid(**config["zgrid"]).nbins,
                  img_size=store.image_shape[0], n_extra=1, stretch=config["stretch"], apertures=config["apertures"],
                  model_kwargs=config["model_kwargs"])
    # A network that reads the band mask: trained with band dropout, or on a store where some galaxies lack
    # bands (a network blind to the mask would take a missing band for a blank one). Only then, so that
    # model files of full-band runs keep their architecture.
    if config.get("band_dropout", 0.0) > 0 or not store.band_mask().all():
        kwargs["band_mask"] = True
    if config.get("head", "binned") != "binned":
        grid = config["zgrid"]
        kwargs["head"] = config["head"]
        kwargs["head_kwargs"] = {"zmin": grid["zmin"], "zmax": grid["zmax"],
                                 "n_components": int(config.get("mdn_components", 5))}
    if config.get("properties"):
        kwargs["properties"] = list(config["properties"])
    return kwargs


def fit_property_scaler(net, store, rows) -> None:
    """Standardise the physical-parameter head on the training labels (their mean and standard
    deviation), refusing a property no training galaxy has a label for."""
    from deepdip.properties import property_labels

    if not getattr(net, "properties", None):
        return
    labels = property_labels(store, net.properties, rows)
    empty = [n for n, col in zip(net.properties, labels.T, strict=True) if not np.isfinite(col).sum() >= 2]
    if empty:
        raise DeepdipValueError(f"--properties {','.join(empty)}: fewer than 2 training galaxies have a finite label")
    net.property_head.set_standardisation(np.nanmean(labels, axis=0), np.nanstd(labels, axis=0))


def _check_buildable(store, zgrid: ZGrid, config: dict) -> None:
    """Build the network once (milliseconds; a second for pasquet19) so that a --model-kwargs value
    it refuses, or a stamp too small for it, is named here rather than deep in the first member."""
    from deepdip.models.net import PhotozNet

    try:
        PhotozNet(**network_kwargs(store, config))
    except DeepdipError:
        raise
    except (TypeError, ValueError, RuntimeError, IndexError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DeepdipValueError(f"the {config['model']} model cannot be built for this store ({store.n_bands} bands, "
                                f"{store.image_shape[0]}x{store.image_shape[1]} px) with the keywords "
                                f"(--model-kwargs over its defaults) {json.dumps(config['model_kwargs'])}: {first}"
                                ) from None


def check_training_rows(store, folds, seed: int, val_fraction: float, max_val: int, max_train,
                        labelled=None) -> None:
    """Refuse a store whose rows used for training hold NaN/inf pixels, NaN or negative E(B-V),
    or whose folds lie outside ``0..n_folds-1`` (:func:`deepdip.store.checks.check_rows`)."""
    from deepdip.store.checks import check_rows

    used = [np.concatenate(split_train_val(store, k, seed, val_fraction, max_val, max_train, labelled))
            for k in folds]
    check_rows(store, np.unique(np.concatenate(used)), what="the training rows")


def train(store, config: TrainConfig | None = None, *, out="runs/cnn", zgrid: ZGrid | None = None,
          **settings) -> Path:
    """Train the CNN on ``store`` for one fold or all folds, with an ensemble of ``ensemble`` members.

    Args:
        store: a :class:`~deepdip.store.CutoutStore` or its path.
        config: a :class:`~deepdip.train.config.TrainConfig`; ``settings`` (its field names as
            keywords, e.g. ``fold="all", epochs=30, lr=1e-3``) override it. Each field's help
            text says what it does; the main ones:

            - ``fold``: test fold K (train on ``fold != K``), a list of folds, or ``"all"``;
            - ``ensemble``: members per fold, each with its own seed; prediction averages their PDFs;
            - ``epochs``: maximum epochs per member (model default when None; with ``max_minutes``
              and no ``epochs`` the budget alone decides);
            - ``max_minutes``: wall-clock budget for this whole call, shared equally by the members
              still to train; each member plans its epochs (and LR schedule) to end within its
              share. The number of epochs then depends on the machine's speed: for bit-identical
              reruns give ``epochs`` without ``max_minutes``;
            - ``init_model``: fine-tune (see :mod:`deepdip.train.finetune`) instead of starting
              from random weights;
            - ``accelerator``, ``devices``, ``num_nodes``, ``strategy``: Lightning's hardware
              knobs; ``strategy="ddp"`` with ``devices=N`` runs N processes (gloo on CPU, NCCL on
              GPUs; torchrun/SLURM work too).
        out: run directory; calling again with the same settings resumes / completes it.
        zgrid: redshift bins (default: the model file's when fine-tuning, else the preset of
            ``survey`` or of the store's survey).

    Returns:
        The run directory.
    """
    from deepdip.store import CutoutStore
    from deepdip.train.finetune import resolve_init_models

    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise TypeError(f"train() got unknown settings: {', '.join(unknown)}")
    cfg = (config or TrainConfig()).replace(**settings).check()
    # Options first, then the store, and only then the run directory: a bad value never leaves a run.json.
    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    init = None
    if cfg.init_model:
        wanted = zgrid if zgrid is not None or not cfg.survey else resolve_zgrid(store, cfg.survey)
        init = resolve_init_models(cfg, store, wanted)
    model = init.model if init else cfg.model
    if model not in MODEL_DEFAULTS:
        from deepdip.models import list_models
        raise DeepdipError(f"unknown model {model!r}; available: {', '.join(list_models())}")
    if cfg.model_kwargs is not None and not init:
        unknown = sorted(set(cfg.model_kwargs) - set(model_defaults(model)))
        if unknown:
            raise DeepdipValueError(f"--model-kwargs: {model} has no keyword {', '.join(unknown)}; "
                                    f"it takes {', '.join(sorted(model_defaults(model))) or 'none'}")
    hp = dict(MODEL_DEFAULTS[model])
    if init and cfg.lr is None:
        hp["lr"] = hp["lr"] * FINETUNE_LR_FACTOR
    for key in ("batch_size", "lr", "weight_decay", "optimizer", "schedule", "patience", "epochs", "apertures",
                "ema", "lr_floor"):
        if getattr(cfg, key) is not None:
            hp[key] = getattr(cfg, key)
    if cfg.max_minutes is not None and cfg.epochs is None:
        hp["epochs"] = 1000  # the budget decides: TimeBudget plans the epochs that fit
    folds = _parse_folds(cfg.fold, store.n_folds)
    zgrid = init.zgrid if init else resolve_zgrid(store, cfg.survey, zgrid)
    run_dir = Path(out)
    config_json = dict(
        model=model, seed=int(cfg.seed), optimizer=hp["optimizer"], lr=float(hp["lr"]),
        weight_decay=float(hp["weight_decay"]), schedule=hp["schedule"], batch_size=int(hp["batch_size"]),
        augment=bool(cfg.augment), val_fraction=float(cfg.val_fraction), max_val=int(cfg.max_val),
        max_train=int(cfg.max_train) if cfg.max_train else None, bands=list(store.bands),
        image_shape=list(store.image_shape), zgrid=zgrid.to_dict(), store=str(store.path),
        survey=store.survey, flux_unit=store.flux_unit,
        # A checkpoint of a run with the weight average holds it, one without does not:
        # resuming across a change of either would fail or mix two recipes.
        ema=float(hp.get("ema") or 0.0), lr_floor=float(hp.get("lr_floor", 0.01)),
        # The network is the initial model's when fine-tuning.
        **(init.network if init else dict(
            model_kwargs={**model_defaults(model), **(cfg.model_kwargs or {})}, stretch=cfg.stretch,
            apertures=resolve_apertures(hp["apertures"], store.image_shape[0]))))
    if cfg.band_dropout > 0:  # recorded only when used: runs without it keep their run.json (and can resume)
        config_json["band_dropout"] = float(cfg.band_dropout)
        if cfg.band_dropout_mode != "subset":
            config_json["band_dropout_mode"] = cfg.band_dropout_mode
    if cfg.label_sigma > 0:
        config_json["label_sigma"] = float(cfg.label_sigma)
    if cfg.head != "binned":   # likewise the redshift head's kind and the physical parameters
        config_json["head"] = cfg.head
        config_json["mdn_components"] = int(cfg.mdn_components)
    if cfg.recalibrate != "none":
        config_json["recalibrate"] = cfg.recalibrate
    if cfg.labelled:   # the selection file, and how many it labels (a changed file is another experiment)
        from deepdip.selection import read_selection

        config_json["labelled"] = str(Path(cfg.labelled).absolute())
        config_json["labelled_n"] = int(read_selection(cfg.labelled, store).sum())
    if cfg.augment_labelled and not cfg.augment_store:
        raise DeepdipValueError("--augment-labelled selects galaxies of --augment-store's store: give that store")
    if cfg.augment_store:   # the added galaxies, checked now (not in the first member) and counted
        from deepdip.selection import augment_rows

        _, rows = augment_rows(store, cfg.augment_store, cfg.augment_labelled, pixels=True)
        config_json["augment_store"] = str(Path(cfg.augment_store).absolute())
        if cfg.augment_labelled:
            config_json["augment_labelled"] = str(Path(cfg.augment_labelled).absolute())
        config_json["augment_n"] = int(len(rows))
    if cfg.reweight != "none":
        config_json["reweight"] = cfg.reweight
    properties = parse_properties(cfg.properties)
    if properties:
        check_properties(store, properties)
        config_json["properties"] = properties
    if init and (cfg.head != "binned" or properties):
        raise DeepdipValueError("--head and --properties build a new network: they cannot be combined with "
                                "--init-model (the network is the initial model's)")
    if init:
        config_json["finetune"] = init.record()
    if not init:
        _check_buildable(store, zgrid, config_json)
    check_training_rows(store, folds, config_json["seed"], config_json["val_fraction"], config_json["max_val"],
                        config_json["max_train"], config_json.get("labelled"))
    check_run_dir(run_dir, inputs=(store.path,))
    cfg = cfg.replace(precision=_resolve_precision(cfg, store, folds, config_json, run_dir, init))
    # The launching process holds the run directory's lock for the whole call: a second `train`
    # on the same --out fails at once instead of training the same members twice. DDP workers
    # that Lightning or torchrun start (LOCAL_RANK/NODE_RANK > 0) run inside the launcher's lock.
    launcher = is_launcher()
    lock = exclusive_lock(run_dir / LOCK_NAME, f"run directory {run_dir}") if launcher else contextlib.nullcontext()
    with lock:
        _check_run_config(run_dir, config_json)
        if launcher:
            write_json_atomic(run_dir / "run.json", config_json, sort_keys=True)
        _train_jobs(store, run_dir, folds, cfg, config=config_json, hp=hp, zgrid=zgrid, init=init)
    return run_dir


LOCK_NAME = ".lock"


def _resolve_precision(cfg: TrainConfig, store, folds, config_json: dict, run_dir: Path, init) -> str:
    """``cfg.precision``, with ``auto`` resolved: the choice already recorded in the run (a resumed
    run, or a DDP worker re-running the launcher's command, keeps it), else a timing probe of the
    network on a training batch (:func:`deepdip.hardware.choose_precision`), recorded in run.json."""
    if cfg.precision != "auto":
        return cfg.precision
    try:
        recorded = json.loads((run_dir / "run.json").read_text()).get("precision_auto", {})
    except (OSError, ValueError, AttributeError):
        recorded = {}
    if isinstance(recorded, dict) and recorded.get("chosen"):
        config_json["precision_auto"] = recorded
        return str(recorded["chosen"])
    from deepdip.hardware import choose_precision
    from deepdip.models.net import PhotozNet

    rows = split_train_val(store, folds[0], config_json["seed"], config_json["val_fraction"], config_json["max_val"],
                           config_json["max_train"], config_json.get("labelled"))[0][:config_json["batch_size"]]
    cuda = cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    images = torch.as_tensor(store.images(rows)).to(device)
    extra = torch.as_tensor(store.column("ebv", rows)[:, None].astype(np.float32)).to(device)
    chosen, probe = choose_precision(PhotozNet(**network_kwargs(store, config_json, init)), images, extra, train=True)
    log.info("--precision auto: %s (%s)", chosen, probe)
    config_json["precision_auto"] = probe
    return chosen


def check_run_dir(run_dir: Path, inputs=()) -> None:
    """Refuse a run directory that is a file, an input, or a folder of something other than a run."""
    check_output(run_dir, inputs=inputs, kind="dir")
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"run directory {run_dir} is an existing file; choose a folder name")
    if run_dir.is_dir() and not (run_dir / "run.json").exists():
        foreign = [p.name for p in run_dir.iterdir() if p.name != LOCK_NAME]
        if foreign:
            raise OutputError(f"{run_dir} is a folder holding other files ({', '.join(sorted(foreign)[:3])}...), "
                              "not a deepdip run; choose another --out")


def _train_jobs(store, run_dir: Path, folds, cfg: TrainConfig, **member_kwargs) -> None:
    """Train every (fold, member) not finished yet, sharing the time budget among those left."""
    from deepdip.train.member import train_member

    jobs = [(k, m) for k in folds for m in range(cfg.ensemble)]
    t0 = time.monotonic()
    for i, (k, m) in enumerate(jobs):
        member_dir = run_dir / f"fold{k}" / f"member{m}"
        if (member_dir / "model.pt").exists():
            continue
        budget = None
        if cfg.max_minutes is not None:
            todo = sum(1 for kk, mm in jobs[i:] if not (run_dir / f"fold{kk}" / f"member{mm}" / "model.pt").exists())
            budget = max(0.05, (cfg.max_minutes - (time.monotonic() - t0) / 60) / max(1, todo))
        train_member(store, k, m, member_dir, cfg, budget_minutes=budget, **member_kwargs)


def _parse_folds(fold, n_folds: int) -> list[int]:
    if isinstance(fold, str):
        if fold == "all":
            return list(range(n_folds))
        try:
            fold = [int(f) for f in fold.split(",")]
        except ValueError:
            raise DeepdipError(f"--fold must be an integer, a comma list or 'all', got {fold!r}") from None
    folds = [int(f) for f in (fold if isinstance(fold, (list, tuple)) else [fold])]
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        raise DeepdipError(f"fold {bad[0]} out of range: the store has folds 0..{n_folds - 1}")
    return folds


