"""The cutout store (the ``deepdip.store`` package): writing, reading, shards, folds, workers, and
`deepdip validate` (every bad-store case a one-line message and a non-zero exit)."""

import pickle
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import h5py
import numpy as np
import pytest

from deepdip.cli import main
from deepdip.errors import StoreError
from deepdip.store import CutoutStore, StoreWriter, add_columns, assign_folds, create_store, validate_store
from tests.conftest import make_catalog


def _write(path, n=50, shard_size=None, seed=1, chunks=1):
    rng = np.random.default_rng(7)
    images = rng.normal(size=(n, 3, 6, 6)).astype(np.float32)
    cat = make_catalog(n, rng)
    cat["mag_r"] = rng.uniform(14, 18, n)
    with StoreWriter(path, bands="gri", image_shape=(6, 6), survey="test", pixel_scale=0.2, seed=seed,
                     shard_size=shard_size) as w:
        for part in np.array_split(np.arange(n), chunks):
            w.append(images[part], {k: v[part] for k, v in cat.items()})
    return images, cat


def test_round_trip_single_file(tmp_path):
    images, cat = _write(tmp_path / "s.h5", chunks=3)
    store = CutoutStore(tmp_path / "s.h5")
    assert len(store) == 50 and store.bands == ["g", "r", "i"] and store.image_shape == (6, 6)
    assert store.survey == "test" and store.pixel_scale == 0.2 and store.flux_unit == "nanomaggy"
    rows = np.array([7, 2, 2, 49, 0])  # any order, repeats allowed
    np.testing.assert_array_equal(store.images(rows), images[rows])
    np.testing.assert_array_equal(store.column("id", rows), cat["id"][rows])
    assert store.column("z_spec").dtype == np.float32 and store.column("fold").dtype == np.int8
    np.testing.assert_allclose(store.column("mag_r"), cat["mag_r"])


def test_sharded_store_reads_as_one(tmp_path):
    images, cat = _write(tmp_path / "one.h5")
    _write(tmp_path / "many", shard_size=12)
    assert len(list((tmp_path / "many").glob("*.h5"))) == 5
    one, many = CutoutStore(tmp_path / "one.h5"), CutoutStore(tmp_path / "many")
    rows = np.array([49, 11, 12, 0, 30])
    np.testing.assert_array_equal(many.images(rows), images[rows])
    np.testing.assert_array_equal(many.column("fold"), one.column("fold"))
    chunks = list(many.iter_chunks(chunk_size=16))
    assert [len(r) for r, _ in chunks] == [16, 16, 16, 2]
    np.testing.assert_array_equal(np.concatenate([im for _, im in chunks]), images)


def test_folds_deterministic_balanced_and_order_free():
    ids = np.arange(20000)
    folds = assign_folds(ids, 5, seed=1)
    assert set(np.unique(folds)) == {0, 1, 2, 3, 4}
    assert np.abs(np.bincount(folds) / len(ids) - 0.2).max() < 0.01
    np.testing.assert_array_equal(assign_folds(ids[::-1], 5, seed=1), folds[::-1])
    assert (assign_folds(ids, 5, seed=2) != folds).mean() > 0.7


def test_split_rows(tiny_store):
    store = CutoutStore(tiny_store)
    test, train = store.split_rows("test", 2), store.split_rows("train", 2)
    assert len(test) + len(train) == len(store) and not set(test) & set(train)
    assert (store.column("fold", test) == 2).all()
    with pytest.raises(StoreError, match="fold must be in 0..4"):
        store.split_rows("test", 9)


def _read_in_worker(store):
    return store.images([3, 1]).sum()


def test_store_is_picklable_and_safe_in_worker_processes(tiny_store):
    store = CutoutStore(tiny_store)
    expected = store.images([3, 1]).sum()  # opens a handle in this process first
    clone = pickle.loads(pickle.dumps(store))
    assert clone.images([3, 1]).sum() == expected
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(_read_in_worker, [store, store])) == [expected, expected]


def test_writer_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "s.h5"
    with pytest.raises(RuntimeError):
        with StoreWriter(target, bands="gri", image_shape=(6, 6), survey="t", pixel_scale=0.2) as w:
            w.append(np.zeros((2, 3, 6, 6)), make_catalog(2, np.random.default_rng(0)))
            raise RuntimeError("simulated crash")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_input(tmp_path):
    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "s.h5", bands="gri", image_shape=(6, 6), survey="t", pixel_scale=0.2) as w:
        with pytest.raises(StoreError, match=r"images must have shape \[n, 3, 6, 6\]"):
            w.append(np.zeros((2, 4, 6, 6)), make_catalog(2, rng))
        cat = make_catalog(2, rng)
        del cat["ebv"]
        with pytest.raises(StoreError, match="'ebv' is required"):
            w.append(np.zeros((2, 3, 6, 6)), cat)
        w.append(np.zeros((2, 3, 6, 6)), make_catalog(2, rng))
        with pytest.raises(StoreError, match="duplicate galaxy ids"):
            w.append(np.zeros((2, 3, 6, 6)), make_catalog(2, rng))


def test_add_columns(tiny_store):
    add_columns(tiny_store, {"flux_r": np.arange(60.0)})
    store = CutoutStore(tiny_store)
    np.testing.assert_array_equal(store.column("flux_r"), np.arange(60.0))
    with pytest.raises(StoreError, match="length 60"):
        add_columns(tiny_store, {"flux_g": np.arange(5.0)})
    assert "flux_g" not in CutoutStore(tiny_store).columns


def test_reader_errors(tmp_path, tiny_store):
    with pytest.raises(StoreError, match="no such store"):
        CutoutStore(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        CutoutStore(tmp_path / "text.h5")
    with pytest.raises(StoreError, match="no catalogue column 'nope'"):
        CutoutStore(tiny_store).column("nope")
    with h5py.File(tiny_store, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="unknown format_version 99"):
        CutoutStore(tiny_store)


def test_create_store_infers_shape(tmp_path):
    rng = np.random.default_rng(1)
    path = create_store(tmp_path / "c.h5", np.ones((4, 2, 5, 7), np.float32), make_catalog(4, rng),
                        bands=["a", "b"], survey="x", pixel_scale=1.0)
    assert CutoutStore(path).image_shape == (5, 7)


def _splitmix64_reference(x: int) -> int:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014) in plain Python integers."""
    mask = 2**64 - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_fold_hash_is_splitmix64_of_id_and_seed():
    """The fold of a galaxy is part of every store already written: pin the hash itself (an append
    to an old store must give the old folds), against a plain-Python reference."""
    mask = 2**64 - 1
    ids = [0, 1, 2, 41, 1000, 123456789, 2**40 + 7, 2**62, -1, -5]
    for seed in (0, 1, 7, 2**31 - 1):
        for k in (1, 2, 5, 127):
            want = [_splitmix64_reference((i & mask) ^ _splitmix64_reference(seed & mask)) % k for i in ids]
            assert assign_folds(np.array(ids, dtype=np.int64), k, seed=seed).tolist() == want
    # Any integer dtype (or a list) means the same ids; the defaults are 5 folds and seed 0.
    small = np.arange(50, dtype=np.int32)
    np.testing.assert_array_equal(assign_folds(small), assign_folds(small.astype(np.int64), 5, 0))
    np.testing.assert_array_equal(assign_folds(small.tolist(), 5, 0), assign_folds(small, 5, 0))
    assert assign_folds(small).dtype == np.int8
    for bad in (0, 128, -1):
        with pytest.raises(ValueError, match=r"n_folds must be in 1\.\.127, got"):
            assign_folds(small, bad)


# -- `deepdip validate`: every bad-store case gets a one-line message naming it and a non-zero exit ---
def _run(path, capsys):
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


def test_valid_store_passes_silently(tiny_store, capsys):
    code, err = _run(tiny_store, capsys)
    assert code == 0 and err == ""


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


BREAKERS = {
    "missing images": (lambda f: f.__delitem__("images"), r"missing 'images' dataset"),
    "missing column": (lambda f: f["catalog"].__delitem__("z_spec"), r"missing required catalogue column 'catalog/z_spec'"),
    "missing ebv": (lambda f: f["catalog"].__delitem__("ebv"), r"'catalog/ebv'"),
    "wrong rank": (lambda f: _replace(f, "images", np.zeros((60, 5, 8), np.float32)), r"rank 4 .* shape \[60, 5, 8\]"),
    "wrong image dtype": (lambda f: _replace(f, "images", np.zeros((60, 5, 8, 8), np.float64)), r"must be float32, got float64"),
    "wrong column dtype": (lambda f: _replace(f, "catalog/id", np.arange(60, dtype=np.float64)), r"'id' must be int64, got float64"),
    "catalogue length": (lambda f: _replace(f, "catalog/ebv", np.zeros(59, np.float32)), r"'ebv' has length 59 but there are 60 images"),
    "duplicate ids": (lambda f: _replace(f, "catalog/id", np.r_[np.arange(58), 3, 4].astype(np.int64)), r"duplicate ids: 3, 4"),
    "nan pixels": (lambda f: f["images"].__setitem__((7, 2, 3, 3), np.nan), r"NaN or inf pixels in 1 cutouts \(ids 1007\)"),
    "inf pixels": (lambda f: f["images"].__setitem__((9, 0, 0, 0), np.inf), r"NaN or inf pixels in 1 cutouts \(ids 1009\)"),
    "bands missing": (lambda f: f.attrs.__delitem__("bands"), r"missing file attribute 'bands'"),
    "bands inconsistent": (lambda f: f.attrs.__setitem__("bands", ["g", "r", "i"]), r"lists 3 bands .* images have B=5"),
    "unknown version": (lambda f: f.attrs.__setitem__("format_version", 7), r"unknown format_version 7"),
    "fold out of range": (lambda f: f["catalog/fold"].__setitem__(0, 9), r"fold values outside 0..4: 1 rows \(ids 1000\)"),
}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_bad_store_is_rejected(tiny_store, capsys, case):
    breaker, message = BREAKERS[case]
    with h5py.File(tiny_store, "r+") as f:
        breaker(f)
    code, err = _run(tiny_store, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert any(re.search(message, line) for line in lines), err
    assert all(line.startswith(str(tiny_store)) for line in lines)


def test_non_hdf5_and_truncated(tmp_path, tiny_store, capsys):
    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n")
    code, err = _run(text, capsys)
    assert code != 0 and "not an HDF5 file" in err and len(err.strip().splitlines()) == 1

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(tiny_store.read_bytes()[:4000])
    code, err = _run(truncated, capsys)
    assert code != 0 and ("truncated" in err) and len(err.strip().splitlines()) == 1

    code, err = _run(tmp_path / "absent.h5", capsys)
    assert code != 0 and "no such store" in err


def test_every_problem_is_reported(tiny_store, capsys):
    with h5py.File(tiny_store, "r+") as f:
        f["images"][0, 0, 0, 0] = np.nan
        _replace(f, "catalog/id", np.zeros(60, np.int64))
        f.attrs["format_version"] = 5
    code, err = _run(tiny_store, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 3


def test_validate_console_script_exit_code(tiny_store):
    with h5py.File(tiny_store, "r+") as f:
        del f["catalog/fold"]
    proc = subprocess.run([sys.executable, "-m", "deepdip", "validate", str(tiny_store)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "missing required catalogue column 'catalog/fold'" in proc.stderr


# --- band availability mask ---------------------------------------------------------------------------

def _masked_store(tmp_path, name="masked.h5", **kwargs):
    rng = np.random.default_rng(3)
    n, bands = 12, ["g", "r", "z"]
    images = rng.normal(0, 1, (n, 3, 8, 8)).astype(np.float32)
    images[2, 0] = np.nan  # a band with no data: masked, so its NaN pixels become zeros
    mask = np.ones((n, 3), bool)
    mask[[2, 5], 0] = False
    mask[7, 2] = False
    cat = {"id": np.arange(n), "z_spec": rng.uniform(0, 1, n).astype(np.float32), "ebv": np.zeros(n, np.float32),
           **{f"flux_{b}": rng.uniform(1, 2, n) for b in bands}, **{f"flux_err_{b}": np.full(n, 0.1) for b in bands}}
    path = create_store(tmp_path / name, images, cat, band_mask=mask, bands=bands, survey="sdss", pixel_scale=0.2,
                        **kwargs)
    return path, mask, images


def test_band_mask_is_written_honoured_and_checked(tmp_path):
    import h5py

    from deepdip.photometry import Photometry

    path, mask, images = _masked_store(tmp_path)
    store = CutoutStore(path)
    assert store.has_band_mask and np.array_equal(store.band_mask(), mask)
    assert np.array_equal(store.band_mask([7, 2]), mask[[7, 2]])
    got = store.images()
    assert np.all(got[~mask] == 0) and np.array_equal(got[mask], images[mask])  # missing bands: zeros, never NaN
    assert np.isnan(store.column("flux_g")[[2, 5]]).all() and np.isnan(store.column("flux_err_z")[7])
    phot = Photometry.from_store(store)
    assert np.array_equal(phot.observed, mask)  # the baselines see the missing bands as not observed
    assert validate_store(path) == []
    with pytest.warns(UserWarning, match=r"bands are missing for some galaxies \(g 16.7%, z 8.3%\); the CNN does not"):
        store.warn_if_bands_missing("the CNN")  # what predict says of a CNN trained without band dropout
    # a store without a mask has every band
    plain = create_store(tmp_path / "plain.h5", images[:3, :, :, :] * 0, {"id": np.arange(3), "z_spec": np.zeros(3),
                                                                           "ebv": np.zeros(3)},
                         bands=["g", "r", "z"], survey="t", pixel_scale=0.2)
    assert not CutoutStore(plain).has_band_mask and CutoutStore(plain).band_mask().all()

    # validate: a mask that disagrees with the pixels or the catalogue is named
    store.close()
    with h5py.File(path, "r+") as f:
        f["images"][5, 0, 0, 0] = 3.0  # light in a band flagged missing
        f["catalog/flux_z"][7] = 1.0  # a flux for a missing band
    problems = validate_store(path)
    assert any("non-zero pixels in a band 'band_mask' says is missing (ids 5)" in p for p in problems), problems
    assert any("'flux_z' holds a flux for 1 galaxies whose z band" in p for p in problems), problems
    with h5py.File(path, "r+") as f:
        f["images"][3, 1, 0, 0] = np.nan  # NaN pixels in a band flagged present
        f["band_mask"][0, 0] = 2
    problems = validate_store(path)
    assert any("NaN or inf pixels in 1 cutouts" in p for p in problems) and any("must hold 0" in p for p in problems)


def test_band_mask_in_every_append_or_none_and_across_shards(tmp_path):
    path, mask, _ = _masked_store(tmp_path, "shards", shard_size=5)
    store = CutoutStore(path)
    assert len(list(path.iterdir())) == 3 and np.array_equal(store.band_mask(), mask)
    cat = {"id": np.arange(2), "z_spec": np.zeros(2), "ebv": np.zeros(2)}
    with pytest.raises(StoreError, match="with every append or with none"):
        with StoreWriter(tmp_path / "x.h5", bands=["g"], image_shape=(4, 4), survey="t", pixel_scale=0.2) as w:
            w.append(np.zeros((2, 1, 4, 4)), cat, band_mask=np.ones((2, 1)))
            w.append(np.zeros((2, 1, 4, 4)), {**cat, "id": cat["id"] + 2})
    with pytest.raises(StoreError, match="band_mask must be 0/1 of shape"):
        create_store(tmp_path / "y.h5", np.zeros((2, 1, 4, 4)), cat, band_mask=np.ones((2, 2)), bands=["g"],
                     survey="t", pixel_scale=0.2)
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()
