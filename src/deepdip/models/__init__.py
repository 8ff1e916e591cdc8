"""CNN models for photo-z, timm-style: one file per model, a registry of factories by name.

Every model takes ``in_chans``, ``num_bins``, ``img_size`` and ``n_extra`` (extra scalar inputs such
as E(B-V)), splits ``forward_features(x)`` from ``forward_head(features, extra)`` and returns logits
over the redshift bins (softmax -> PDF).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from deepdip.errors import DeepdipError

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], str]] = {}


def register_model(name: str, description: str):
    """Decorator: register a factory ``fn(in_chans, num_bins, img_size, n_extra, **kwargs)``."""
    def wrap(fn):
        _REGISTRY[name] = (fn, description)
        return fn
    return wrap


def list_models() -> dict[str, str]:
    """Model names and one-line descriptions."""
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def create_model(name: str, in_chans: int, num_bins: int, img_size: int, n_extra: int = 1, **kwargs) -> nn.Module:
    """Build model ``name`` for ``in_chans`` bands of ``img_size``-pixel stamps and ``num_bins`` bins."""
    if name not in _REGISTRY:
        raise DeepdipError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name][0](in_chans=in_chans, num_bins=num_bins, img_size=img_size, n_extra=n_extra, **kwargs)


def model_defaults(name: str) -> dict:
    """The architecture keywords of model ``name`` (beyond the shape arguments) with their defaults.

    Stored in run configs and model files so a model trained today still loads after a default
    changes (e.g. the widths of ``compact``).
    """
    import inspect

    if name not in _REGISTRY:
        raise DeepdipError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}")
    cls = _REGISTRY[name][0](_return_class=True)
    shape_args = {"self", "in_chans", "num_bins", "img_size", "n_extra"}
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if k not in shape_args and p.default is not inspect.Parameter.empty}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, in_chans: int | None = None, img_size: int | None = None, batch: int = 1) -> int:
    """Forward FLOPs per image (multiply-add = 2 FLOPs), counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    in_chans = in_chans or model.in_chans
    img_size = img_size or model.img_size
    x = torch.zeros(batch, in_chans, img_size, img_size)
    extra = torch.zeros(batch, getattr(model, "n_extra", 0))
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, extra)
    model.train(was_training)
    return int(counter.get_total_flops() // batch)


@register_model("pasquet19", "Pasquet et al. 2019 inception network (faithful, 27.6 M params for SDSS)")
def pasquet19(_return_class: bool = False, **kwargs) -> nn.Module:
    from deepdip.models.pasquet19 import Pasquet19
    return Pasquet19 if _return_class else Pasquet19(**kwargs)


@register_model("compact", "CPU-efficient CNN: strided stem, batch norm, 44x fewer FLOPs than pasquet19")
def compact(_return_class: bool = False, **kwargs) -> nn.Module:
    from deepdip.models.compact import Compact
    return Compact if _return_class else Compact(**kwargs)


__all__ = ["create_model", "list_models", "register_model", "model_defaults", "count_params", "count_flops"]
