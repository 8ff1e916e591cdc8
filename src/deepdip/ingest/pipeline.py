"""The ingestion loop shared by every input kind: read -> check -> convert -> centre/size -> store.

Galaxies stream through in chunks, so a catalogue of any length needs memory for one chunk only;
the store is written under a temporary name and renamed only when every galaxy was handled.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.ingest.catalog import Catalog, build_catalog, read_table
from deepdip.ingest.frames import FrameSource
from deepdip.ingest.options import IngestOptions
from deepdip.ingest.readers import ArraySource, FitsCutoutSource
from deepdip.ingest.rejects import BadGalaxy, IngestWarning, Rejects
from deepdip.ingest.stamps import CENTRE_MODES, PAD_MODES, centroid, fit_stamp
from deepdip.photometry.units import flux_factors


@dataclass
class IngestResult:
    """What an ingestion produced: the store, how many galaxies went in, and who was left out."""

    store: Path
    n_written: int
    n_rejected: int
    rejects: Path | None
    bands: tuple[str, ...]
    image_shape: tuple[int, int]
    pixel_scale: float


def _resolve_survey(options: IngestOptions):
    """Bands and pixel scale from the options, falling back on the survey preset of that name."""
    from deepdip.surveys import available_surveys, load_survey

    preset = load_survey(options.survey) if options.survey in available_surveys() else None
    bands = tuple(options.bands) or (preset.bands if preset else ())
    if not bands:
        raise DeepdipError("bands unknown: give --bands g,r,i,z or a survey preset with --survey")
    pixel_scale = options.pixel_scale or (preset.pixel_scale if preset else None)
    return preset, bands, pixel_scale


def _table(catalog, default=None) -> dict:
    if catalog is None:
        catalog = default
    if catalog is None:
        raise DeepdipError("a catalogue is needed (--catalog FILE)")
    if isinstance(catalog, (str, Path)):
        return read_table(catalog)
    if hasattr(catalog, "to_dict") and hasattr(catalog, "columns"):  # pandas DataFrame
        return {c: catalog[c].to_numpy() for c in catalog.columns}
    return {str(k): np.asarray(v) for k, v in dict(catalog).items()}


def _photometry(images: np.ndarray, bands, pixel_scale: float) -> dict:
    """flux_<band>/flux_err_<band> (Kron and aperture), measured as for the mocks, for the baselines."""
    from deepdip.photometry import measure_photometry

    return measure_photometry(images, pixel_scale, bands)


def _check(image: np.ndarray, bands, mode: str = "reject") -> tuple[np.ndarray, np.ndarray]:
    """The stamp with its missing bands zeroed, and which bands it has (bool [B]); or :class:`BadGalaxy`.

    A band is missing when it holds a NaN/inf pixel or no signal at all (every pixel zero: what
    cutout services return where a band was not observed). ``mode`` "reject": any NaN/inf makes
    the galaxy bad (an all-zero band is kept as it is); "mask": the band is flagged missing, and
    only a galaxy without any band is bad."""
    bad = ~np.isfinite(image)
    nan_bands = bad.reshape(len(bands), -1).any(1)
    if mode == "reject" or nan_bands.all():
        if bad.any():
            per_band = ", ".join(f"{int(n)} in {b}" for b, n in zip(bands, bad.reshape(len(bands), -1).sum(1)) if n)
            raise BadGalaxy(f"NaN/inf pixels ({per_band})")
        return image, np.ones(len(bands), bool)
    blank = ~nan_bands & ~np.any(image != 0, axis=(1, 2))
    present = ~nan_bands & ~blank
    if not present.any():
        raise BadGalaxy("no band has data (every band NaN/inf or all zero)")
    if present.all():
        return image, present
    return np.where(present[:, None, None], image, 0.0), present


def _stamp(source, catalog: Catalog, row: int, options: IngestOptions, bands, factors) -> tuple[np.ndarray, np.ndarray]:
    """One galaxy's finished stamp (nanomaggies, centred, sized) and the bands it has, or :class:`BadGalaxy`."""
    image, wcs = source.get(row)
    image, present = _check(image, bands, options.missing_bands)
    if not np.isfinite(catalog.columns["ebv"][row]):
        raise BadGalaxy("E(B-V) is missing")
    image = image * factors
    if catalog.transmission is not None:
        # Back to observed fluxes: the store convention is images as observed plus ebv.
        image = image * catalog.transmission[row][:, None, None]
    centre = None
    if options.centre == "wcs":
        if wcs is None:
            raise BadGalaxy("its image has no celestial WCS, needed by --centre wcs")
        x, y = wcs.world_to_pixel_values(catalog.columns["ra"][row], catalog.columns["dec"][row])
        if not (np.isfinite(x) and np.isfinite(y)):
            raise BadGalaxy("ra/dec missing or not on its image")
        centre = (float(y), float(x))
    elif options.centre == "centroid":
        try:
            centre = centroid(image)
        except DeepdipError as exc:
            raise BadGalaxy(str(exc)) from None
    # Padding noise seeded by (seed, id): the same galaxy gets the same pixels in any run or order.
    rng = np.random.default_rng([options.seed, int(catalog.ids[row]) & 0x7FFFFFFFFFFFFFFF])
    try:
        return fit_stamp(image, options.size, centre, options.pad, rng), present
    except DeepdipError as exc:
        raise BadGalaxy(str(exc)) from None


def run(source, catalog: Catalog, out, options: IngestOptions, *, bands, pixel_scale: float,
        provenance: dict) -> IngestResult:
    """Push every catalogue row through ``source`` into a store at ``out``."""
    from tqdm.auto import tqdm

    from deepdip.store import StoreWriter, check_store_output

    if options.centre not in CENTRE_MODES:
        raise DeepdipError(f"unknown centring {options.centre!r}; use one of {', '.join(CENTRE_MODES)}")
    if options.pad not in PAD_MODES:
        raise DeepdipError(f"unknown pad mode {options.pad!r}; use one of {', '.join(PAD_MODES)}")
    if options.centre == "wcs" and "ra" not in catalog.columns:
        raise DeepdipError("--centre wcs needs ra/dec columns in the catalogue")
    out = Path(out)
    # The files read (arrays, catalogue, frames) may never be replaced by the store: refuse now.
    inputs = [Path(v) for k, v in provenance.get("inputs", {}).items() if k != "pattern" and Path(v).exists()]
    check_store_output(out, sharded=False, overwrite=options.overwrite, inputs=inputs)
    factors = flux_factors(bands, options.flux_unit, options.zero_point)[:, None, None]
    rejects = Rejects(options.skip_bad)
    rejects_path = Path(options.rejects) if options.rejects else out.with_name(out.name + ".rejects.csv")
    source.bind(catalog)
    writer, shape = None, None
    stamps: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    rows: list[int] = []

    def flush():
        chunk = np.stack(stamps).astype(np.float32)
        mask = np.stack(masks)
        chunk[~mask] = 0.0  # padding noise of a missing band: the store holds it as zeros
        columns = {k: v[rows] for k, v in catalog.columns.items()}
        if options.photometry:
            columns.update(_photometry(chunk, bands, pixel_scale))
        # --missing-bands mask: every store gets its band mask (all ones where nothing is missing)
        writer.append(chunk, columns, band_mask=mask if options.missing_bands == "mask" else None)
        stamps.clear()
        masks.clear()
        rows.clear()

    try:
        for row in tqdm(range(len(catalog)), desc="ingest", unit="gal", disable=None):
            try:
                stamp, present = _stamp(source, catalog, row, options, bands, factors)
                if shape is not None and stamp.shape[1:] != shape:
                    raise BadGalaxy(f"stamp is {stamp.shape[1]}x{stamp.shape[2]} but earlier ones are "
                                    f"{shape[0]}x{shape[1]} (give --size to crop/pad them all)")
            except BadGalaxy as bad:
                rejects.add(catalog.keys[row], bad)
                continue
            if writer is None:
                shape = stamp.shape[1:]
                writer = StoreWriter(out, bands=bands, image_shape=shape, survey=options.survey,
                                     pixel_scale=pixel_scale, flux_unit="nanomaggy", n_folds=options.n_folds,
                                     seed=options.seed, attrs={**provenance, **catalog.extinction},
                                     overwrite=options.overwrite, inputs=inputs)
            stamps.append(stamp)
            masks.append(present)
            rows.append(row)
            if len(stamps) >= options.chunk_size:
                flush()
        if writer is None:
            raise DeepdipError(f"no galaxy could be ingested ({len(rejects)} rejected: {rejects.summary()})")
        if stamps:
            flush()
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        rejects.write(rejects_path)  # the reasons help fix the input even when the run failed
        raise
    written = rejects.write(rejects_path)
    if written is None and rejects_path.is_file() and options.rejects is None:
        rejects_path.unlink()  # a stale list from an earlier run of this store would mislead
    assert shape is not None  # set with the writer, which exists here
    return IngestResult(store=out, n_written=writer.n_written, n_rejected=len(rejects), rejects=written,
                        bands=tuple(bands), image_shape=tuple(shape), pixel_scale=float(pixel_scale))


def _provenance(kind: str, inputs: dict, options: IngestOptions) -> dict:
    return {"created_by": "deepdip ingest", "input_kind": kind,
            "inputs": {k: str(v) for k, v in inputs.items()},
            "options": json.loads(json.dumps(asdict(options), default=str))}


def _need_pixel_scale(pixel_scale, source) -> float:
    scale = pixel_scale or getattr(source, "pixel_scale", None)
    if not scale:
        raise DeepdipError("pixel scale unknown: give --pixel-scale (arcsec/pixel) or a survey preset")
    given = getattr(source, "pixel_scale", None)
    if pixel_scale and given and abs(given - pixel_scale) > 0.01 * pixel_scale:
        warnings.warn(f"input pixel scale {source.pixel_scale:.4g}\" differs from the survey's {pixel_scale:.4g}\"; "
                      "stamps are not resampled", IngestWarning, stacklevel=3)
    return float(scale)


def ingest_arrays(images, out, catalog=None, options: IngestOptions | None = None) -> IngestResult:
    """Ingest an ``[N, B, H, W]`` array (.npy, .npz or ndarray) with a catalogue in the same row order.

    ``catalog`` is a file, a dict of columns or a DataFrame; for an ``.npz`` it defaults to the
    1-D/2-D arrays of the same file.
    """
    options = options or IngestOptions()
    _, bands, pixel_scale = _resolve_survey(options)
    source = ArraySource(images, bands, options)  # first: a missing image file is the clearer message
    default = images if isinstance(images, (str, Path)) and str(images).endswith(".npz") else None
    table = _table(catalog, default)
    cat = build_catalog(table, options, bands, need_positions=options.centre == "wcs")
    scale = _need_pixel_scale(pixel_scale, source)
    prov = _provenance("arrays", {"images": images if isinstance(images, (str, Path)) else "array",
                                  "catalog": catalog if isinstance(catalog, (str, Path)) else "table"}, options)
    return run(source, cat, out, options, bands=bands, pixel_scale=scale, provenance=prov)


def ingest_cutouts(pattern: str, catalog, out, options: IngestOptions | None = None) -> IngestResult:
    """Ingest per-galaxy FITS stamps named by ``pattern`` (``{id}``, optional ``{band}``) plus a catalogue."""
    options = options or IngestOptions()
    _, bands, pixel_scale = _resolve_survey(options)
    cat = build_catalog(_table(catalog), options, bands, need_keys=True, need_positions=options.centre == "wcs")
    source = FitsCutoutSource(pattern, bands, options)
    scale = _need_pixel_scale(pixel_scale, source)
    prov = _provenance("fits-cutouts", {"pattern": pattern, "catalog": catalog}, options)
    return run(source, cat, out, options, bands=bands, pixel_scale=scale, provenance=prov)


def ingest_frames(frames: dict, catalog, out, options: IngestOptions | None = None) -> IngestResult:
    """Cut ``size``-pixel stamps at the catalogue's (ra, dec) from one WCS frame per band."""
    options = options or IngestOptions()
    preset, bands, pixel_scale = _resolve_survey(options)
    size = options.size or (preset.stamp_size if preset else None)
    if not size:
        raise DeepdipError("frames need a stamp size: give --size N (pixels)")
    cat = build_catalog(_table(catalog), options, bands, need_positions=True)
    source = FrameSource(frames, bands, options, size)
    # The frame's WCS knows the pixel scale better than a preset does.
    scale = _need_pixel_scale(pixel_scale, source) if options.pixel_scale else source.pixel_scale
    # Frames are already cut at the right size around each position.
    options = replace(options, size=None, centre="none")
    prov = _provenance("frames", {**{f"frame_{b}": p for b, p in frames.items()}, "catalog": catalog}, options)
    return run(source, cat, out, options, bands=bands, pixel_scale=scale, provenance=prov)
