"""The 8 symmetries of the square (dihedral group D4): rotations by 90 degrees and flips.

A galaxy's redshift does not depend on its orientation on the sky, so training sees each stamp in a
random one of the 8 orientations and prediction may average over all 8 (test-time augmentation).
"""

from __future__ import annotations

import torch


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply symmetry ``k`` (0..7) to ``[..., H, W]``: rotation by ``k % 4`` quarter turns, then a
    left-right flip when ``k >= 4``. ``k = 0`` is the identity."""
    y = torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def allowed_symmetries(height: int, width: int) -> tuple[int, ...]:
    """All 8 for square stamps; only those keeping the shape (0, 180 degrees, flips) otherwise."""
    return tuple(range(8)) if height == width else (0, 2, 4, 6)


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of the batch ``[N, B, H, W]`` in an independently drawn orientation."""
    ks = torch.tensor(allowed_symmetries(*x.shape[-2:]))
    draw = ks[torch.randint(len(ks), (x.shape[0],), generator=generator)]  # [N]
    out = torch.empty_like(x)
    for k in draw.unique().tolist():
        sel = (draw == k).nonzero(as_tuple=True)[0].to(x.device)
        out[sel] = dihedral(x[sel], k)
    return out
