"""Fit training into a wall-clock budget without cutting the learning-rate schedule short.

After each epoch the callback measures the epoch time (validation included), works out how many
epochs fit in what is left of the budget, and sets both the trainer's ``max_epochs`` and the
module's ``planned_epochs`` (the length of the LR schedule) to it, so the schedule anneals by the
end of the budget. Time spent before a kill counts: the state travels in the checkpoint.

A budget shorter than a few epochs (the paper's network on a CPU: one epoch of 20,000 galaxies is
13 minutes here) would otherwise end mid-epoch, before any validation, checkpoint or annealing.
So before training, the callback times a few training steps and, if fewer than ``MIN_EPOCHS``
epochs would fit, shortens each epoch to a fixed number of batches (``limit_train_batches``: each
epoch still draws its batches from a fresh shuffle of the whole training set) and validates on a
subset small enough to cost about ``VAL_SHARE`` of an epoch. The plan is written to a file beside
the checkpoints so a resumed run keeps the same epoch length.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

MIN_EPOCHS = 6        # validations / checkpoints / LR-schedule resolution a budget should hold
STEP_OVERHEAD = 1.4   # deepdip train runs ~1.3-1.4x slower than the bare step (loader, logging, Lightning)
VAL_SHARE = 0.1       # validation should cost about this fraction of an epoch
MIN_VAL_BATCHES = 2


class TimeBudget(L.Callback):
    """Plan the number of epochs so training ends within ``minutes`` (rank 0 decides, all follow).

    ``plan_path``: where the epoch-length plan for short budgets is kept (None: never shorten epochs).
    """

    def __init__(self, minutes: float, max_epochs: int, plan_path=None):
        self.budget_s = 60.0 * float(minutes)
        self.max_epochs = int(max_epochs)
        self.plan_path = Path(plan_path) if plan_path is not None else None
        self.elapsed_s = 0.0        # budget used, across resumes
        self.epoch_s: list[float] = []
        self.planned: int | None = None
        self._t_start = None

    # -- epoch length, decided once before training ----------------------------------------------
    def setup(self, trainer, pl_module, stage):
        if stage != "fit" or self.plan_path is None:
            return
        plan = _read_plan(self.plan_path)   # resumed: the same epoch length as before the kill
        if plan is None:
            plan = self._make_plan(trainer, pl_module)
            plan = trainer.strategy.broadcast(plan, src=0)
            if trainer.is_global_zero:
                from deepdip.atomic import write_json_atomic

                write_json_atomic(self.plan_path, plan)
        if plan.get("train_batches"):
            trainer.limit_train_batches = int(plan["train_batches"])
            trainer.limit_val_batches = int(plan["val_batches"])
            trainer.log_every_n_steps = max(1, min(trainer.log_every_n_steps, int(plan["train_batches"])))
            log.info("budget of %.1f min holds < %d full epochs (%.0f s each): epochs of %d batches, "
                     "validation on %d batches", self.budget_s / 60, MIN_EPOCHS, plan["full_epoch_s"],
                     plan["train_batches"], plan["val_batches"])

    def _make_plan(self, trainer, pl_module) -> dict:
        dm = trainer.datamodule
        train_set, val_set = dm.train_set, dm.val_set
        batch_size = int(dm.batch_size)
        world = max(1, trainer.world_size)
        n_train_batches = max(1, math.ceil(len(train_set) / world / batch_size))
        n_val_batches = max(1, math.ceil(len(val_set) / world / (2 * batch_size)))
        step_s = measure_step_seconds(pl_module.net, train_set, batch_size, pl_module.hparams.channels_last,
                                      trainer.strategy.root_device, make_optimizer=pl_module.build_optimizer)
        return plan_epochs(self.budget_s, n_train_batches, n_val_batches, step_s)

    # -- number of epochs, re-planned after each -------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        self._t_start = time.monotonic()
        self._t_mark = self._t_start
        if self.planned is not None:  # resumed: keep the plan made before the kill
            trainer.fit_loop.max_epochs = self.planned
            pl_module.planned_epochs = self.planned

    def on_train_epoch_end(self, trainer, pl_module):
        now = time.monotonic()
        self.elapsed_s += now - self._t_mark
        self.epoch_s.append(now - self._t_mark)
        self._t_mark = now
        done = trainer.current_epoch + 1
        # The first epoch carries start-up costs (workers, caches): prefer later epochs once seen.
        recent = self.epoch_s[1:] or self.epoch_s
        per_epoch = sum(recent[-3:]) / len(recent[-3:])
        fits = done + math.floor(max(0.0, self.budget_s - self.elapsed_s) / max(per_epoch, 1e-6))
        planned = max(done, min(self.max_epochs, fits))
        planned = int(trainer.strategy.broadcast(planned, src=0))
        self.planned = planned
        trainer.fit_loop.max_epochs = planned
        pl_module.planned_epochs = planned
        pl_module.log("planned_epochs", float(planned))

    def state_dict(self):
        return {"elapsed_s": self.elapsed_s, "epoch_s": list(self.epoch_s), "planned": self.planned}

    def load_state_dict(self, state):
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self.epoch_s = list(state.get("epoch_s", []))
        self.planned = state.get("planned")


def _read_plan(path: Path) -> dict | None:
    """The saved plan, or None when there is none or it cannot be read (then a new one is made)."""
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and "train_batches" in plan else None


def plan_epochs(budget_s: float, n_train_batches: int, n_val_batches: int, step_s: float) -> dict:
    """Epoch and validation lengths (in batches) for a budget; ``train_batches`` None = full epochs.

    ``step_s`` is the bare training step; an inference batch (twice the size) is taken as 2/3 of
    it (forward only, about a third of the step, per image).
    """
    step = step_s * STEP_OVERHEAD
    val_step = step * 2 / 3
    full_epoch_s = n_train_batches * step + n_val_batches * val_step
    plan = {"budget_s": budget_s, "step_s": step_s, "full_epoch_s": full_epoch_s,
            "train_batches": None, "val_batches": None}
    if MIN_EPOCHS * full_epoch_s <= budget_s:
        return plan
    epoch_s = budget_s / MIN_EPOCHS
    train_batches = max(1, min(n_train_batches, math.floor(epoch_s * (1 - VAL_SHARE) / step)))
    val_batches = max(MIN_VAL_BATCHES, math.floor(epoch_s * VAL_SHARE / val_step))
    plan.update(train_batches=int(train_batches), val_batches=int(min(n_val_batches, val_batches)))
    return plan


def measure_step_seconds(net: torch.nn.Module, dataset, batch_size: int, channels_last: bool, device,
                         steps: int = 3, make_optimizer=None) -> float:
    """Fastest of ``steps - 1`` timed training steps (forward, backward, optimiser) of a throwaway copy.

    ``make_optimizer(net)``: the training module's own (``PhotozModule.build_optimizer``), so the
    probe times the optimiser and the trainable parameters (all, or the head only when fine-tuning
    with a frozen backbone) that training will step; default AdamW over every parameter.
    """
    images, extra, zbin = dataset.__getitems__(list(range(min(batch_size, len(dataset)))))[:3]
    net = copy.deepcopy(net).to(device).train()
    opt = make_optimizer(net) if make_optimizer is not None else torch.optim.AdamW(net.parameters(), lr=1e-6)
    images, extra, zbin = images.to(device), extra.to(device), zbin.to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    rng_state = torch.get_rng_state()  # dropout draws here must not shift the training run's
    times = []
    for _ in range(max(2, steps)):
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(images, extra).float(), zbin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    torch.set_rng_state(rng_state)
    return min(times[1:]) * len(images) / batch_size if len(images) else 0.0
