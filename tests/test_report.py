"""`deepdip evaluate`: metrics of catalogues with known values, matching by id, report files, errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepdip
from deepdip.catalog import read_catalog, write_catalog
from deepdip.cli import main
from deepdip.errors import DeepdipError
from deepdip.report import match_catalogs, score
from deepdip.zgrid import ZGrid

GRID = ZGrid(0.0, 0.4, 80)


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory):
    """Two catalogues with partly overlapping ids, and each one's z_phot computed here by hand."""
    tmp = tmp_path_factory.mktemp("cats")
    rng = np.random.default_rng(2024)
    n = 300
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    z_spec = rng.uniform(0.01, 0.39, n)
    z_spec[:25] = np.nan  # no spectroscopy: must not enter the metrics
    mag_r = rng.uniform(14.0, 17.8, n)
    truth_bin = np.clip(np.nan_to_num(z_spec, nan=0.2) // GRID.width, 0, GRID.nbins - 1).astype(int)

    # "cnn": all probability in one bin, so z_phot is exactly that bin's centre.
    k = np.clip(truth_bin + rng.integers(-2, 3, n), 0, GRID.nbins - 1)
    k[30:45] = rng.integers(0, GRID.nbins, 15)  # catastrophic outliers
    cnn_pdf = np.zeros((n, GRID.nbins))
    cnn_pdf[np.arange(n), k] = 1.0
    cnn_zphot = GRID.zmin + (k + 0.5) * (GRID.zmax - GRID.zmin) / GRID.nbins
    write_catalog(tmp / "cnn.parquet", ids, cnn_pdf, GRID, z_spec=z_spec, method="cnn",
                  extra={"mag_u": mag_r + 2.0, "mag_r": mag_r})

    # "knn": broad lumpy PDFs over a shuffled subset of the ids; z_phot = sum_k p_k centre_k.
    keep = rng.permutation(n)[: n - 40]
    bump = np.exp(-0.5 * ((np.arange(GRID.nbins) - truth_bin[:, None]) / 3.0) ** 2)
    knn_pdf = rng.random((n, GRID.nbins)) ** 8 + bump
    prob = knn_pdf / knn_pdf.sum(axis=1, keepdims=True)
    centres = (np.arange(GRID.nbins) + 0.5) * 0.4 / GRID.nbins
    knn_zphot = prob @ centres
    write_catalog(tmp / "knn.parquet", ids[keep], knn_pdf[keep], GRID, z_spec=z_spec[keep], method="knn")

    common = np.isin(ids, ids[keep])
    return {"dir": tmp, "ids": ids, "z_spec": z_spec, "common": common, "mag_r": mag_r,
            "zphot": {"cnn": cnn_zphot, "knn": knn_zphot}}


def independent(z_phot, z_spec, threshold=0.05):
    known = np.isfinite(z_spec)
    dz = (z_phot[known] - z_spec[known]) / (1 + z_spec[known])
    return {"n": int(known.sum()), "sigma_mad": 1.4826 * np.median(np.abs(dz - np.median(dz))),
            "outlier_frac": np.mean(np.abs(dz) > threshold), "bias": np.mean(dz), "bias_median": np.median(dz)}


def independent_pdf_metrics(cat, cats):
    """PIT KS, CRPS, coverage and CDE loss of a catalogue's rows common to both catalogues, from
    scipy's own piecewise-uniform distribution (``rv_histogram``), its quantiles (not the PIT) for
    coverage, a KS distance written out and a CRPS integrated numerically (from beyond the grid on
    both sides, where F is 0 and 1)."""
    from scipy import stats

    keep = np.isin(cat.ids, cats["ids"][cats["common"]]) & np.isfinite(cat.table["z_spec"].to_numpy())
    pdf, z = cat.pdf[keep].astype(np.float64), cat.table["z_spec"].to_numpy()[keep].astype(np.float64)
    edges = GRID.edges
    pit, inside, f2, fz, crps = [], {68: [], 95: []}, [], [], []
    for row, zs in zip(pdf, z):
        dist = stats.rv_histogram((row / row.sum(), edges), density=False)
        pit.append(dist.cdf(zs))
        for level, (lo, hi) in {68: (0.16, 0.84), 95: (0.025, 0.975)}.items():
            inside[level].append(dist.ppf(lo) <= zs <= dist.ppf(hi))
        f2.append(np.sum((row / row.sum()) ** 2) / GRID.width)
        fz.append(dist.pdf(zs))
        below, above = np.linspace(-0.1, zs, 20001), np.linspace(zs, 0.5, 20001)   # split at the step of H
        crps.append(np.trapezoid(dist.cdf(below) ** 2, below) + np.trapezoid((1 - dist.cdf(above)) ** 2, above))
    x, n = np.sort(pit), len(pit)
    ks = max(np.max(np.arange(1, n + 1) / n - x), np.max(x - np.arange(n) / n))
    return {"pit_ks": ks, "crps": np.mean(crps), "coverage_68": np.mean(inside[68]),
            "coverage_95": np.mean(inside[95]), "cde_loss": np.mean(f2) - 2 * np.mean(fz)}


def check_against_independent(got, cats, threshold=0.05):
    common = cats["common"]
    for name in ("cnn", "knn"):
        want = independent(cats["zphot"][name][common], cats["z_spec"][common], threshold)
        assert got[name]["n"] == want["n"]
        for key in ("sigma_mad", "outlier_frac", "bias", "bias_median"):
            assert abs(got[name][key] - want[key]) < 1e-6, (name, key)


@pytest.fixture(scope="module")
def report(catalogues):
    out = catalogues["dir"] / "report"
    code = main(["evaluate", str(catalogues["dir"] / "cnn.parquet"), str(catalogues["dir"] / "knn.parquet"),
                 "--out", str(out)])
    assert code == 0
    return out


def test_metrics_json_matches_independent_computation(report, catalogues):
    got = json.loads((report / "metrics.json").read_text())
    assert list(got) == ["cnn", "knn"]
    check_against_independent(got, catalogues)
    assert catalogues["zphot"]["cnn"][catalogues["common"]].size == got["cnn"]["n_common"] == 260
    assert got["cnn"]["n_catalog"] == 300 and got["knn"]["n_catalog"] == 260
    for name in ("cnn", "knn"):
        want = independent_pdf_metrics(read_catalog(catalogues["dir"] / f"{name}.parquet"), catalogues)
        for key in ("pit_ks", "crps", "coverage_68", "coverage_95", "cde_loss"):
            assert got[name][key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (name, key)
    assert sum(row["n"] for row in got["cnn"]["by_z_spec"]) == got["cnn"]["n"]
    assert got["cnn"]["magnitude"] == "mag_r"  # preferred to mag_u, which comes first
    scored = catalogues["common"] & np.isfinite(catalogues["z_spec"])
    assert got["cnn"]["by_magnitude"][0]["lo"] == pytest.approx(catalogues["mag_r"][scored].min())
    assert sum(row["n"] for row in got["cnn"]["by_magnitude"]) == got["cnn"]["n"]


def test_html_report(report, catalogues):
    page = (report / "index.html").read_text()
    n_known = int(np.isfinite(catalogues["z_spec"][catalogues["common"]]).sum())
    assert f"scored on the same {n_known} galaxies with a spectroscopic redshift" in page
    assert "(260 common rows; rows per catalogue: cnn 300, knn 260)" in page
    assert "<th>cnn</th><th>knn</th>" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 8 and all((report / src).stat().st_size > 1000 for src in images)
    # the overlaid figures come before the per-method grid, whose rows hold each method's own panels
    assert page.index("binned_zspec.png") < page.index("pit.png") < page.index('class="grid"')
    grid = page[page.index('class="grid"'):]
    assert grid.index("cnn_zphot_zspec.png") < grid.index(">knn<") < grid.index("knn_zphot_zspec.png")
    # the best value of each judged row is marked: sigma_MAD's is the smaller of the two methods'
    metrics = json.loads((report / "metrics.json").read_text())
    row = re.search(r"<tr><td>σ_MAD</td>(.*?)</tr>", page).group(1)
    best = "cnn" if metrics["cnn"]["sigma_mad"] < metrics["knn"]["sigma_mad"] else "knn"
    cells = re.findall(r"<td( class=best)?>([^<]*)</td>", row)
    assert [bool(c[0]) for c in cells] == [best == "cnn", best == "knn"]
    assert cells[0][1] == f"{metrics['cnn']['sigma_mad']:.4f}"  # rounded to what it resolves
    assert "<td>galaxies with z_spec</td><td>" in page and "<details><summary>Per-bin metrics: cnn" in page
    assert not [p for p in report.iterdir() if ".tmp" in p.name]


def test_metrics_table_marks_the_best_by_each_rows_rule():
    from deepdip.report.html import metrics_table

    m = {"a": {"bias": -0.002, "coverage_68": 0.70, "sigma_mad": 0.02, "n": 10},
         "b": {"bias": 0.001, "coverage_68": 0.60, "sigma_mad": 0.02, "n": 12}}
    rows = dict(re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", metrics_table(m)))
    marked = {label: re.findall(r"<td( class=best)?>", cells) for label, cells in rows.items()}
    assert marked["bias ⟨Δz⟩ (mean)"] == ["", " class=best"]  # nearest zero
    assert marked["68 % coverage (ideal 0.68)"] == [" class=best", ""]  # nearest the ideal
    assert marked["σ_MAD"] == [" class=best", " class=best"]  # ties: both
    assert marked["galaxies with z_spec"] == ["", ""]  # not judged


def test_outlier_threshold_and_library_api(catalogues):
    paths = [catalogues["dir"] / "cnn.parquet", catalogues["dir"] / "knn.parquet"]
    got = score(match_catalogs(paths), outlier_threshold=0.02)
    check_against_independent(got, catalogues, threshold=0.02)
    assert got["cnn"]["outlier_frac"] != score(match_catalogs(paths))["cnn"]["outlier_frac"]


def test_cli_subprocess(catalogues, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(deepdip.__file__).parents[1]))
    proc = subprocess.run([sys.executable, "-m", "deepdip", "evaluate", str(catalogues["dir"] / "knn.parquet"),
                           "--out", str(tmp_path / "rep"), "--names", "kNN"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    want = independent(catalogues["zphot"]["knn"][catalogues["common"]], catalogues["z_spec"][catalogues["common"]])
    assert list(got) == ["kNN"] and abs(got["kNN"]["sigma_mad"] - want["sigma_mad"]) < 1e-6
    assert "kNN: n=" in proc.stdout


def test_bad_inputs_exit_2_with_one_line_message(catalogues, tmp_path, capsys):
    cnn = str(catalogues["dir"] / "cnn.parquet")
    (tmp_path / "notes.parquet").write_text("not parquet")
    out = tmp_path / "rep"
    cases = [
        ([str(tmp_path / "notes.parquet")], "is not a Parquet file"),
        ([str(tmp_path / "absent.parquet")], "not found"),
        ([cnn, "--names", "a", "b"], "2 name(s) for 1 catalogue(s)"),
        ([cnn, "--magnitude", "mag_y"], "no catalogue has a 'mag_y' column"),
    ]
    for args, message in cases:
        assert main(["evaluate", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("deepdip evaluate: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_unmatched_or_unlabelled_catalogues_are_rejected(tmp_path):
    pdf = np.ones((3, GRID.nbins))
    write_catalog(tmp_path / "a.parquet", [1, 2, 3], pdf, GRID, z_spec=[0.1, 0.2, 0.3], method="a")
    write_catalog(tmp_path / "b.parquet", [4, 5, 6], pdf, GRID, z_spec=[0.1, 0.2, 0.3], method="b")
    write_catalog(tmp_path / "c.parquet", [1, 2, 3], pdf, GRID, method="c")
    write_catalog(tmp_path / "d.parquet", [1, 2, 3], pdf, GRID, z_spec=[0.1, 0.25, 0.3], method="d")
    with pytest.raises(DeepdipError, match="no id in common"):
        match_catalogs([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    with pytest.raises(DeepdipError, match="no catalogue has a z_spec column"):
        match_catalogs([tmp_path / "c.parquet"])
    with pytest.raises(DeepdipError, match="z_spec of 'd' differs from that of 'a'"):
        match_catalogs([tmp_path / "a.parquet", tmp_path / "d.parquet"])
    same_method = match_catalogs([tmp_path / "a.parquet", tmp_path / "a.parquet"])
    assert list(same_method.catalogs) == ["a (a) #1", "a (a) #2"]


# --- bounded-memory evaluation (deepdip.report.streaming, ``evaluate --stream``) ------------------------

def test_streaming_metrics_match_in_memory_ones_within_their_bounds():
    from deepdip.metrics import compute_metrics
    from deepdip.report.streaming import StreamingMetrics

    rng = np.random.default_rng(7)
    n = 5001
    zs = rng.uniform(0.02, 0.38, n)
    zs[::97] = np.nan  # unlabelled rows are skipped, as compute_metrics does
    zp = np.clip(np.nan_to_num(zs, nan=0.2) + rng.normal(0, 0.02, n) + (rng.random(n) < 0.05) * rng.normal(0, 0.1, n),
                 0.0, 0.4)
    centres = GRID.zmin + (np.arange(GRID.nbins) + 0.5) * GRID.width
    pdf = np.exp(-0.5 * ((centres[None] - zp[:, None]) / 0.015) ** 2) + 1e-4
    want = compute_metrics(zp, zs, pdf, GRID)
    for resolution in (1e-6, 1e-4):
        acc = StreamingMetrics(GRID, resolution=resolution)
        for lo, hi in ((0, 7), (7, 2000), (2000, 2000), (2000, n)):  # uneven batches, an empty one
            acc.update(zp[lo:hi], zs[lo:hi], pdf[lo:hi])
        got = acc.result()
        assert got["n"] == want["n"]
        for key in ("outlier_frac", "bias", "crps", "coverage_68", "coverage_95", "cde_loss"):  # exact sums
            assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key
        for key, bound in got["bounds"].items():
            assert abs(got[key] - want[key]) <= bound + 1e-12, (key, resolution)
        assert "pit_cvm" not in got and "pit_ad" not in got  # they need every sorted PIT value
    assert got["bounds"]["sigma_mad"] == pytest.approx(1.4826e-4)


def test_evaluate_stream_cli_reads_a_folder_of_parts(catalogues, tmp_path, capsys):
    from deepdip.report.streaming import StreamingMetrics

    cat = read_catalog(catalogues["dir"] / "cnn.parquet")
    parts = tmp_path / "parts"
    parts.mkdir()
    halves = (slice(0, 120), slice(120, None))
    for k, rows in enumerate(halves):
        write_catalog(parts / f"part{k}.parquet", cat.ids[rows], cat.pdf[rows], GRID,
                      z_spec=cat.table["z_spec"].to_numpy()[rows], method="cnn")
    assert main(["evaluate", str(parts), "--stream", "--out", str(tmp_path / "rep"), "--names", "cnn"]) == 0
    got = json.loads((tmp_path / "rep" / "metrics.json").read_text())["cnn"]
    acc = StreamingMetrics(GRID)
    acc.update(cat.table["z_mean"].to_numpy(), cat.table["z_spec"].to_numpy(), cat.pdf)
    want = acc.result()
    assert got["parts"] == 2 and got["n_catalog"] == len(cat.ids)
    assert {k: got[k] for k in want if k != "bounds"} == pytest.approx({k: want[k] for k in want if k != "bounds"})
    exact = independent(catalogues["zphot"]["cnn"], catalogues["z_spec"])
    assert abs(got["sigma_mad"] - exact["sigma_mad"]) <= got["bounds"]["sigma_mad"] + 1e-12
    assert "sigma_mad=" in capsys.readouterr().out and not (tmp_path / "rep" / "index.html").exists()
    # refusals: one line, exit 2, nothing written
    (tmp_path / "empty").mkdir()
    for args, message in (([str(parts), "--resolution", "1e-5"], "--resolution applies to --stream only"),
                          ([str(tmp_path / "empty"), "--stream"], "holds no .parquet files"),
                          ([str(parts), "--stream", "--resolution", "0"], "resolution")):
        assert main(["evaluate", *args, "--out", str(tmp_path / "rep2")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "rep2").exists()
