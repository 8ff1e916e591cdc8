"""Issue 14's study of missing bands: one CNN for any subset of bands against a CNN trained for the subset.

On a mock store (``deepdip demo``'s), for each seed and each band set S given with ``--drop`` (default: each
single band and u+z):

- ``full``: the CNN trained on every band (no band dropout), predicting every band and without S;
- ``dropout``: the CNN trained with ``--band-dropout P``, predicting every band and without S;
- ``dropout+pit``: the same network with PIT recalibration maps per availability pattern fitted on its own
  validation galaxies (what ``deepdip train --recalibrate pit`` does at the end of training; here on a copy of
  the finished model file, so the two arms share one training run);
- ``independent`` (and ``independent+pit``): the same with ``--band-dropout-mode independent`` (each band lost
  with probability ``--independent-dropout``, default 0.15: "exactly band b missing" for 7.8 % of the training
  galaxies, against 1.5 % for ``dropout``);
- ``specific``: a CNN trained on the store with S masked for every galaxy (the band-specific reference),
  predicting without S;
- catalogue baselines ``rf`` and ``boost`` (``deepdip baseline``, ``--max-train`` galaxies, default
  ``--missing-bands pattern``) on the same copies.

"Without S" is a copy of the store whose band mask removes S for every galaxy (pixels zeroed, fluxes NaN:
what a store holds for a band not observed). Same folds; the CNNs of a seed train on the same ``--max-train``
rows (a reduced scale), test fold 0. Metrics: σ_MAD, η (|Δz|/(1+z) > 0.05) of the PDF mean and PIT KS
(``deepdip.metrics``). Issue 14's targets: ``dropout`` without S within 10 % of ``specific`` and better than
the best baseline; with every band within 3 % of ``full``; PIT KS ≤ 0.05 without S.

Usage: python benchmarks/bands_study.py STORE --out DIR [--seeds 1 2] [--drop u g r i z uz] [--max-train 5000]
       [--epochs 15] [--band-dropout 0.3] [--independent-dropout 0.15] [--arms full dropout independent ...]
Each seed's runs and predictions go to DIR/s<seed>; finished ones are reused (rerun to resume or to tabulate).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ARMS = ("full", "dropout", "independent", "specific", "baselines")


def masked_copy(store_path: Path, out: Path, drop: str) -> Path:
    """The store with the bands of ``drop`` missing for every galaxy (band mask, pixels zero, fluxes NaN)."""
    from deepdip.store import CutoutStore, create_store

    if out.exists():
        return out
    src = CutoutStore(store_path)
    mask = src.band_mask().copy()
    for band in drop:
        mask[:, src.bands.index(band)] = False
    return create_store(out, src.images(), src.catalog(), band_mask=mask, bands=list(src.bands),
                        survey=src.survey, pixel_scale=src.pixel_scale, flux_unit=src.flux_unit,
                        n_folds=int(src.attrs["n_folds"]), seed=int(src.attrs["fold_seed"]))


def train_run(store: Path, out: Path, args, seed: int, band_dropout: float, mode: str = "subset") -> Path:
    from deepdip.train import train

    if not any(out.glob("fold0/member0/model.pt")):
        train(store, fold=0, epochs=args.epochs, max_train=args.max_train or None, band_dropout=band_dropout,
              band_dropout_mode=mode, out=out, seed=seed, progress=False, tensorboard=False)
    return out


def recalibrated_copy(run: Path, store_path: Path, out: Path) -> Path:
    """``run``'s model with PIT maps fitted on its validation rows, as ``deepdip train --recalibrate pit``."""
    from deepdip.models.modelfile import ModelFile, save_model_file
    from deepdip.store import CutoutStore
    from deepdip.train.calibrate import fit_pit_calibration
    from deepdip.train.run import member_seed, split_train_val

    target = out / "fold0" / "member0" / "model.pt"
    if target.exists():
        return out
    model = ModelFile(run / "fold0" / "member0" / "model.pt")
    cfg = json.loads((run / "run.json").read_text())
    store = CutoutStore(store_path)
    _, val = split_train_val(store, 0, cfg["seed"], cfg["val_fraction"], cfg["max_val"], cfg.get("max_train"))
    report = fit_pit_calibration(model.net, store, val, model.zgrid, seed=member_seed(cfg["seed"], 0, 0))
    config = {**model.config, "net": {**model.config["net"], "pit_calibration": True}}
    target.parent.mkdir(parents=True, exist_ok=True)
    save_model_file(target, model.net, config, {**model.info, "pit_calibration": report})
    (out / "run.json").write_text(json.dumps({**cfg, "recalibrate": "pit"}, indent=1, sort_keys=True))
    return out


def baseline(store: Path, method: str, out: Path, args, seed: int) -> Path:
    if not out.exists():
        subprocess.run([sys.executable, "-m", "deepdip", "baseline", str(store), "--method", method, "--fold", "0",
                        "--out", str(out), "--seed", str(seed), "--n-jobs", "2",
                        *(["--max-train", str(args.max_train)] if args.max_train else [])],
                       check=True, capture_output=True)
    return out


def scores(run: Path | None, store: Path, out: Path) -> dict:
    """Metrics of catalogue ``out`` (predicted by ``run`` on ``store`` first, unless it exists)."""
    from deepdip.catalog import read_catalog
    from deepdip.metrics import compute_metrics
    from deepdip.predict import predict_store

    if not out.exists() and run is not None:
        predict_store(run, store, out, rows="test", progress=False)
    cat = read_catalog(out)
    m = compute_metrics(cat.table["z_mean"].to_numpy(), cat.table["z_spec"].to_numpy(), cat.pdf, cat.zgrid)
    return {"sigma_mad": float(m["sigma_mad"]), "eta": float(m["outlier_frac"]), "pit_ks": float(m["pit_ks"]),
            "n": int(len(cat))}


def study_seed(store: Path, out: Path, args, seed: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results: dict = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["args"] = {**vars(args), "seed": seed}
    arms = set(args.arms)
    # name -> (run, the band-dropout arms read the band mask and can take PIT maps)
    cnns: dict = {}
    if "full" in arms:
        cnns["full"] = train_run(store, out / "full", args, seed, 0.0)
    if "dropout" in arms:
        run = train_run(store, out / "dropout", args, seed, args.band_dropout)
        cnns["dropout"], cnns["dropout+pit"] = run, recalibrated_copy(run, store, out / "dropout_pit")
    if "independent" in arms:
        run = train_run(store, out / "independent", args, seed, args.independent_dropout, "independent")
        cnns["independent"] = run
        cnns["independent+pit"] = recalibrated_copy(run, store, out / "independent_pit")
    n = args.max_train or "all"

    def row(key, run, st, name):
        results[key] = scores(run, st, out / f"{name}.parquet")
        results_path.write_text(json.dumps(results, indent=1))

    def file_name(arm: str) -> str:
        return arm.replace("+", "_")

    for arm, run in cnns.items():
        row(f"{arm}/all", run, store, f"{file_name(arm)}_all")
    if "baselines" in arms:
        for method in ("rf", "boost"):
            row(f"{method}/all", None, store,
                baseline(store, method, out / f"{method}{n}_all.parquet", args, seed).stem)
    for drop in args.drop:
        reduced = masked_copy(store, out / f"store_minus_{drop}.h5", drop)
        for arm, run in cnns.items():
            row(f"{arm}/-{drop}", run, reduced, f"{file_name(arm)}_minus_{drop}")
        if "specific" in arms:
            specific = train_run(reduced, out / f"specific_minus_{drop}", args, seed, 0.0)
            row(f"specific/-{drop}", specific, reduced, f"specific_minus_{drop}")
        if "baselines" in arms:
            for method in ("rf", "boost"):
                path = baseline(reduced, method, out / f"{method}{n}_minus_{drop}.parquet", args, seed)
                row(f"{method}/-{drop}", None, reduced, path.stem)
        print(seed, drop, {k: round(v["sigma_mad"], 4) for k, v in results.items() if k.endswith(f"-{drop}")},
              flush=True)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--drop", nargs="+", default=["u", "g", "r", "i", "z", "uz"])
    p.add_argument("--max-train", type=int, default=5000,
                   help="training galaxies of every CNN and baseline; 0: all of the training folds (the demo's scale)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--band-dropout", type=float, default=0.3, help="P of the 'dropout' arm (mode subset)")
    p.add_argument("--independent-dropout", type=float, default=0.15,
                   help="per-band P of the 'independent' arm (--band-dropout-mode independent)")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS,
                   help="which arms to train and score (finished runs and catalogues are reused)")
    args = p.parse_args()
    store, root = Path(args.store), Path(args.out)
    by_seed = {seed: study_seed(store, root / f"s{seed}", args, seed) for seed in args.seeds}
    keys = list(dict.fromkeys(k for res in by_seed.values() for k in res if k != "args"))
    print("| model / bands predicted | " + " | ".join(f"seed {s}: σ_MAD / η / PIT KS" for s in args.seeds) + " |")
    print("|---|" + "---|" * len(args.seeds))
    for key in keys:
        cells = [by_seed[s].get(key) for s in args.seeds]
        print(f"| {key} | " + " | ".join(f"{m['sigma_mad']:.4f} / {100 * m['eta']:.2f} % / {m['pit_ks']:.3f}"
                                        if m else "—" for m in cells) + " |")
    print_ratios(by_seed, args)


def print_ratios(by_seed: dict, args) -> None:
    """σ_MAD ratios against issue 14's targets, per band-dropout arm and seed (— where an arm is missing)."""
    def ratio(res, num, den):
        den = [res[k]["sigma_mad"] for k in den if k in res]
        return f"{res[num]['sigma_mad'] / min(den):.3f}" if num in res and den else "—"

    sets = ["all"] + [f"-{d}" for d in args.drop]
    print("\n| ratio (seeds " + " ; ".join(map(str, args.seeds)) + ") | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    for arm in ("dropout+pit", "independent+pit"):
        for name, den in (("full", lambda s: ["full/all"] if s == "all" else []),
                          ("specific", lambda s: [] if s == "all" else [f"specific/{s}"]),
                          ("best baseline", lambda s: [f"rf/{s}", f"boost/{s}"])):
            cells = [" ; ".join(ratio(by_seed[seed], f"{arm}/{s}", den(s)) for seed in args.seeds) for s in sets]
            if any(c.strip(" ;—") for c in cells):
                print(f"| {arm} / {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
