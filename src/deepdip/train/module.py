"""The LightningModule: the single home of loss, optimiser, schedule, augmentation and metric logging.

Loss: cross-entropy of the softmax over redshift bins against the bin of z_spec (Pasquet et al.
2019). The learning-rate schedule is stepped per batch over ``planned_epochs``, which the time-budget
callback may lower after measuring the first epoch, so the schedule still anneals within a budget.

Weight averaging (``ema`` > 0): an exponential moving average of the weights (and of the batch-norm
statistics) is updated after every optimiser step; validation, the best-checkpoint choice and the
saved model all use the averaged network. The raw weights of a network trained with a high peak
learning rate wander from batch to batch, and so did the validation loss from epoch to epoch (the
best epoch, and the test metrics, changed with small perturbations); the average over the last few
hundred steps is a smoother, usually better and better calibrated network, at the cost of one
``lerp`` per parameter per step.
"""

from __future__ import annotations

import math
from typing import cast

import lightning as L
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from deepdip.models.base import PhotozBackbone
from deepdip.models.dihedral import random_dihedral
from deepdip.models.net import PhotozNet
from deepdip.models.normalize import bands_present


class PhotozModule(L.LightningModule):
    """Train a :class:`PhotozNet`. All hyperparameters are keywords, saved with the checkpoint.

    Parameters
    ----------
    net : dict
        Keyword arguments of :class:`PhotozNet` (model name, in_chans, num_bins, img_size, ...).
    zcentres : list of float
        Bin centres, for the point estimate logged during validation.
    optimizer : {"adamw", "adam"}
    lr, weight_decay : float
    schedule : {"cosine", "step", "constant"}
        ``cosine``: linear warm-up over ``warmup`` of the steps then cosine decay to ``lr_floor``
        (a fraction of ``lr``; 0 anneals to zero by the last planned step);
        ``step``: Pasquet et al.'s division of the learning rate by 5 halfway.
    max_epochs : int
        Initial length of the schedule (see ``planned_epochs``).
    augment : bool
        Random dihedral orientation of each training image.
    seed : int
        Seeds augmentation (with the global step) and dropout (with the epoch).
    channels_last : bool
        Feed the backbone NHWC tensors (faster convolutions on some CPUs/GPUs).
    ema : float
        Decay per optimiser step of the moving average of the weights (0: none). The decay used at
        update ``n`` is ``min(ema, (1 + n) / (10 + n))``, so the average forgets the random
        initialisation within the first epoch even on short runs.
    freeze : {"none", "backbone"}
        ``backbone``: only the head's parameters are trained and the backbone runs in inference
        mode (fine-tuning as a linear probe; see :mod:`deepdip.train.finetune`).
    freeze_bn : bool
        Batch-norm layers stay in inference mode while training: their running statistics are
        those of the initial model.
    """

    zcentres: torch.Tensor   # bin centres (a non-persistent buffer)

    def __init__(self, *, net: dict, zcentres: list, optimizer: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 1e-4, schedule: str = "cosine", warmup: float = 0.03,
                 max_epochs: int = 10, augment: bool = True, seed: int = 0, channels_last: bool = False,
                 ema: float = 0.0, lr_floor: float = 0.01, freeze: str = "none", freeze_bn: bool = False,
                 band_dropout: float = 0.0, band_dropout_mode: str = "subset", weighted: bool = False,
                 label_sigma: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.net = PhotozNet(**net)
        self.register_buffer("zcentres", torch.tensor(zcentres, dtype=torch.float32), persistent=False)
        self.planned_epochs = int(max_epochs)
        if freeze == "backbone":
            self.net.requires_grad_(False)
            cast(PhotozBackbone, self.net.backbone).get_head().requires_grad_(True)
        elif freeze != "none":
            raise ValueError(f"unknown freeze mode {freeze!r}")
        if channels_last:
            # nn.Module.to accepts memory_format; torch's overloads omit it
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # The average is a submodule, so it travels in every checkpoint (a resumed run continues
        # the same average) but its parameters are not given to the optimiser (see
        # configure_optimizers). Its first update copies the network, normaliser included.
        self.ema = None
        if ema > 0:
            self.ema = AveragedModel(self.net, multi_avg_fn=_ema_update(float(ema)), use_buffers=True)
            self.ema.requires_grad_(False)   # no gradients: DDP must not expect them to be reduced

    @property
    def eval_net(self) -> PhotozNet:
        """The network validated, checkpointed as "best" and saved: the weight average when there is one."""
        return cast(PhotozNet, self.ema.module) if self.ema is not None else self.net

    def train(self, mode: bool = True):
        """Lightning's switch to training mode, except for what fine-tuning keeps fixed: a frozen
        backbone runs in inference mode (batch-norm statistics and dropout as in the initial model:
        the features a linear probe reads must be those of the model file), and ``freeze_bn``
        keeps every batch-norm layer's running statistics."""
        super().train(mode)
        if mode:
            self._keep_frozen_in_inference_mode()
        return self

    def on_train_epoch_start(self):
        # Lightning does not call train() when fitting starts (it records and restores each
        # submodule's mode around validation), so the frozen parts are set here, every epoch.
        self._keep_frozen_in_inference_mode()

    def _keep_frozen_in_inference_mode(self) -> None:
        if self.hparams.get("freeze", "none") == "backbone":
            head = cast(PhotozBackbone, self.net.backbone).get_head()
            in_head = {id(m) for m in head.modules()}
            for m in self.net.backbone.modules():
                if id(m) not in in_head:
                    m.eval()
        if self.hparams.get("freeze_bn"):
            for m in self.net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def forward(self, images, extra):
        return self.net(images, extra)

    # -- steps -----------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        images, extra, zbin, z, labels, weight = batch
        # Every random draw of a step is a function of (seed, step, rank) only, so a run resumed
        # from a checkpoint continues exactly as an unbroken one: the global RNG (dropout) is
        # reseeded here, and augmentation has its own generator.
        step_seed = (self.hparams.seed * 1_000_003 + self.global_step * 101 + self.global_rank) % 2**62
        torch.manual_seed(step_seed + 1)
        if self.hparams.augment:
            images = random_dihedral(images, torch.Generator().manual_seed(step_seed),
                                     channels_last=bool(self.hparams.channels_last))
        if self.hparams.get("band_dropout", 0.0) > 0:
            images = drop_bands(images, self.hparams.band_dropout, torch.Generator().manual_seed(step_seed + 2),
                                mode=self.hparams.get("band_dropout_mode", "subset"))
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits, props = self.net.forward_outputs(images, extra)
        loss = self._redshift_loss(logits.float(), zbin, weight, z)
        if props is not None:
            # Joint training: the redshift's cross-entropy plus the physical parameters' Gaussian
            # negative log-likelihoods (standardised units, one weight each: both are ~1 nat in size).
            prop_nll = self.net.property_head.nll(props, labels)
            self.log("train_prop_nll", prop_nll, on_step=False, on_epoch=True, batch_size=len(zbin))
            loss = loss + prop_nll
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(zbin))
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def _redshift_loss(self, logits: torch.Tensor, zbin: torch.Tensor, weight: torch.Tensor,
                       z: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the bin of z_spec, or with ``label_sigma`` against a Gaussian of
        sigma = label_sigma (1 + z_spec) discretised on the bins (soft labels: neighbouring bins share
        the galaxy, so sparsely populated bins at high z learn from their neighbours' galaxies);
        weighted by each galaxy's weight with ``weighted`` (``--reweight``: the weighted mean, so the
        loss keeps its scale)."""
        sigma = float(self.hparams.get("label_sigma", 0.0))
        if sigma > 0:
            target = soft_labels(z.to(logits.dtype), self.zcentres.to(logits.dtype), sigma)
            per = -(target * logits.log_softmax(dim=1)).sum(dim=1)
            if not self.hparams.get("weighted"):
                return per.mean()
        elif not self.hparams.get("weighted"):
            return F.cross_entropy(logits, zbin)
        else:
            per = F.cross_entropy(logits, zbin, reduction="none")
        w = weight.to(per.dtype)
        return (per * w).sum() / w.sum().clamp_min(1e-12)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.ema is not None:   # after the optimiser step of this batch
            self.ema.update_parameters(self.net)

    def validation_step(self, batch, batch_idx):
        images, extra, zbin, z, labels, weight = batch
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits, props = self.eval_net.forward_outputs(images, extra)
        logits = logits.float()
        # val_loss (which picks the best checkpoint) is the redshift's alone, with or without properties.
        loss = self._redshift_loss(logits, zbin, weight, z)
        if props is not None:
            self.log("val_prop_nll", self.eval_net.property_head.nll(props, labels), sync_dist=True,
                     batch_size=len(zbin))
        zphot = (logits.softmax(dim=1) * self.zcentres).sum(dim=1)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=len(zbin))
        self._val_dz.append(((zphot - z) / (1 + z)).detach().cpu())

    def on_validation_epoch_start(self):
        self._val_dz = []

    def on_validation_epoch_end(self):
        if not self._val_dz:
            return
        dz = torch.cat(self._val_dz)
        # Per-process statistics (exact in one process; an approximation under DDP, for monitoring only).
        sigma_mad = 1.4826 * (dz - dz.median()).abs().median()
        self.log("val_sigma_mad", sigma_mad, prog_bar=True, sync_dist=True)
        self.log("val_outlier_frac", (dz.abs() > 0.05).float().mean(), sync_dist=True)
        self._val_dz = []

    # -- optimiser and schedule ------------------------------------------------------------------
    def build_optimizer(self, net: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimiser of ``net``'s trainable parameters (this module's network, or a copy of it:
        the time-budget probe times steps of a throwaway copy with the very optimiser training uses)."""
        hp = self.hparams
        params = [p for p in net.parameters() if p.requires_grad]
        if hp["optimizer"] == "adam":
            return torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
        if hp["optimizer"] == "adamw":
            return torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
        raise ValueError(f"unknown optimizer {hp['optimizer']!r}")

    def configure_optimizers(self):
        opt = self.build_optimizer(self.net)
        self._steps_per_epoch = getattr(self, "_steps_per_epoch", 1)  # refreshed in on_train_start
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _lr_factor(self, step: int) -> float:
        total = max(1, self.planned_epochs * self._steps_per_epoch)
        t = min(1.0, step / total)
        if self.hparams["schedule"] == "constant":
            return 1.0
        if self.hparams["schedule"] == "step":
            return 1.0 if t < 0.5 else 0.2
        warm = self.hparams["warmup"]
        if t < warm:
            return (step + 1) / max(1.0, warm * total)
        floor = self.hparams.get("lr_floor", 0.01)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (t - warm) / max(1e-9, 1 - warm)))

    def on_train_start(self):
        # num_training_batches is known only once the loader exists (after configure_optimizers
        # when resuming), so refresh the schedule length here.
        self._steps_per_epoch = max(1, int(self.trainer.num_training_batches))

    def on_save_checkpoint(self, checkpoint):
        checkpoint["planned_epochs"] = self.planned_epochs

    def on_load_checkpoint(self, checkpoint):
        self.planned_epochs = int(checkpoint.get("planned_epochs", self.planned_epochs))


def soft_labels(z: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """``[N, K]`` targets: a Gaussian of width ``sigma (1 + z)`` around each ``z`` at the bin centres,
    normalised over the bins; never narrower than half a bin (then it covers the galaxy's bin and its
    neighbours), so that the target stays a smooth function of z."""
    width = centres[1] - centres[0] if len(centres) > 1 else centres.new_tensor(1.0)
    s = torch.maximum(sigma * (1 + z), 0.5 * width)[:, None]
    logq = -0.5 * ((centres[None, :] - z[:, None]) / s) ** 2
    return logq.softmax(dim=1)


def drop_bands(images: torch.Tensor, p: float, generator: torch.Generator, mode: str = "subset") -> torch.Tensor:
    """Band dropout, by zeroing the pixels of the bands a galaxy loses: the way a store holds a missing
    band, and what the band-mask network reads (see :func:`deepdip.models.normalize.bands_present`).
    A galaxy always keeps one of the bands it has.

    - ``mode="subset"``: each galaxy, with probability ``p``, loses a random subset of the bands it has
      (the number lost uniform in 1 .. bands it has - 1, which ones uniform);
    - ``mode="independent"``: each band it has is lost with probability ``p``, independently (if that
      would take them all, one of them, at random, is kept). "Exactly this band missing" then comes
      with probability p (1-p)^(B-1) instead of p / (B (B-1)): the patterns a survey has most.
    """
    n, nb = images.shape[:2]
    present = bands_present(images).bool()                                          # [N, B]
    have = present.sum(1)
    if mode == "independent":
        drop = present & (torch.rand(n, nb, generator=generator) < p)
        emptied = (drop == present).all(1) & (have > 0)
        if emptied.any():    # keep the present band with the largest key
            keys = torch.rand(n, nb, generator=generator).masked_fill(~present, -1.0)
            keep = torch.nn.functional.one_hot(keys.argmax(1), nb).bool()
            drop = torch.where(emptied[:, None], drop & ~keep, drop)
    elif mode == "subset":
        hit = (torch.rand(n, generator=generator) < p) & (have > 1)
        # how many to drop: uniform in 1 .. have-1; which: the ones with the smallest random keys
        n_drop = (torch.rand(n, generator=generator) * (have - 1).clamp_min(1)).floor().long() + 1
        keys = torch.rand(n, nb, generator=generator).masked_fill(~present, 2.0)      # absent bands never "drop"
        rank = keys.argsort(dim=1).argsort(dim=1)                                       # 0 = smallest key
        drop = hit[:, None] & present & (rank < n_drop[:, None])
    else:
        raise ValueError(f"band dropout mode {mode!r}: expected subset or independent")
    if not drop.any():
        return images
    return images * (~drop).to(images.dtype)[:, :, None, None]


def _ema_update(decay: float):
    """``AveragedModel`` multi-average function: EMA with ``decay``, warmed up over the first updates.

    Floating tensors move towards the network's by ``1 - d`` with ``d = min(decay, (1+n)/(10+n))``
    at update ``n``; integer buffers (batch-norm's ``num_batches_tracked``) take the network's value.
    """
    @torch.no_grad()
    def update(averaged: list, current: list, n_averaged) -> None:
        n = float(n_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        for a, c in zip(averaged, current, strict=True):
            if a.is_floating_point():
                a.lerp_(c, 1.0 - d)
            else:
                a.copy_(c)

    return update
