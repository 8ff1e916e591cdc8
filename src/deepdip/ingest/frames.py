"""Cut stamps out of survey frames (one FITS image with a WCS per band) at catalogue positions.

Bands are aligned through their WCS onto the reference band's pixel grid:

- when a band's grid equals the reference grid up to a whole-pixel offset (same projection,
  scale and orientation; the usual case for coadds of one survey), its stamp is a plain
  ``Cutout2D`` at the same sky position: pixels are copied, never interpolated;
- otherwise the band is resampled onto the reference stamp's WCS with ``reproject_interp``
  (bicubic) and multiplied by the pixel-area ratio so values stay flux per pixel.

Galaxies whose stamp would cross a frame edge (or land on blank, NaN, frame pixels) are
reported and skipped: a partial stamp would teach the CNN a truncated galaxy.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.ingest.catalog import Catalog
from deepdip.ingest.options import IngestOptions
from deepdip.ingest.readers import _celestial_wcs, _data_hdus
from deepdip.ingest.rejects import BadGalaxy

# Grids agree when every reference pixel maps to a band pixel at the same whole-pixel offset
# within this tolerance (pixels).
GRID_TOLERANCE = 1e-3


class Frame:
    """One band's frame: pixels (memory-mapped) and celestial WCS."""

    def __init__(self, band: str, path, hdu=None):
        from astropy.io import fits

        self.band, self.path = band, Path(path)
        if not self.path.is_file():
            raise DeepdipError(f"frame for band {band}: {self.path} not found")
        try:
            self._hdul = fits.open(self.path, memmap=True)
        except (OSError, ValueError) as exc:
            raise DeepdipError(f"frame {self.path} is not a readable FITS file: {str(exc).splitlines()[0]}") from None
        try:
            hdus = [self._hdul[hdu]] if hdu is not None else _data_hdus(self._hdul)
        except (KeyError, IndexError):
            raise DeepdipError(f"frame {self.path} has no HDU {hdu!r}") from None
        if not hdus or getattr(hdus[0].data, "ndim", 0) != 2:
            raise DeepdipError(f"frame {self.path} holds no 2-D image")
        self.data = hdus[0].data
        self.wcs = _celestial_wcs(hdus[0].header)
        if self.wcs is None:
            raise DeepdipError(f"frame {self.path} has no celestial WCS: positions cannot be located in it")

    @property
    def pixel_area(self) -> float:
        from astropy.wcs.utils import proj_plane_pixel_area

        return float(proj_plane_pixel_area(self.wcs))


def whole_pixel_offset(ref: Frame, other: Frame) -> tuple[int, int] | None:
    """(dy, dx) with other_pixel = ref_pixel + (dy, dx) everywhere on the frame, or None."""
    height, width = ref.data.shape
    ys, xs = np.meshgrid([0, height / 2, height - 1], [0, width / 2, width - 1], indexing="ij")
    world = ref.wcs.pixel_to_world(xs.ravel(), ys.ravel())
    ox, oy = other.wcs.world_to_pixel(world)
    dx, dy = np.asarray(ox) - xs.ravel(), np.asarray(oy) - ys.ravel()
    rx, ry = np.round(dx[0]), np.round(dy[0])
    if np.all(np.abs(dx - rx) < GRID_TOLERANCE) and np.all(np.abs(dy - ry) < GRID_TOLERANCE):
        return int(ry), int(rx)
    return None


class FrameSource:
    """Stamps of ``size`` pixels cut from one frame per band, aligned on the reference band."""

    def __init__(self, frames: dict, bands, options: IngestOptions, size: int):
        missing = [b for b in bands if b not in frames]
        if missing:
            raise DeepdipError(f"no frame given for band(s) {', '.join(missing)} (--frame BAND=FILE)")
        self.bands, self.size = list(bands), int(size)
        self.frames = {b: Frame(b, frames[b], options.hdu) for b in self.bands}
        ref_band = options.reference_band or self.bands[0]
        if ref_band not in self.frames:
            raise DeepdipError(f"reference band {ref_band!r} is not one of {', '.join(self.bands)}")
        self.ref = self.frames[ref_band]
        from astropy.wcs.utils import proj_plane_pixel_scales

        self.pixel_scale = float(np.mean(proj_plane_pixel_scales(self.ref.wcs)) * 3600.0)
        self.offsets = {b: whole_pixel_offset(self.ref, f) for b, f in self.frames.items()}
        self.resampled = [b for b, off in self.offsets.items() if off is None]
        if self.resampled:
            try:
                import reproject  # noqa: F401
            except ImportError:
                raise DeepdipError(f"band(s) {', '.join(self.resampled)} are not on the pixel grid of band {ref_band}: "
                                   "resampling them needs the 'reproject' package (pip install reproject)") from None

    def bind(self, catalog: Catalog) -> None:
        self._ra, self._dec = catalog.columns["ra"], catalog.columns["dec"]

    def get(self, row: int):
        from astropy.coordinates import SkyCoord
        from astropy.nddata import Cutout2D, NoOverlapError, PartialOverlapError

        ra, dec = float(self._ra[row]), float(self._dec[row])
        if not (np.isfinite(ra) and np.isfinite(dec)):
            raise BadGalaxy("ra/dec missing")
        position = SkyCoord(ra, dec, unit="deg")
        try:
            ref_cut = Cutout2D(self.ref.data, position, self.size, wcs=self.ref.wcs, mode="strict", copy=True)
        except NoOverlapError:
            raise BadGalaxy(f"outside the {self.ref.band} frame", always_skip=True) from None
        except PartialOverlapError:
            raise BadGalaxy(f"too near the edge of the {self.ref.band} frame", always_skip=True) from None
        planes = []
        for band in self.bands:
            frame = self.frames[band]
            if frame is self.ref:
                planes.append(ref_cut.data.astype(np.float64))
            elif self.offsets[band] is not None:
                planes.append(self._shifted(frame, ref_cut, self.offsets[band]))
            else:
                planes.append(self._resampled(frame, ref_cut, position))
        image = np.stack(planes)
        if not np.all(np.isfinite(image)):
            # Blank (NaN) frame pixels mark areas without data: also an edge, of the survey footprint.
            bad = [b for b, p in zip(self.bands, planes) if not np.all(np.isfinite(p))]
            raise BadGalaxy(f"stamp overlaps blank (NaN) pixels of the {', '.join(bad)} frame", always_skip=True)
        return image, ref_cut.wcs

    def _shifted(self, frame: Frame, ref_cut, offset) -> np.ndarray:
        (ys, xs) = ref_cut.slices_original
        dy, dx = offset
        y0, y1, x0, x1 = ys.start + dy, ys.stop + dy, xs.start + dx, xs.stop + dx
        height, width = frame.data.shape
        if y0 < 0 or x0 < 0 or y1 > height or x1 > width:
            raise BadGalaxy(f"too near the edge of the {frame.band} frame", always_skip=True)
        return np.array(frame.data[y0:y1, x0:x1], dtype=np.float64)

    def _resampled(self, frame: Frame, ref_cut, position) -> np.ndarray:
        from astropy.nddata import Cutout2D, NoOverlapError
        from reproject import reproject_interp

        # Resample from a local cutout, not the whole frame: cost per galaxy stays ~size^2.
        ratio = np.sqrt(self.ref.pixel_area / frame.pixel_area)
        margin = int(np.ceil(self.size * ratio * 1.5)) + 8
        try:
            local = Cutout2D(frame.data, position, margin, wcs=frame.wcs, mode="partial", fill_value=np.nan)
        except NoOverlapError:
            raise BadGalaxy(f"outside the {frame.band} frame", always_skip=True) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            data = reproject_interp((np.asarray(local.data, dtype=np.float64), local.wcs), ref_cut.wcs,
                                    shape_out=ref_cut.data.shape, order="bicubic", return_footprint=False)
        if not np.all(np.isfinite(data)):
            raise BadGalaxy(f"too near the edge of the {frame.band} frame", always_skip=True)
        return data * (self.ref.pixel_area / frame.pixel_area)
