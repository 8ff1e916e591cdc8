"""Bad galaxies: stop at the first one with a clear message, or (``--skip-bad``) list them and go on."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from deepdip.atomic import atomic_path
from deepdip.errors import DeepdipError


class IngestWarning(UserWarning):
    """Something was assumed or skipped on the user's behalf (a constant E(B-V), row-number ids...)."""


class BadGalaxy(Exception):
    """One galaxy cannot be ingested; ``reason`` is a short phrase for the message and the rejects list.

    ``always_skip`` marks expected losses (a galaxy too near a frame edge) that are reported and
    skipped even without ``--skip-bad``.
    """

    def __init__(self, reason: str, always_skip: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.always_skip = always_skip


class Rejects:
    """Collects (id, reason) of skipped galaxies and writes them as CSV."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.rows: list[tuple[str, str]] = []

    def add(self, key: str, bad: BadGalaxy) -> None:
        if not (self.skip_bad or bad.always_skip):
            raise DeepdipError(f"galaxy {key}: {bad.reason} (--skip-bad skips bad galaxies and lists them)")
        self.rows.append((str(key), bad.reason))

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for _, reason in self.rows:
            kind = reason.split(":")[0].split(" (")[0]
            counts[kind] = counts.get(kind, 0) + 1
        return "; ".join(f"{n} x {kind}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))

    def write(self, path) -> Path | None:
        """Write ``id,reason`` rows atomically; nothing is written when no galaxy was rejected."""
        if not self.rows:
            return None
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "reason"])
            writer.writerows(self.rows)
        warnings.warn(f"{len(self.rows)} galaxies skipped ({self.summary()}); list in {path}", IngestWarning,
                      stacklevel=2)
        return path
