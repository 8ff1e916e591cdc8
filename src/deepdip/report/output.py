"""The report folder: built aside, moved in when complete, never deleting what the user had.

A report is a handful of files (``metrics.json``, ``index.html``, PNG figures) listed in a
manifest, ``.deepdip-report.json``. It may go into a folder that holds other things (the demo
writes its report beside its store and runs): those are never touched. A report already there is
replaced only with ``overwrite``; its figures that the new report lacks are then removed (the
manifest says which files were ours), so no stale PNG survives a rerun.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from deepdip.atomic import OutputError, publish, remove_path, unique_temporary

MANIFEST = ".deepdip-report.json"
REPORT_FILES = ("metrics.json", "index.html")  # present in every report: their presence means "a report"


def _manifest(folder: Path) -> list[str]:
    path = folder / MANIFEST
    if not path.is_file():
        return []
    try:
        files = json.loads(path.read_text()).get("files", [])
    except (ValueError, AttributeError):
        return []
    # Only plain names of this folder: a tampered manifest must not point elsewhere.
    return [f for f in files if isinstance(f, str) and f == Path(f).name and not f.startswith(".")]


def check_report_dir(out_dir: Path, *, overwrite: bool, inputs: Iterable = ()) -> None:
    """Refuse a report destination that would lose something; cheap, so call it before any work."""
    out_dir = Path(out_dir)
    target = out_dir.resolve()
    for item in inputs:
        if Path(item).resolve() == target:
            raise OutputError(f"report folder {out_dir} is an input catalogue; choose another --out")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"report folder {out_dir} is an existing file; choose a folder name (nothing was written)")
    if not out_dir.is_dir():
        return
    present = [f for f in REPORT_FILES if (out_dir / f).exists()]
    ours = (out_dir / MANIFEST).is_file()
    if present and not ours:
        # Files of those names that no deepdip report listed are the user's: never replaced.
        raise OutputError(f"{out_dir} holds {', '.join(present)} that no deepdip report wrote; "
                          "choose another --out (nothing was written)")
    if (present or ours) and not overwrite:
        raise OutputError(f"{out_dir} already holds a report; pass --overwrite to replace it")


def _install(build: Path, out_dir: Path, *, overwrite: bool, inputs: Iterable) -> None:
    """Move the finished report ``build`` into ``out_dir`` (absent: one rename; present: file by file)."""
    new_files = sorted(p.name for p in build.iterdir())
    (build / MANIFEST).write_text(json.dumps({"files": new_files}, indent=2) + "\n")
    if not out_dir.exists():
        publish(build, out_dir, overwrite=False)
        return
    check_report_dir(out_dir, overwrite=overwrite, inputs=inputs)  # again: another process may have written
    protected = {Path(p).resolve() for p in inputs}
    for name in new_files:
        dest = out_dir / name
        if dest.resolve() in protected or dest.is_dir():
            raise OutputError(f"report file {dest} would replace an input or a folder; choose another --out")
    previous = set(_manifest(out_dir))
    clash = [n for n in new_files if (out_dir / n).exists() and n not in previous]
    if clash:  # a file of that name that no deepdip report wrote is the user's
        raise OutputError(f"{out_dir} holds {', '.join(clash[:3])} that no deepdip report wrote; "
                          "choose another --out (nothing was written)")
    stale = previous - set(new_files)
    for name in new_files:
        os.replace(build / name, out_dir / name)
    for name in stale:
        path = out_dir / name
        # Only figures: the one kind of report file a new report may lack (metrics.json and
        # index.html are always rewritten), so a tampered manifest cannot name anything else.
        if path.suffix == ".png" and path.is_file() and path.resolve() not in protected:
            path.unlink()
    os.replace(build / MANIFEST, out_dir / MANIFEST)  # last: the manifest lists a complete report


@contextlib.contextmanager
def report_folder(out_dir, *, overwrite: bool = False, inputs: Iterable = ()) -> Iterator[Path]:
    """Yield an empty temporary folder to build a report in; install it at ``out_dir`` if the block succeeds."""
    out_dir = Path(out_dir)
    inputs = [Path(p) for p in inputs]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = unique_temporary(out_dir, "")
    build.mkdir()
    try:
        yield build
        _install(build, out_dir, overwrite=overwrite, inputs=inputs)
    finally:
        remove_path(build)
