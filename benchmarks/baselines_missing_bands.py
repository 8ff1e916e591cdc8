"""Catalogue baselines on galaxies lacking bands: which ``missing_bands`` mode (issue 14, item 2).

Trains each ML baseline (knn, rf, boost) on the training folds (fold != 0, all bands) of an sdss mock
store, in each ``missing_bands`` mode, and predicts fold 0 with all bands, with each single band
missing and with u and z both missing. Missingness is emulated on the test rows only, by NaN-ing
their fluxes and errors (the array face, ``predict_pdf_photometry``). ``pattern`` is the model
trained on the reduced band set, the reference a missing-band method is measured against. BPZ
(template fitting, which drops unobserved bands from its chi^2) is run on the same rows for scale.

Metrics (:mod:`deepdip.metrics`) of the PDF mean: sigma_MAD, outlier fraction eta (|dz| > 0.05),
PIT KS. Writes one JSON per store and prints the markdown tables of docs/benchmarks.md::

    python benchmarks/baselines_missing_bands.py STORE [STORE ...] --out DIR [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deepdip.baselines import make_baseline
from deepdip.metrics import compute_metrics, point_estimates
from deepdip.photometry import Photometry
from deepdip.store import CutoutStore

MODES = {"knn": ("zero", "impute", "pattern"), "rf": ("zero", "impute", "pattern"),
         "boost": ("zero", "nan", "impute", "pattern")}
CONDITIONS = {"all": (), "-u": ("u",), "-g": ("g",), "-r": ("r",), "-i": ("i",), "-z": ("z",), "-uz": ("u", "z")}


def without(phot: Photometry, bands) -> Photometry:
    """``phot`` with ``bands`` unobserved for every galaxy (NaN flux and error)."""
    return phot.without([b in bands for b in phot.bands])


def score(est, phot, z_spec) -> dict:
    t0 = time.perf_counter()
    pdf = est.predict_pdf_photometry(phot)
    seconds = time.perf_counter() - t0
    assert np.isfinite(pdf).all() and np.allclose(pdf.sum(axis=1), 1.0, atol=1e-4)
    m = compute_metrics(point_estimates(pdf, est.zgrid_)["z_mean"], z_spec, pdf, est.zgrid_)
    return {"sigma_mad": m["sigma_mad"], "eta": m["outlier_frac"], "pit_ks": m["pit_ks"],
            "predict_s": round(seconds, 2)}


def run_store(path: str, n_jobs: int, methods, with_bpz: bool, json_path: Path) -> dict:
    """Every method/mode on one store; results are written to ``json_path`` after each, and the
    method/modes already there are not run again (a restarted run resumes)."""
    store = CutoutStore(path)
    test = store.split_rows("test", fold=0)
    z = store.column("z_spec", rows=test).astype(np.float64)
    out: dict = {"store": path, "n_test": len(test), "results": {}}
    if json_path.is_file():
        out = json.loads(json_path.read_text())
    runs = [(m, mode) for m in methods for mode in MODES[m]] + ([("bpz", "-")] if with_bpz else [])
    for method, mode in runs:  # resumable
        if f"{method}/{mode}" in out["results"]:
            continue
        kwargs = {} if method == "bpz" else {"missing_bands": mode, "n_jobs": n_jobs if method != "knn" else 1}
        t0 = time.perf_counter()
        est = make_baseline(method, **kwargs).fit(store, 0)
        fit_s = time.perf_counter() - t0
        phot = Photometry.from_store(store, test, extra_columns=est.extra_columns_)
        res = {"fit_s": round(fit_s, 1), "n_train": est.n_train_}
        for name, bands in CONDITIONS.items():
            res[name] = score(est, without(phot, bands), z)
            print(f"{Path(path).name} {method:5s} {mode:7s} {name:4s} sigma_MAD {res[name]['sigma_mad']:.4f} "
                  f"eta {100 * res[name]['eta']:5.2f} % KS {res[name]['pit_ks']:.3f} "
                  f"({res[name]['predict_s']:.1f} s)", flush=True)
        out["results"][f"{method}/{mode}"] = res
        json_path.write_text(json.dumps(out, indent=1))
    return out


def tables(runs: list[dict]) -> str:
    """Markdown: one table per metric, a row per method/mode, a column per condition, seeds 's1 / s2'."""
    lines = []
    keys = list(runs[0]["results"])
    for metric, fmt, title in (("sigma_mad", "{:.4f}", "σ_MAD"), ("eta", "{:.2%}", "η"),
                               ("pit_ks", "{:.3f}", "PIT KS")):
        lines += [f"**{title}** (seed 1 / seed 2)", "",
                  "| method | missing_bands | " + " | ".join(CONDITIONS) + " |",
                  "|---|---|" + "---|" * len(CONDITIONS)]
        for key in keys:
            method, mode = key.split("/")
            cells = [" / ".join(fmt.format(r["results"][key][c][metric]).replace("%", " %") for r in runs)
                     for c in CONDITIONS]
            lines.append(f"| {method} | {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["fit seconds (seed 1 / seed 2): " + "; ".join(
        f"{k} " + " / ".join(str(r["results"][k]["fit_s"]) for r in runs) for k in keys)]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="+")
    parser.add_argument("--out", required=True, help="folder for one JSON per store")
    parser.add_argument("--n-jobs", type=int, default=2, help="threads of rf and boost (knn: 1)")
    parser.add_argument("--methods", default="knn,rf,boost")
    parser.add_argument("--no-bpz", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in args.stores:
        runs.append(run_store(path, args.n_jobs, args.methods.split(","), not args.no_bpz,
                              out / f"{Path(path).stem}.json"))
    print(tables(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
