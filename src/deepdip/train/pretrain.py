"""Self-supervised pretraining of a deepdip backbone on every cutout of a store, labelled or not (issue 15).

SimCLR (Chen et al. 2020): two random views of each galaxy go through the backbone and a projection MLP;
the NT-Xent loss pulls the two views of a galaxy together and pushes the other galaxies of the batch away.
Hayat et al. (2021) used the same contrastive loss on SDSS cutouts in its momentum-encoder form (MoCo: the
negatives come from a queue of earlier batches, many negatives at a small batch; their released loader keeps
``encoder_q`` weights, github.com/mahayat/ssl-sky-surveys), with ~1.2 M unlabelled galaxies; here the
negatives are the batch's other galaxies only. The views differ by what changes a galaxy's image but not its
redshift (astronomy augmentations, :func:`astro_views`):

- one of the 8 dihedral orientations;
- a sub-pixel shift of up to ``shift`` pixels (bilinear);
- PSF broadening: a Gaussian blur of up to ``blur`` pixels (sigma);
- noise at the survey's depth: Gaussian noise of up to ``noise`` x the band's sky sigma (the normaliser's
  robust estimate) added, i.e. the galaxy observed up to that much shallower;
- a change of Galactic reddening: every band dimmed by 10^(-0.4 A_b dE) with dE uniform in
  [-``ebv_jitter``/2, ``ebv_jitter``], E(B-V) moved by the same dE (the network reads it).

The NT-Xent loss is the ten lines of :func:`nt_xent` (the normalised-temperature cross-entropy of SimCLR,
as ``lightly.loss.NTXentLoss`` computes it): a dependency such as ``lightly`` would bring torchvision and
its own Lightning for what is one function here.

The result is a deepdip model file (``OUT/model.pt``: the normaliser fitted on the store, the pretrained
backbone, the head freshly initialised) that ``deepdip train --init-model OUT/model.pt`` fine-tunes like any
other; ``OUT/checkpoints/last.ckpt`` resumes an interrupted run, and the same command on the same store
gives the same weights (every random draw is a function of seed and step).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepdip.errors import DeepdipError, check_number

DEFAULTS = dict(epochs=20, batch_size=128, lr=1e-3, weight_decay=1e-4, temperature=0.2, projection_dim=64,
                shift=1.0, blur=1.0, noise=1.0, ebv_jitter=0.05)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float, *, all_a: torch.Tensor | None = None,
            all_b: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
    """SimCLR's loss for ``[n, D]`` projections of two views: each view's positive is the other view of
    its galaxy, its negatives every other view of the batch (cosine similarity / temperature).

    Under DDP, ``all_a``, ``all_b`` are the projections of every process's batch (gathered, with their
    gradients) and ``offset`` where this process's rows start in them: the local views are contrasted
    with the global batch, as if one process had seen it (the mean over processes of this loss is the
    single-process loss of the concatenated batch; ``tests/test_pretrain.py``)."""
    all_a = a if all_a is None else all_a
    all_b = b if all_b is None else all_b
    n, total = len(a), len(all_a)
    queries = F.normalize(torch.cat([a, b]), dim=1)                   # [2n, D]
    keys = F.normalize(torch.cat([all_a, all_b]), dim=1)              # [2N, D]
    sim = queries @ keys.t() / temperature
    mine = torch.arange(n, device=a.device) + offset
    own = torch.cat([mine, mine + total])                             # each query's own column
    positive = torch.cat([mine + total, mine])                        # the other view of its galaxy
    sim = sim.masked_fill(F.one_hot(own, 2 * total).bool(), float("-inf"))
    return F.cross_entropy(sim, positive)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each image by its own ``sigma`` [N] (pixels; 0: unchanged), separable, 7 taps."""
    n, b, h, w = x.shape
    r = torch.arange(-3, 4, dtype=x.dtype, device=x.device)
    s = sigma.clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (r[None] / s) ** 2)
    k = k / k.sum(1, keepdim=True)                                              # [N, 7]
    k = torch.where(sigma[:, None] > 1e-3, k, (r[None] == 0).to(x.dtype))
    kx = k.repeat_interleave(b, 0)[:, None, None, :]                            # [N*B, 1, 1, 7]
    flat = x.reshape(1, n * b, h, w)
    flat = F.conv2d(F.pad(flat, (3, 3, 0, 0), mode="reflect"), kx, groups=n * b)
    flat = F.conv2d(F.pad(flat, (0, 0, 3, 3), mode="reflect"), kx.transpose(2, 3), groups=n * b)
    return flat.reshape(n, b, h, w)


def astro_views(images: torch.Tensor, ebv: torch.Tensor, sky_sigma: torch.Tensor, ext_coeffs: torch.Tensor,
                generator: torch.Generator, *, shift: float, blur: float, noise: float, ebv_jitter: float):
    """One random view of each galaxy (see the module docstring): raw fluxes ``[N, B, H, W]`` and E(B-V)
    ``[N, 1]`` in, the same out. Every draw comes from ``generator``."""
    from deepdip.models.dihedral import random_dihedral

    n = len(images)
    x = random_dihedral(images, generator)
    if shift > 0:
        d = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift
        h, w = x.shape[-2:]
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2], theta[:, 1, 2] = 2 * d[:, 0] / w, 2 * d[:, 1] / h
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if blur > 0:
        x = _blur(x, torch.rand(n, generator=generator).to(x.dtype) * blur)
    if noise > 0:
        amp = torch.rand(n, 1, 1, 1, generator=generator).to(x.dtype) * noise
        x = x + amp * sky_sigma.view(1, -1, 1, 1) * torch.randn(x.shape, generator=generator).to(x.dtype)
    if ebv_jitter > 0:
        de = (torch.rand(n, 1, generator=generator) * 1.5 - 0.5) * ebv_jitter
        x = x * (10 ** (-0.4 * ext_coeffs.view(1, -1) * de)).to(x.dtype)[:, :, None, None]
        ebv = (ebv + de.to(ebv.dtype)).clamp_min(0.0)
    return x, ebv


class PretrainModule(nn.Module):
    """The network being pretrained (a :class:`~deepdip.models.net.PhotozNet`) and its projection MLP."""

    def __init__(self, net, projection_dim: int):
        super().__init__()
        self.net = net
        # Only the features are trained: the head (fresh in the encoder file) takes no part in the loss,
        # and DDP refuses parameters that get no gradient.
        net.backbone.head.requires_grad_(False)
        width = net.backbone.num_features
        self.projector = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, projection_dim))

    def forward(self, images: torch.Tensor, ebv: torch.Tensor) -> torch.Tensor:
        x, _ = self.net.normalizer(images, ebv)
        return self.projector(self.net.backbone.forward_features(x))


def pretrain(store, out, *, model: str = "compact", seed: int = 0, model_kwargs: dict | None = None,
             apertures="auto", threads: int | None = None, progress: bool = True, accelerator="auto",
             devices=1, num_nodes: int = 1, strategy="auto", **settings) -> Path:
    """Pretrain ``model`` on every galaxy of ``store`` into the folder ``out`` (see the module docstring).

    ``settings``: any of :data:`DEFAULTS` (epochs, batch_size, lr, weight_decay, temperature,
    projection_dim, shift, blur, noise, ebv_jitter). Rerunning with the same settings resumes or, when
    finished, returns at once; other settings in a folder that has trained are refused.
    ``accelerator``, ``devices``, ``num_nodes``, ``strategy``: Lightning's, as for ``deepdip train``;
    ``strategy="ddp"`` with ``devices=N`` runs N processes, each on its share of the galaxies with a
    batch of ``batch_size`` (the loss contrasts every view with all N batches).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from deepdip._lightning import is_launcher, quiet_lightning
    from deepdip.atomic import exclusive_lock, write_json_atomic
    from deepdip.extinction import store_extinction_coefficients
    from deepdip.models import model_defaults
    from deepdip.models.modelfile import net_config, save_model_file
    from deepdip.models.net import PhotozNet
    from deepdip.options import check_accelerator, check_devices, check_strategy
    from deepdip.photometry.catalog import store_filters
    from deepdip.store import CutoutStore
    from deepdip.store.checks import check_rows
    from deepdip.train.config import MODEL_DEFAULTS
    from deepdip.train.data import StoreDataset
    from deepdip.train.run import fit_normalizer, resolve_apertures, resolve_zgrid

    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"pretrain() got unknown settings: {', '.join(unknown)}")
    hp = {**DEFAULTS, **settings}
    for key in ("epochs", "batch_size", "projection_dim"):
        check_number(f"--{key.replace('_', '-')}", hp[key], minimum=1 if key != "batch_size" else 2, integer=True,
                     allow_none=False)
    for key in ("lr", "temperature"):
        check_number(f"--{key}", hp[key], above=0, allow_none=False)
    for key in ("weight_decay", "shift", "blur", "noise", "ebv_jitter"):
        check_number(f"--{key.replace('_', '-')}", hp[key], minimum=0, allow_none=False)
    check_number("--seed", seed, minimum=0, integer=True, allow_none=False)
    check_number("--num-nodes", num_nodes, minimum=1, integer=True, allow_none=False)
    check_accelerator("--accelerator", accelerator)
    check_devices("--devices", devices)
    check_strategy("--strategy", strategy)
    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    rows = np.arange(len(store))
    if len(rows) < hp["batch_size"]:
        raise DeepdipError(f"the store holds {len(rows)} galaxies, fewer than one batch of {hp['batch_size']}")
    check_rows(store, rows, what="the rows to pretrain on")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DeepdipError(f"--out {out} is a file; pretraining writes a folder")
    if model not in MODEL_DEFAULTS:
        raise DeepdipError(f"unknown model {model!r}; available: {', '.join(MODEL_DEFAULTS)}")
    zgrid = resolve_zgrid(store)
    net_kwargs = dict(model=model, in_chans=store.n_bands, num_bins=zgrid.nbins, img_size=store.image_shape[0],
                      n_extra=1, stretch="asinh", apertures=resolve_apertures(
                          MODEL_DEFAULTS[model]["apertures"] if apertures == "auto" else apertures,
                          store.image_shape[0]),
                      model_kwargs={**model_defaults(model), **(model_kwargs or {})})
    config = {"kind": "pretrain", "method": "simclr", "store": str(store.path), "seed": int(seed),
              "bands": list(store.bands), "image_shape": list(store.image_shape), "net": net_kwargs, **hp}
    quiet_lightning()
    if threads:
        torch.set_num_threads(int(threads))
    torch.set_flush_denormal(True)
    out.mkdir(parents=True, exist_ok=True)
    # The process the user started holds the folder's lock; DDP workers Lightning or torchrun start run
    # inside it (as in deepdip train).
    launcher = is_launcher()
    lock = exclusive_lock(out / ".lock", f"pretraining folder {out}") if launcher else contextlib.nullcontext()
    with lock:
        recorded = out / "pretrain.json"
        if recorded.exists():
            old = json.loads(recorded.read_text())
            if old != json.loads(json.dumps(config)) and any(out.glob("checkpoints/*.ckpt")):
                diff = sorted(k for k in set(old) | set(config)
                              if json.dumps(old.get(k), sort_keys=True) != json.dumps(config.get(k), sort_keys=True))
                raise DeepdipError(f"{out} holds a pretraining run with other settings ({', '.join(diff)}); "
                                   "use another --out, or the same options to continue it")
        if (out / "model.pt").exists() and recorded.exists() and json.loads(recorded.read_text()) == json.loads(
                json.dumps(config)):
            return out
        if launcher:
            write_json_atomic(recorded, config, sort_keys=True)

        L.seed_everything(seed, workers=True, verbose=False)
        net = PhotozNet(**net_kwargs)
        fit_normalizer(net.normalizer, store, rows, seed)
        ext = torch.as_tensor(store_extinction_coefficients(store, store_filters(store)), dtype=torch.float32)
        module = _LitPretrain(PretrainModule(net, hp["projection_dim"]), hp, seed, ext,
                              StoreDataset(store, rows, zgrid))
        # The newest epoch's checkpoint, always named last.ckpt (monitor=None: top-1 by recency).
        ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1, monitor=None,
                               every_n_epochs=1, enable_version_counter=False)
        trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                            max_epochs=hp["epochs"], callbacks=[ckpt], logger=CSVLogger(out, name="logs"),
                            enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                            log_every_n_steps=max(1, min(10, len(rows) // hp["batch_size"])),
                            use_distributed_sampler=False)
        last = out / "checkpoints" / "last.ckpt"
        trainer.fit(module, ckpt_path=str(last) if last.exists() else None)
        if not trainer.is_global_zero:
            return out
        info = {"pretrain": {k: v for k, v in config.items() if k != "net"},
                "epochs": int(trainer.current_epoch), "final_loss": float(trainer.callback_metrics.get(
                    "pretrain_loss", torch.tensor(float("nan"))))}
        save_model_file(out / "model.pt", module.model.net, net_config(
            net_kwargs, bands=store.bands, image_shape=store.image_shape, flux_unit=store.flux_unit,
            survey=store.survey, zgrid=zgrid), info)
    return out


class _LitPretrain(L.LightningModule):
    def __init__(self, model: PretrainModule, hp: dict, seed: int, ext_coeffs: torch.Tensor, dataset):
        super().__init__()
        self.model, self.hp, self.seed, self.dataset = model, hp, int(seed), dataset
        self.register_buffer("ext_coeffs", ext_coeffs, persistent=False)

    def train_dataloader(self):
        from deepdip.train.data import make_loader

        # Under DDP each process reads its own share of the rows (the sampler of deepdip train).
        return make_loader(self.dataset, batch_size=self.hp["batch_size"], shuffle=True, seed=self.seed,
                           num_workers=0, drop_last=True, rank=self.global_rank, world_size=self.trainer.world_size)

    def _contrast(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        world = self.trainer.world_size
        if world == 1:
            return nt_xent(a, b, float(self.hp["temperature"]))
        from torch.distributed.nn.functional import all_gather  # gathers with gradients

        all_a, all_b = torch.cat(all_gather(a)), torch.cat(all_gather(b))
        return nt_xent(a, b, float(self.hp["temperature"]), all_a=all_a, all_b=all_b,
                       offset=self.global_rank * len(a))

    def training_step(self, batch, batch_idx):
        images, extra = batch[0], batch[1]
        # Every draw is a function of (seed, step, rank): a resumed run continues as an unbroken one.
        step_seed = (self.seed * 1_000_003 + self.global_step * 101 + self.global_rank) % 2**62
        torch.manual_seed(step_seed + 1)
        g = torch.Generator().manual_seed(step_seed)
        sky = self.model.net.normalizer.scale
        kw = {k: float(self.hp[k]) for k in ("shift", "blur", "noise", "ebv_jitter")}
        a = astro_views(images, extra, sky, self.ext_coeffs, g, **kw)
        b = astro_views(images, extra, sky, self.ext_coeffs, g, **kw)
        loss = self._contrast(self.model(*a), self.model(*b))
        self.log("pretrain_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(images))
        return loss

    def configure_optimizers(self):
        trained = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trained, lr=self.hp["lr"], weight_decay=self.hp["weight_decay"])
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
