"""CNN models for photo-z, timm-style: one file per model, registered by name with a default config.

Every model takes ``in_chans``, ``num_bins``, ``img_size`` and ``n_extra`` (extra scalar inputs such
as E(B-V)), splits ``forward_features(x)`` from ``forward_head(features, extra, pre_logits=False)``
and returns logits over the redshift bins (softmax -> PDF); heads follow one contract
(:mod:`deepdip.models.heads`, :class:`~deepdip.models.base.PhotozBackbone`).

Beside the backbones lives everything inference needs, so ``predict`` depends on ``models`` and
never on ``train``: the input normaliser (``normalize``), the 8 orientations of a stamp
(``dihedral``), the normaliser + backbone network (``net.PhotozNet``) and the model file
(``modelfile``).

Layout: ``_registry`` (register_model, create_model, default configs), ``heads`` (shared heads and
their registry), ``base`` (the backbone contract), ``compact``, ``pasquet19`` (one model per file).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from deepdip.models._registry import (
    create_model,
    get_model_cfg,
    list_models,
    model_defaults,
    register_model,
)
from deepdip.models.heads import create_head, list_heads, register_head

# Importing a network's module registers its factories, in the order `deepdip models` lists them
# (the paper's first): an import sorter must leave these two lines as they are.
from deepdip.models import pasquet19 as _pasquet19  # noqa: F401  # isort: skip
from deepdip.models import compact as _compact  # noqa: F401  # isort: skip


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, in_chans: int | None = None, img_size: int | None = None, batch: int = 1) -> int:
    """Forward FLOPs per image (multiply-add = 2 FLOPs), counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    # a PhotozBackbone's attributes (nn.Module.__getattr__ types them Tensor | Module)
    in_chans = in_chans or cast(int, model.in_chans)
    img_size = img_size or cast(int, model.img_size)
    x = torch.zeros(batch, in_chans, img_size, img_size)
    extra = torch.zeros(batch, getattr(model, "n_extra", 0))
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, extra)
    model.train(was_training)
    return int(counter.get_total_flops() // batch)


__all__ = ["count_flops", "count_params", "create_head", "create_model", "get_model_cfg", "list_heads", "list_models",
           "model_defaults", "register_head", "register_model"]
