"""The 8 symmetries of the square (dihedral group D4): rotations by 90 degrees and flips.

A galaxy's redshift does not depend on its orientation on the sky, so training sees each stamp in a
random one of the 8 orientations and prediction may average over all 8 (test-time augmentation).
"""

from __future__ import annotations

from functools import cache

import torch


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply symmetry ``k`` (0..7) to ``[..., H, W]``: rotation by ``k % 4`` quarter turns, then a
    left-right flip when ``k >= 4``. ``k = 0`` is the identity."""
    y = torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def allowed_symmetries(height: int, width: int) -> tuple[int, ...]:
    """All 8 for square stamps; only those keeping the shape (0, 180 degrees, flips) otherwise."""
    return tuple(range(8)) if height == width else (0, 2, 4, 6)


@cache
def _pixel_maps(height: int, width: int) -> torch.Tensor:
    """``[S, H*W]`` for the allowed symmetries: output pixel ``p`` of symmetry ``s`` is input pixel ``map[s, p]``."""
    base = torch.arange(height * width).view(1, height, width)
    return torch.stack([dihedral(base, k).reshape(-1) for k in allowed_symmetries(height, width)])


def random_dihedral(x: torch.Tensor, generator: torch.Generator, channels_last: bool = False) -> torch.Tensor:
    """Each image of the batch ``[N, B, H, W]`` in an independently drawn orientation.

    One gather through precomputed pixel maps (pure data movement: the same values as applying
    :func:`dihedral` image by image; 3-4x faster than gathering, rotating and scattering the
    images of each orientation in turn). ``channels_last``: the result is laid out NHWC, as the
    network reads it, by the same gather (no second copy to convert it)."""
    n, b, h, w = x.shape
    maps = _pixel_maps(h, w).to(x.device)
    draw = torch.randint(len(maps), (n,), generator=generator).to(x.device)     # [N] index of the symmetry
    if channels_last:   # gather [N, H*W, B] (NHWC memory), then view it as NCHW with channels-last strides
        index = maps[draw][:, :, None].expand(n, h * w, b)
        return torch.gather(x.reshape(n, b, h * w).transpose(1, 2), 1, index).view(n, h, w, b).permute(0, 3, 1, 2)
    index = maps[draw][:, None, :].expand(n, b, h * w)
    return torch.gather(x.reshape(n, b, h * w), 2, index).view(n, b, h, w)
