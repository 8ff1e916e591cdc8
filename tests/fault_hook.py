"""Run ``deepdip`` with a deterministic fault point: pause just before an output is published.

Usage (by tests/test_faults.py)::

    FAULT_PAUSE_ON=cnn.parquet FAULT_READY=/tmp/x/ready python tests/fault_hook.py predict RUN STORE --out ...

When the process is about to rename (``os.replace``/``os.rename``) or hard-link (``os.link``,
the no-clobber publish) a finished temporary onto a destination whose file name matches the glob
``FAULT_PAUSE_ON``, it creates ``FAULT_READY`` (its content: the temporary's path) and sleeps.
The test then signals it: the complete temporary exists, the final path does not yet: the most
dangerous moment of an atomic write. With ``FAULT_GO=PATH`` it goes on once PATH exists (two
writers released together). ``FAULT_PAUSE_AFTER_CHECKPOINT=GLOB`` pauses instead right after
Lightning wrote a matching checkpoint (``last.ckpt``: training stopped between two epochs).
Without either it is plain ``deepdip``.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time


def _pause(src: str, ready: str) -> None:
    with open(ready + ".part", "w") as fh:
        fh.write(src)
    _real_replace(ready + ".part", ready)
    go = os.environ.get("FAULT_GO")
    while not (go and os.path.exists(go)):  # until the test signals us (or says go)
        time.sleep(0.02 if go else 3600)


_real_replace = os.replace


def _install(pattern: str, ready: str) -> None:
    def guard(real):
        def wrapper(src, dst, *args, **kwargs):
            if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), pattern) and not os.path.exists(ready):
                _pause(os.fspath(src), ready)
            return real(src, dst, *args, **kwargs)

        return wrapper

    for name in ("replace", "rename", "link"):
        setattr(os, name, guard(getattr(os, name)))


def _install_after_checkpoint(pattern: str, ready: str) -> None:
    """Pause once Lightning has written a checkpoint whose name matches (training mid-way)."""
    from lightning.pytorch import Trainer

    real = Trainer.save_checkpoint

    def save_checkpoint(self, filepath, *args, **kwargs):
        out = real(self, filepath, *args, **kwargs)
        if fnmatch.fnmatch(os.path.basename(os.fspath(filepath)), pattern) and not os.path.exists(ready):
            _pause(os.fspath(filepath), ready)
        return out

    Trainer.save_checkpoint = save_checkpoint


if __name__ == "__main__":
    if os.environ.get("FAULT_PAUSE_ON"):
        _install(os.environ["FAULT_PAUSE_ON"], os.environ["FAULT_READY"])
    if os.environ.get("FAULT_PAUSE_AFTER_CHECKPOINT"):
        _install_after_checkpoint(os.environ["FAULT_PAUSE_AFTER_CHECKPOINT"], os.environ["FAULT_READY"])
    from deepdip.cli import main

    sys.exit(main(sys.argv[1:]))
