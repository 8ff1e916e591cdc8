"""Outputs never lose what the user had: no directory or input replaced, no file without --overwrite,
nothing half-written, concurrent writers never share a temporary (deepdip.atomic and its users)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from deepdip.atomic import OutputError, atomic_path, check_output, exclusive_lock
from deepdip.catalog import read_catalog, write_catalog
from deepdip.errors import DeepdipError
from deepdip.store import CutoutStore, StoreWriter, create_store
from deepdip.zgrid import ZGrid
from tests.conftest import make_catalog


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def small_store(path: Path, n: int = 20, seed: int = 0, **kwargs) -> Path:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 5, 8, 8)).astype(np.float32)
    return create_store(path, images, make_catalog(n, rng), bands="ugriz", survey="sdss", pixel_scale=0.396,
                        **kwargs)


def a_catalog(path: Path, n: int = 10, **kwargs) -> Path:
    zgrid = ZGrid(0.0, 0.4, 20)
    pdf = np.random.default_rng(1).random((n, 20))
    return write_catalog(path, np.arange(n), pdf, zgrid, z_spec=np.full(n, 0.1), method="test", **kwargs)


# -- deepdip.atomic --------------------------------------------------------------------------------

def test_atomic_path_never_replaces_a_directory(tmp_path):
    keep = tmp_path / "results"
    keep.mkdir()
    (keep / "precious.txt").write_text("mine")
    with pytest.raises(OutputError, match="existing directory"):
        with atomic_path(keep) as tmp:
            tmp.write_text("x")
    assert (keep / "precious.txt").read_text() == "mine"
    assert leftovers(tmp_path) == []


def test_atomic_path_without_overwrite_refuses_an_existing_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(OutputError, match="--overwrite"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "old"
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_file_appearing_while_writing_is_not_replaced(tmp_path):
    """The no-clobber publish: another process's finished output is never replaced silently."""
    target = tmp_path / "cat.parquet"
    with pytest.raises(OutputError, match="meanwhile"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("ours")
            target.write_text("theirs")  # the other writer finished first
    assert target.read_text() == "theirs"
    assert leftovers(tmp_path) == []


def test_two_writers_get_distinct_temporaries(tmp_path):
    target = tmp_path / "x.h5"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert target.read_text() in ("a", "b")  # one complete output, never a mix
    assert leftovers(tmp_path) == []


def test_failed_block_leaves_nothing(tmp_path):
    target = tmp_path / "x.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert not target.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("relation", ["same", "parent"])
def test_output_may_not_be_or_hold_an_input(tmp_path, relation):
    source = tmp_path / "data" / "store.h5"
    source.parent.mkdir()
    source.write_text("input")
    out = source if relation == "same" else source.parent
    with pytest.raises(OutputError, match="input"):
        check_output(out, inputs=[source], overwrite=True, kind="file" if relation == "same" else "dir")


def test_output_through_a_symlink_to_an_input_is_refused(tmp_path):
    source = tmp_path / "store.h5"
    source.write_text("input")
    link = tmp_path / "link.parquet"
    link.symlink_to(source)
    with pytest.raises(OutputError, match="input"):
        check_output(link, inputs=[source], overwrite=True)


def test_exclusive_lock_refuses_a_second_holder(tmp_path):
    lock = tmp_path / "run" / ".lock"
    with exclusive_lock(lock, "run directory run"):
        with pytest.raises(OutputError, match="in use"):
            with exclusive_lock(lock, "run directory run"):
                pass
    with exclusive_lock(lock, "run directory run"):  # released on exit
        pass


# -- stores ----------------------------------------------------------------------------------------

def test_store_writer_refuses_directory_and_existing_file(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    before = tree_digest(tmp_path)
    with pytest.raises(DeepdipError, match="directory"):
        small_store(folder)
    existing = small_store(tmp_path / "a.h5")
    digest = tree_digest(tmp_path)
    with pytest.raises(DeepdipError, match="--overwrite"):
        small_store(existing, seed=5)
    assert tree_digest(tmp_path) == digest and before.items() <= digest.items()
    small_store(existing, seed=5, overwrite=True)
    assert len(CutoutStore(existing)) == 20
    assert leftovers(tmp_path) == []


def test_sharded_store_replaces_only_a_sharded_store(tmp_path):
    folder = tmp_path / "shards"
    small_store(folder, shard_size=8)
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.h5", "part-00001.h5", "part-00002.h5"]
    with pytest.raises(DeepdipError, match="--overwrite"):
        small_store(folder, shard_size=8)
    small_store(folder, n=10, shard_size=8, overwrite=True)
    assert len(CutoutStore(folder)) == 10
    (folder / "README").write_text("someone else's")
    with pytest.raises(DeepdipError, match="other files"):
        small_store(folder, shard_size=8, overwrite=True)
    assert (folder / "README").read_text() == "someone else's"
    assert leftovers(tmp_path) == []


def test_aborted_store_leaves_no_temporary(tmp_path):
    out = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        with StoreWriter(out, bands="ugriz", image_shape=(8, 8), survey="sdss", pixel_scale=0.4) as w:
            rng = np.random.default_rng(0)
            w.append(rng.normal(size=(4, 5, 8, 8)), make_catalog(4, rng))
            raise RuntimeError("boom")
    assert not out.exists() and leftovers(tmp_path) == []


# -- catalogues ------------------------------------------------------------------------------------

def test_catalog_writer_refuses_directory_input_and_unasked_replacement(tmp_path):
    store = small_store(tmp_path / "store.h5")
    digest = tree_digest(tmp_path)
    with pytest.raises(OutputError, match="directory"):
        a_catalog(tmp_path)
    from deepdip.catalog import CatalogWriter
    with pytest.raises(OutputError, match="input"):
        CatalogWriter(store, ZGrid(0, 0.4, 20), method="x", inputs=[store], overwrite=True)
    assert tree_digest(tmp_path) == digest
    cat = a_catalog(tmp_path / "c.parquet")
    with pytest.raises(OutputError, match="--overwrite"):
        a_catalog(cat, n=3)
    assert len(read_catalog(cat).ids) == 10
    a_catalog(cat, n=3, overwrite=True)
    assert len(read_catalog(cat).ids) == 3


# -- reports ---------------------------------------------------------------------------------------

def test_report_keeps_foreign_files_and_drops_its_own_stale_figures(tmp_path):
    from deepdip.report import evaluate

    c1 = a_catalog(tmp_path / "one.parquet")
    c2 = a_catalog(tmp_path / "two.parquet")
    out = tmp_path / "report"
    out.mkdir()
    (out / "my_notes.txt").write_text("keep")
    evaluate([c1, c2], out, names=["a", "b"])
    pngs_two = {p.name for p in out.glob("*.png")}
    assert any(n.startswith("b_") for n in pngs_two)
    with pytest.raises(OutputError, match="--overwrite"):
        evaluate([c1], out, names=["a"])
    evaluate([c1], out, names=["a"], overwrite=True)
    pngs_one = {p.name for p in out.glob("*.png")}
    assert not any(n.startswith("b_") for n in pngs_one), "stale figures of the old report remain"
    assert (out / "my_notes.txt").read_text() == "keep"
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_failed_report_adds_nothing(tmp_path):
    from deepdip.report import evaluate

    out = tmp_path / "report"
    with pytest.raises(DeepdipError):
        evaluate([tmp_path / "missing.parquet"], out)
    assert not out.exists() and leftovers(tmp_path) == []


def test_report_onto_a_file_is_refused(tmp_path):
    from deepdip.report import evaluate

    c1 = a_catalog(tmp_path / "one.parquet")
    digest = tree_digest(tmp_path)
    with pytest.raises(OutputError):
        evaluate([c1], c1)
    assert tree_digest(tmp_path) == digest


# -- training run directories ----------------------------------------------------------------------

def test_train_refuses_a_foreign_folder_and_the_store(tmp_path):
    from deepdip.train.run import check_run_dir

    store = small_store(tmp_path / "s.h5")
    with pytest.raises(OutputError, match="not a deepdip run"):
        check_run_dir(tmp_path)  # `--out .` beside other files
    with pytest.raises(OutputError, match="holding the input"):
        check_run_dir(tmp_path, inputs=[store])
    with pytest.raises(OutputError):
        check_run_dir(store, inputs=[store])
    empty = tmp_path / "new_run"
    empty.mkdir()
    check_run_dir(empty, inputs=[store])  # an empty folder holds nothing to lose


def test_cli_out_dot_empties_nothing(tmp_path, monkeypatch):
    """`deepdip predict/baseline ... --out .` used to empty the working directory."""
    from deepdip.cli import main

    store = small_store(tmp_path / "s.h5")
    (tmp_path / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    digest = tree_digest(tmp_path)
    assert main(["baseline", str(store), "--method", "knn", "--fold", "0", "--out", "."]) == 2
    assert main(["baseline", str(store), "--method", "knn", "--fold", "0", "--out", str(store)]) == 2
    assert main(["simulate", "--n", "5", "--out", ".", "--quiet"]) == 2
    assert tree_digest(tmp_path) == digest
    assert os.listdir(tmp_path) and leftovers(tmp_path) == []
