"""The CNN against template fitting (BPZ) and machine learning on the same deep galaxies (issue 12).

One ``cfhtls-wide`` mock (i <= 22.5, z < 3, 600 bins), test fold 0; every method fits on the other
folds (the CNN's validation share included) and predicts the test fold and an *external test*:
galaxies of the same population fainter than any training galaxy (22.5 < i <= 24, a
``cfhtls-wide-faint`` mock), as a deeper spectroscopic sample would test a CFHTLS-Wide photo-z.

Methods: BPZ (CWW+SB templates, zero points and prior fitted on the training galaxies), kNN,
random forest, LightGBM on the catalogue photometry measured on the stamps, and the compact CNN
on the pixels (``deepdip train``, a wall-clock budget per seed). Metrics, the deep-survey
conventions: sigma_MAD, outlier fractions eta at |dz| > 0.15 and > 0.05, median bias, PIT KS and
68 % coverage, overall, per i bin (17.5-22.5 in 1-mag steps; 22.5-23, 23-24 for the external
test) and per z bin.

    python benchmarks/deep_comparison.py --dir /tmp/deep --n 50000 --faint-n 8000 \\
        --cnn-seeds 1 2 --cnn-minutes 25 --out docs/deep_comparison.json

Every step keeps what it made in ``--dir`` and skips it when rerun (delete a file to redo it).
``--steps model-photometry`` adds the catalogue methods on model-fit fluxes of the same galaxies
and pixels (rows ``<method>_model``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("bpz", "knn", "rf", "boost")
FAINT_EDGES = [22.5, 23.0, 23.5, 24.0]


def sh(*cmd):
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def deepdip(*args):
    sh(sys.executable, "-m", "deepdip", *args)


def simulate(d: Path, n: int, faint_n: int, seed: int, workers: int):
    main = d / f"cfhtls_n{n}_s{seed}.h5"
    faint = d / f"cfhtls_faint_n{faint_n}_s{seed + 1}.h5"
    if not main.exists():
        deepdip("simulate", "--survey", "cfhtls-wide", "--n", n, "--seed", seed, "--out", main, "--workers", workers)
    if not faint.exists():
        deepdip("simulate", "--survey", "cfhtls-wide-faint", "--n", faint_n, "--seed", seed + 1, "--out", faint,
                "--workers", workers)
    return main, faint


def faint_rows(store_path: Path) -> np.ndarray:
    """Rows of the external test: i fainter than the training limit (22.5), on the true magnitude
    the mocks select on."""
    from deepdip.store import CutoutStore

    with CutoutStore(store_path) as st:
        return np.flatnonzero(st.column("mag_i").astype(np.float64) > 22.5)


def baselines(d: Path, main: Path, faint: Path):
    from deepdip.baselines import load_baseline
    from deepdip.store import CutoutStore

    rows = faint_rows(faint)
    for m in BASELINES:
        test, model, ext = d / f"{m}_test.parquet", d / f"{m}.npz", d / f"{m}_faint.parquet"
        if not test.exists():
            deepdip("baseline", main, "--method", m, "--fold", "0", "--out", test, "--save-model", model)
        if not ext.exists():
            with CutoutStore(faint) as st:
                load_baseline(model).predict_catalog(st, rows, ext)


def model_photometry_baselines(d: Path, n: int, seed: int, workers: int):
    """The same galaxies and pixels with model-fit (PSF-convolved profile, amplitude per band)
    fluxes as the catalogue, and the catalogue methods on them: how much of the CNN's gain over
    Kron-aperture catalogues a better catalogue measurement recovers."""
    preset = d / "cfhtls-wide-model.json"
    if not preset.exists():
        preset.write_text(json.dumps({"extends": "cfhtls-wide", "name": "cfhtls-wide",
                                      "catalogue_photometry": {"method": "model", "reference_band": "i"}}))
    store = d / f"cfhtls_model_n{n}_s{seed}.h5"
    if not store.exists():
        deepdip("simulate", "--survey", preset, "--n", n, "--seed", seed, "--out", store, "--workers", workers)
    for m in BASELINES:
        test = d / f"{m}_model_test.parquet"
        if not test.exists():
            deepdip("baseline", store, "--method", m, "--fold", "0", "--out", test)


def cnn(d: Path, main: Path, faint: Path, seed: int, minutes: float, extra: list[str]):
    run = d / f"cnn_s{seed}"
    test, ext = d / f"cnn_s{seed}_test.parquet", d / f"cnn_s{seed}_faint_all.parquet"
    if not (run / "run.json").exists():
        deepdip("train", main, "--out", run, "--model", "compact", "--fold", "0", "--seed", seed,
                "--max-minutes", minutes, "--no-progress", "--no-tensorboard", *extra)
    if not test.exists():
        deepdip("predict", run, main, "--out", test, "--rows", "test", "--no-progress")
    if not ext.exists():
        deepdip("predict", run, faint, "--out", ext, "--rows", "all", "--no-progress")


def scores(cat_path: Path, keep_ids=None, mag_edges=None) -> dict:
    """The deep-survey metrics of one catalogue (optionally restricted to ``keep_ids``): the
    cfhtls-wide preset's conventions (``deepdip.report.conventions``), and its points for the figures."""
    import pandas as pd

    from deepdip.catalog import read_catalog
    from deepdip.report.conventions import convention_scores

    cat = read_catalog(cat_path)   # once: the scores and the figures' points
    table, pdf = cat.table, cat.pdf
    if keep_ids is not None:
        sel = np.isin(table["id"].to_numpy(), keep_ids)
        table, pdf = table[sel].reset_index(drop=True), pdf[sel]
    zp, zs = table["z_mean"].to_numpy(), table["z_spec"].to_numpy()
    out = convention_scores(zp, zs, pdf, cat.zgrid, conv(mag_edges), magnitude=table["mag_i"].to_numpy())
    out["_points"] = pd.DataFrame({"z_spec": zs, "z_phot": zp})
    return out


def conv(mag_edges=None) -> dict:
    from deepdip.report.conventions import conventions
    from deepdip.surveys import load_survey

    c = conventions(load_survey("cfhtls-wide"))
    return {**c, "mag_edges": mag_edges} if mag_edges is not None else c


def collect(d: Path, seeds: list[int]) -> dict:
    import pandas as pd

    res = {"test": {}, "external": {}}
    cnn_faint_ids = None
    for m in BASELINES:
        if (d / f"{m}_test.parquet").exists():
            res["test"][m] = scores(d / f"{m}_test.parquet")
            cnn_faint_ids = pd.read_parquet(d / f"{m}_faint.parquet", columns=["id"])["id"].to_numpy()
            res["external"][m] = scores(d / f"{m}_faint.parquet", mag_edges=FAINT_EDGES)
    for m in BASELINES:
        if (d / f"{m}_model_test.parquet").exists():
            res["test"][f"{m}_model"] = scores(d / f"{m}_model_test.parquet")
    for s in seeds:
        if (d / f"cnn_s{s}_test.parquet").exists():
            res["test"][f"cnn_s{s}"] = scores(d / f"cnn_s{s}_test.parquet")
            res["external"][f"cnn_s{s}"] = scores(d / f"cnn_s{s}_faint_all.parquet", keep_ids=cnn_faint_ids,
                                                  mag_edges=FAINT_EDGES)
    return res


def table(res: dict, part: str) -> str:
    from deepdip.report.conventions import convention_table

    return convention_table(res[part], conv(FAINT_EDGES if part == "external" else None))


def figures(res: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(res["test"])
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.4), squeeze=False)
    for ax, m in zip(axes[0], methods):
        p = res["test"][m]["_points"]
        ax.hexbin(p["z_spec"], p["z_phot"], gridsize=60, extent=(0, 2, 0, 2), bins="log", cmap="viridis", mincnt=1)
        ax.plot([0, 2], [0, 2], "w-", lw=0.6)
        ax.set(title=f"{m}: σ {res['test'][m]['sigma_mad']:.3f}", xlabel="z_spec", xlim=(0, 2), ylim=(0, 2))
    axes[0, 0].set_ylabel("z_phot")
    fig.tight_layout()
    fig.savefig(path.with_name(path.stem + "_zz.png"), dpi=90)
    plt.close(fig)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for k, m in enumerate(methods):
        for part, style in (("test", "-o"), ("external", "--s")):
            if m not in res[part]:
                continue
            b = res[part][m]["by_mag"]
            x = [0.5 * (r["lo"] + r["hi"]) for r in b]
            kw = {"color": f"C{k}", "ms": 3}
            a1.plot(x, [r["sigma_mad"] for r in b], style, label=m if part == "test" else None, **kw)
            a2.plot(x, [100 * r["eta_0.15"] for r in b], style, **kw)
    a1.set(xlabel="i (solid: test; dashed: external, fainter than training)", ylabel="σ_MAD")
    a2.set(xlabel="i", ylabel="η(|Δz| > 0.15) [%]")
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_name(path.stem + "_vs_i.png"), dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--faint-n", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=12, help="mock seed (the faint mock takes seed + 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", nargs="+", default=["simulate", "baselines", "cnn", "report"])
    ap.add_argument("--cnn-seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cnn-minutes", type=float, default=25.0)
    ap.add_argument("--cnn-args", default="", help="extra deepdip train options, one string")
    ap.add_argument("--out", type=Path, default=None, help="JSON of the scores; figures beside it")
    args = ap.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    main_store, faint = simulate(args.dir, args.n, args.faint_n, args.seed, args.workers) \
        if "simulate" in args.steps else (args.dir / f"cfhtls_n{args.n}_s{args.seed}.h5",
                                          args.dir / f"cfhtls_faint_n{args.faint_n}_s{args.seed + 1}.h5")
    if "baselines" in args.steps:
        baselines(args.dir, main_store, faint)
    if "model-photometry" in args.steps:
        model_photometry_baselines(args.dir, args.n, args.seed, args.workers)
    if "cnn" in args.steps:
        for s in args.cnn_seeds:
            cnn(args.dir, main_store, faint, s, args.cnn_minutes, args.cnn_args.split())
    if "report" in args.steps:
        res = collect(args.dir, args.cnn_seeds)
        print("## test fold 0 (17.5 < i <= 22.5)\n\n" + table(res, "test"))
        print("\n## external test (22.5 < i <= 24, fainter than every training galaxy)\n\n" + table(res, "external"))
        if args.out:
            figures(res, args.out)
            clean = {part: {m: {k: v for k, v in r.items() if k != "_points"} for m, r in rows.items()}
                     for part, rows in res.items()}
            args.out.write_text(json.dumps(clean, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
