"""Every setting of ``deepdip predict``, declared once (:mod:`deepdip.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepdip.errors import DeepdipValueError
from deepdip.options import check_accelerator, check_devices, check_options, check_strategy, option, parse_devices

LIGHTNING = "GPUs / several processes (Lightning's predict loop; any of these options selects it)"


@dataclass
class PredictConfig:
    """How to run inference; the executor is in-process, Dask (``dask``) or Lightning (``accelerator``)."""

    rows: str = option("test", "test: each trained fold's held-out rows, by that fold's models (cross-validated); "
                               "all: every row, by all models", choices=("test", "all"))
    tta: bool = option(False, "average over the 8 rotations/flips (8x slower)")
    chunk_size: int = option(2048, "galaxies read per chunk", minimum=1, integer=True)
    batch_size: int = option(512, "galaxies per forward pass", minimum=1, integer=True)
    precision: str = option("auto", "32-true, bf16-mixed (bfloat16 autocast), or auto: bf16 where a timing probe "
                                    "of the first network on this hardware finds it clearly faster, fp32 elsewhere "
                                    "(decided once per machine; recorded in the catalogue's config)",
                            choices=("auto", "32-true", "bf16-mixed"))
    threads: int | None = option(None, "torch CPU threads (per Dask task with --dask, per process under Lightning)",
                                 minimum=1, integer=True)
    dask: str | None = option(None, "run the chunks on a Dask cluster: a scheduler address (tcp://host:8786), a "
                                    "scheduler.json file, or local:N for N worker processes on this machine; the "
                                    "catalogue is the same as without --dask. Workers must read STORE and RUN at the "
                                    "same paths (shared file system)", metavar="SCHEDULER")
    accelerator: str | None = option(None, "run under Lightning on cpu, gpu or auto (e.g. --accelerator gpu "
                                           "--devices 4); the catalogue is the same as in-process",
                                     group=LIGHTNING, check=check_accelerator)
    devices: Any = option(None, "devices (processes) per node [auto]", group=LIGHTNING, parse=parse_devices,
                          check=check_devices)
    num_nodes: int | None = option(None, "nodes [1]", group=LIGHTNING, minimum=1, integer=True)
    strategy: str | None = option(None, "Lightning strategy: auto, ddp, ddp_spawn... [auto]", group=LIGHTNING,
                                 check=check_strategy)
    num_workers: int | None = option(None, "DataLoader worker processes reading chunks [1]", group=LIGHTNING,
                                     flag="--workers", minimum=0, integer=True)
    progress: bool = option(True, "the progress bar")
    overwrite: bool = option(False, "replace an existing catalogue at --out (never a folder or an input)")

    @property
    def lightning(self) -> bool:
        """Whether a Lightning option was given (they select the Lightning executor)."""
        return any(v is not None for v in (self.accelerator, self.devices, self.num_nodes, self.strategy))

    def check(self) -> PredictConfig:
        check_options(self)
        if self.lightning and self.dask:
            raise DeepdipValueError("--dask and the Lightning options (--accelerator, --devices...) are two executors; "
                                    "choose one")
        return self
