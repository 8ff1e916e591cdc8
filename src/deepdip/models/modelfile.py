"""The trained-model file: weights plus everything needed to use them on a store.

A model file is a ``torch.save`` of plain containers and tensors only, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs): the model name and keyword arguments,
the normaliser (inside the state dict), the survey's bands, image shape and flux unit, the
redshift grid, and provenance (fold, member, seed, training metrics).
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepdip.atomic import atomic_path
from deepdip.errors import DeepdipError
from deepdip.models.net import PhotozNet
from deepdip.zgrid import ZGrid

FORMAT = "deepdip-cnn"
FORMAT_VERSION = 1


def net_config(net_kwargs: dict, *, bands, image_shape, flux_unit: str, survey: str, zgrid: ZGrid) -> dict:
    """The configuration stored beside the weights (plain types only)."""
    return {
        "net": dict(net_kwargs),
        "bands": list(bands),
        "image_shape": [int(s) for s in image_shape],
        "flux_unit": str(flux_unit),
        "survey": str(survey),
        "zgrid": zgrid.to_dict(),
    }


def save_model_file(path, net: PhotozNet, config: dict, info: dict | None = None) -> Path:
    """Write ``net`` with its ``config`` (see :func:`net_config`) and ``info`` atomically to ``path``."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
        "info": dict(info or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


class ModelFile:
    """A loaded model file: ``.net`` (eval mode), ``.config``, ``.info``, ``.zgrid``, ``.bands``."""

    def __init__(self, path, map_location="cpu"):
        self.path = Path(path)
        try:
            payload = torch.load(self.path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise DeepdipError(f"no model file {self.path}") from None
        except Exception as exc:  # truncated file, not a torch file, or pickled code refused
            raise DeepdipError(f"{self.path} is not a readable deepdip model file: {exc}".splitlines()[0]) from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise DeepdipError(f"{self.path} is not a deepdip model file")
        if payload.get("format_version") != FORMAT_VERSION:
            raise DeepdipError(f"{self.path}: unsupported model file version {payload.get('format_version')}")
        self.config: dict = payload["config"]
        self.info: dict = payload["info"]
        self.zgrid = ZGrid(**self.config["zgrid"])
        self.bands: list[str] = list(self.config["bands"])
        self.image_shape: tuple[int, int] = tuple(self.config["image_shape"])
        self.net = PhotozNet(**self.config["net"])
        self.net.load_state_dict(payload["state_dict"])
        self.net.eval()

    def check_store(self, store) -> None:
        """Refuse a store whose bands, band order, image size or flux unit differ from training."""
        problems = []
        if list(store.bands) != self.bands:
            problems.append(f"bands {''.join(store.bands)} (model trained on {''.join(self.bands)})")
        if tuple(store.image_shape) != self.image_shape:
            problems.append(f"image size {'x'.join(map(str, store.image_shape))} "
                            f"(model trained on {'x'.join(map(str, self.image_shape))})")
        unit = self.config.get("flux_unit", "")
        if unit and store.flux_unit and store.flux_unit != unit:
            problems.append(f"flux unit {store.flux_unit!r} (model trained on {unit!r})")
        if problems:
            raise DeepdipError(f"store {store.path} does not match model {self.path.name}: " + "; ".join(problems))
