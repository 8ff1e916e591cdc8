"""The ``deepdip`` command: a thin layer over the library.

Each subcommand lives in the module that owns the work and exposes two functions,
``add_arguments(parser)`` and ``run(args)``; modules are imported only when their command runs
so ``deepdip --help`` stays fast and a missing optional dependency breaks one command, not all.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from deepdip import __version__
from deepdip.errors import DeepdipError
from deepdip.signals import sigterm_as_exit

# name -> (module, one-line help). Order is the order of the data flow.
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("deepdip.simulate.cli", "generate a mock survey of galaxy cutouts into a store"),
    "ingest": ("deepdip.ingest.cli", "turn real cutouts or survey frames plus a catalogue into a store"),
    "validate": ("deepdip.store.cli", "check a cutout store and report every problem found"),
    "models": ("deepdip.models.cli", "list the CNN models with their parameters and FLOPs"),
    "select": ("deepdip.selection_cli", "mark which galaxies have a spec-z under a spectroscopic selection rule"),
    "pretrain": ("deepdip.train.pretrain_cli", "self-supervised (SimCLR) pretraining of a backbone on every cutout"),
    "train": ("deepdip.train.cli", "train the CNN (folds x ensemble) on a store"),
    "predict": ("deepdip.predict.cli", "predict redshift PDFs for a store into a photo-z catalogue"),
    "embed": ("deepdip.embed", "the CNN's representation of every galaxy (Parquet) and its 2-D map"),
    "baseline": ("deepdip.baselines.cli", "fit a catalogue baseline (kNN, RF, boosted trees, BPZ)"),
    "prior-shift": ("deepdip.prior_cli", "move a catalogue's PDFs to its own sample's redshift prior (label shift)"),
    "evaluate": ("deepdip.report.cli", "compare photo-z catalogues: metrics.json + HTML report"),
    "demo": ("deepdip.demo", "the whole chain on a mock survey it generates itself"),
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints the whole usage before a bad option's message; deepdip's errors are one line.

    Subcommand parsers inherit the class (argparse builds them with ``type(self)``).
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


DISK_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def build_parser(load_commands: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="deepdip",
        description="Pixel-level deep-learning photometric redshifts for galaxy surveys.",
    )
    parser.add_argument("--version", action="version", version=f"deepdip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if load_commands == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    try:
        parser = build_parser(load_commands=command)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        module = importlib.import_module(COMMANDS[args.command][0])
        # SIGTERM (kill, a batch system's time limit) unwinds like Ctrl-C: every writer drops its
        # temporary and nothing half-written is left; the exit status is still 143.
        with sigterm_as_exit():
            return int(module.run(args) or 0)
    except DeepdipError as exc:
        print(f"deepdip {command or ''}: error: {exc}".replace("  ", " "), file=sys.stderr)
        from deepdip.store.writer import StoreWriteError  # here: `deepdip --help` stays free of h5py

        if isinstance(exc, StoreWriteError):  # skip HDF5's exit clean-up, which would crash
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except OSError as exc:
        # The machine, not deepdip, refused (disk full, file too large, read-only or unwritable
        # output): one line naming the file; the writers have already removed their temporaries.
        if exc.errno not in DISK_ERRORS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"deepdip {command or ''}: error: {os.strerror(exc.errno)}{where}".replace("  ", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepdip: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
