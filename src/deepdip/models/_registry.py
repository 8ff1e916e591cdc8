"""The model registry, timm's (``timm/models/_registry.py``) cut to what deepdip uses.

A model file ends with its factories, each decorated with :func:`register_model`; the module holds
a ``default_cfgs`` table with one entry per factory name: a one-line description, the input the
defaults are for (bands, stamp size, redshift bins, extra scalars of the SDSS setup) and the names
of the first convolution and of the head (what adapting to other bands or another grid touches).
The factory's return annotation names the class, whose keyword defaults :func:`model_defaults`
records in run configs and model files.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable

from torch import nn

from deepdip.errors import DeepdipError

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
_CLASSES: dict[str, type[nn.Module]] = {}
_CFGS: dict[str, dict] = {}
SHAPE_ARGS = ("in_chans", "num_bins", "img_size", "n_extra")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register the factory ``fn`` under its name with its module's ``default_cfgs[name]``."""
    name = fn.__name__
    cfg = getattr(sys.modules[fn.__module__], "default_cfgs", {}).get(name)
    if cfg is None:
        raise TypeError(f"model {name!r} has no entry in default_cfgs of {fn.__module__}")
    cls = typing.get_type_hints(fn).get("return")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"factory {name!r} must be annotated with the nn.Module class it returns")
    _FACTORIES[name], _CLASSES[name], _CFGS[name] = fn, cls, dict(cfg)
    return fn


def _check(name: str) -> None:
    if name not in _FACTORIES:
        raise DeepdipError(f"unknown model {name!r}; available: {', '.join(_FACTORIES)}")


def list_models() -> dict[str, str]:
    """Model names and one-line descriptions."""
    return {name: cfg["description"] for name, cfg in _CFGS.items()}


def get_model_cfg(name: str) -> dict:
    """A copy of the default-config entry of model ``name``."""
    _check(name)
    return dict(_CFGS[name])


def create_model(name: str, in_chans: int | None = None, num_bins: int | None = None, img_size: int | None = None,
                 n_extra: int | None = None, **kwargs) -> nn.Module:
    """Build model ``name`` for ``in_chans`` bands of ``img_size``-pixel stamps and ``num_bins`` bins.

    A shape argument left out takes the model's default config (the SDSS setup); ``kwargs`` are
    architecture keywords (see :func:`model_defaults`).
    """
    _check(name)
    cfg = _CFGS[name]
    given = {"in_chans": in_chans, "num_bins": num_bins, "img_size": img_size, "n_extra": n_extra}
    shape = {k: cfg[k] if v is None else v for k, v in given.items()}
    return _FACTORIES[name](**shape, **kwargs)


def model_defaults(name: str) -> dict:
    """The architecture keywords of model ``name`` (beyond the shape arguments) with their defaults.

    Stored in run configs and model files so a model trained today still loads after a default
    changes (e.g. the widths of ``compact``).
    """
    _check(name)
    params = inspect.signature(_CLASSES[name].__init__).parameters
    return {k: p.default for k, p in params.items()
            if k != "self" and k not in SHAPE_ARGS and p.default is not inspect.Parameter.empty}
