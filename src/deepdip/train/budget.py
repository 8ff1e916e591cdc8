"""Fit training into a wall-clock budget without cutting the learning-rate schedule short.

After each epoch the callback measures the epoch time (validation included), works out how many
epochs fit in what is left of the budget, and sets both the trainer's ``max_epochs`` and the
module's ``planned_epochs`` (the length of the LR schedule) to it, so the schedule anneals by the
end of the budget. Time spent before a kill counts: the state travels in the checkpoint.
"""

from __future__ import annotations

import math
import time

import lightning as L


class TimeBudget(L.Callback):
    """Plan the number of epochs so training ends within ``minutes`` (rank 0 decides, all follow)."""

    def __init__(self, minutes: float, max_epochs: int):
        self.budget_s = 60.0 * float(minutes)
        self.max_epochs = int(max_epochs)
        self.elapsed_s = 0.0        # budget used, across resumes
        self.epoch_s: list[float] = []
        self.planned: int | None = None
        self._t_start = None

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
