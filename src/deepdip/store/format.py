"""The cutout-store format (DESIGN.md): names, dtypes and version, in one place.

One HDF5 file, or a folder of shard files that each follow this layout and together form one store:

- ``images``: float32 ``[N, B, H, W]``, band order = ``attrs["bands"]``.
- ``catalog/<column>``: 1-D datasets of length N; ``id`` (int64, unique), ``z_spec`` (float32,
  NaN when unknown), ``ebv`` (float32), ``fold`` (int8, 0..K-1) are required.
- ``band_mask`` (optional): uint8 ``[N, B]``, 1 where the band was observed, 0 where it is missing
  (not observed, masked, saturated). A missing band's pixels are 0 and its catalogue fluxes NaN; a
  store without the dataset has every band of every galaxy. Every reader honours it
  (``CutoutStore.band_mask``); ``validate`` checks that it agrees with the pixels.
- file attrs: ``format_version``, ``survey``, ``bands``, ``pixel_scale``, ``flux_unit``,
  ``n_folds``, ``fold_seed``, ``provenance`` (JSON text), ``deepdip_version``.
"""

from __future__ import annotations

import numpy as np

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

IMAGES = "images"
CATALOG = "catalog"
IMAGE_DTYPE = np.dtype(np.float32)
BAND_MASK = "band_mask"
BAND_MASK_DTYPE = np.dtype(np.uint8)

REQUIRED_COLUMNS: dict[str, np.dtype] = {
    "id": np.dtype(np.int64),
    "z_spec": np.dtype(np.float32),
    "ebv": np.dtype(np.float32),
    "fold": np.dtype(np.int8),
}
REQUIRED_ATTRS = ("format_version", "survey", "bands", "pixel_scale", "flux_unit")

SHARD_GLOB = "*.h5"


def decode_attr(value):
    """h5py returns bytes or numpy scalars for attrs written from other tools; make them plain Python."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [decode_attr(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value
