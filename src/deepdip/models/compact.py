"""A compact photo-z CNN for CPUs (and cheap inference at survey scale).

Same contract as :mod:`deepdip.models.pasquet19` (bands in, logits over redshift bins out, extra
scalars such as E(B-V) joined before the dense layers) at a small fraction of its FLOPs. Choices,
each made by measurement on a 2-core AVX-512 CPU (``benchmarks/bench_cnn.py``, docs/benchmarks.md):

- A strided 4x4 stem: SDSS stamps oversample the PSF (FWHM ~3.3 px), so halving the resolution in a
  learned convolution loses little and removes the costly full-resolution layers.
- Plain 3x3 convolutions with batch norm: dense convolutions run near the machine's matmul rate in
  oneDNN, while depthwise ones are memory bound on CPUs; batch norm lets a high learning rate
  converge in the few epochs a CPU budget allows.
- Spatial position kept to the end (flatten of an 8x8 map, not global pooling): the galaxy is
  centred, and its size and profile are what redshift information beyond colour comes from.
- Widths (16, 32, 48, 64): multiples of 16 (one AVX-512 register of fp32) keep oneDNN's blocked
  kernels efficient; measured 3.5x the training rate of (32, 64, 96, 128) and a lower sigma_MAD
  after the same 4 minutes of training (docs/benchmarks.md). 34 MFLOP per SDSS image, 44x less
  than pasquet19.
"""

from __future__ import annotations

import torch
from torch import nn

from deepdip.models._registry import register_model
from deepdip.models.base import PhotozBackbone
from deepdip.models.heads import create_head


def conv_bn(in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Convolution + batch norm + ReLU; 'same' padding for odd kernels, halving for stride 2."""
    padding = (kernel_size - stride + 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
    )


class Compact(PhotozBackbone):
    """Compact CNN.

    Parameters
    ----------
    in_chans, num_bins, img_size, n_extra :
        As for every deepdip model.
    widths : tuple of int
        Channels of the stem and of the stages at 1/2, 1/4 and 1/8 resolution.
    hidden : int
        Width of the dense layers.
    drop_rate : float
        Dropout before the dense layers.
    """

    def __init__(self, in_chans: int = 5, num_bins: int = 180, img_size: int = 64, n_extra: int = 1,
                 widths: tuple[int, ...] = (16, 32, 48, 64), hidden: int = 256, drop_rate: float = 0.1):
        super().__init__()
        self.in_chans, self.num_bins, self.img_size, self.n_extra = in_chans, num_bins, img_size, n_extra
        w0, w1, w2, w3 = widths
        self.features = nn.Sequential(
            conv_bn(in_chans, w0, 4, stride=2),   # N x w0 x 32 x 32
            conv_bn(w0, w1),                      # N x w1 x 32 x 32
            nn.AvgPool2d(2),                      # N x w1 x 16 x 16
            conv_bn(w1, w2),                      # N x w2 x 16 x 16
            conv_bn(w2, w2),                      # N x w2 x 16 x 16
            nn.AvgPool2d(2),                      # N x w2 x 8 x 8
            conv_bn(w2, w3),                      # N x w3 x 8 x 8
            conv_bn(w3, w3 // 4, 1),              # N x w3/4 x 8 x 8: cheap bottleneck before flatten
        )
        side = img_size // 8
        self.num_features = (w3 // 4) * side * side
        # Built after the convolutions: the order of the random initial weights (a seed's run) is kept.
        self.head = create_head("binned", self.num_features + n_extra, num_bins, hidden=hidden,
                                drop_rate=drop_rate)   # [N, F + n_extra] -> [N, num_bins]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, B, H, W]`` normalised images -> ``[N, num_features]``."""
        return torch.flatten(self.features(x), 1)


default_cfgs = {
    "compact": {
        "description": "CPU-efficient CNN: strided stem, batch norm, 44x fewer FLOPs than pasquet19",
        "in_chans": 5, "img_size": 64, "num_bins": 180, "n_extra": 1,   # SDSS ugriz + E(B-V)
        "first_conv": "features.0.0", "head": "head",
    },
}


@register_model
def compact(**kwargs) -> Compact:
    return Compact(**kwargs)
