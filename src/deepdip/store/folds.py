"""Deterministic cross-validation folds.

A galaxy's fold is a hash of (id, seed) modulo K: it does not depend on row order, on how the
store is sharded, or on which galaxies were written before it, so appending galaxies or
re-simulating with more workers never moves an existing galaxy to another fold.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # SplitMix64 finaliser (Steele et al. 2014): a well-mixed 64-bit hash of consecutive integers.
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def assign_folds(ids, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold (int8 in 0..n_folds-1) of each id, deterministic from ``seed``."""
    if not 1 <= n_folds <= 127:
        raise ValueError(f"n_folds must be in 1..127, got {n_folds}")
    ids = np.asarray(ids).astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        keyed = ids ^ _splitmix64(np.full(1, seed, dtype=np.int64).view(np.uint64))
    return (_splitmix64(keyed) % np.uint64(n_folds)).astype(np.int8)
