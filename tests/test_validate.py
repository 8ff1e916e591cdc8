"""`deepdip validate`: every bad-store case gets a one-line message naming it and a non-zero exit."""

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from deepdip.cli import main


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
