"""Every bad input is named in one line with exit status 2, before any work, and nothing is written (issue 18).

Each case runs ``deepdip.cli.main`` in-process on tiny stores made here (80 galaxies of 8x8
pixels; a run directory holds one untrained model file: prediction refuses before any network
runs), so the whole file takes seconds. A few stores have a defect planted in them: a NaN and an
inf pixel, a NaN and a negative E(B-V), a fold out of range, a truth column listed in the provenance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepdip.cli import main
from deepdip.errors import DeepdipError, DeepdipValueError, StoreValueError
from deepdip.store import CutoutStore, create_store
from deepdip.zgrid import ZGrid

from .conftest import make_catalog

N, BANDS, SIZE = 80, "ugriz", 8
MOCK_TRUTHS = ("abs_mag_r", "stellar_mass", "hlr", "rest_u_r", "sfr", "bulge_frac")


def _store(path: Path, plant=None, attrs=None, extra=None) -> Path:
    rng = np.random.default_rng(0)
    images = rng.normal(1.0, 0.1, size=(N, len(BANDS), SIZE, SIZE)).astype(np.float32)
    cat = make_catalog(N, rng)
    cat["fold"] = (np.arange(N) % 5).astype(np.int8)
    for b in BANDS:
        cat[f"flux_{b}"] = rng.uniform(50, 100, N).astype(np.float32)
        cat[f"flux_err_{b}"] = np.full(N, 1.0, np.float32)
    for name in MOCK_TRUTHS:  # the truths a deepdip mock holds, as an old mock without the provenance list
        cat[name] = rng.uniform(0.1, 1.0, N).astype(np.float32)
    cat.update(extra or {})
    if plant:
        plant(images, cat)
    return create_store(path, images, cat, bands=BANDS, survey="sdss", pixel_scale=0.396, seed=3, attrs=attrs)


def _nan_pixel(images, cat):
    images[3, 1, 2, 2] = np.nan
    images[50, 4, 0, 7] = np.inf


def _nan_ebv(images, cat):
    cat["ebv"][[2, 11]] = np.nan


def _negative_ebv(images, cat):
    cat["ebv"][6] = -0.2


def _bad_fold(images, cat):
    cat["fold"][[1, 9, 12]] = 7


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Paths of the stores, a run, a catalogue, an image array and bad preset files."""
    d = tmp_path_factory.mktemp("bad_inputs")
    paths = {
        "store": _store(d / "good.h5"),
        "nan_pixel": _store(d / "nan_pixel.h5", _nan_pixel),
        "nan_ebv": _store(d / "nan_ebv.h5", _nan_ebv),
        "neg_ebv": _store(d / "neg_ebv.h5", _negative_ebv),
        "bad_fold": _store(d / "bad_fold.h5", _bad_fold),
        # A store that says which of its columns are truths: "secret" has no truth-like name.
        "prov": _store(d / "prov.h5", attrs={"generator": "test", "truth_columns": ["secret"]},
                       extra={"secret": np.linspace(0.1, 1, N).astype(np.float32)}),
    }
    from deepdip.models.modelfile import net_config, save_model_file
    from deepdip.models.net import PhotozNet

    zgrid = ZGrid(0.0, 0.4, 180)
    net_kwargs = dict(model="compact", in_chans=len(BANDS), num_bins=zgrid.nbins, img_size=SIZE, n_extra=1)
    net = PhotozNet(**net_kwargs)
    for k in range(5):  # untrained weights: these cases are refused before any forward pass
        save_model_file(d / "run" / f"fold{k}" / "member0" / "model.pt", net,
                        net_config(net_kwargs, bands=BANDS, image_shape=(SIZE, SIZE), flux_unit="nanomaggy",
                                   survey="sdss", zgrid=zgrid))
    paths["run"] = d / "run"
    from deepdip.catalog import write_catalog

    pdf = np.full((10, zgrid.nbins), 1.0 / zgrid.nbins, np.float32)
    paths["cat"] = write_catalog(d / "cat.parquet", np.arange(10), pdf, zgrid, z_spec=np.full(10, 0.1), method="knn")
    np.save(d / "images.npy", np.ones((4, 5, SIZE, SIZE), np.float32))
    paths["arrays"] = d / "images.npy"
    sdss = json.loads((Path(__file__).parents[1] / "src/deepdip/surveys/sdss.json").read_text())
    presets = {
        "preset_json": "{ not json",
        "preset_list": "[1, 2]",
        "preset_key": json.dumps({k: v for k, v in sdss.items() if k != "nbins"}),
        "preset_type": json.dumps({**sdss, "pixel_scale": "big"}),
        "preset_range": json.dumps({**sdss, "zmax": -1}),
        "preset_psf": json.dumps({**sdss, "psf_fwhm": [1.4, 1.3]}),
        "preset_band": json.dumps({**sdss, "mag_limit_band": "K"}),
        "preset_noise": json.dumps({**sdss, "noise": {"sky_sigma": [0.1] * 5}}),
    }
    for name, text in presets.items():
        (d / f"{name}.json").write_text(text)
        paths[name] = d / f"{name}.json"
    return {k: str(v) for k, v in paths.items()}


def _train(*extra, store="store"):
    return ["train", "{" + store + "}", "--fold", "0", "--out", "{out}", "--no-progress", *extra]


def _predict(*extra, store="store"):
    return ["predict", "{run}", "{" + store + "}", "--out", "{out}.parquet", "--no-progress", *extra]


def _baseline(method, *extra, store="store"):
    return ["baseline", "{" + store + "}", "--method", method, "--fold", "0", "--out", "{out}.parquet", *extra]


def _ingest(*extra):
    return ["ingest", "--arrays", "{arrays}", "--out", "{out}.h5", *extra]


def _simulate(*extra):
    return ["simulate", "--n", "10", "--out", "{out}.h5", "--quiet", *extra]


# (argv with {placeholders}, text the one-line message must contain)
CASES: dict[str, tuple[list[str], str]] = {
    # simulate: options and preset files
    "simulate seed -1": (_simulate("--seed", "-1"), "--seed"),
    "simulate n 0": (["simulate", "--n", "0", "--out", "{out}.h5"], "--n"),
    "simulate n negative": (["simulate", "--n", "-5", "--out", "{out}.h5"], "--n"),
    "simulate workers 0": (_simulate("--workers", "0"), "--workers"),
    "preset invalid JSON": (_simulate("--survey", "{preset_json}"), "not valid JSON"),
    "preset not an object": (_simulate("--survey", "{preset_list}"), "JSON object"),
    "preset missing key": (_simulate("--survey", "{preset_key}"), "'nbins'"),
    "preset wrong type": (_simulate("--survey", "{preset_type}"), "'pixel_scale'"),
    "preset z range": (_simulate("--survey", "{preset_range}"), "zmax"),
    "preset psf per band": (_simulate("--survey", "{preset_psf}"), "psf_fwhm"),
    "preset selection band": (_simulate("--survey", "{preset_band}"), "mag_limit_band"),
    "preset noise per band": (_simulate("--survey", "{preset_noise}"), "poisson_var_per_nmgy"),
    # train: every option, then the store's rows
    "train lr -1": (_train("--lr", "-1"), "--lr"),
    "train lr nan": (_train("--lr", "nan"), "--lr"),
    "train batch-size 0": (_train("--batch-size", "0"), "--batch-size"),
    "train precision 8-bits": (_train("--precision", "8-bits"), "--precision"),
    "train epochs 0": (_train("--epochs", "0"), "--epochs"),
    "train max-minutes -1": (_train("--max-minutes", "-1"), "--max-minutes"),
    "train max-minutes 0": (_train("--max-minutes", "0"), "--max-minutes"),
    "train ensemble 0": (_train("--ensemble", "0"), "--ensemble"),
    "train patience -1": (_train("--patience", "-1"), "--patience"),
    "train weight-decay -1": (_train("--weight-decay=-1e-4"), "--weight-decay"),
    "train threads 0": (_train("--threads", "0"), "--threads"),
    "train workers -1": (_train("--workers", "-1"), "--workers"),
    "train seed -1": (_train("--seed", "-1"), "--seed"),
    "train devices 0": (_train("--devices", "0"), "--devices"),
    "train num-nodes 0": (_train("--num-nodes", "0"), "--num-nodes"),
    "train accelerator": (_train("--accelerator", "quantum"), "--accelerator"),
    "train strategy": (_train("--strategy", "teleport"), "--strategy"),
    "train model-kwargs key": (_train("--model-kwargs", '{{"no_such": 1}}'), "no_such"),
    "train model-kwargs value": (_train("--model-kwargs", '{{"widths": "x"}}'), "--model-kwargs"),
    "train model-kwargs list": (_train("--model-kwargs", "[1]"), "--model-kwargs"),
    "train fold 9": (["train", "{store}", "--fold", "9", "--out", "{out}"], "fold 9"),
    # row 50 is in the test fold 0: only the training rows count
    "train NaN pixels": (_train(store="nan_pixel"), "NaN or inf pixels in 1 cutouts of the training rows (ids 1003)"),
    "train NaN ebv": (_train(store="nan_ebv"), "column 'ebv' is NaN or inf in 2"),
    "train negative ebv": (_train(store="neg_ebv"), "column 'ebv' is negative in 1"),
    "train fold out of range": (_train(store="bad_fold"), "column 'fold' outside 0..4 in 3 rows"),
    # predict
    "predict chunk-size 0": (_predict("--chunk-size", "0"), "--chunk-size"),
    "predict batch-size 0": (_predict("--batch-size", "0"), "--batch-size"),
    "predict threads 0": (_predict("--threads", "0"), "--threads"),
    "predict NaN pixels": (_predict("--rows", "all", store="nan_pixel"), "NaN or inf pixels in 2 cutouts"),
    "predict NaN ebv": (_predict(store="nan_ebv"), "column 'ebv' is NaN or inf"),
    "predict negative ebv": (_predict("--rows", "all", store="neg_ebv"), "column 'ebv' is negative"),
    "predict fold out of range": (_predict(store="bad_fold"), "column 'fold' outside 0..4"),
    # baseline: every parameter from its one declaration
    "knn k 0": (_baseline("knn", "--k", "0"), "--k"),
    "knn weights x": (_baseline("knn", "--weights", "x"), "--weights"),
    "knn kernel-bins -1": (_baseline("knn", "--kernel-bins", "-1"), "--kernel-bins"),
    "knn seed -1": (_baseline("knn", "--seed", "-1"), "--seed"),
    "knn n-jobs 0": (_baseline("knn", "--n-jobs", "0"), "--n-jobs"),
    "knn max-train -1": (_baseline("knn", "--max-train", "-1"), "--max-train"),
    "knn max-train 1": (_baseline("knn", "--max-train", "1"), "at least 2 training galaxies"),
    "boost max-train 3": (_baseline("boost", "--max-train", "3"), "at least 4 training galaxies"),
    "knn ref-band q": (_baseline("knn", "--ref-band", "q"), "--ref-band"),
    "knn fold 7": (["baseline", "{store}", "--method", "knn", "--fold", "7", "--out", "{out}.parquet"], "--fold"),
    "rf n-trees 0": (_baseline("rf", "--n-trees", "0"), "--n-trees"),
    "rf min-samples-leaf 0": (_baseline("rf", "--min-samples-leaf", "0"), "--min-samples-leaf"),
    "rf max-features 0": (_baseline("rf", "--max-features", "0"), "--max-features"),
    "rf max-features 1.5": (_baseline("rf", "--max-features", "1.5"), "--max-features"),
    "boost n-rounds 0": (_baseline("boost", "--n-rounds", "0"), "--n-rounds"),
    "boost learning-rate 0": (_baseline("boost", "--learning-rate", "0"), "--learning-rate"),
    "boost num-leaves 1": (_baseline("boost", "--num-leaves", "1"), "--num-leaves"),
    "boost min-child-samples -1": (_baseline("boost", "--min-child-samples", "-1"), "--min-child-samples"),
    "boost smooth-bins -1": (_baseline("boost", "--smooth-bins", "-1"), "--smooth-bins"),
    "bpz prior": (_baseline("bpz", "--prior", "uniform"), "--prior"),
    "bpz calibrate 2": (_baseline("bpz", "--calibrate", "2"), "--calibrate"),
    "bpz interp -1": (_baseline("bpz", "--interp", "-1"), "--interp"),
    "bpz err-floor -0.1": (_baseline("bpz", "--err-floor", "-0.1"), "--err-floor"),
    "bpz madau maybe": (_baseline("bpz", "--madau", "maybe"), "--madau"),
    "bpz prior-band q": (_baseline("bpz", "--prior-band", "q"), "--prior-band"),
    "baseline NaN ebv": (_baseline("knn", store="nan_ebv"), "column 'ebv' is NaN or inf"),
    "baseline negative ebv": (_baseline("rf", "--n-trees", "5", store="neg_ebv"), "column 'ebv' is negative"),
    "baseline fold out of range": (_baseline("boost", store="bad_fold"), "column 'fold' outside 0..4"),
    "parameter of another method": (_baseline("knn", "--n-trees", "5"), "--n-trees"),
    **{f"extra column {c}": (_baseline("knn", "--extra-columns", c), "truth") for c in MOCK_TRUTHS},
    "extra column z_true": (_baseline("knn", "--extra-columns", "z_true"), "truth"),
    "extra column by provenance": (_baseline("knn", "--extra-columns", "secret", store="prov"), "provenance"),
    # evaluate
    "evaluate outlier-threshold -1": (["evaluate", "{cat}", "--out", "{out}", "--outlier-threshold", "-1"],
                                      "--outlier-threshold"),
    "evaluate outlier-threshold 0": (["evaluate", "{cat}", "--out", "{out}", "--outlier-threshold", "0"],
                                     "--outlier-threshold"),
    "evaluate z-bins 0": (["evaluate", "{cat}", "--out", "{out}", "--z-bins", "0"], "--z-bins"),
    "evaluate mag-bins 0": (["evaluate", "{cat}", "--out", "{out}", "--mag-bins", "0"], "--mag-bins"),
    "evaluate names count": (["evaluate", "{cat}", "--out", "{out}", "--names", "a", "b"], "--names"),
    # ingest
    "ingest folds 0": (_ingest("--folds", "0"), "--folds"),
    "ingest folds 200": (_ingest("--folds", "200"), "--folds"),
    "ingest pixel-scale -1": (_ingest("--pixel-scale", "-1"), "--pixel-scale"),
    "ingest ebv -0.5": (_ingest("--ebv", "-0.5"), "--ebv"),
    "ingest ebv nan": (_ingest("--ebv", "nan"), "--ebv"),
    "ingest size 0": (_ingest("--size", "0"), "--size"),
    "ingest chunk-size 0": (_ingest("--chunk-size", "0"), "--chunk-size"),
    "ingest seed -1": (_ingest("--seed", "-1"), "--seed"),
    # models
    "models unknown survey": (["models", "--survey", "nowhere"], "nowhere"),
}


def _run(argv, capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_named(case, inputs, tmp_path, capsys):
    template, expected = CASES[case]
    out = tmp_path / "out"
    argv = [a.format(out=out, **inputs) for a in template]
    rc, err = _run(argv, capsys)
    assert rc == 2, (rc, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"deepdip {argv[0]}: error: "), err
    assert expected in lines[0], lines[0]
    assert not any(tmp_path.iterdir()), f"something was written: {list(tmp_path.iterdir())}"


def test_stores_used_as_fixtures_are_what_the_cases_say(inputs):
    """The good store passes (so each refusal is the planted defect), and `validate` sees each planted one."""
    from deepdip.store import validate_store
    from deepdip.store.checks import check_rows

    check_rows(CutoutStore(inputs["store"]))
    assert validate_store(inputs["store"]) == []
    for name, text in (("nan_pixel", "NaN or inf pixels in 2 cutouts"), ("nan_ebv", "non-finite ebv in 2 rows"),
                       ("neg_ebv", "negative ebv in 1 rows"), ("bad_fold", "fold values outside 0..4: 3 rows")):
        assert any(text in p for p in validate_store(inputs[name])), (name, validate_store(inputs[name]))


def test_check_rows_streams_and_counts_only_the_rows_used(inputs, monkeypatch):
    from deepdip.store import checks

    store = CutoutStore(inputs["nan_pixel"])
    monkeypatch.setattr(checks, "SCAN_ROWS", 7)
    reads = []
    original = CutoutStore.images

    def counting(self, rows=None):
        reads.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(CutoutStore, "images", counting)
    checks.check_rows(store, np.arange(10, 40))  # the bad rows 3 and 50 are not used: accepted
    with pytest.raises(StoreValueError, match=r"NaN or inf pixels in 1 cutouts of the rows used \(ids 1003\)"):
        checks.check_rows(store, np.arange(0, 20))
    assert reads and max(reads) <= 7  # chunked, never the whole image array


def test_value_errors_are_also_value_errors():
    """Library callers can catch the standard exception."""
    from deepdip.baselines import make_baseline

    with pytest.raises(ValueError, match="--k must be at least 1"):
        make_baseline("knn", k=0)
    assert issubclass(DeepdipValueError, DeepdipError) and issubclass(StoreValueError, ValueError)


def test_truth_columns_come_from_provenance(inputs):
    """A store that lists its truths is judged by that list: "hlr" is not a truth of this store, "secret" is."""
    from deepdip.baselines.base import refuse_truth_columns, store_truth_columns

    prov = CutoutStore(inputs["prov"])
    truths, why = store_truth_columns(prov)
    assert truths == {"secret"} and "provenance" in why
    refuse_truth_columns(prov, ["hlr_meas", "hlr"])
    with pytest.raises(DeepdipValueError, match="secret"):
        refuse_truth_columns(prov, ["secret"])
    # An old store (no list): the simulator's known truth names.
    truths, why = store_truth_columns(CutoutStore(inputs["store"]))
    assert set(MOCK_TRUTHS) <= truths and {"mag_r", "z_true", "psf_fwhm_r"} <= truths and "hlr_meas" not in truths


def test_simulator_records_its_truths_in_the_provenance(tmp_path):
    """A mock lists its truths; every other column it writes is a measurement or a required column."""
    from deepdip.photometry.pipeline import catalogue_photometry
    from deepdip.simulate import simulate_store
    from deepdip.surveys import Survey, load_survey

    base = load_survey("sdss")
    survey = Survey(base.name, base.bands, base.filters, base.pixel_scale, 24, base.zmin, base.zmax, base.nbins,
                    dict(base.params, stamp_size=24))
    simulate_store(survey, 3, 1, tmp_path / "mock.h5", progress=False)
    store = CutoutStore(tmp_path / "mock.h5")
    truths = store.provenance["truth_columns"]
    assert set(MOCK_TRUTHS) | {"z_true", "mag_r"} <= set(truths) <= set(store.columns)
    fwhm = np.array([[store.column(f"psf_fwhm_{b}", [0])[0] for b in survey.bands]])
    measured = set(catalogue_photometry(store.images([0]), survey, fwhm))  # the preset's catalogue photometry
    left = set(store.columns) - set(truths) - measured - {"id", "z_spec", "ebv", "fold"}
    assert not left, f"columns the simulator writes that are neither truths nor measurements: {sorted(left)}"


def test_failed_train_does_not_block_the_corrected_rerun(inputs, tmp_path):
    """A run.json without any checkpoint or model is re-configured; one with a model is protected."""
    from deepdip.train.run import _check_run_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"model": "compact", "lr": 5.0}))
    _check_run_config(run, {"model": "compact", "lr": 0.002})  # nothing trained: accepted
    (run / "fold0" / "member0" / "checkpoints").mkdir(parents=True)
    (run / "fold0" / "member0" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(DeepdipError, match="other settings"):
        _check_run_config(run, {"model": "compact", "lr": 0.002})


def test_train_refuses_before_writing_run_json(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = _run(["train", inputs["nan_ebv"], "--fold", "0", "--out", str(out), "--epochs", "1"], capsys)
    assert rc == 2 and "ebv" in err and not out.exists()


# One bad option per command, through a real process: the exit status and stderr the shell sees.
COMMANDS = {
    "simulate": ["simulate", "--n", "0", "--out", "{out}.h5"],
    "ingest": ["ingest", "--arrays", "{arrays}", "--out", "{out}.h5", "--folds", "0"],
    "validate": None,  # `deepdip validate` has no option values; exit 1 and one line per problem (test_validate)
    "models": ["models", "--survey", "nowhere"],
    "train": ["train", "{store}", "--out", "{out}", "--epochs", "0"],
    "predict": ["predict", "{run}", "{store}", "--out", "{out}.parquet", "--chunk-size", "0"],
    "baseline": ["baseline", "{store}", "--method", "knn", "--fold", "0", "--out", "{out}.parquet", "--k", "0"],
    "prior-shift": ["prior-shift", "{cat}", "--reference", "{cat}", "--out", "{out}.parquet", "--smooth-bins", "-1"],
    "evaluate": ["evaluate", "{cat}", "--out", "{out}", "--z-bins", "0"],
}


@pytest.mark.parametrize("command", [c for c, argv in COMMANDS.items() if argv])
def test_each_command_exits_2_with_one_line(command, inputs, tmp_path):
    argv = [a.format(out=tmp_path / "out", **inputs) for a in COMMANDS[command]]
    proc = subprocess.run([sys.executable, "-m", "deepdip", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"deepdip {command}: error: "), proc.stderr
    assert not any(tmp_path.iterdir())


# -- catalogue-only input, `deepdip baseline --table` (issue 16): bad tables are named in one line ---------

def _table_files(d: Path) -> dict[str, str]:
    """Small photometric tables: a good FITS one with SDSS-style 2-D columns, and one defect per bad one."""
    import pandas as pd
    from astropy.table import Table

    rng = np.random.default_rng(4)
    flux = rng.uniform(10.0, 2000.0, size=(N, 5))
    good = {"MODELFLUX": flux, "MODELFLUX_IVAR": np.full((N, 5), 4.0), "EXTINCTION": np.full((N, 5), 0.05),
            "Z": rng.uniform(0.01, 0.3, N)}
    Table(good).write(d / "table.fits")
    Table({**good, "EXTINCTION": np.where(np.arange(N)[:, None] == 3, -0.1, good["EXTINCTION"])}).write(
        d / "neg_ext.fits")
    Table({k: v for k, v in good.items() if k != "Z"}).write(d / "no_z.fits")
    Table({**good, "MODELFLUX": np.where(np.arange(5) == 1, np.nan, flux)}).write(d / "nan_band.fits")
    mags = 22.5 - 2.5 * np.log10(flux)
    per_band = {"z_spec": good["Z"], "OBJNUM": np.r_[np.arange(N - 1), 0]}  # a repeated number
    for j, b in enumerate(BANDS):
        per_band[f"mag_{b}"], per_band[f"err_{b}"], per_band[f"f_{b}"] = mags[:, j], np.full(N, 0.05), flux[:, j]
    per_band["mag_u"] = np.where(np.arange(N) < 4, 99.0, per_band["mag_u"])  # non-detections
    pd.DataFrame(per_band).to_csv(d / "bands.csv", index=False)
    return {"table": str(d / "table.fits"), "neg_ext": str(d / "neg_ext.fits"), "no_z": str(d / "no_z.fits"),
            "nan_band": str(d / "nan_band.fits"), "bands": str(d / "bands.csv"), "missing": str(d / "nowhere.fits")}


@pytest.fixture(scope="module")
def tables(tmp_path_factory, inputs) -> dict[str, str]:
    return {**inputs, **_table_files(tmp_path_factory.mktemp("bad_tables"))}


def _table(*extra, table="table", fold="0"):
    sdss = ["--survey", "sdss", "--flux-columns", "MODELFLUX", "--err-columns", "MODELFLUX_IVAR",
            "--extinction-columns", "EXTINCTION", "--column", "z_spec=Z"]
    return ["baseline", "--table", "{" + table + "}", "--method", "knn", "--fold", fold, "--out", "{out}.parquet",
            *sdss, *extra]


def _csv(*extra, survey=("--survey", "sdss")):
    return ["baseline", "--table", "{bands}", "--method", "knn", "--fold", "0", "--out", "{out}.parquet",
            *survey, "--err-columns", "err_{{band}}", *extra]


TABLE_CASES: dict[str, tuple[list[str], str]] = {
    "store and table": (["baseline", "{store}", "--table", "{table}", "--method", "knn", "--fold", "0",
                         "--out", "{out}.parquet"], "one of the two"),
    "neither store nor table": (["baseline", "--method", "knn", "--fold", "0", "--out", "{out}.parquet"],
                                "one of the two"),
    "table option with a store": (_baseline("knn", "--flux-columns", "F"), "--flux-columns applies to --table"),
    "table not found": (_table(table="missing"), "not found"),
    "missing flux column": (_table("--flux-columns", "PETROFLUX"), "no column 'PETROFLUX'"),
    "missing z_spec column": (_table(table="no_z"), "no column 'Z'"),
    "duplicate ids": (_csv("--flux-columns", "f_{{band}}", "--column", "id=OBJNUM"), "has duplicates"),
    "flux and mag columns": (_table("--mag-columns", "M"), "one of the two"),
    "no band columns": (_csv(), "one of the two"),
    "2-D column, wrong band count": (_table("--bands", "g,r,i"), "one value per band"),
    "unknown flux unit": (_table("--flux-unit", "furlong"), "unknown flux unit"),
    "magnitudes as fluxes": (_csv("--flux-columns", "mag_{{band}}"), "look like AB magnitudes"),
    "fluxes as magnitudes": (_csv("--mag-columns", "f_{{band}}"), "--flux-columns"),
    "non-detections without a limit": (_csv("--mag-columns", "mag_{{band}}"), "--mag-limit u=MAG"),
    "all-NaN band": (_table(table="nan_band"), "band g (MODELFLUX) has no usable value"),
    "negative extinction": (_table(table="neg_ext"), "'EXTINCTION' is NaN or negative in 1 rows"),
    "no redshift grid": (_csv("--flux-columns", "f_{{band}}", survey=("--bands", "u,g,r,i,z")), "--zmax"),
    "bpz without filters": (["baseline", "--table", "{bands}", "--method", "bpz", "--fold", "0", "--out",
                             "{out}.parquet", "--bands", "u,g,r,i,z", "--zmax", "0.4", "--nbins", "180",
                             "--flux-columns", "f_{{band}}", "--err-columns", "err_{{band}}"], "filter curves"),
    "unknown --column": (_table("--column", "colour=C"), "maps only"),
    "fold 7": (_table(fold="7"), "--fold must be in 0..4"),
    "folds 0": (_table("--folds", "0"), "--folds"),
    "bad grid": (_table("--nbins", "0"), "redshift grid"),
    "mag-limit not a number": (_csv("--mag-columns", "mag_{{band}}", "--mag-limit", "u=deep"), "--mag-limit"),
    "method parameter": (_table("--k", "0"), "--k"),
}


@pytest.mark.parametrize("case", list(TABLE_CASES))
def test_bad_table_is_named(case, tables, tmp_path, capsys):
    template, expected = TABLE_CASES[case]
    out = tmp_path / "out"
    argv = [a.format(out=out, **tables) for a in template]
    rc, err = _run(argv, capsys)
    assert rc == 2, (rc, err)
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if "warning:" not in line]
    assert len(lines) == 1 and lines[0].startswith("deepdip baseline: error: "), err
    assert expected in lines[0], lines[0]
    assert not any(tmp_path.iterdir()), f"something was written: {list(tmp_path.iterdir())}"


def test_the_good_tables_run(tables, tmp_path, capsys):
    """The planted defects are what fails: the good FITS table and the CSV of magnitudes (with its limit) run."""
    for name, template in (("fits", _table()), ("csv", _csv("--mag-columns", "mag_{{band}}", "--mag-limit", "u=23"))):
        argv = [a.format(out=tmp_path / name, **tables) for a in template]
        rc, err = _run(argv, capsys)
        assert rc == 0 and (tmp_path / f"{name}.parquet").is_file(), err
