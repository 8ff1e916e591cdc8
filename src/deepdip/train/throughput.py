"""How fast ``deepdip train`` trains: images per second of each epoch's training part, and where it waits.

Every member records, per epoch, the wall time from the epoch's start to its last optimiser step
(validation and checkpointing excluded), the part of it spent inside the steps (batch start to
batch end: augmentation, forward, backward, optimiser, weight average, logging) and hence the part
spent waiting for the loader. It is written to ``throughput.json`` beside the member's model file
(kept apart from the model file and its metrics, which a rerun reproduces bit for bit), so a slow
run says whether the model or the input is the bottleneck. ``benchmarks/bench_train_throughput.py``
compares it with the bare step of the same network (issue 17's target: >= 90 %).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L

from deepdip.atomic import write_json_atomic


class TrainThroughput(L.Callback):
    """Per-epoch training throughput (rank 0's view; every rank trains the same number of images)."""

    def __init__(self, path: Path | None = None, settings: dict | None = None) -> None:
        self.path = path
        self.settings = dict(settings or {})  # what the rate depends on (loader workers, threads), written with it
        self.epochs: list[dict] = []
        self._epoch_t0 = self._batch_t0 = self._last_end = 0.0
        self._in_steps = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_t0 = self._last_end = time.perf_counter()
        self._in_steps, self._images = 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._last_end = time.perf_counter()
        self._in_steps += self._last_end - self._batch_t0
        self._images += len(batch[0])
        if batch_idx + 1 >= trainer.num_training_batches:
            # The epoch's last step: record it now, before validation and the checkpoint (a run
            # killed after its checkpoint has the record of every epoch the checkpoint holds).
            self._record(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._record(trainer)   # an epoch cut short (no last step seen)

    def _record(self, trainer) -> None:
        if not self._images:
            return
        wall = self._last_end - self._epoch_t0
        row = {"epoch": int(trainer.current_epoch), "images": self._images, "seconds": round(wall, 4),
               "step_seconds": round(self._in_steps, 4), "loader_wait_seconds": round(wall - self._in_steps, 4),
               "images_per_s": round(self._images / max(wall, 1e-9), 2)}
        self.epochs.append(row)
        self._images = 0
        if self.path is not None and trainer.is_global_zero:
            write_json_atomic(self.path, {**self.settings, "epochs": self.epochs})

    def on_train_start(self, trainer, pl_module) -> None:
        # A resumed member keeps the record of the epochs before the one it resumes at (those its
        # checkpoint holds; an epoch trained after the checkpoint and lost with the kill is trained again).
        self.epochs = []
        if self.path is not None and self.path.exists():
            try:
                old = json.loads(self.path.read_text()).get("epochs", [])
            except (OSError, ValueError, AttributeError):
                old = []
            self.epochs = [e for e in old if isinstance(e, dict) and e.get("epoch", 1 << 30) < trainer.current_epoch]
