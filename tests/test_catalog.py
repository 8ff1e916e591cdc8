"""Photo-z catalogue: Parquet round trip, streaming writer, atomicity, qp and FITS exports, errors."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import qp

import deepdip
from deepdip import catalog, metrics
from deepdip.errors import DeepdipError
from deepdip.zgrid import ZGrid

GRID = ZGrid(0.0, 0.4, 40)


@pytest.fixture()
def rows():
    rng = np.random.default_rng(11)
    n = 60
    z_spec = rng.uniform(0, 0.4, n)
    z_spec[::7] = np.nan
    return {
        "ids": rng.permutation(1000)[:n].astype(np.int64),
        "pdf": rng.random((n, GRID.nbins)) * 3.0,  # unnormalised: the writer normalises
        "z_spec": z_spec,
        "fold": np.arange(n) % 5,
        "extra": {"mag_r": rng.uniform(14, 17.8, n)},
    }


def write(path, rows, **kwargs):
    return catalog.write_catalog(path, rows["ids"], rows["pdf"], GRID, z_spec=rows["z_spec"], fold=rows["fold"],
                                 method="knn", config={"k": 7, "bands": ["g", "r"]}, extra=rows["extra"], **kwargs)


def test_round_trip(tmp_path, rows):
    path = write(tmp_path / "cat.parquet", rows)
    cat = catalog.read_catalog(path)
    prob = rows["pdf"] / rows["pdf"].sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(cat.ids, rows["ids"])
    assert cat.pdf.dtype == np.float32 and cat.pdf.shape == prob.shape
    np.testing.assert_allclose(cat.pdf, prob, rtol=1e-6)
    np.testing.assert_array_equal(cat.table["z_spec"], rows["z_spec"])  # NaN kept as NaN
    assert cat.table["fold"].dtype == np.int8
    np.testing.assert_array_equal(cat.table["mag_r"], rows["extra"]["mag_r"])
    for key, values in metrics.point_estimates(rows["pdf"], GRID).items():
        np.testing.assert_allclose(cat.table[key], values, rtol=1e-12)
    assert cat.zgrid == GRID and cat.method == "knn" and cat.config == {"k": 7, "bands": ["g", "r"]}
    assert cat.metadata["deepdip_version"] == deepdip.__version__
    schema = pq.read_schema(path)
    assert schema.field("pdf").type == pa.list_(pa.float32(), GRID.nbins)
    meta = json.loads(schema.metadata[b"deepdip"])
    np.testing.assert_allclose(meta["bin_edges"], GRID.edges)


def test_streaming_writer_matches_one_shot(tmp_path, rows):
    write(tmp_path / "whole.parquet", rows)
    with catalog.CatalogWriter(tmp_path / "chunks.parquet", GRID, method="knn",
                               config={"k": 7, "bands": ["g", "r"]}) as writer:
        for s in (slice(0, 25), slice(25, 26), slice(26, 60)):
            writer.write(rows["ids"][s], rows["pdf"][s], z_spec=rows["z_spec"][s], fold=rows["fold"][s],
                         extra={"mag_r": rows["extra"]["mag_r"][s]})
    assert writer.n_rows == 60
    chunks, whole = pq.read_table(tmp_path / "chunks.parquet"), pq.read_table(tmp_path / "whole.parquet")
    assert chunks.schema.equals(whole.schema, check_metadata=True)
    assert chunks.column("pdf").combine_chunks().flatten().equals(whole.column("pdf").combine_chunks().flatten())
    # Point estimates may differ in the last bit: BLAS sums a chunk in a different order.
    pd.testing.assert_frame_equal(chunks.to_pandas(), whole.to_pandas(), check_exact=False, rtol=1e-14)


def test_failed_write_leaves_nothing(tmp_path, rows):
    with pytest.raises(RuntimeError, match="predictor crashed"):
        with catalog.CatalogWriter(tmp_path / "cat.parquet", GRID, method="cnn") as writer:
            writer.write(rows["ids"][:10], rows["pdf"][:10])
            raise RuntimeError("predictor crashed")
    assert list(tmp_path.iterdir()) == []


def test_empty_writer_gives_a_valid_empty_catalogue(tmp_path):
    with catalog.CatalogWriter(tmp_path / "empty.parquet", GRID, method="cnn"):
        pass
    cat = catalog.read_catalog(tmp_path / "empty.parquet")
    assert len(cat) == 0 and cat.pdf.shape == (0, GRID.nbins)


def test_chunks_must_share_columns(tmp_path, rows):
    with pytest.raises(DeepdipError, match="earlier chunks had"):
        with catalog.CatalogWriter(tmp_path / "cat.parquet", GRID, method="cnn") as writer:
            writer.write(rows["ids"][:10], rows["pdf"][:10], z_spec=rows["z_spec"][:10])
            writer.write(rows["ids"][10:20], rows["pdf"][10:20])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(ids=np.zeros_like(r["ids"])), "duplicate ids"),
        (lambda r: r.update(pdf=r["pdf"][:, :-1]), r"expected \(60, 40\)"),
        (lambda r: r.update(z_spec=r["z_spec"][:-1]), "'z_spec' has shape"),
        (lambda r: r["extra"].update(z_mean=np.zeros(60)), "clashes with a standard"),
        (lambda r: r["pdf"].__setitem__((3, 0), -1.0), "not valid"),
    ],
)
def test_write_errors(tmp_path, rows, change, message):
    change(rows)
    with pytest.raises(DeepdipError, match=message):
        write(tmp_path / "cat.parquet", rows)
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path, rows):
    with pytest.raises(DeepdipError, match="not found"):
        catalog.read_catalog(tmp_path / "missing.parquet")
    (tmp_path / "text.parquet").write_text("id,z\n1,0.1\n")
    with pytest.raises(DeepdipError, match="is not a Parquet file"):
        catalog.read_catalog(tmp_path / "text.parquet")
    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "plain.parquet")
    with pytest.raises(DeepdipError, match="not a deepdip photo-z catalogue"):
        catalog.read_catalog(tmp_path / "plain.parquet")
    table = pq.read_table(write(tmp_path / "cat.parquet", rows))
    pq.write_table(table.drop_columns(["z_median"]), tmp_path / "cut.parquet")
    with pytest.raises(DeepdipError, match="lacks required column.*z_median"):
        catalog.read_catalog(tmp_path / "cut.parquet")
    pq.write_table(table.replace_schema_metadata({"deepdip": '{"method": "knn"}'}), tmp_path / "nogrid.parquet")
    with pytest.raises(DeepdipError, match="corrupt deepdip metadata.*zgrid"):
        catalog.read_catalog(tmp_path / "nogrid.parquet")


def test_qp_export(tmp_path, rows):
    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    ens = catalog.to_qp(cat)
    assert ens.npdf == len(cat)
    np.testing.assert_array_equal(ens.ancil["ids"], cat.ids)
    np.testing.assert_array_equal(ens.ancil["zmean"], cat.table["z_mean"])
    np.testing.assert_array_equal(ens.ancil["zmode"], cat.table["z_mode"])
    z = np.full(len(cat), 0.123)
    np.testing.assert_allclose(ens.cdf(z[:, None]).ravel(), metrics.cdf_at(cat.pdf, cat.zgrid, z), atol=1e-6)
    np.testing.assert_allclose(ens.mean().ravel(), cat.table["z_mean"], atol=1e-6)

    path = catalog.write_qp(cat, tmp_path / "cat.hdf5")
    back = qp.read(str(path))
    np.testing.assert_allclose(back.objdata["pdfs"], ens.objdata["pdfs"])
    np.testing.assert_array_equal(back.ancil["zmedian"], cat.table["z_median"])
    with pytest.raises(DeepdipError, match="must end in"):
        catalog.write_qp(cat, tmp_path / "cat.csv")


def test_fits_export(tmp_path, rows):
    from astropy.table import Table

    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    table = Table.read(catalog.to_fits(cat, tmp_path / "cat.fits"))
    np.testing.assert_array_equal(table["id"], cat.ids)
    np.testing.assert_array_equal(table["pdf"], cat.pdf)
    np.testing.assert_array_equal(table["z_lo68"], cat.table["z_lo68"])
    assert table.meta["METHOD"] == "knn" and table.meta["NBINS"] == GRID.nbins
    assert json.loads(table.meta["CONFIG"]) == cat.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits", "cat.parquet"]


# -- written from mutation-testing survivors (docs/mutation-testing.md) ------------------------------
def test_existing_outputs_are_replaced_only_with_overwrite(tmp_path, rows):
    from deepdip.atomic import OutputError

    path = write(tmp_path / "cat.parquet", rows)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        write(path, rows)
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        with catalog.CatalogWriter(path, GRID, method="knn"):
            pass
    assert path.read_bytes() == before
    rows2 = dict(rows, pdf=rows["pdf"][:, ::-1].copy())
    write(path, rows2, overwrite=True)
    np.testing.assert_allclose(catalog.read_catalog(path).pdf, rows2["pdf"] / rows2["pdf"].sum(axis=1, keepdims=True),
                               rtol=1e-6)   # replaced
    cat = catalog.read_catalog(path)
    for export, name in ((catalog.write_qp, "cat.hdf5"), (catalog.to_fits, "cat.fits")):
        out = export(cat, tmp_path / name)
        stamp = out.read_bytes()
        with pytest.raises(OutputError, match="exists"):
            export(cat, out)
        assert out.read_bytes() == stamp
        export(cat, out, overwrite=True)
    # an input of the command is never an output, even with overwrite
    with pytest.raises(OutputError, match="is an input"):
        with catalog.CatalogWriter(path, GRID, method="knn", overwrite=True, inputs=(path,)):
            pass
    assert catalog.read_catalog(path).method == "knn"


def test_column_types_and_defaults(tmp_path, rows):
    ids = rows["ids"].astype(np.int32)
    path = catalog.write_catalog(tmp_path / "c.parquet", ids.tolist(), rows["pdf"], GRID,
                                 z_spec=rows["z_spec"].astype(np.float32), fold=rows["fold"].astype(np.int64),
                                 method="x", extra={"n_obs": np.arange(len(ids), dtype=np.int16)})
    schema = pq.read_schema(path)
    assert schema.field("id").type == pa.int64() and schema.field("fold").type == pa.int8()
    assert schema.field("z_spec").type == pa.float64() and schema.field("n_obs").type == pa.int16()
    cat = catalog.read_catalog(path)
    assert cat.ids.dtype == np.int64 and cat.config == {}
    np.testing.assert_array_equal(cat.table["fold"], rows["fold"])
    assert [c for c in cat.table.columns if "fold" in c.lower()] == ["fold"]
    with pytest.raises(DeepdipError, match=r"ids must be 1-D, got shape \(2, 30\)"):
        catalog.write_catalog(tmp_path / "d.parquet", rows["ids"].reshape(2, 30), rows["pdf"], GRID, method="x")
    with pytest.raises(RuntimeError, match="outside its 'with' block"):
        catalog.CatalogWriter(tmp_path / "e.parquet", GRID, method="x").write(rows["ids"], rows["pdf"])


def test_read_errors_name_the_problem(tmp_path, rows):
    table = pq.read_table(write(tmp_path / "cat.parquet", rows))
    meta = json.loads(table.schema.metadata[b"deepdip"])
    pq.write_table(table.replace_schema_metadata({"deepdip": json.dumps({**meta, "format_version": 99})}),
                   tmp_path / "v99.parquet")
    with pytest.raises(DeepdipError, match="unsupported catalogue format_version 99"):
        catalog.read_catalog(tmp_path / "v99.parquet")
    pq.write_table(table.replace_schema_metadata({"deepdip": "{not json"}), tmp_path / "bad.parquet")
    with pytest.raises(DeepdipError, match=r"corrupt deepdip metadata \(JSONDecodeError"):
        catalog.read_catalog(tmp_path / "bad.parquet")
    pq.write_table(table.drop_columns(["z_median", "z_mode"]), tmp_path / "cut.parquet")
    with pytest.raises(DeepdipError, match="lacks required column.*: z_median, z_mode"):
        catalog.read_catalog(tmp_path / "cut.parquet")
    other = ZGrid(0.0, 0.4, 20)
    pq.write_table(table.replace_schema_metadata({"deepdip": json.dumps({**meta, "zgrid": other.to_dict(),
                                                                          "bin_edges": other.edges.tolist()})}),
                   tmp_path / "grid.parquet")
    with pytest.raises(DeepdipError, match="pdf column holds 40 values per row; its grid has 20 bins"):
        catalog.read_catalog(tmp_path / "grid.parquet")


def test_qp_densities_truth_and_fits_header(tmp_path, rows):
    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    ens = catalog.to_qp(cat)
    # qp.hist holds densities: probability / bin width, at each bin centre
    np.testing.assert_allclose(ens.pdf(GRID.centres[None, :]), cat.pdf / GRID.width, rtol=1e-5)
    np.testing.assert_array_equal(ens.ancil["z_spec"], cat.table["z_spec"])
    assert ens.ancil["z_spec"].dtype == np.float64 and ens.ancil["zmean"].dtype == np.float64
    from astropy.table import Table

    table = Table.read(catalog.to_fits(cat, tmp_path / "cat.fits"))
    assert table["pdf"].dtype.kind == "f" and table["pdf"].dtype.itemsize == 4   # big-endian float32 in FITS
    assert (table.meta["ZMIN"], table.meta["ZMAX"]) == (GRID.zmin, GRID.zmax)
    assert table.meta["DDVERS"] == deepdip.__version__


@pytest.mark.parametrize("suffix", catalog.QP_SUFFIXES)
def test_qp_export_to_every_documented_suffix(tmp_path, rows, suffix):
    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    back = qp.read(str(catalog.write_qp(cat, tmp_path / f"q{suffix}")))
    np.testing.assert_allclose(back.objdata["pdfs"], catalog.to_qp(cat).objdata["pdfs"])


@pytest.mark.parametrize("suffix", [".hd5", ".fit", ".parquet"])
def test_qp_export_refuses_a_suffix_qp_cannot_read_back(tmp_path, rows, suffix):
    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    with pytest.raises(DeepdipError, match="qp output"):
        catalog.write_qp(cat, tmp_path / f"q{suffix}")
    assert not (tmp_path / f"q{suffix}").exists()


def test_config_and_version_travel_to_the_exports(tmp_path, rows):
    from pathlib import Path

    from astropy.table import Table

    path = catalog.write_catalog(tmp_path / "c.parquet", rows["ids"], rows["pdf"], GRID, method="cnn",
                                 config={"run": Path("/runs/a"), "k": 3})   # non-JSON values are written as text
    cat = catalog.read_catalog(path)
    assert cat.config == {"run": "/runs/a", "k": 3}
    cat.metadata["deepdip_version"] = "0.0.1"   # a catalogue written by another version keeps its own
    table = Table.read(catalog.to_fits(cat, tmp_path / "c.fits"))
    assert table.meta["DDVERS"] == "0.0.1"
    assert json.loads(table.meta["CONFIG"]) == {"run": "/runs/a", "k": 3}
    cat.config["path"] = Path("/x")
    assert json.loads(Table.read(catalog.to_fits(cat, tmp_path / "d.fits")).meta["CONFIG"])["path"] == "/x"


def test_pdf_column_of_variable_length_is_refused(tmp_path, rows):
    table = pq.read_table(write(tmp_path / "cat.parquet", rows))
    pdf = catalog.read_catalog(tmp_path / "cat.parquet").pdf
    ragged = pa.array([list(r) for r in pdf], type=pa.list_(pa.float32()))
    pq.write_table(table.set_column(table.schema.get_field_index("pdf"), "pdf", ragged), tmp_path / "ragged.parquet")
    with pytest.raises(DeepdipError, match="pdf column"):
        catalog.read_catalog(tmp_path / "ragged.parquet")


# -- qp/RAIL interoperability (issue 16) -----------------------------------------------------------
def test_qp_ancil_has_rails_id_and_point_estimate_names(tmp_path, rows):
    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    for suffix in (".hdf5", ".fits", ".pq"):
        back = qp.read(str(catalog.write_qp(cat, tmp_path / f"ens{suffix}")))
        np.testing.assert_array_equal(back.ancil["id"], cat.ids)
        for name in ("zmode", "zmean", "zmedian"):
            np.testing.assert_array_equal(np.ravel(back.ancil[name]), cat.table[name[:1] + "_" + name[1:]])
    assert catalog.to_qp(cat).ancil["ids"] is not None   # the name earlier exports used is still there


def test_qp_parquet_export_is_three_files_published_together(tmp_path, rows):
    from deepdip.atomic import OutputError

    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    out = catalog.write_qp(cat, tmp_path / "ens.pq")
    assert out == tmp_path / "ens.pq" and not out.exists()   # qp names the files after their tables
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.parquet", "ensancil.pq", "ensdata.pq", "ensmeta.pq"]
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        catalog.write_qp(cat, out)
    catalog.write_qp(cat, out, overwrite=True)
    assert len(list(tmp_path.iterdir())) == 4 and qp.read(str(out)).npdf == len(cat)


def test_qp_export_leaves_nothing_behind_when_the_writer_fails(tmp_path, rows, monkeypatch):
    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))

    def broken(self, filename):
        with open(filename, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(qp.Ensemble, "write_to", broken)
    for suffix in (".h5", ".fits", ".hdf5"):
        with pytest.raises(OSError, match="disk full"):
            catalog.write_qp(cat, tmp_path / f"q{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == ["cat.parquet"]


def test_truth_table_is_what_rails_evaluators_read(tmp_path, rows):
    import tables_io

    cat = catalog.read_catalog(write(tmp_path / "cat.parquet", rows))
    table = catalog.truth_table(cat)
    np.testing.assert_array_equal(table["photometry"]["id"], cat.ids)
    np.testing.assert_array_equal(table["photometry"]["redshift"], cat.table["z_spec"])
    assert set(catalog.truth_table(cat, groupname="", redshift_col="z")) == {"id", "z"}
    path = catalog.write_truth_table(cat, tmp_path / "truth.hdf5")
    back = tables_io.read(str(path))
    np.testing.assert_array_equal(back["photometry"]["redshift"], cat.table["z_spec"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.parquet", "truth.hdf5"]
    with pytest.raises(DeepdipError, match="written as .hdf5"):
        catalog.write_truth_table(cat, tmp_path / "truth.fits")
    nospec = catalog.read_catalog(catalog.write_catalog(tmp_path / "n.parquet", rows["ids"], rows["pdf"], GRID,
                                                        method="x"))
    with pytest.raises(DeepdipError, match="no z_spec"):
        catalog.truth_table(nospec)
