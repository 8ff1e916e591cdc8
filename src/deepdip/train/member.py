"""One ensemble member: a resumable Lightning run that ends in a model file.

``RUN/fold{K}/member{M}/`` holds ``model.pt`` (the finished member), ``checkpoints/`` (last.ckpt
to resume, best.ckpt with the lowest validation loss), ``logs/`` (CSV, one version per session,
and TensorBoard) and, for a short time budget, ``budget_plan.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from deepdip._lightning import quiet_lightning
from deepdip.train.config import TrainConfig
from deepdip.train.finetune import InitModels
from deepdip.train.run import fit_normalizer, fit_property_scaler, member_seed, network_kwargs, split_train_val
from deepdip.zgrid import ZGrid

log = logging.getLogger(__name__)


def train_member(store, fold: int, member: int, member_dir: Path, cfg: TrainConfig, *, config: dict, hp: dict,
                 zgrid: ZGrid, budget_minutes: float | None, init: InitModels | None = None) -> Path:
    """Train (or resume) one ensemble member and write its ``model.pt``.

    ``cfg`` gives the hardware settings, ``config`` (run.json) and ``hp`` (the model's recipe with
    the user's overrides) what is trained; ``init`` the model files a fine-tuning run starts from.
    """
    import lightning as L
    from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

    from deepdip.hardware import default_loader_workers, image_cache_bytes, usable_cores
    from deepdip.models.modelfile import net_config, save_model_file
    from deepdip.models.net import PhotozNet
    from deepdip.train.budget import TimeBudget
    from deepdip.train.data import make_datamodule
    from deepdip.train.finetune import load_initial_weights, transfer_weights
    from deepdip.train.module import PhotozModule
    from deepdip.train.throughput import TrainThroughput

    quiet_lightning()
    devices, accelerator, num_workers = cfg.devices, cfg.accelerator, cfg.num_workers
    seed = member_seed(config["seed"], fold, member)
    # Training processes on this machine: they share its cores (the other nodes' processes have their own).
    local_procs = devices if isinstance(devices, int) else 1
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    # Reproducibility: on a CPU, two runs with the same seed, epochs and thread count give the same
    # weights bit for bit (oneDNN's kernels split work statically over the threads); another thread
    # count sums in another order, so the thread count is part of what makes a run repeatable. The
    # DataLoader workers only read images: the batch order (sampler), augmentation and dropout are
    # drawn in this process from (seed, epoch, step), so the number of workers changes nothing.
    # The cores counted are those this process may run on (its affinity), as for the loader default:
    # in a container limited to 2 of a host's 64 cores, 64 threads would fight over 2.
    torch.set_num_threads(cfg.threads or (max(1, usable_cores() // local_procs) if on_cpu else torch.get_num_threads()))
    if num_workers is None:
        num_workers = default_loader_workers(on_cpu, local_procs)
    if on_cpu:
        # Tiny gradients and Adam moments become denormal floats, which x86 cores process ~100x
        # slower; flushing them to zero changes nothing measurable in the result.
        torch.set_flush_denormal(True)
    train_rows, val_rows = split_train_val(store, fold, config["seed"], config["val_fraction"], config["max_val"],
                                           config.get("max_train"), config.get("labelled"))
    weights = None
    if config.get("reweight", "none") != "none":
        # One estimate over training and validation galaxies together (the validation loss, which picks the
        # best checkpoint, is weighted the same way), against every galaxy of the training folds.
        from deepdip.selection import training_weights

        both = np.concatenate([train_rows, val_rows])
        w = training_weights(config["reweight"], store, both, store.split_rows("train", fold=fold),
                             store.column("z_spec", both), zgrid)
        weights = (w[:len(train_rows)], w[len(train_rows):])

    L.seed_everything(seed, workers=True, verbose=False)
    net_kwargs = network_kwargs(store, config, init)
    module = PhotozModule(net=net_kwargs, zcentres=zgrid.centres.tolist(), optimizer=hp["optimizer"], lr=hp["lr"],
                          weight_decay=hp["weight_decay"], schedule=hp["schedule"], max_epochs=hp["epochs"],
                          augment=config["augment"], seed=seed, channels_last=cfg.channels_last,
                          ema=float(hp.get("ema") or 0.0), lr_floor=float(hp.get("lr_floor", 0.01)),
                          freeze=init.freeze if init else "none", freeze_bn=bool(init and init.freeze_bn),
                          band_dropout=float(config.get("band_dropout", 0.0)),
                          band_dropout_mode=str(config.get("band_dropout_mode", "subset")),
                          weighted=config.get("reweight", "none") != "none",
                          label_sigma=float(config.get("label_sigma", 0.0)))
    if init and init.transfer:
        # Another survey's model: what carries over, and the normaliser fitted on this store.
        fit_normalizer(module.net.normalizer, store, train_rows, seed)
        report = transfer_weights(module.net, init.path_for(member), store.bands)
        log.info("transfer from %s: %d tensors copied, %s mapped band by band, %d fresh", init.path_for(member),
                 len(report["copied"]), ", ".join(report["mapped"]) or "none", len(report["fresh"]))
    elif init:
        # Weights and normaliser of the initial model (a resumed member then loads its checkpoint over them).
        load_initial_weights(module.net, init.path_for(member))
    else:
        fit_normalizer(module.net.normalizer, store, train_rows, seed)
        fit_property_scaler(module.net, store, train_rows)
    augment = None
    if config.get("augment_store"):   # e.g. generated galaxies for the gap of a spectroscopic selection
        from deepdip.selection import augment_rows

        augment = augment_rows(store, config["augment_store"], config.get("augment_labelled"), pixels=True)
    # Every process that reads batches keeps its own cache: each loader worker of each of this
    # machine's training processes.
    cache_bytes = image_cache_bytes(max(1, num_workers) * local_procs)
    data = make_datamodule(store, train_rows, val_rows, zgrid, batch_size=hp["batch_size"],
                           num_workers=num_workers, seed=seed, pin_memory=not on_cpu,
                           properties=net_kwargs.get("properties", ()), weights=weights, augment=augment,
                           cache_bytes=cache_bytes)

    ckpt_dir = member_dir / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min",
                                 save_top_k=1, save_last=True, every_n_epochs=1, enable_version_counter=False)
    callbacks: list[Callback] = [checkpoint, TrainThroughput(member_dir / "throughput.json", settings={
        "loader_workers": int(num_workers), "threads": int(torch.get_num_threads()),
        "image_cache_bytes": int(cache_bytes)})]
    if hp.get("patience"):   # None or 0: train the planned epochs (a deterministic length)
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=hp["patience"]))
    if cfg.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    max_time = None
    if budget_minutes is not None:
        callbacks.append(TimeBudget(budget_minutes, hp["epochs"], plan_path=member_dir / "budget_plan.json"))
        # Hard stop a little after the planned end, in case an epoch runs slower than measured.
        max_time = {"seconds": int(60 * budget_minutes * 1.1 + 30)}
    # One CSV version per session (version_0, version_1 after a resume...): nothing is overwritten.
    loggers: list[Logger] = [CSVLogger(member_dir, name="logs")]
    if cfg.tensorboard:
        loggers.append(TensorBoardLogger(member_dir, name="logs", version="tb", default_hp_metric=False))
    trainer = L.Trainer(
        accelerator=accelerator, devices=devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        precision=cfg.precision,  # type: ignore[arg-type]  # checked against Lightning's own list
        max_epochs=hp["epochs"], max_time=max_time, callbacks=callbacks, logger=loggers,
        default_root_dir=member_dir, use_distributed_sampler=False, enable_progress_bar=cfg.progress,
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
        calibration_report = None
        if config.get("recalibrate") == "pit":
            from deepdip.train.calibrate import fit_pit_calibration

            calibration_report = fit_pit_calibration(net, store, val_rows, zgrid, seed=seed)
            net_kwargs = {**net_kwargs, "pit_calibration": True}
        file_config = net_config(net_kwargs, bands=store.bands, image_shape=store.image_shape,
                                 flux_unit=store.flux_unit, survey=store.survey, zgrid=zgrid)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        info = dict(fold=int(fold), member=int(member), seed=int(seed), epochs=int(trainer.current_epoch),
                    best_val_loss=float(checkpoint.best_model_score) if checkpoint.best_model_score is not None
                    else float("nan"), n_train=int(len(train_rows)), n_val=int(len(val_rows)),
                    n_augmented=int(len(augment[1])) if augment else 0,
                    metrics=metrics, run=dict(config),
                    recipe={k: hp.get(k) for k in ("epochs", "patience", "ema", "lr_floor")},
                    threads=int(torch.get_num_threads()), precision=str(cfg.precision))
        if calibration_report is not None:
            info["pit_calibration"] = calibration_report
        save_model_file(model_path, net, file_config, info)
    trainer.strategy.barrier()
    return model_path


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
