"""Issue 14's physical parameters and redshift heads: stellar mass and SFR beside z, softmax against MDN.

On a mock store (``deepdip demo``'s: the mock knows each galaxy's stellar mass and SFR), test fold 0,
the same ``--max-train`` training galaxies per seed for every arm:

- CNN arms (``compact``, ``--epochs``): ``binned`` (the softmax redshift head alone), ``mdn`` (the
  mixture-density head alone, ``--head mdn``) and ``binned+props`` (the softmax head trained jointly
  with Gaussian heads for ``logmstar`` and ``logsfr``, ``--properties logmstar,logsfr``);
- catalogue baseline for the properties: LightGBM on the measured photometry (the boost baseline's
  colour features: reference luptitude and adjacent colours, E(B-V)), quantile regression at 16, 50,
  84 % (sigma = half the 68 % range), without and with the true redshift as a feature (an upper
  bound: a spectroscopic redshift known).

Metrics on the test fold: for z, sigma_MAD, eta (|dz|/(1+z) > 0.05), PIT KS of the PDF
(``deepdip.metrics``); for each property (dex), bias (median of predicted - true), NMAD scatter,
outlier fraction (|delta| > 0.3 dex), PIT KS of the Gaussian N(mean, sigma) and the 68 % coverage
(``deepdip.metrics.property_metrics``).

Usage: python benchmarks/physical_properties.py STORE --out DIR [--seeds 1 2] [--max-train 5000]
       [--epochs 15] [--reuse-binned SEED=RUN ...]
Finished runs and predictions in DIR are reused: rerun the command to resume or to tabulate.
``--reuse-binned 1=/tmp/pilot_s1/full`` takes an existing run of the same settings (a z-only
compact CNN, same store, seed, epochs and max-train) as the seed's ``binned`` arm.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PROPERTIES = ("logmstar", "logsfr")
ARMS = {"binned": {}, "mdn": {"head": "mdn"}, "binned+props": {"properties": ",".join(PROPERTIES)}}


def train_arm(store: Path, out: Path, seed: int, args, settings: dict) -> Path:
    from deepdip.train import train

    if not any(out.glob("fold0/member0/model.pt")):
        train(store, fold=0, epochs=args.epochs, max_train=args.max_train or None, out=out, seed=seed, progress=False,
              tensorboard=False, **settings)
    return out


def property_scores(truth: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict:
    """Scores of ``PROPERTIES`` (columns of the arrays): ``property_metrics`` of each, and for logsfr also
    on the star-forming galaxies alone (true SFR above the floor) and how often the predicted mean falls
    on the right side of log SFR = -2 (quiescent: true SFR at the floor of 1e-3 Msun/yr)."""
    from deepdip.metrics import property_metrics
    from deepdip.properties import SFR_FLOOR

    out = {name: property_metrics(truth[:, j], mean[:, j], std[:, j]) for j, name in enumerate(PROPERTIES)}
    j = PROPERTIES.index("logsfr")
    quiescent = truth[:, j] <= np.log10(SFR_FLOOR) + 1e-6
    forming = np.isfinite(truth[:, j]) & ~quiescent
    out["logsfr|star-forming"] = property_metrics(truth[forming, j], mean[forming, j], std[forming, j])
    out["logsfr|quiescent"] = {"fraction": float(quiescent.mean()),
                               "quiescent_recall": float(np.mean(mean[quiescent, j] < -2.0)),
                               "star_forming_recall": float(np.mean(mean[forming, j] >= -2.0))}
    return out


def cnn_scores(run: Path, store_path: Path, out: Path) -> dict:
    from deepdip.catalog import read_catalog
    from deepdip.metrics import compute_metrics
    from deepdip.predict import predict_store
    from deepdip.properties import property_labels
    from deepdip.store import CutoutStore

    if not out.exists():
        predict_store(run, store_path, out, rows="test", progress=False)
    cat = read_catalog(out)
    t = cat.table
    m = compute_metrics(t["z_mean"].to_numpy(), t["z_spec"].to_numpy(), cat.pdf, cat.zgrid)
    res = {"z": {"sigma_mad": float(m["sigma_mad"]), "eta": float(m["outlier_frac"]), "pit_ks": float(m["pit_ks"]),
                 "n": int(len(t))}}
    if f"{PROPERTIES[0]}_mean" in t.columns:
        store = CutoutStore(store_path)
        truth = property_labels(store, PROPERTIES, _rows_of_ids(store, t["id"].to_numpy()))
        mean = np.column_stack([t[f"{n}_mean"].to_numpy() for n in PROPERTIES])
        std = np.column_stack([t[f"{n}_std"].to_numpy() for n in PROPERTIES])
        res.update(property_scores(truth, mean, std))
    return res


def _rows_of_ids(store, ids: np.ndarray) -> np.ndarray:
    all_ids = store.column("id")
    order = np.argsort(all_ids)
    return order[np.searchsorted(all_ids, ids, sorter=order)]


def boost_scores(store_path: Path, seed: int, args, cache: Path) -> dict:
    """LightGBM quantile regressions of each property on the colour features, without and with z_spec
    (predictions cached in ``cache``, an .npz)."""
    import lightgbm

    from deepdip.baselines.features import ColourFeatures
    from deepdip.photometry import Photometry
    from deepdip.properties import property_labels
    from deepdip.store import CutoutStore
    from deepdip.train.run import split_train_val

    store = CutoutStore(store_path)
    test_rows = np.flatnonzero(store.column("fold") == 0)
    y_te = property_labels(store, PROPERTIES, test_rows)
    if not cache.exists():
        train_rows, val_rows = split_train_val(store, 0, seed, 0.1, 5000, args.max_train or None)
        train_rows = np.sort(np.concatenate([train_rows, val_rows]))   # trees need no validation set
        phot_tr, phot_te = Photometry.from_store(store, train_rows), Photometry.from_store(store, test_rows)
        feats = ColourFeatures("r").fit(phot_tr)
        x_tr, x_te = feats.transform(phot_tr), feats.transform(phot_te)
        y_tr = property_labels(store, PROPERTIES, train_rows)
        z_tr, z_te = store.column("z_spec", train_rows), store.column("z_spec", test_rows)
        arrays = {}
        for label, (a, b) in {"photometry": (x_tr, x_te),
                              "photometry+z_spec": (np.column_stack([x_tr, z_tr]),
                                                    np.column_stack([x_te, z_te]))}.items():
            for j, name in enumerate(PROPERTIES):
                ok = np.isfinite(y_tr[:, j])
                for alpha in (0.16, 0.5, 0.84):
                    model = lightgbm.LGBMRegressor(objective="quantile", alpha=alpha, n_estimators=600,
                                                   learning_rate=0.03, num_leaves=31, subsample=0.8, subsample_freq=1,
                                                   random_state=seed, n_jobs=2, deterministic=True,
                                                   force_row_wise=True, verbose=-1)
                    arrays[f"{label}/{name}/{alpha}"] = model.fit(a[ok], y_tr[ok, j]).predict(b)
        np.savez(cache, **arrays)
    arrays = dict(np.load(cache))
    out = {}
    for label in ("photometry", "photometry+z_spec"):
        q = {a: np.column_stack([arrays[f"{label}/{n}/{a}"] for n in PROPERTIES]) for a in (0.16, 0.5, 0.84)}
        sigma = np.maximum(0.5 * np.abs(q[0.84] - q[0.16]), 1e-3)
        out[label] = property_scores(y_te, q[0.5], sigma)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--max-train", type=int, default=5000,
                   help="training galaxies of every CNN and of the trees; 0: all of the training folds")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--reuse-binned", nargs="*", default=[], metavar="SEED=RUN")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = Path(args.store)
    reuse = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.reuse_binned)}
    results: dict = {"args": {**vars(args), "reuse_binned": {k: str(v) for k, v in reuse.items()}}, "seeds": {}}
    for seed in args.seeds:
        res = results["seeds"].setdefault(str(seed), {})
        res["boost"] = boost_scores(store, seed, args, out / f"boost_s{seed}.npz")
        for arm in args.arms:
            run = reuse[seed] if arm == "binned" and seed in reuse else out / f"s{seed}" / arm.replace("+", "_")
            train_arm(store, run, seed, args, ARMS[arm])
            res[arm] = cnn_scores(run, store, out / f"s{seed}_{arm.replace('+', '_')}.parquet")
            (out / "results.json").write_text(json.dumps(results, indent=1))
            print(seed, arm, json.dumps(res[arm]), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(tables(results))


def tables(results: dict) -> str:
    """Markdown tables: the redshift of each CNN arm; each property for the CNN and the trees."""
    seeds = list(results["seeds"])
    lines = ["| CNN head | " + " | ".join(f"seed {s}: σ_MAD / η / PIT KS" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for arm in ARMS:
        cells = []
        for s in seeds:
            z = results["seeds"][s].get(arm, {}).get("z")
            cells.append(f"{z['sigma_mad']:.4f} / {100 * z['eta']:.2f} % / {z['pit_ks']:.3f}" if z else "—")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "| quantity | estimator | " + " | ".join(
        f"seed {s}: bias / NMAD / rms / η(0.3 dex) / PIT KS / cov68" for s in seeds) + " |",
        "|---|---|" + "---|" * len(seeds)]
    sources = {"CNN (images)": lambda r: r.get("binned+props", {}),
               "boosted trees (photometry)": lambda r: r["boost"]["photometry"],
               "boosted trees (photometry + z_spec)": lambda r: r["boost"]["photometry+z_spec"]}
    for name in ("logmstar", "logsfr|star-forming", "logsfr"):
        for label, get in sources.items():
            cells = []
            for s in seeds:
                m = get(results["seeds"][s]).get(name)
                cells.append(f"{m['bias']:+.3f} / {m['nmad']:.3f} / {m['rms']:.3f} / {100 * m['outlier_frac']:.1f} % / "
                             f"{m['pit_ks']:.3f} / {m['coverage_68']:.2f}" if m else "—")
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "| quiescent (true SFR at the floor) | estimator | " + " | ".join(
        f"seed {s}: share / quiescent recall / star-forming recall" for s in seeds) + " |",
        "|---|---|" + "---|" * len(seeds)]
    for label, get in sources.items():
        cells = []
        for s in seeds:
            q = get(results["seeds"][s]).get("logsfr|quiescent")
            cells.append(f"{q['fraction']:.2f} / {q['quiescent_recall']:.3f} / {q['star_forming_recall']:.3f}"
                         if q else "—")
        lines.append(f"| logsfr | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
