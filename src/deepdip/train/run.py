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
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from deepdip.atomic import OutputError, check_output, exclusive_lock, write_json_atomic
from deepdip.errors import DeepdipError, DeepdipValueError, check_number
from deepdip.models import model_defaults
from deepdip.zgrid import ZGrid

log = logging.getLogger(__name__)

# Per-model training defaults: Pasquet et al.'s recipe, and the CPU-tuned one for ``compact``.
# ``patience`` None: no early stopping. ``ema``: decay of the moving average of the weights that is
# validated and saved (0: the raw weights). ``lr_floor``: where the cosine schedule ends, as a
# fraction of ``lr``.
# ``compact`` (issue 18): a fixed number of epochs with a cosine schedule that anneals to zero and
# an EMA of the weights, no early stopping. Its validation loss jumped from epoch to epoch with the
# raw weights at a high learning rate, so early stopping and the best epoch (and the test metrics)
# changed with any perturbation; 30 epochs of 14,448 galaxies take about 13 minutes on 2 cores.
MODEL_DEFAULTS: dict[str, dict] = {
    "pasquet19": dict(optimizer="adam", lr=1e-4, weight_decay=0.0, schedule="step", batch_size=128,
                      epochs=30, patience=10, apertures="none", ema=0.0, lr_floor=0.01),
    "compact": dict(optimizer="adamw", lr=2e-3, weight_decay=1e-4, schedule="cosine", batch_size=128,
                    epochs=30, patience=None, apertures="auto", ema=0.998, lr_floor=0.0),
}
# Aperture radii as fractions of the stamp size ("auto"): from PSF scale to most of the stamp.
AUTO_APERTURES = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 0.45)
# Settings that define what a run *is*: continuing a run with other values would mix two experiments.
IDENTITY_KEYS = ("model", "model_kwargs", "seed", "stretch", "optimizer", "lr", "weight_decay", "schedule",
                 "batch_size", "augment", "val_fraction", "max_val", "max_train", "bands", "image_shape", "zgrid",
                 "apertures", "ema", "lr_floor")


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
                    max_train: int | None = None):
    """Training and validation rows for ``fold``: both from the training folds (``fold != K``),
    labelled rows only; the test fold is never touched. Deterministic in (seed, fold).
    ``max_train`` keeps a random subset of that many training rows (learning curves)."""
    rows = store.split_rows("train", fold=fold)
    z = store.column("z_spec", rows)
    rows = rows[np.isfinite(z)]
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


def _lightning_precisions() -> tuple:
    """The precision values Lightning's Trainer accepts: its own list, so a newer Lightning brings its new values."""
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT

    values: list[str] = []
    for literal in typing.get_args(_PRECISION_INPUT):
        values.extend(typing.get_args(literal))
    return tuple(values)


def _check_train_options(*, ensemble, epochs, max_minutes, seed, batch_size, lr, weight_decay, optimizer,
                         schedule, patience, val_fraction, max_val, max_train, stretch, num_workers, precision,
                         accelerator, devices, num_nodes, strategy, threads) -> None:
    """Every option of :func:`train` checked before anything is read or written (issue 18).

    Raises :class:`~deepdip.errors.DeepdipValueError` naming the CLI option.
    """
    check_number("--ensemble", ensemble, minimum=1, integer=True, allow_none=False)
    # 0 epochs would write an untrained model as if it were a result.
    check_number("--epochs", epochs, minimum=1, integer=True)
    check_number("--max-minutes", max_minutes, above=0)
    # numpy's SeedSequence takes non-negative integers only.
    check_number("--seed", seed, minimum=0, integer=True, allow_none=False)
    check_number("--batch-size", batch_size, minimum=1, integer=True)
    check_number("--lr", lr, above=0)
    check_number("--weight-decay", weight_decay, minimum=0)
    check_number("--patience", patience, minimum=0, integer=True)  # 0: no early stopping
    check_number("val_fraction", val_fraction, above=0, maximum=0.9)
    check_number("max_val", max_val, minimum=1, integer=True)
    check_number("max_train", max_train, minimum=0, integer=True)  # 0 or None: every training galaxy
    check_number("--workers", num_workers, minimum=0, integer=True)
    check_number("--threads", threads, minimum=1, integer=True)
    check_number("--num-nodes", num_nodes, minimum=1, integer=True, allow_none=False)
    if optimizer is not None and optimizer not in ("adam", "adamw"):
        raise DeepdipValueError(f"optimizer must be adam or adamw, got {optimizer!r}")
    if schedule is not None and schedule not in ("cosine", "step", "constant"):
        raise DeepdipValueError(f"--schedule must be cosine, step or constant, got {schedule!r}")
    if stretch not in ("asinh", "pasquet"):
        raise DeepdipValueError(f"--stretch must be asinh or pasquet, got {stretch!r}")
    precisions = _lightning_precisions()
    if precision not in precisions:
        names = dict.fromkeys(str(p) for p in precisions if isinstance(p, str))  # ints are aliases of "64", "32"...
        raise DeepdipValueError(f"--precision {precision!r} is not one Lightning accepts: {', '.join(names)}")
    if isinstance(accelerator, str):
        from lightning.pytorch.accelerators import AcceleratorRegistry

        known = ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]
        if accelerator not in known:
            raise DeepdipValueError(f"--accelerator must be one of {', '.join(known)}, got {accelerator!r}")
    if isinstance(strategy, str):
        from lightning.pytorch.strategies import StrategyRegistry

        known = ["auto", *StrategyRegistry.available_strategies()]
        if strategy not in known:
            raise DeepdipValueError(f"--strategy {strategy!r} is not a Lightning strategy; e.g. auto, ddp, ddp_spawn")
    # Lightning reads devices=-1 as "all"; 0 or other negatives are no devices at all.
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < 1 and devices != -1:
        raise DeepdipValueError(f"--devices must be a positive number, -1 (all), a list or auto, got {devices}")
    if isinstance(devices, str) and devices != "auto" and not all(p.strip().lstrip("-").isdigit()
                                                                   for p in devices.split(",") if p.strip()):
        raise DeepdipValueError(f"--devices must be a number, a comma list of device ids or auto, got {devices!r}")


def _check_buildable(store, zgrid: ZGrid, config: dict) -> None:
    """Build the network once (milliseconds; a second for pasquet19) so that a --model-kwargs value
    it refuses, or a stamp too small for it, is named here rather than deep in the first member."""
    from deepdip.models.net import PhotozNet

    try:
        PhotozNet(model=config["model"], in_chans=store.n_bands, num_bins=zgrid.nbins, img_size=store.image_shape[0],
                  n_extra=1, stretch=config["stretch"], apertures=config["apertures"],
                  model_kwargs=config["model_kwargs"])
    except DeepdipError:
        raise
    except (TypeError, ValueError, RuntimeError, IndexError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DeepdipValueError(f"the {config['model']} model cannot be built for this store ({store.n_bands} bands, "
                                f"{store.image_shape[0]}x{store.image_shape[1]} px) with the keywords "
                                f"(--model-kwargs over its defaults) {json.dumps(config['model_kwargs'])}: {first}"
                                ) from None


def check_training_rows(store, folds, seed: int, val_fraction: float, max_val: int, max_train) -> None:
    """Refuse a store whose rows used for training hold NaN/inf pixels, NaN or negative E(B-V),
    or whose folds lie outside ``0..n_folds-1`` (:func:`deepdip.store.checks.check_rows`)."""
    from deepdip.store.checks import check_rows

    used = [np.concatenate(split_train_val(store, k, seed, val_fraction, max_val, max_train)) for k in folds]
    check_rows(store, np.unique(np.concatenate(used)), what="the training rows")


def train(store, fold=0, model: str = "compact", ensemble: int = 1, epochs: int | None = None,
          max_minutes: float | None = None, out="runs/cnn", seed: int = 0, *,
          batch_size: int | None = None, lr: float | None = None, weight_decay: float | None = None,
          optimizer: str | None = None, schedule: str | None = None, patience: int | None = None,
          val_fraction: float = 0.1, max_val: int = 5000, max_train: int | None = None,
          stretch: str = "asinh", apertures=None,
          model_kwargs: dict | None = None,
          augment: bool = True, survey: str | None = None, zgrid: ZGrid | None = None,
          num_workers: int | None = None, precision: str = "32-true", channels_last: bool = True,
          accelerator: str = "auto", devices="auto", num_nodes: int = 1, strategy: str = "auto",
          threads: int | None = None, progress: bool = True, tensorboard: bool = True) -> Path:
    """Train the CNN on ``store`` for one fold or all folds, with an ensemble of ``ensemble`` members.

    Args:
        store: a :class:`~deepdip.store.CutoutStore` or its path.
        fold: test fold K (train on ``fold != K``), a list of folds, or ``"all"`` for every fold.
        model: registered model name (``compact`` or ``pasquet19``).
        ensemble: members per fold, each with its own seed; prediction averages their PDFs.
        epochs: maximum epochs per member (model default when None; with ``max_minutes`` and no
            ``epochs`` the budget alone decides).
        max_minutes: wall-clock budget for this whole call, shared equally by the members still to
            train; each member plans its epochs (and LR schedule) to end within its share. The
            number of epochs then depends on the machine's speed: for bit-identical reruns give
            ``epochs`` without ``max_minutes``.
        out: run directory; calling again with the same settings resumes / completes it.
        seed: the one seed every random choice derives from.
        batch_size, lr, weight_decay, optimizer, schedule, patience: override the model's defaults
            (``MODEL_DEFAULTS``); ``patience`` is early stopping on the validation loss, in epochs.
        val_fraction, max_val: validation set carved from the training folds.
        max_train: train on a random subset of at most this many galaxies (learning curves).
        stretch: input normalisation, ``asinh`` or ``pasquet``.
        apertures: aperture photometry joined to the dense layers: ``"auto"``, ``"none"`` or radii
            in pixels (default: ``auto`` for compact, ``none`` for the faithful pasquet19).
        model_kwargs: extra keyword arguments of the model factory (e.g. ``widths`` for compact).
        augment: random dihedral orientation of training images.
        survey, zgrid: redshift bins (default: the preset of the store's survey).
        num_workers: DataLoader worker processes (default: 1 on CPU, 4 on GPU).
        precision: Lightning precision, e.g. ``32-true`` or ``bf16-mixed``.
        channels_last: NHWC memory layout for the convolutions (default; measured 1.5-3x faster
            training on this CPU with oneDNN, see docs/benchmarks.md).
        accelerator, devices, num_nodes, strategy: Lightning hardware knobs; ``strategy="ddp"``
            with ``devices=N`` runs N processes (gloo on CPU, NCCL on GPUs; torchrun/SLURM work too).
        threads: torch CPU threads per process (default: cores / processes).
        progress: show progress bars.
        tensorboard: also write TensorBoard logs beside the CSV ones.

    Returns:
        The run directory.
    """
    from deepdip.store import CutoutStore

    # Options first, then the store, and only then the run directory: a bad value never leaves a run.json.
    _check_train_options(ensemble=ensemble, epochs=epochs, max_minutes=max_minutes, seed=seed, batch_size=batch_size,
                         lr=lr, weight_decay=weight_decay, optimizer=optimizer, schedule=schedule, patience=patience,
                         val_fraction=val_fraction, max_val=max_val, max_train=max_train, stretch=stretch,
                         num_workers=num_workers, precision=precision, accelerator=accelerator, devices=devices,
                         num_nodes=num_nodes, strategy=strategy, threads=threads)
    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    if model not in MODEL_DEFAULTS:
        from deepdip.models import list_models
        raise DeepdipError(f"unknown model {model!r}; available: {', '.join(list_models())}")
    if model_kwargs is not None:
        if not isinstance(model_kwargs, dict):
            raise DeepdipValueError(f"--model-kwargs must be a JSON object of keywords, got {model_kwargs!r}")
        unknown = sorted(set(model_kwargs) - set(model_defaults(model)))
        if unknown:
            raise DeepdipValueError(f"--model-kwargs: {model} has no keyword {', '.join(unknown)}; "
                                    f"it takes {', '.join(sorted(model_defaults(model))) or 'none'}")
    hp = dict(MODEL_DEFAULTS[model])
    for key, value in dict(batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer=optimizer,
                           schedule=schedule, patience=patience, epochs=epochs, apertures=apertures).items():
        if value is not None:
            hp[key] = value
    if max_minutes is not None and epochs is None:
        hp["epochs"] = 1000  # the budget decides: TimeBudget plans the epochs that fit
    folds = _parse_folds(fold, store.n_folds)
    zgrid = resolve_zgrid(store, survey, zgrid)
    if ensemble < 1:
        raise DeepdipError("--ensemble must be at least 1")
    run_dir = Path(out)
    config = dict(model=model, model_kwargs={**model_defaults(model), **(model_kwargs or {})}, seed=int(seed),
                  stretch=stretch,
                  optimizer=hp["optimizer"], lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]),
                  schedule=hp["schedule"], batch_size=int(hp["batch_size"]), augment=bool(augment),
                  val_fraction=float(val_fraction), max_val=int(max_val),
                  max_train=int(max_train) if max_train else None, bands=list(store.bands),
                  image_shape=list(store.image_shape), zgrid=zgrid.to_dict(), store=str(store.path),
                  survey=store.survey, flux_unit=store.flux_unit,
                  apertures=resolve_apertures(hp["apertures"], store.image_shape[0]),
                  # A checkpoint of a run with the weight average holds it, one without does not:
                  # resuming across a change of either would fail or mix two recipes.
                  ema=float(hp.get("ema") or 0.0), lr_floor=float(hp.get("lr_floor", 0.01)))
    _check_buildable(store, zgrid, config)
    check_training_rows(store, folds, config["seed"], config["val_fraction"], config["max_val"], config["max_train"])
    check_run_dir(run_dir, inputs=(store.path,))
    # The launching process holds the run directory's lock for the whole call: a second `train`
    # on the same --out fails at once instead of training the same members twice. DDP workers
    # that Lightning or torchrun start (LOCAL_RANK/NODE_RANK > 0) run inside the launcher's lock.
    launcher = int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
    lock = exclusive_lock(run_dir / LOCK_NAME, f"run directory {run_dir}") if launcher else contextlib.nullcontext()
    with lock:
        _check_run_config(run_dir, config)
        if launcher:
            write_json_atomic(run_dir / "run.json", config, sort_keys=True)
        _train_jobs(store, run_dir, folds, ensemble, max_minutes, config=config, hp=hp, zgrid=zgrid,
                    num_workers=num_workers, precision=precision, channels_last=channels_last,
                    accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                    threads=threads, progress=progress, tensorboard=tensorboard)
    return run_dir


LOCK_NAME = ".lock"


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


def _train_jobs(store, run_dir: Path, folds, ensemble: int, max_minutes, **member_kwargs) -> None:
    """Train every (fold, member) not finished yet, sharing the time budget among those left."""
    jobs = [(k, m) for k in folds for m in range(ensemble)]
    t0 = time.monotonic()
    for i, (k, m) in enumerate(jobs):
        member_dir = run_dir / f"fold{k}" / f"member{m}"
        if (member_dir / "model.pt").exists():
            continue
        budget = None
        if max_minutes is not None:
            todo = sum(1 for kk, mm in jobs[i:] if not (run_dir / f"fold{kk}" / f"member{mm}" / "model.pt").exists())
            budget = max(0.05, (max_minutes - (time.monotonic() - t0) / 60) / max(1, todo))
        train_member(store, k, m, member_dir, budget_minutes=budget, **member_kwargs)


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


def train_member(store, fold: int, member: int, member_dir: Path, *, config: dict, hp: dict, zgrid: ZGrid,
                 budget_minutes: float | None, num_workers, precision, channels_last, accelerator, devices,
                 num_nodes, strategy, threads, progress, tensorboard) -> Path:
    """Train (or resume) one ensemble member and write its ``model.pt``."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

    from deepdip.models.modelfile import net_config, save_model_file
    from deepdip.models.net import PhotozNet
    from deepdip.train.budget import TimeBudget
    from deepdip.train.data import make_datamodule
    from deepdip.train.module import PhotozModule

    _quiet_lightning()
    seed = member_seed(config["seed"], fold, member)
    n_proc = (devices if isinstance(devices, int) else 1) * num_nodes
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    # Reproducibility: on a CPU, two runs with the same seed, epochs and thread count give the same
    # weights bit for bit (oneDNN's kernels split work statically over the threads); another thread
    # count sums in another order, so the thread count is part of what makes a run repeatable. The
    # DataLoader workers only read images: the batch order (sampler), augmentation and dropout are
    # drawn in this process from (seed, epoch, step), so the number of workers changes nothing.
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // n_proc if on_cpu else torch.get_num_threads()))
    if num_workers is None:
        num_workers = 1 if on_cpu else 4
    if on_cpu:
        # Tiny gradients and Adam moments become denormal floats, which x86 cores process ~100x
        # slower; flushing them to zero changes nothing measurable in the result.
        torch.set_flush_denormal(True)
    train_rows, val_rows = split_train_val(store, fold, config["seed"], config["val_fraction"], config["max_val"],
                                           config.get("max_train"))

    L.seed_everything(seed, workers=True, verbose=False)
    h, w = store.image_shape
    net_kwargs = dict(model=config["model"], in_chans=store.n_bands, num_bins=zgrid.nbins, img_size=h,
                      n_extra=1, stretch=config["stretch"], apertures=config["apertures"],
                      model_kwargs=config["model_kwargs"])
    module = PhotozModule(net=net_kwargs, zcentres=zgrid.centres.tolist(), optimizer=hp["optimizer"], lr=hp["lr"],
                          weight_decay=hp["weight_decay"], schedule=hp["schedule"], max_epochs=hp["epochs"],
                          augment=config["augment"], seed=seed, channels_last=channels_last,
                          ema=float(hp.get("ema") or 0.0), lr_floor=float(hp.get("lr_floor", 0.01)))
    fit_normalizer(module.net.normalizer, store, train_rows, seed)
    data = make_datamodule(store, train_rows, val_rows, zgrid, batch_size=hp["batch_size"],
                           num_workers=num_workers, seed=seed)

    ckpt_dir = member_dir / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min",
                                 save_top_k=1, save_last=True, every_n_epochs=1, enable_version_counter=False)
    callbacks: list[Callback] = [checkpoint]
    if hp.get("patience"):   # None or 0: train the planned epochs (a deterministic length)
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=hp["patience"]))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    max_time = None
    if budget_minutes is not None:
        callbacks.append(TimeBudget(budget_minutes, hp["epochs"], plan_path=member_dir / "budget_plan.json"))
        # Hard stop a little after the planned end, in case an epoch runs slower than measured.
        max_time = {"seconds": int(60 * budget_minutes * 1.1 + 30)}
    # One CSV version per session (version_0, version_1 after a resume...): nothing is overwritten.
    loggers: list[Logger] = [CSVLogger(member_dir, name="logs")]
    if tensorboard:
        loggers.append(TensorBoardLogger(member_dir, name="logs", version="tb", default_hp_metric=False))
    trainer = L.Trainer(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=precision,
        max_epochs=hp["epochs"], max_time=max_time, callbacks=callbacks, logger=loggers,
        default_root_dir=member_dir, use_distributed_sampler=False, enable_progress_bar=progress,
        # deterministic=False: torch.use_deterministic_algorithms is not needed for bitwise
        # repeatable CPU runs (tests/test_train.py, tests/test_demo.py) and would refuse CUDA
        # kernels without a deterministic version; GPU runs are repeatable only up to cuDNN.
        enable_model_summary=False, num_sanity_val_steps=0, deterministic=False,
        log_every_n_steps=max(1, min(10, len(train_rows) // hp["batch_size"])),
    )
    resume = ckpt_dir / "last.ckpt"
    ckpt_path = str(resume) if _readable_checkpoint(resume) else None
    if ckpt_path:
        log.info("resuming fold %d member %d from %s", fold, member, resume)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)

    model_path = member_dir / "model.pt"
    if trainer.is_global_zero:
        best = checkpoint.best_model_path
        if best and Path(best).exists():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        net = PhotozNet(**net_kwargs)
        net.load_state_dict(module.eval_net.state_dict())   # the weight average when there is one
        cfg = net_config(net_kwargs, bands=store.bands, image_shape=store.image_shape, flux_unit=store.flux_unit,
                         survey=store.survey, zgrid=zgrid)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        info = dict(fold=int(fold), member=int(member), seed=int(seed), epochs=int(trainer.current_epoch),
                    best_val_loss=float(checkpoint.best_model_score) if checkpoint.best_model_score is not None
                    else float("nan"), n_train=int(len(train_rows)), n_val=int(len(val_rows)),
                    metrics=metrics, run=dict(config),
                    recipe={k: hp.get(k) for k in ("epochs", "patience", "ema", "lr_floor")},
                    threads=int(torch.get_num_threads()))
        save_model_file(model_path, net, cfg, info)
    trainer.strategy.barrier()
    return model_path


class _DropLightningAdverts(logging.Filter):
    """Lightning prints a promotional tip for its cloud logger on every fit; it is not our users' concern."""

    def filter(self, record):
        return "litlogger" not in record.getMessage()


_ADVERT_FILTER = _DropLightningAdverts()


def _quiet_lightning() -> None:
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_ADVERT_FILTER)  # idempotent
    # Emitted by Lightning's own pytree helper against newer torch; nothing we can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def _readable_checkpoint(path: Path) -> bool:
    """A kill can leave a truncated checkpoint; then start the member afresh rather than crash."""
    if not path.exists():
        return False
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return True
    except Exception as exc:  # noqa: BLE001 - any unreadable file means "cannot resume from it"
        log.warning("ignoring unreadable checkpoint %s (%s); starting this member afresh", path, exc)
        return False
