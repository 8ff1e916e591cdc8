"""Moved to :mod:`deepdip.models.dihedral` (prediction averages over the orientations too)."""

from deepdip.models.dihedral import allowed_symmetries, dihedral, random_dihedral  # noqa: F401  (moved)
