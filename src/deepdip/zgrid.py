"""Redshift binning shared by every estimator: PDFs live on ``nbins`` equal bins over [zmin, zmax).

Point estimates use bin *centres* (Pasquet et al.'s released code used left edges, a half-bin bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepdip.errors import DeepdipValueError  # a ValueError too


@dataclass(frozen=True)
class ZGrid:
    zmin: float
    zmax: float
    nbins: int

    def __post_init__(self):
        if not (np.isfinite(self.zmin) and np.isfinite(self.zmax) and self.zmax > self.zmin):
            raise DeepdipValueError(f"invalid redshift grid: zmax ({self.zmax}) must be greater than "
                                    f"zmin ({self.zmin})")
        if int(self.nbins) != self.nbins or self.nbins < 2:
            raise DeepdipValueError(f"invalid redshift grid: nbins must be a whole number of at least 2, "
                                    f"got {self.nbins}")

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.zmin, self.zmax, self.nbins + 1)

    @property
    def centres(self) -> np.ndarray:
        e = self.edges
        return 0.5 * (e[:-1] + e[1:])

    @property
    def width(self) -> float:
        return (self.zmax - self.zmin) / self.nbins

    def bin_index(self, z) -> np.ndarray:
        """Bin of each redshift, clipped into [0, nbins-1] (values outside the grid go to the end bins)."""
        idx = np.floor((np.asarray(z, dtype=np.float64) - self.zmin) / self.width).astype(np.int64)
        return np.clip(idx, 0, self.nbins - 1)

    @classmethod
    def from_edges(cls, edges) -> ZGrid:
        edges = np.asarray(edges, dtype=np.float64)
        grid = cls(float(edges[0]), float(edges[-1]), len(edges) - 1)
        if not np.allclose(grid.edges, edges, rtol=0, atol=1e-9 * max(1.0, abs(grid.zmax))):
            raise ValueError("redshift bin edges are not evenly spaced")
        return grid

    def to_dict(self) -> dict:
        return {"zmin": self.zmin, "zmax": self.zmax, "nbins": self.nbins}
