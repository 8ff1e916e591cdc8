"""Lightning's console output, trimmed to what a deepdip user can act on (shared by train and predict)."""

from __future__ import annotations

import logging


class _DropLightningAdverts(logging.Filter):
    """Lightning prints a promotional tip for its cloud logger on every fit; it is not our users' concern."""

    def filter(self, record):
        return "litlogger" not in record.getMessage()


_ADVERT_FILTER = _DropLightningAdverts()


def quiet_lightning() -> None:
    """Drop Lightning's messages that tell our users nothing they can act on (idempotent)."""
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_ADVERT_FILTER)  # idempotent
    # Emitted by Lightning's own pytree helper against newer torch; nothing we can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # deepdip's predict_step saves its results itself and returns None on purpose.
    warnings.filterwarnings("ignore", message=r".*predict returned None.*")


def is_launcher() -> bool:
    """Whether this is the process the user started (not a DDP worker Lightning or torchrun launched)."""
    import os

    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
