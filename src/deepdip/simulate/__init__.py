"""Mock surveys: realistic multi-band galaxy cutouts with known redshifts (issue 3).

``simulate_store(survey, n, seed, out, workers)`` is the library entry behind
``deepdip simulate``; ``population``, ``reddening``, ``rendering`` and ``templates`` are its
parts, ``calibrate`` refits the SDSS-like population on real galaxies.
"""

from deepdip.simulate.pipeline import BLOCK_SIZE, simulate_block, simulate_store

__all__ = ["simulate_store", "simulate_block", "BLOCK_SIZE"]
