"""SIGTERM as a clean exit, so the cleanup that runs on Ctrl-C also runs on ``kill`` / a batch system.

Python turns SIGINT into ``KeyboardInterrupt``, which unwinds the stack: every ``with`` block
(``atomic_path``, ``StoreWriter``...) drops its temporary output. SIGTERM, by default, kills the
process on the spot and leaves the temporaries behind. :func:`install_sigterm_as_exit` makes
SIGTERM raise ``SystemExit(143)`` (128 + 15, what a shell reports for a process killed by SIGTERM)
in the main thread instead, so the same cleanup runs and the exit status still says "terminated".

A second SIGTERM while the first unwinds is ignored, so a supervisor that signals twice does not
cut the cleanup short (SIGKILL still ends the process at once).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

EXIT_SIGTERM = 128 + signal.SIGTERM


def _raise_exit(signum, frame):
    signal.signal(signum, signal.SIG_IGN)  # a repeated SIGTERM must not interrupt the cleanup
    with contextlib.suppress(Exception):  # a closed stderr must not stop the exit
        print("deepdip: terminated", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_SIGTERM)


def install_sigterm_as_exit() -> bool:
    """Make SIGTERM raise ``SystemExit(143)`` in the main thread; True when installed.

    Does nothing (False) outside the main thread, or when someone already set a SIGTERM handler
    (a framework's own, or ours).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _raise_exit)
    return True


@contextlib.contextmanager
def deferred_signals(signums=(signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold SIGINT/SIGTERM back during a block that must not be cut in two.

    E.g. creating a temporary output and entering the ``with`` block that removes it on failure:
    a signal in between would leave the temporary behind. A signal that arrives meanwhile is
    re-raised when the block ends, so its usual handler runs in the code that follows. (Python
    handlers, not a signal mask: a mask holds back only the calling thread, and Python runs every
    handler in the main thread whichever thread the kernel picked.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame):
        pending.append(signum)

    previous = {}
    try:
        for signum in signums:
            previous[signum] = signal.signal(signum, hold)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """:func:`install_sigterm_as_exit` for the duration of a block; the previous handler comes back after."""
    installed = install_sigterm_as_exit()
    try:
        yield
    finally:
        if installed and signal.getsignal(signal.SIGTERM) in (_raise_exit, signal.SIG_IGN):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
