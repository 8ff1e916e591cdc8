"""Safe outputs: nothing half-written, nothing the user had lost.

Every output is written under a unique temporary name beside its final path (so concurrent
writers never share a temporary) and renamed onto the final path only when complete. Three
rules protect what is already on disk:

- an output never replaces a directory (``--out .`` or ``--out RUN`` is refused, not emptied);
- an output never replaces one of the command's inputs, nor a folder that holds one;
- an existing file is replaced only when the caller says so (``overwrite=True``, the CLI's
  ``--overwrite``); without it the final rename is a no-clobber link, so a file that appears
  while we write (another process) is never replaced either.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from deepdip.errors import DeepdipError


class OutputError(DeepdipError):
    """An output path that would replace a directory, an input, or a file not meant to be replaced."""


def write_json_atomic(path: str | os.PathLike, data, *, overwrite: bool = True, **dumps_kwargs) -> Path:
    """Write ``data`` as indented JSON to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2, **dumps_kwargs))
    return Path(path)


def check_output(path: str | os.PathLike, *, inputs: Iterable = (), overwrite: bool = False,
                 kind: str = "file", replaceable: Callable[[Path], bool] | None = None,
                 what: str = "output") -> Path:
    """Refuse an output path that would lose something; call it before any long work.

    ``kind="file"``: the output is one file; an existing directory there is refused, an existing
    file needs ``overwrite`` and, when ``replaceable`` is given, must pass it (``--overwrite``
    replaces a previous output of the same kind, e.g. a catalogue by a catalogue, never a text file
    that happens to have the name). ``kind="dir"``: the caller checks the folder's contents itself
    (see :func:`replace_dir`); only the input rules apply here. Symbolic links are followed, so an
    output reached through a link cannot replace an input either. ``what`` names the kind in messages.
    """
    path = Path(path)
    target = path.resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if target == source:
            raise OutputError(f"output {path} is an input of this command; choose another output name")
        if source.is_relative_to(target):
            raise OutputError(f"output {path} is a folder holding the input {item}; choose another output name")
        if source.is_dir() and target.is_relative_to(source) and target.exists():
            # e.g. `predict RUN STORE --out RUN/fold0/member0/model.pt --overwrite`
            raise OutputError(f"output {path} is a file of the input {item}; choose another output name")
    if kind == "file" and target.is_dir():
        raise OutputError(f"output {path} is an existing directory; name a file (nothing was written)")
    if kind == "file" and target.exists():
        if not overwrite:
            raise OutputError(f"output {path} exists; pass --overwrite to replace it (nothing was written)")
        if replaceable is not None and not replaceable(target):
            raise OutputError(f"output {path} exists and is not a {what}; --overwrite replaces only a previous "
                              f"{what} (nothing was written)")
    return path


def unique_temporary(final: Path, suffix: str) -> Path:
    """A fresh name beside ``final`` that no other writer can be given (the name is reserved, then freed)."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    os.unlink(name)  # the caller creates it (file or directory)
    return Path(name)


def remove_path(path: Path) -> None:
    """Remove a temporary file or folder of ours, if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def publish(tmp: Path, final: Path, *, overwrite: bool) -> None:
    """Rename the finished temporary ``tmp`` onto ``final`` under the rules of this module."""
    if final.is_dir() and not final.is_symlink():
        raise OutputError(f"output {final} is an existing directory; it was not replaced")
    if tmp.is_dir():
        try:
            os.rename(tmp, final)  # fails if final appeared as a non-empty directory meanwhile
        except OSError as exc:
            raise OutputError(f"output {final} appeared while writing (another process?); not replaced") from exc
        return
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # atomic create-if-absent: never replaces a file that appeared meanwhile
    except FileExistsError:
        raise OutputError(f"output {final} exists (another process wrote it meanwhile?); "
                          "pass --overwrite to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # File systems without hard links: check, then rename (a small race window remains).
        if final.exists():
            raise OutputError(f"output {final} exists; pass --overwrite to replace it") from None
        os.replace(tmp, final)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "", *, overwrite: bool = True,
                inputs: Iterable = ()) -> Iterator[Path]:
    """Yield a unique temporary path beside ``final``; publish it onto ``final`` only if the block succeeds.

    The block may create a file or a directory at the yielded path. ``overwrite`` (default True
    for deepdip's own bookkeeping files) allows replacing an existing *file*; directories and
    ``inputs`` are never replaced. On any exception (including KeyboardInterrupt and the
    SystemExit a SIGTERM handler raises) the temporary is removed and ``final`` is untouched.
    """
    final = Path(final)
    check_output(final, inputs=inputs, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_temporary(final, suffix)
    try:
        yield tmp
        publish(tmp, final, overwrite=overwrite)
    except BaseException:
        remove_path(tmp)
        raise


def replace_dir(tmp: Path, final: Path, *, is_ours, overwrite: bool, what: str) -> None:
    """Publish the finished folder ``tmp`` at ``final``.

    An existing ``final`` is replaced only if it is empty, or if ``overwrite`` is given and
    ``is_ours(final)`` says it holds only files of the kind we write (e.g. a previous sharded
    store). The old folder is first renamed aside, so a failure never leaves ``final`` missing.
    """
    if not final.exists():
        publish(tmp, final, overwrite=False)
        return
    if not final.is_dir() or final.is_symlink():
        raise OutputError(f"output {final} exists and is not a {what} folder; it was not replaced")
    if any(final.iterdir()):
        if not is_ours(final):
            raise OutputError(f"output {final} is a folder holding other files than a {what}; it was not replaced")
        if not overwrite:
            raise OutputError(f"output {final} holds a {what}; pass --overwrite to replace it")
    aside = unique_temporary(final, ".old")
    os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside, final)
        raise
    remove_path(aside)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created if needed) or fail at once if another process holds it.

    The kernel releases the lock when the process dies, however it dies: a kill -9 never leaves a
    stale lock behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{what} is in use by another deepdip process; wait for it to finish") from None
        yield
    finally:
        fh.close()
