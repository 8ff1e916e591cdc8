"""Real-data check and speed of the catalogue baselines (docs/baselines-real-sdss.md, docs/benchmarks.md).

    python benchmarks/baselines_real_sdss.py                      # 5-fold table on real SDSS
    python benchmarks/baselines_real_sdss.py --speed 20000        # + fit/predict timings at demo scale
    python benchmarks/baselines_real_sdss.py --json out.json      # also write the numbers
    python benchmarks/baselines_real_sdss.py --data PATH/gst_tests_small.fits   # the table elsewhere

The table: 5-fold cross-validation (folds from deepdip.store.assign_folds, seed 0) on the 10,000
real SDSS main-sample galaxies of ../shared/data/real/sdss_main_gst10k (found beside the
repository this script is in, or given with --data), ugriz model fluxes with their errors, SDSS
extinction; PDFs on 270 bins over [0, 0.6); z_phot = PDF mean.
The speed run tiles the real photometry to N galaxies, fits on 80 % and predicts 20 %, one thread.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from deepdip.atomic import write_json_atomic
from deepdip.baselines import make_baseline
from deepdip.baselines.real_sdss import ZGRID, cross_validate, load_real_sdss

#: The data beside this repository (a fresh clone has no ../shared: pass --data).
DEFAULT_PATH = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "sdss_main_gst10k"
                / "gst_tests_small.fits")
COLUMNS = ("method", "n", "sigma_mad", "outlier_frac", "bias", "bias_median", "pit_ks", "coverage_68",
           "coverage_95", "crps", "fit_s", "predict_per_1k_s")


def real_sdss_table(path, methods=("knn", "rf", "boost", "bpz"), n_folds: int = 5, seed: int = 0,
                    progress=print) -> list[dict]:
    """Cross-validated metrics of each baseline on the real SDSS sample, one dict per method."""
    phot, z = load_real_sdss(path)
    rows = []
    for m in methods:
        rows.append(cross_validate(m, phot, z, n_folds=n_folds, seed=seed))
        if progress:
            progress(format_row(rows[-1]))
    return rows


def format_row(row: dict) -> str:
    cells = []
    for c in COLUMNS:
        v = row.get(c, "")
        cells.append(f"{v:.4f}" if isinstance(v, float) and c not in ("fit_s", "predict_per_1k_s")
                     else f"{v:.2f}" if isinstance(v, float) else str(v))
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: list[dict]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "\n".join(format_row(r) for r in rows) + "\n"


def speed(path, n: int, methods, seed: int = 0) -> list[dict]:
    """Fit on 0.8 n and predict 0.2 n galaxies (the real photometry tiled with 1 % flux jitter)."""
    phot, z = load_real_sdss(path)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(z), n)
    big = phot.subset(idx)
    big.flux = big.flux * (1 + 0.01 * rng.normal(size=big.flux.shape))  # no exact duplicates
    n_train = int(0.8 * n)
    rows = []
    for m in methods:
        est = make_baseline(m, ZGRID, seed=seed)
        t0 = time.perf_counter()
        est.fit_photometry(big.subset(slice(0, n_train)), z[idx[:n_train]])
        t1 = time.perf_counter()
        est.predict_pdf_photometry(big.subset(slice(n_train, n)))
        t2 = time.perf_counter()
        rows.append({"method": m, "n_train": n_train, "n_predict": n - n_train, "fit_s": round(t1 - t0, 2),
                     "predict_s": round(t2 - t1, 2), "predict_gal_per_s": round((n - n_train) / (t2 - t1))})
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_PATH),
                        help="sdss_main_gst10k/gst_tests_small.fits (default: ../shared/data/real/... beside the "
                             "repository)")
    parser.add_argument("--methods", default="knn,rf,boost,bpz", help="comma-separated baselines")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds and estimators")
    parser.add_argument("--speed", type=int, default=0, metavar="N", help="also time fit/predict on N galaxies")
    parser.add_argument("--json", help="write all numbers to this JSON file")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        print(f"real SDSS data not found at {args.data}", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows = real_sdss_table(args.data, methods, n_folds=args.folds, seed=args.seed)
    print()
    print(markdown_table(rows))
    result = {"table": rows, "machine": platform.processor() or platform.machine()}
    if args.speed:
        result["speed"] = speed(args.data, args.speed, methods, seed=args.seed)
    if args.json:
        write_json_atomic(args.json, result, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
