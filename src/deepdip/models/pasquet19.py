"""The inception network of Pasquet et al. 2019 (A&A 621, A26), "Photometric redshifts from SDSS
images using a convolutional neural network".

Faithful to the published architecture: a 5x5 convolution (64 maps, PReLU) and an average pool,
five inception modules with average pools between them (the last without its 5x5 branch), flatten,
concatenate the extra scalars (Galactic reddening E(B-V)), two fully connected layers of 1096 and a
softmax over the survey's redshift bins. Branch widths follow the authors' released code
(github.com/jpasquet/photoz): modules (48, 64), (64, 92), (92, 128) x3. Convolutions use 'same'
padding and PReLU; the dense layers use ReLU.

For 64x64 ugriz and 180 bins: 27.6 M parameters, 1.52 GFLOP per image forward (tests pin both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepdip.models._registry import register_model
from deepdip.models.base import PhotozBackbone
from deepdip.models.heads import create_head


class ConvPReLU(nn.Module):
    """Convolution with 'same' padding followed by a per-channel PReLU (the paper's basic unit)."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2)
        self.act = nn.PReLU(out_chans)

    def forward(self, x):
        return self.act(self.conv(x))


class Inception(nn.Module):
    """Inception module: 1x1; 1x1 -> 3x3; 1x1 -> 5x5 (optional); 1x1 -> 2x2 average pool (stride 1).

    Output channels: ``3 * n2 + n1`` with the 5x5 branch, ``2 * n2 + n1`` without.
    """

    def __init__(self, in_chans: int, n1: int, n2: int, with_5x5: bool = True):
        super().__init__()
        self.branch1x1 = ConvPReLU(in_chans, n2, 1)
        self.branch3x3 = nn.Sequential(ConvPReLU(in_chans, n1, 1), ConvPReLU(n1, n2, 3))
        self.branch5x5 = nn.Sequential(ConvPReLU(in_chans, n1, 1), ConvPReLU(n1, n2, 5)) if with_5x5 else None
        self.branch_pool = ConvPReLU(in_chans, n1, 1)
        self.out_chans = n2 * (3 if with_5x5 else 2) + n1

    def _forward(self, x):
        outs = [self.branch1x1(x), self.branch3x3(x)]
        if self.branch5x5 is not None:
            outs.append(self.branch5x5(x))
        # 2x2 average pool with stride 1, padded right/bottom so the size is kept (TF 'SAME').
        pooled = F.avg_pool2d(F.pad(self.branch_pool(x), (0, 1, 0, 1), mode="replicate"), 2, stride=1)
        outs.append(pooled)
        return outs

    def forward(self, x):
        return torch.cat(self._forward(x), dim=1)


class Pasquet19(PhotozBackbone):
    """Pasquet et al. 2019 photo-z network.

    Parameters
    ----------
    in_chans : int
        Number of bands.
    num_bins : int
        Number of redshift bins of the output PDF.
    img_size : int
        Stamp size in pixels (the flattened feature size depends on it).
    n_extra : int
        Extra scalar inputs (E(B-V)) joined before the dense layers.
    hidden : int
        Width of the two dense layers (1096 in the paper).
    drop_rate : float
        Dropout before each dense layer (0 in the paper).
    """

    def __init__(self, in_chans: int = 5, num_bins: int = 180, img_size: int = 64, n_extra: int = 1,
                 hidden: int = 1096, drop_rate: float = 0.0):
        super().__init__()
        self.in_chans, self.num_bins, self.img_size, self.n_extra = in_chans, num_bins, img_size, n_extra
        self.stem = ConvPReLU(in_chans, 64, 5)                       # N x 64 x 64 x 64
        self.pool0 = nn.AvgPool2d(2)                                  # N x 64 x 32 x 32
        self.inc0 = Inception(64, 48, 64)                             # N x 240 x 32 x 32
        self.inc1 = Inception(self.inc0.out_chans, 64, 92)            # N x 340 x 32 x 32
        self.pool1 = nn.AvgPool2d(2)                                  # N x 340 x 16 x 16
        self.inc2 = Inception(self.inc1.out_chans, 92, 128)           # N x 476 x 16 x 16
        self.inc3 = Inception(self.inc2.out_chans, 92, 128)           # N x 476 x 16 x 16
        self.pool2 = nn.AvgPool2d(2)                                  # N x 476 x 8 x 8
        self.inc4 = Inception(self.inc3.out_chans, 92, 128, with_5x5=False)  # N x 348 x 8 x 8
        side = img_size // 8
        self.num_features = self.inc4.out_chans * side * side        # 22272 for 64x64
        # Two dense layers of ``hidden`` with dropout before each, then the bins.
        self.head = create_head("binned", self.num_features + n_extra, num_bins, hidden=hidden,
                                drop_rate=drop_rate, drop_each=True)   # [N, F + n_extra] -> [N, num_bins]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, B, H, W]`` normalised images -> ``[N, num_features]`` flattened feature maps."""
        x = self.pool0(self.stem(x))
        x = self.pool1(self.inc1(self.inc0(x)))
        x = self.pool2(self.inc3(self.inc2(x)))
        x = self.inc4(x)
        return torch.flatten(x, 1)


default_cfgs = {
    "pasquet19": {
        "description": "Pasquet et al. 2019 inception network (faithful, 27.6 M params for SDSS)",
        "in_chans": 5, "img_size": 64, "num_bins": 180, "n_extra": 1,   # SDSS ugriz + E(B-V)
        "first_conv": "stem.conv", "head": "head",
        "paper": "Pasquet et al. 2019, A&A 621, A26",
    },
}


@register_model
def pasquet19(**kwargs) -> Pasquet19:
    return Pasquet19(**kwargs)
