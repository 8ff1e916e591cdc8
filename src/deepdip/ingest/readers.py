"""Image sources for galaxies that already have their own stamps: numpy arrays and per-galaxy FITS.

A source answers ``get(row)`` with ``(image [B, H, W] in input units, WCS or None)`` for the
catalogue row, or raises :class:`BadGalaxy` with the reason. Frames (one big image per band) are
in :mod:`deepdip.ingest.frames`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.ingest.catalog import Catalog
from deepdip.ingest.options import IngestOptions
from deepdip.ingest.rejects import BadGalaxy

ID_KEYS = ("id", "ids", "objid")


class ArraySource:
    """Stamps from an ``[N, B, H, W]`` array (``.npy``, memory-mapped; ``.npz``; or an ndarray).

    Rows match the catalogue in order, unless the ``.npz`` carries an ``id`` array, in which case
    images are matched to catalogue ids and a catalogue id without an image is a bad galaxy.
    An ``.npz`` ``bands`` array is used to put the planes in the store's band order.
    """

    def __init__(self, images, bands, options: IngestOptions):
        self.pixel_scale = None
        file_bands, file_ids = None, None
        if isinstance(images, (str, Path)):
            path = Path(images)
            self.name = str(path)
            if not path.is_file():
                raise DeepdipError(f"image array {path} not found")
            if path.suffix == ".npy":
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            elif path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    if options.image_key not in data.files:
                        raise DeepdipError(f"{path} has no array {options.image_key!r} "
                                           f"(arrays: {', '.join(data.files)}); choose one with --image-key")
                    array = data[options.image_key]
                    file_bands = data["bands"].astype(str).tolist() if "bands" in data.files else None
                    id_key = next((k for k in ID_KEYS if k in data.files), None)
                    file_ids = data[id_key] if id_key else None
                    for key in ("pixel_scale_arcsec", "pixel_scale"):
                        if key in data.files and data[key].size == 1:
                            self.pixel_scale = float(data[key])
            else:
                raise DeepdipError(f"image array {path}: use .npy or .npz")
        else:
            self.name = "array"
            array = np.asarray(images)
        if array.ndim != 4:
            raise DeepdipError(f"{self.name}: images must be [N, B, H, W], got shape {list(array.shape)}")
        self.array = array
        self.planes = list(range(len(bands)))
        if file_bands is not None:
            wanted = [options.band_name(b) for b in bands]
            missing = [w for w in wanted if w not in file_bands]
            if missing:
                raise DeepdipError(f"{self.name} holds bands {', '.join(file_bands)}, not {', '.join(missing)}")
            self.planes = [file_bands.index(w) for w in wanted]
        elif array.shape[1] != len(bands):
            raise DeepdipError(f"{self.name} has {array.shape[1]} bands per galaxy, expected {len(bands)} "
                               f"({', '.join(bands)})")
        self.file_ids = None if file_ids is None else {int(v): i for i, v in enumerate(np.asarray(file_ids).tolist())}

    def bind(self, catalog: Catalog) -> None:
        """Check the array matches the catalogue before any galaxy is read."""
        if self.file_ids is None and len(self.array) != len(catalog):
            raise DeepdipError(f"{self.name} holds {len(self.array)} galaxies but the catalogue has "
                               f"{len(catalog)} rows; rows must match one to one (or put an 'id' array in the .npz)")
        self._ids = catalog.ids

    def get(self, row: int):
        index: int | None = row
        if self.file_ids is not None:
            index = self.file_ids.get(int(self._ids[row]))
            if index is None:
                raise BadGalaxy(f"no image for catalogue id {int(self._ids[row])} in {self.name}")
        return np.asarray(self.array[index], dtype=np.float64)[self.planes], None


def _data_hdus(hdul):
    return [h for h in hdul if getattr(h, "data", None) is not None and getattr(h.data, "ndim", 0) >= 2]


def _find_band_hdu(hdus, name: str):
    """The HDU whose EXTNAME, FILTER or BAND is ``name``; case-insensitive as a fallback because
    astropy upper-cases EXTNAME on write."""
    labels = [(h, [str(h.header[k]).strip() for k in ("EXTNAME", "FILTER", "BAND") if k in h.header]) for h in hdus]
    exact = [h for h, names in labels if name in names]
    loose = [h for h, names in labels if name.lower() in (n.lower() for n in names)]
    return exact[0] if exact else (loose[0] if len(loose) == 1 else None)


def _celestial_wcs(header):
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # harmless header normalisation notes
        try:
            wcs = WCS(header)
        except Exception:  # a broken WCS is treated like none: the caller says it is needed
            return None
    return wcs.celestial if wcs.has_celestial else None


class FitsCutoutSource:
    """Per-galaxy FITS stamps found through a file-name pattern.

    ``pattern`` holds ``{id}`` (the catalogue id) and optionally ``{band}``:

    - with ``{band}``: one 2-D image per band and galaxy, e.g. ``stamps/{id}_{band}.fits``;
    - without: one file per galaxy, either a cube ``[B, H, W]`` (planes in band order) or a
      multi-extension file whose extensions are named by band (EXTNAME, FILTER or BAND keyword).
    """

    def __init__(self, pattern: str, bands, options: IngestOptions):
        if "{id}" not in str(pattern):
            raise DeepdipError(f"cutout pattern {pattern!r} must contain {{id}} (and {{band}} for one file per band)")
        self.pattern = str(pattern)
        self.bands = list(bands)
        self.options = options
        self.per_band = "{band}" in self.pattern
        self.pixel_scale = None

    def bind(self, catalog: Catalog) -> None:
        self._keys = catalog.keys
        missing = sum(not Path(self._path(k, self.bands[0])).is_file() for k in catalog.keys)
        if missing == len(catalog):
            raise DeepdipError(f"no file matches {self.pattern!r} for any catalogue id "
                               f"(first tried: {self._path(catalog.keys[0], self.bands[0])})")

    def _path(self, key: str, band: str) -> str:
        return self.pattern.format(id=key, band=self.options.band_name(band))

    def _open(self, path: str):
        from astropy.io import fits

        try:
            return fits.open(path, memmap=False)
        except (OSError, ValueError) as exc:
            raise BadGalaxy(f"unreadable FITS {path}: {str(exc).splitlines()[0]}") from None

    def _pick_hdu(self, hdul, path):
        hdus = _data_hdus(hdul)
        if self.options.hdu is not None:
            try:
                hdu = hdul[self.options.hdu]
            except (KeyError, IndexError):
                raise BadGalaxy(f"{path} has no HDU {self.options.hdu!r}") from None
            if getattr(hdu.data, "ndim", 0) < 2:
                raise BadGalaxy(f"{path} HDU {self.options.hdu!r} holds no image")
            return hdu
        if not hdus:
            raise BadGalaxy(f"{path} holds no image")
        return hdus[0]

    def get(self, row: int):
        key = self._keys[row]
        return self._per_band(key) if self.per_band else self._one_file(key)

    def _per_band(self, key: str):
        planes: list[np.ndarray] = []
        wcs = None
        for band in self.bands:
            path = self._path(key, band)
            if not Path(path).is_file():
                raise BadGalaxy(f"no image for band {band} ({path} not found)")
            with self._open(path) as hdul:
                hdu = self._pick_hdu(hdul, path)
                data = np.array(hdu.data, dtype=np.float64)
                if data.ndim != 2:
                    raise BadGalaxy(f"{path} is {data.ndim}-D, expected one 2-D image per band")
                if wcs is None:
                    wcs = _celestial_wcs(hdu.header)
            if planes and data.shape != planes[0].shape:
                raise BadGalaxy(f"band {band} is {data.shape[0]}x{data.shape[1]} but band {self.bands[0]} is "
                                f"{planes[0].shape[0]}x{planes[0].shape[1]}")
            planes.append(data)
        return np.stack(planes), wcs

    def _one_file(self, key: str):
        path = self._path(key, self.bands[0])
        if not Path(path).is_file():
            raise BadGalaxy(f"no image ({path} not found)")
        with self._open(path) as hdul:
            first = self._pick_hdu(hdul, path)
            if first.data.ndim == 3 and (self.options.hdu is not None or len(_data_hdus(hdul)) == 1):
                data = np.array(first.data, dtype=np.float64)
                if data.shape[0] != len(self.bands):
                    raise BadGalaxy(f"{path} cube has {data.shape[0]} planes, expected {len(self.bands)} bands")
                return data, _celestial_wcs(first.header)
            hdus = _data_hdus(hdul)
            planes: list[np.ndarray] = []
            wcs = None
            for band in self.bands:
                hdu = _find_band_hdu(hdus, self.options.band_name(band))
                if hdu is None:
                    raise BadGalaxy(f"band {band} missing from {path} (no extension named "
                                    f"{self.options.band_name(band)!r} in EXTNAME/FILTER/BAND)")
                data = np.array(hdu.data, dtype=np.float64)
                if planes and data.shape != planes[0].shape:
                    raise BadGalaxy(f"band {band} is {data.shape[0]}x{data.shape[1]} but band {self.bands[0]} is "
                                    f"{planes[0].shape[0]}x{planes[0].shape[1]}")
                planes.append(data)
                if wcs is None:
                    wcs = _celestial_wcs(hdu.header)
            return np.stack(planes), wcs
