"""Moved to :mod:`deepdip.models.normalize` (inference needs it; ``predict`` must not import ``train``)."""

from deepdip.models.normalize import STRETCHES, Normalizer  # noqa: F401  (moved)
