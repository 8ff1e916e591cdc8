"""deepdip.ingest: arrays, per-galaxy FITS (per band, cube, multi-extension) and WCS frames -> store.

Every input is built here with known galaxies (positions, fluxes), so the tests check that the
store holds what went in, and that each kind of bad input gets its own clear message.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from deepdip.cli import main
from deepdip.errors import DeepdipError
from deepdip.ingest import IngestOptions, IngestWarning, ingest_arrays, ingest_cutouts, ingest_frames
from deepdip.ingest.stamps import fit_stamp
from deepdip.store import CutoutStore, validate_store

BANDS = ("g", "r")
PIXEL_SCALE = 0.262
# Tests that do not check a warning need not show the expected ones (no z_spec, rejects written...).
pytestmark = pytest.mark.filterwarnings("ignore::deepdip.ingest.IngestWarning")
PICZL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "legacy_dr10_piczl"


def gaussian(shape, y, x, flux, sigma=1.5):
    """A round Gaussian galaxy of total ``flux`` centred at pixel (y, x)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / sigma**2)
    return flux * g / (2 * np.pi * sigma**2)


def centroid(img):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    return (img * yy).sum() / img.sum(), (img * xx).sum() / img.sum()


def tan_wcs(ra, dec, crpix, scale=PIXEL_SCALE, rotation_deg=0.0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = list(crpix)
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    w.wcs.cd = (scale / 3600.0) * np.array([[-c, s], [s, c]])
    return w


def opts(**kw):
    kw.setdefault("bands", BANDS)
    kw.setdefault("pixel_scale", PIXEL_SCALE)
    kw.setdefault("photometry", False)
    return IngestOptions(**kw)


def write_csv(path, rows: dict):
    keys = list(rows)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        w.writerows(zip(*rows.values()))
    return path


def read_rejects(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def leftovers(folder: Path, name: str):
    return [p.name for p in folder.iterdir() if name in p.name and p.name != name and not p.name.endswith(".csv")]


# -- numpy arrays ---------------------------------------------------------------------------------

@pytest.fixture
def array_case(tmp_path):
    n, size = 6, 15
    fluxes = np.linspace(10, 60, n)
    images = np.stack([[gaussian((size, size), 7, 7, f), gaussian((size, size), 7, 7, 2 * f)] for f in fluxes])
    np.save(tmp_path / "images.npy", images.astype(np.float32))
    cat = write_csv(tmp_path / "cat.csv", {"OBJID": np.arange(100, 100 + n), "RA": np.linspace(10, 11, n),
                                           "DEC": np.zeros(n), "ZSPEC": np.linspace(0.1, 0.6, n),
                                           "EBV": np.full(n, 0.02)})
    return tmp_path, images, fluxes, cat


def test_arrays_npy_with_csv_catalogue_maps_columns_and_converts_counts(array_case):
    folder, _, fluxes, cat = array_case
    # counts at zero point 25 -> nanomaggies: x 10^(-0.4 (25 - 22.5)) = 0.1
    result = ingest_arrays(folder / "images.npy", folder / "out.h5", cat,
                           opts(columns={"id": "OBJID", "z_spec": "ZSPEC"}, flux_unit="counts", zero_point=25.0))
    assert result.n_written == 6 and result.rejects is None
    assert validate_store(folder / "out.h5") == []
    store = CutoutStore(folder / "out.h5")
    assert store.bands == list(BANDS) and store.image_shape == (15, 15) and store.flux_unit == "nanomaggy"
    np.testing.assert_array_equal(store.column("id"), np.arange(100, 106))
    np.testing.assert_allclose(store.column("z_spec"), np.linspace(0.1, 0.6, 6), rtol=1e-6)
    np.testing.assert_allclose(store.column("ebv"), 0.02, rtol=1e-6)
    np.testing.assert_allclose(store.column("ra"), np.linspace(10, 11, 6))
    sums = store.images().sum(axis=(2, 3))
    np.testing.assert_allclose(sums[:, 0], 0.1 * fluxes, rtol=1e-4)
    np.testing.assert_allclose(sums[:, 1], 0.2 * fluxes, rtol=1e-4)


def test_arrays_npz_reorders_bands_matches_ids_and_pads_to_size(tmp_path):
    n = 4
    images = np.stack([[gaussian((11, 11), 5, 5, 100 + i), gaussian((11, 11), 5, 5, 1)] for i in range(n)])
    # The file holds (r, g); the store wants (g, r). Images are keyed by id, in another order.
    np.savez(tmp_path / "cut.npz", images=images[:, ::-1], bands=np.array(["r", "g"]), id=np.array([13, 12, 11, 10]))
    table = {"id": np.array([10, 11, 12, 13]), "ebv": np.zeros(n)}
    with pytest.warns(IngestWarning, match="z_spec"):
        ingest_arrays(tmp_path / "cut.npz", tmp_path / "out.h5", table, opts(size=16, pad="zeros"))
    store = CutoutStore(tmp_path / "out.h5")
    got = store.images()
    assert got.shape == (4, 2, 16, 16)
    # id 10 is row 3 of the file (flux 103 in g); the galaxy centre (5, 5) lands on pixel 8 = 16 // 2
    np.testing.assert_allclose(got[:, 0].sum(axis=(1, 2)), images[::-1, 0].sum(axis=(1, 2)), rtol=1e-5)
    assert np.unravel_index(np.argmax(got[0, 0]), (16, 16)) == (8, 8)
    assert np.all(np.isnan(store.column("z_spec")))


def test_npz_catalogue_id_without_image(tmp_path):
    images = np.ones((2, 2, 8, 8))
    np.savez(tmp_path / "cut.npz", images=images, id=np.array([1, 2]))
    table = {"id": np.array([1, 2, 3]), "ebv": np.zeros(3), "z_spec": np.zeros(3)}
    with pytest.raises(DeepdipError, match="galaxy 3: no image for catalogue id 3"):
        ingest_arrays(tmp_path / "cut.npz", tmp_path / "out.h5", table, opts())
    assert not (tmp_path / "out.h5").exists() and not leftovers(tmp_path, "out.h5")
    result = ingest_arrays(tmp_path / "cut.npz", tmp_path / "out.h5", table, opts(skip_bad=True))
    assert result.n_written == 2
    reason = "no image for catalogue id 3 in " + str(tmp_path / "cut.npz")
    assert read_rejects(result.rejects) == [{"id": "3", "reason": reason}]


def test_nan_pixels_flag_the_band_missing_in_the_band_mask(array_case):
    """--missing-bands mask (the default): a band with NaN pixels, or all zero, is kept as missing."""
    folder, images, _, cat = array_case
    images = images.copy()
    images[2, 1, 3, 4] = np.nan   # galaxy 102: a NaN pixel in r
    images[4, 0] = 0.0            # galaxy 104: g never observed (all zero)
    np.save(folder / "images.npy", images)
    o = {"columns": {"id": "OBJID", "z_spec": "ZSPEC"}}
    result = ingest_arrays(folder / "images.npy", folder / "out.h5", cat, opts(photometry=True, **o))
    assert result.n_written == 6
    store = CutoutStore(folder / "out.h5")
    mask = store.band_mask()
    assert not mask[2, 1] and not mask[4, 0] and mask.sum() == mask.size - 2
    assert np.all(store.images([2])[0, 1] == 0) and np.isnan(store.column("flux_r")[2])
    assert np.array_equal(store.images([3])[0], images[3].astype(np.float32))
    assert validate_store(folder / "out.h5") == []
    every = images.copy()
    every[1] = np.nan
    np.save(folder / "images.npy", every)
    with pytest.raises(DeepdipError, match=r"galaxy 101: NaN/inf pixels \(\d+ in g, \d+ in r"):
        ingest_arrays(folder / "images.npy", folder / "out2.h5", cat, opts(**o))


def test_nan_pixels_stop_the_run_or_are_rejected(array_case):
    folder, images, _, cat = array_case
    images = images.copy()
    images[2, 1, 3, 4] = np.nan
    np.save(folder / "images.npy", images)
    o = {"columns": {"id": "OBJID", "z_spec": "ZSPEC"}, "missing_bands": "reject"}
    with pytest.raises(DeepdipError, match=r"galaxy 102: NaN/inf pixels \(1 in r\)"):
        ingest_arrays(folder / "images.npy", folder / "out.h5", cat, opts(**o))
    assert not (folder / "out.h5").exists()
    result = ingest_arrays(folder / "images.npy", folder / "out.h5", cat, opts(skip_bad=True, **o))
    assert result.n_written == 5
    assert read_rejects(folder / "out.h5.rejects.csv")[0]["id"] == "102"
    assert 102 not in CutoutStore(folder / "out.h5").column("id")


@pytest.mark.parametrize("bad, message", [
    ({"columns": {"z_spec": "NOPE"}}, "catalogue has no column 'NOPE'"),
    ({"keep": ("MISSING",)}, "no column 'MISSING' to keep"),
    ({"bands": ("g", "r", "i")}, "has 2 bands per galaxy, expected 3"),
    ({"flux_unit": "counts"}, "needs a zero point"),
    ({"flux_unit": "furlongs"}, "unknown flux unit"),
])
def test_array_input_errors(array_case, bad, message):
    folder, _, _, cat = array_case
    with pytest.raises(DeepdipError, match=message):
        ingest_arrays(folder / "images.npy", folder / "out.h5", cat, opts(**bad))
    assert not (folder / "out.h5").exists()


def test_array_and_catalogue_lengths_must_match(array_case):
    folder, images, _, _ = array_case
    short = write_csv(folder / "short.csv", {"id": [1, 2, 3], "ebv": [0, 0, 0]})
    with pytest.raises(DeepdipError, match="holds 6 galaxies but the catalogue has 3 rows"):
        ingest_arrays(folder / "images.npy", folder / "out.h5", short, opts())
    with pytest.raises(DeepdipError, match=r"must be \[N, B, H, W\]"):
        ingest_arrays(images[0], folder / "out.h5", short, opts())


def test_dereddened_input_is_reddened_back_with_ebv_and_coefficients(array_case):
    folder, _, fluxes, cat = array_case
    o = {"columns": {"id": "OBJID", "z_spec": "ZSPEC"}, "dereddened_input": True}
    with pytest.raises(DeepdipError, match="needs A/E\\(B-V\\) per band"):
        ingest_arrays(folder / "images.npy", folder / "out.h5", cat, opts(**o))
    ingest_arrays(folder / "images.npy", folder / "out.h5", cat, opts(extinction_coeffs={"g": 3.0, "r": 2.0}, **o))
    sums = CutoutStore(folder / "out.h5").images().sum(axis=(2, 3))
    # EBV = 0.02 in the catalogue: g is dimmed by 10^(-0.4 * 3 * 0.02), r by 10^(-0.4 * 2 * 0.02).
    np.testing.assert_allclose(sums[:, 0], fluxes * 10 ** (-0.024), rtol=1e-4)
    np.testing.assert_allclose(sums[:, 1], 2 * fluxes * 10 ** (-0.016), rtol=1e-4)


@pytest.mark.parametrize("fmt", ["fits", "parquet", "csv"])
def test_catalogue_formats_give_the_same_columns(tmp_path, fmt):
    from astropy.table import Table

    from deepdip.ingest import build_catalog, read_table

    n = 5
    table = Table({"OBJID": np.arange(7, 7 + n), "RA": np.linspace(1, 2, n), "DEC": np.linspace(-1, 0, n),
                   "Z": np.linspace(0.1, 0.5, n), "mw_transmission_g": np.full(n, 0.9),
                   "mw_transmission_r": np.full(n, 10 ** (-0.4 * 2.165 * -2.5 * np.log10(0.9) / 3.214))})
    path = tmp_path / f"cat.{fmt}"
    if fmt == "parquet":
        table.to_pandas().to_parquet(path)
    else:
        table.write(path, format="fits" if fmt == "fits" else "ascii.csv")
    cat = build_catalog(read_table(path), opts(columns={"z_spec": "Z"}, ebv_from_transmission="mw_transmission"), BANDS)
    np.testing.assert_array_equal(cat.ids, np.arange(7, 12))
    np.testing.assert_allclose(cat.columns["dec"], np.linspace(-1, 0, n))
    np.testing.assert_allclose(cat.columns["z_spec"], np.linspace(0.1, 0.5, n), rtol=1e-6)
    # Transmission 0.9 in g with R_g = 3.214 (DECam), and a consistent r transmission.
    np.testing.assert_allclose(cat.columns["ebv"], -2.5 * np.log10(0.9) / 3.214, rtol=1e-5)


def test_duplicate_ids_and_constant_ebv_warning(array_case):
    folder, _, _, _ = array_case
    dup = write_csv(folder / "dup.csv", {"id": [1, 1, 2, 3, 4, 5]})
    with pytest.raises(DeepdipError, match="duplicates"):
        ingest_arrays(folder / "images.npy", folder / "out.h5", dup, opts())
    ok = write_csv(folder / "ok.csv", {"id": [1, 6, 2, 3, 4, 5]})
    with pytest.warns(IngestWarning, match="ebv = 0.05 for every galaxy"):
        ingest_arrays(folder / "images.npy", folder / "out.h5", ok, opts(ebv=0.05))
    np.testing.assert_allclose(CutoutStore(folder / "out.h5").column("ebv"), 0.05)


# -- per-galaxy FITS ------------------------------------------------------------------------------

def galaxy_fits(folder, gid, offset=(0.0, 0.0), size=21, kind="per-band", wcs=True, fluxes=(50.0, 80.0)):
    """Write galaxy ``gid`` at sky (10 + gid/100, 0) with its centre ``offset`` pixels off the stamp centre."""
    ra, dec = 10 + gid / 100, 0.0
    c = (size - 1) / 2
    y, x = c + offset[0], c + offset[1]
    # CRPIX is 1-based: the galaxy's sky position sits at pixel (x, y).
    header = tan_wcs(ra, dec, (x + 1, y + 1)).to_header() if wcs else fits.Header()
    planes = [gaussian((size, size), y, x, f).astype(np.float32) for f in fluxes]
    if kind == "per-band":
        for band, plane in zip(BANDS, planes):
            fits.PrimaryHDU(plane, header=header).writeto(folder / f"{gid}_{band}.fits", overwrite=True)
    elif kind == "cube":
        fits.PrimaryHDU(np.stack(planes), header=header).writeto(folder / f"{gid}.fits", overwrite=True)
    else:  # multi-extension, bands in reverse order to show they are found by name
        hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(p, header=header, name=b)
                                      for b, p in zip(BANDS[::-1], planes[::-1])]
        fits.HDUList(hdus).writeto(folder / f"{gid}.fits", overwrite=True)
    return ra, dec


@pytest.mark.parametrize("kind, pattern",
                         [("per-band", "{id}_{band}.fits"), ("cube", "{id}.fits"), ("mef", "{id}.fits")])
def test_fits_cutouts_recentred_on_wcs(tmp_path, kind, pattern):
    offsets = {1: (0.0, 0.0), 2: (3.0, -2.0), 3: (-4.0, 1.0)}
    pos = {gid: galaxy_fits(tmp_path, gid, off, kind=kind) for gid, off in offsets.items()}
    cat = write_csv(tmp_path / "cat.csv", {"id": list(pos), "ra": [p[0] for p in pos.values()],
                                           "dec": [p[1] for p in pos.values()], "z_spec": [0.1, 0.2, 0.3],
                                           "ebv": [0.01] * 3})
    ingest_cutouts(str(tmp_path / pattern), cat, tmp_path / "out.h5", opts(centre="wcs", size=13, pad="zeros"))
    images = CutoutStore(tmp_path / "out.h5").images()
    assert images.shape == (3, 2, 13, 13)
    for img in images:
        for band, flux in zip(range(2), (50.0, 80.0)):
            np.testing.assert_allclose(centroid(img[band]), (6, 6), atol=0.02)
            np.testing.assert_allclose(img[band].sum(), flux, rtol=0.01)  # 13 px holds > 99 % of sigma 1.5


def test_fits_band_missing_for_some_galaxies(tmp_path):
    for gid in (1, 2, 3):
        galaxy_fits(tmp_path, gid)
    (tmp_path / "2_r.fits").unlink()
    cat = write_csv(tmp_path / "cat.csv", {"id": [1, 2, 3], "ebv": [0, 0, 0], "z_spec": [0.1, 0.2, 0.3]})
    with pytest.raises(DeepdipError, match=r"galaxy 2: no image for band r \(.*2_r.fits not found\)"):
        ingest_cutouts(str(tmp_path / "{id}_{band}.fits"), cat, tmp_path / "out.h5", opts())
    assert not (tmp_path / "out.h5").exists() and not leftovers(tmp_path, "out.h5")
    result = ingest_cutouts(str(tmp_path / "{id}_{band}.fits"), cat, tmp_path / "out.h5",
                            opts(skip_bad=True, rejects=str(tmp_path / "bad.csv")))
    assert result.n_written == 2 and [r["id"] for r in read_rejects(tmp_path / "bad.csv")] == ["2"]


def test_fits_mismatched_shapes(tmp_path):
    galaxy_fits(tmp_path, 1)
    galaxy_fits(tmp_path, 2, size=25)
    fits.PrimaryHDU(np.zeros((19, 19), np.float32)).writeto(tmp_path / "1_r.fits", overwrite=True)
    cat = write_csv(tmp_path / "cat.csv", {"id": [1], "ebv": [0], "z_spec": [0.1]})
    with pytest.raises(DeepdipError, match="galaxy 1: band r is 19x19 but band g is 21x21"):
        ingest_cutouts(str(tmp_path / "{id}_{band}.fits"), cat, tmp_path / "out.h5", opts())
    galaxy_fits(tmp_path, 1)
    cat = write_csv(tmp_path / "cat.csv", {"id": [1, 2], "ebv": [0, 0], "z_spec": [0.1, 0.2]})
    with pytest.raises(DeepdipError, match="galaxy 2: stamp is 25x25 but earlier ones are 21x21 .*--size"):
        ingest_cutouts(str(tmp_path / "{id}_{band}.fits"), cat, tmp_path / "out.h5", opts())
    result = ingest_cutouts(str(tmp_path / "{id}_{band}.fits"), cat, tmp_path / "out.h5", opts(size=21))
    assert result.n_written == 2


def test_fits_without_wcs_when_centring_needs_it(tmp_path):
    ra, dec = galaxy_fits(tmp_path, 1, wcs=False)
    cat = write_csv(tmp_path / "cat.csv", {"id": [1], "ra": [ra], "dec": [dec], "ebv": [0], "z_spec": [0.1]})
    with pytest.raises(DeepdipError, match="galaxy 1: its image has no celestial WCS"):
        ingest_cutouts(str(tmp_path / "{id}_{band}.fits"), cat, tmp_path / "out.h5", opts(centre="wcs"))
    # Without WCS centring the same files are fine.
    assert ingest_cutouts(str(tmp_path / "{id}_{band}.fits"), cat, tmp_path / "out.h5", opts()).n_written == 1


def test_fits_catalogue_id_without_image_and_no_match_at_all(tmp_path):
    galaxy_fits(tmp_path, 1, kind="cube")
    cat = write_csv(tmp_path / "cat.csv", {"id": [1, 7], "ebv": [0, 0], "z_spec": [0.1, 0.2]})
    with pytest.raises(DeepdipError, match=r"galaxy 7: no image \(.*7.fits not found\)"):
        ingest_cutouts(str(tmp_path / "{id}.fits"), cat, tmp_path / "out.h5", opts())
    with pytest.raises(DeepdipError, match="no file matches"):
        ingest_cutouts(str(tmp_path / "x{id}.fits"), cat, tmp_path / "out.h5", opts())
    with pytest.raises(DeepdipError, match=r"must contain \{id\}"):
        ingest_cutouts(str(tmp_path / "cube.fits"), cat, tmp_path / "out.h5", opts())


# -- survey frames --------------------------------------------------------------------------------

RA0, DEC0 = 150.0, 2.0


def render_frame(path, wcs, shape, galaxies, sigma_arcsec=0.5, with_wcs=True):
    """Gaussian galaxies (ra, dec, flux in nanomaggies) rendered on a frame through its own WCS."""
    scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600
    img = np.zeros(shape)
    for ra, dec, flux in galaxies:
        x, y = wcs.world_to_pixel_values(ra, dec)
        img += gaussian(shape, y, x, flux, sigma=sigma_arcsec / scale)
    header = wcs.to_header() if with_wcs else fits.Header()
    fits.PrimaryHDU(img.astype(np.float32), header=header).writeto(path, overwrite=True)


@pytest.fixture
def frames_case(tmp_path):
    # Galaxies 1-3 well inside; 4 near the g frame's edge; 5 outside every frame.
    d = PIXEL_SCALE / 3600
    galaxies = {1: (RA0, DEC0, 40.0), 2: (RA0 + 20.3 * d, DEC0 - 15.6 * d, 25.0),
                3: (RA0 - 25.2 * d, DEC0 + 22.7 * d, 60.0),
                4: (RA0 - 47 * d, DEC0, 30.0), 5: (RA0 + 1.0, DEC0, 10.0)}
    ref = tan_wcs(RA0, DEC0, (50.5, 50.5))
    shifted = tan_wcs(RA0, DEC0, (62.5, 45.5))  # same grid, whole-pixel offset (r)
    rotated = tan_wcs(RA0, DEC0, (70.3, 64.8), scale=0.2, rotation_deg=30.0)  # another grid (i)
    gal = list(galaxies.values())
    render_frame(tmp_path / "g.fits", ref, (100, 100), [(ra, dec, f) for ra, dec, f in gal])
    render_frame(tmp_path / "r.fits", shifted, (110, 120), [(ra, dec, 2 * f) for ra, dec, f in gal])
    render_frame(tmp_path / "i.fits", rotated, (140, 140), [(ra, dec, 3 * f) for ra, dec, f in gal])
    cat = write_csv(tmp_path / "pos.csv", {"id": list(galaxies), "ra": [g[0] for g in gal], "dec": [g[1] for g in gal],
                                           "z_spec": [0.1, 0.2, 0.3, 0.4, 0.5], "ebv": [0.03] * 5})
    frames = {b: tmp_path / f"{b}.fits" for b in ("g", "r", "i")}
    return tmp_path, frames, cat, galaxies


def test_frames_cut_align_and_recover_positions_and_fluxes(frames_case):
    folder, frames, cat, galaxies = frames_case
    with pytest.warns(IngestWarning, match="2 galaxies skipped"):
        result = ingest_frames(frames, cat, folder / "out.h5", opts(bands=("g", "r", "i"), size=21, pixel_scale=None))
    assert result.n_written == 3 and result.pixel_scale == pytest.approx(PIXEL_SCALE)
    reasons = {r["id"]: r["reason"] for r in read_rejects(result.rejects)}
    assert reasons == {"4": "too near the edge of the g frame", "5": "outside the g frame"}
    store = CutoutStore(folder / "out.h5")
    np.testing.assert_array_equal(store.column("id"), [1, 2, 3])
    images = store.images()
    for img, gid in zip(images, (1, 2, 3)):
        ref_pos = centroid(img[0])
        # Cutout2D centres on the nearest pixel: the galaxy is within half a pixel of the centre.
        assert np.all(np.abs(np.array(ref_pos) - 10) <= 0.5 + 1e-6)
        for band, factor in ((1, 2), (2, 3)):
            np.testing.assert_allclose(centroid(img[band]), ref_pos, atol=0.05)  # bands aligned on sky
            np.testing.assert_allclose(img[band].sum(), factor * galaxies[gid][2], rtol=0.02)
        np.testing.assert_allclose(img[0].sum(), galaxies[gid][2], rtol=0.01)


def test_frame_errors(frames_case):
    folder, frames, cat, _ = frames_case
    o = opts(bands=("g", "r"), size=21)
    render_frame(folder / "nowcs.fits", tan_wcs(RA0, DEC0, (50.5, 50.5)), (100, 100), [], with_wcs=False)
    with pytest.raises(DeepdipError, match="nowcs.fits has no celestial WCS"):
        ingest_frames({"g": frames["g"], "r": folder / "nowcs.fits"}, cat, folder / "out.h5", o)
    with pytest.raises(DeepdipError, match="no frame given for band"):
        ingest_frames({"g": frames["g"]}, cat, folder / "out.h5", o)
    nopos = write_csv(folder / "nopos.csv", {"id": [1], "ebv": [0]})
    with pytest.raises(DeepdipError, match="no 'ra' column .*positions are needed"):
        ingest_frames(frames, nopos, folder / "out.h5", o)
    assert not (folder / "out.h5").exists() and not leftovers(folder, "out.h5")


# -- stamps, CLI, config --------------------------------------------------------------------------

def test_fit_stamp_crop_and_noise_padding():
    rng = np.random.default_rng(1)
    img = rng.normal(0, 0.5, (1, 23, 23))
    img[0, 11, 11] = 100
    out = fit_stamp(img, 32, pad="noise", rng=np.random.default_rng(0))
    assert out.shape == (1, 32, 32) and out[0, 16, 16] == 100
    np.testing.assert_array_equal(out[0, 5:28, 5:28], img[0].astype(np.float32))
    added = np.concatenate([out[0, :5].ravel(), out[0, 28:].ravel()])
    assert 0.35 < added.std() < 0.65  # padding noise matches the stamp's own sky noise
    assert fit_stamp(img, 9)[0, 4, 4] == 100


def test_centroid_centring_moves_an_offset_galaxy_to_the_centre(tmp_path):
    images = np.stack([[gaussian((21, 21), 13, 6, 50), gaussian((21, 21), 13, 6, 70)]])
    ingest_arrays(images, tmp_path / "out.h5", {"id": [5], "ebv": [0.0], "z_spec": [0.2]},
                  opts(centre="centroid", size=11, pad="zeros"))
    img = CutoutStore(tmp_path / "out.h5").images()[0]
    np.testing.assert_allclose(centroid(img[0]), (5, 5), atol=0.02)


def test_cli_with_yaml_config_and_one_line_error(array_case, capsys):
    folder, _, _, cat = array_case
    (folder / "ingest.yaml").write_text(
        "bands: [g, r]\npixel_scale: 0.262\ncolumns: {id: OBJID, z_spec: ZSPEC}\nphotometry: false\n"
        f"arrays: {folder / 'images.npy'}\ncatalog: {cat}\n")
    assert main(["ingest", "--config", str(folder / "ingest.yaml"), "--size", "11",
                 "--out", str(folder / "cli.h5")]) == 0
    assert "wrote" in capsys.readouterr().out
    store = CutoutStore(folder / "cli.h5")
    assert store.image_shape == (11, 11) and store.column("id")[0] == 100
    code = main(["ingest", "--config", str(folder / "ingest.yaml"), "--column", "z_spec=NOPE",
                 "--out", str(folder / "bad.h5")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("deepdip ingest: error: catalogue has no column 'NOPE'")
    assert not (folder / "bad.h5").exists()
    assert main(["ingest", "--out", str(folder / "x.h5")]) == 2


def test_toml_config_unknown_key(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('bands = "g,r"\nfoo = 1\n')
    assert main(["ingest", "--config", str(tmp_path / "c.toml"), "--arrays", "a.npy",
                 "--out", str(tmp_path / "o.h5")]) == 2
    assert "unknown option(s) foo" in capsys.readouterr().err


# -- real Legacy Survey DR10 cutouts ---------------------------------------------------------------

@pytest.mark.skipif(not PICZL.is_dir(), reason="real data ../shared/data/real/legacy_dr10_piczl is absent "
                                                "(only in the development checkout)")
def test_real_legacy_dr10_cutouts(tmp_path):
    path = PICZL / "piczl_train_griz.npz"
    options = IngestOptions(survey="legacy", columns={"id": "fullid", "z_spec": "z"},
                            ebv_from_transmission="mw_transmission", dereddened_input=True,
                            keep=("primary", "dered_flux"), size=32)
    with pytest.warns(IngestWarning, match="source_id"):
        result = ingest_arrays(path, tmp_path / "real.h5", options=options)
    assert result.n_written == 50 and result.bands == ("g", "r", "i", "z")
    store = CutoutStore(tmp_path / "real.h5")
    assert validate_store(tmp_path / "real.h5") == []
    data = np.load(path)
    assert int(store.column("primary").sum()) == 35
    # E(B-V) from mw_transmission = 10^(-0.4 R E(B-V)) with the DECam R: bands agree to < 1 %.
    r = np.array([3.214, 2.165, 1.592, 1.211])
    per_band = -2.5 * np.log10(data["mw_transmission"]) / r
    np.testing.assert_allclose(store.column("ebv"), per_band.mean(1), rtol=1e-5)
    assert np.all(per_band.std(1) < 0.01 * per_band.mean(1))
    # The 23x23 pixels land in the middle of the 32x32 stamp, reddened back to observed fluxes.
    observed = data["images"][:5] * data["mw_transmission"][:5, :, None, None]
    np.testing.assert_allclose(store.images(slice(0, 5))[:, :, 5:28, 5:28], observed, rtol=1e-6)
    # Measured photometry (deepdip.photometry) is added for the baselines: finite, mostly detected.
    flux_r, err_r = store.column("flux_r"), store.column("flux_err_r")
    assert np.all(np.isfinite(flux_r)) and np.median(flux_r / err_r) > 10


# -- sim-to-real study (benchmarks/sim_to_real_legacy.py: fine-tuning with leave-out CV) ----------

def sim_to_real_study():
    """The study script, imported from its file (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sim_to_real_legacy.py"
    spec = importlib.util.spec_from_file_location("sim_to_real_legacy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """Tiny tensors: extra torch threads only add overhead on a shared machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_finetune_learns_and_leave_out_cv_predicts_every_galaxy(one_thread):
    import torch
    study = sim_to_real_study()
    finetune, leave_out_cv, predict_pdfs = study.finetune, study.leave_out_cv, study.predict_pdfs
    from deepdip.models.net import PhotozNet
    from deepdip.zgrid import ZGrid

    torch.manual_seed(0)
    zgrid = ZGrid(0.0, 0.8, 16)
    net = PhotozNet("compact", in_chans=2, num_bins=zgrid.nbins, img_size=16).eval()
    rng = np.random.default_rng(0)
    z = np.array([0.1, 0.1, 0.5, 0.5, 0.1, 0.5])
    # Redshift written into the colour: blue (g-bright) at z = 0.1, red at 0.5.
    images = np.stack([[gaussian((16, 16), 7.5, 7.5, 60 if zz < 0.3 else 20),
                        gaussian((16, 16), 7.5, 7.5, 20 if zz < 0.3 else 60)] for zz in z])
    images = (images + rng.normal(0, 0.05, images.shape)).astype(np.float32)
    ebv = np.full(len(z), 0.03, np.float32)
    before = predict_pdfs([net], images, ebv)[np.arange(6), zgrid.bin_index(z)].mean()
    tuned = finetune(net, images, ebv, z, zgrid, epochs=30, lr=3e-3, batch_size=6)
    after = predict_pdfs([tuned], images, ebv)[np.arange(6), zgrid.bin_index(z)].mean()
    assert after > 2 * before  # probability of the true bin rises on the training galaxies
    pdf = leave_out_cv([net], images, ebv, z, zgrid, n_groups=3, epochs=2, batch_size=4)
    assert pdf.shape == (6, 16) and np.allclose(pdf.sum(1), 1, atol=1e-4)


def test_finetune_with_frozen_batch_norm_keeps_the_mock_statistics(one_thread):
    import torch
    finetune = sim_to_real_study().finetune
    from deepdip.models.net import PhotozNet
    from deepdip.zgrid import ZGrid

    torch.manual_seed(0)
    zgrid = ZGrid(0.0, 0.8, 16)
    net = PhotozNet("compact", in_chans=2, num_bins=zgrid.nbins, img_size=16).eval()
    images = np.random.default_rng(1).normal(1.0, 0.5, (6, 2, 16, 16)).astype(np.float32)
    ebv, z = np.full(6, 0.03, np.float32), np.linspace(0.1, 0.6, 6)

    def running_means(model):
        return [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    frozen = finetune(net, images, ebv, z, zgrid, epochs=2, batch_size=3, freeze_bn=True)
    moving = finetune(net, images, ebv, z, zgrid, epochs=2, batch_size=3)
    assert running_means(net)  # the test means something only if the network has batch norm
    assert all(torch.equal(a, b) for a, b in zip(running_means(net), running_means(frozen)))
    assert not all(torch.equal(a, b) for a, b in zip(running_means(net), running_means(moving)))


def test_finetune_regularisers_keep_the_network_nearer_its_start(one_thread):
    """L2-SP pulls the weights towards the mock model's, and rehearsal (mock galaxies in every batch) keeps
    the mock galaxies predicted: both move the network less from its start than plain fine-tuning."""
    import torch
    finetune = sim_to_real_study().finetune
    from deepdip.models.net import PhotozNet
    from deepdip.zgrid import ZGrid

    torch.manual_seed(0)
    zgrid = ZGrid(0.0, 0.8, 16)
    net = PhotozNet("compact", in_chans=2, num_bins=zgrid.nbins, img_size=16).eval()
    rng = np.random.default_rng(2)
    images = rng.normal(1.0, 0.5, (8, 2, 16, 16)).astype(np.float32)
    ebv, z = np.full(8, 0.03, np.float32), np.linspace(0.1, 0.6, 8)
    mock = (rng.normal(1.0, 0.5, (40, 2, 16, 16)).astype(np.float32), np.full(40, 0.03, np.float32),
            rng.uniform(0.05, 0.7, 40))

    def moved(model):
        start = dict(net.backbone.named_parameters())
        return sum(float(((p - start[n]) ** 2).sum()) for n, p in model.backbone.named_parameters())

    kw = dict(epochs=5, lr=3e-3, batch_size=4, seed=1)
    plain = moved(finetune(net, images, ebv, z, zgrid, **kw))
    held = moved(finetune(net, images, ebv, z, zgrid, l2sp=10.0, **kw))
    assert held < 0.5 * plain
    rehearsed = finetune(net, images, ebv, z, zgrid, rehearsal=mock, rehearsal_per_batch=8, **kw)
    assert np.isfinite(moved(rehearsed)) and moved(rehearsed) != pytest.approx(plain)   # the mock galaxies took part



def test_adapt_batch_norm_takes_the_statistics_of_the_new_pixels_and_nothing_else(one_thread):
    """AdaBN: the first batch-norm's running mean and variance become those of its input on the new
    cutouts in their 8 orientations (not a blend with the old statistics: they start far off here),
    the weights are untouched, the original network is not modified, the copy is in inference mode
    with its momentum back; in chunks the mean stays exact. A backbone without batch norm is refused."""
    import torch
    study = sim_to_real_study()
    from deepdip.errors import DeepdipError
    from deepdip.models.dihedral import dihedral
    from deepdip.models.net import PhotozNet

    torch.manual_seed(0)
    net = PhotozNet("compact", in_chans=2, num_bins=16, img_size=16).eval()
    original = next(m for m in net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    original.running_mean.fill_(7.0)
    original.running_var.fill_(30.0)
    original.num_batches_tracked.fill_(100)  # a cumulative average without the reset would barely move
    bright = np.random.default_rng(3).normal(5.0, 1.0, (10, 2, 16, 16)).astype(np.float32)
    ebv = np.full(10, 0.03, np.float32)
    seen = []
    hook = original.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        x = torch.as_tensor(bright)
        net(torch.cat([dihedral(x, k) for k in range(8)]), torch.as_tensor(ebv[:, None]).repeat(8, 1))
    hook.remove()
    expected_mean, expected_var = seen[0].mean((0, 2, 3)), seen[0].var((0, 2, 3), unbiased=True)
    before = {n: b.clone() for n, b in net.named_buffers()}
    adapted = study.adapt_batch_norm(net, bright, ebv)
    assert all(torch.equal(before[n], b) for n, b in net.named_buffers())  # the original untouched
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), adapted.parameters()))
    first = next(m for m in adapted.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    torch.testing.assert_close(first.running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first.running_var, expected_var, rtol=1e-4, atol=1e-5)
    assert not adapted.training and first.momentum == original.momentum
    chunked = study.adapt_batch_norm(net, bright, ebv, batch=40)  # 80 views in two chunks of 40
    first = next(m for m in chunked.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    torch.testing.assert_close(first.running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    plain = copy.deepcopy(net)
    plain.backbone = torch.nn.Sequential()  # no batch norm anywhere
    with pytest.raises(DeepdipError, match="no batch-norm layer"):
        study.adapt_batch_norm(plain, bright, ebv)


# -- the extinction coefficients a store records (deepdip.extinction) -------------------------------------

def _transmission_case(folder, n=6):
    """array_case's images with a catalogue giving Milky-Way transmissions made with the DECam R."""
    ebv = np.linspace(0.01, 0.1, n)
    return write_csv(folder / "trans.csv", {"OBJID": np.arange(100, 100 + n), "ZSPEC": np.linspace(0.1, 0.6, n),
                                            "mw_transmission_g": 10 ** (-0.4 * 3.214 * ebv),
                                            "mw_transmission_r": 10 ** (-0.4 * 2.165 * ebv)}), ebv


def test_ingest_records_the_coefficients_of_the_transmissions(array_case):
    """E(B-V) inverted from mw_transmission relates to A_b by the DECam R it was inverted with: the store
    records them, so the baselines deredden with exactly the survey's A_b (not Fitzpatrick 99, 0.885 apart)."""
    from deepdip.extinction import DECAM_LAW, LAW_KEY, store_extinction_coefficients

    folder, _, _, _ = array_case
    cat, ebv = _transmission_case(folder)
    ingest_arrays(folder / "images.npy", folder / "t.h5", cat,
                  opts(columns={"id": "OBJID", "z_spec": "ZSPEC"}, ebv_from_transmission="mw_transmission"))
    store = CutoutStore(folder / "t.h5")
    assert store.provenance["extinction_coeffs"] == [3.214, 2.165]
    assert store.provenance[LAW_KEY] == DECAM_LAW
    coeffs = store_extinction_coefficients(store, ("decamDR1-g", "decamDR1-r"))
    table = np.loadtxt(cat, delimiter=",", skiprows=1)
    np.testing.assert_allclose(store.column("ebv")[:, None] * coeffs, -2.5 * np.log10(table[:, 2:4]), rtol=1e-6)
    np.testing.assert_allclose(store.column("ebv"), ebv, rtol=1e-6)
    # A coefficient the user gives (here r) is the one used and recorded, and the law says so.
    ingest_arrays(folder / "images.npy", folder / "u.h5", cat,
                  opts(columns={"id": "OBJID", "z_spec": "ZSPEC"}, ebv_from_transmission="mw_transmission",
                       extinction_coeffs={"r": 2.0}))
    prov = CutoutStore(folder / "u.h5").provenance
    assert prov["extinction_coeffs"] == [3.214, 2.0] and "r: given by the user" in prov[LAW_KEY]


def test_ingest_records_the_users_or_the_presets_coefficients_for_an_ebv_column(array_case):
    from deepdip.extinction import EXTINCTION_LAW, extinction_coefficients

    folder, _, _, cat = array_case
    columns = {"id": "OBJID", "z_spec": "ZSPEC"}
    # no preset and no coefficients: nothing to record (readers fall back on the law at the store's filters)
    ingest_arrays(folder / "images.npy", folder / "a.h5", cat, opts(columns=columns))
    assert "extinction_coeffs" not in CutoutStore(folder / "a.h5").provenance
    ingest_arrays(folder / "images.npy", folder / "b.h5", cat,
                  opts(columns=columns, extinction_coeffs={"g": 3.0, "r": 2.0}))
    assert CutoutStore(folder / "b.h5").provenance["extinction_coeffs"] == [3.0, 2.0]
    # a preset (whose bands g, r are a subset of its griz): deepdip's law at those bands' filters
    ingest_arrays(folder / "images.npy", folder / "c.h5", cat, opts(columns=columns, survey="legacy"))
    prov = CutoutStore(folder / "c.h5").provenance
    np.testing.assert_allclose(prov["extinction_coeffs"], extinction_coefficients(("decamDR1-g", "decamDR1-r")))
    assert prov["extinction_law"] == EXTINCTION_LAW


@pytest.mark.skipif(not PICZL.is_dir(), reason="real data ../shared/data/real/legacy_dr10_piczl is absent "
                                                "(only in the development checkout)")
def test_real_legacy_store_is_dereddened_with_the_surveys_own_extinction(tmp_path):
    """The baselines' A_b of an ingested DR10 store is the survey's -2.5 log10(mw_transmission)."""
    from deepdip.photometry import Photometry

    path = PICZL / "piczl_train_griz.npz"
    options = IngestOptions(survey="legacy", columns={"id": "fullid", "z_spec": "z"}, photometry=True,
                            ebv_from_transmission="mw_transmission", dereddened_input=True, size=32)
    with pytest.warns(IngestWarning, match="source_id"):
        ingest_arrays(path, tmp_path / "real.h5", options=options)
    store = CutoutStore(tmp_path / "real.h5")
    assert store.provenance["extinction_coeffs"] == [3.214, 2.165, 1.592, 1.211]
    a_b = Photometry.from_store(store).extinction
    np.testing.assert_allclose(a_b, -2.5 * np.log10(np.load(path)["mw_transmission"]), rtol=0.01)
