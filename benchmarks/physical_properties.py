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
        train(store, fold=0, epochs=args.epochs, max_train=args.max_train, out=out, seed=seed, progress=False,
              tensorboard=False, **settings)
    return out


def cnn_scores(run: Path, store_path: Path, out: Path) -> dict:
    from deepdip.catalog import read_catalog
    from deepdip.metrics import compute_metrics, property_metrics
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
        rows = _rows_of_ids(store, t["id"].to_numpy())
        truth = property_labels(store, PROPERTIES, rows)
        for j, name in enumerate(PROPERTIES):
            res[name] = property_metrics(truth[:, j], t[f"{name}_mean"].to_numpy(), t[f"{name}_std"].to_numpy())
    return res


def _rows_of_ids(store, ids: np.ndarray) -> np.ndarray:
    all_ids = store.column("id")
    order = np.argsort(all_ids)
    return order[np.searchsorted(all_ids, ids, sorter=order)]


def boost_scores(store_path: Path, seed: int, args) -> dict:
    """LightGBM quantile regressions of each property on the colour features, without and with z_spec."""
    import lightgbm

    from deepdip.baselines.features import ColourFeatures
    from deepdip.metrics import property_metrics
    from deepdip.photometry import Photometry
    from deepdip.properties import property_labels
    from deepdip.store import CutoutStore
    from deepdip.train.run import split_train_val

    store = CutoutStore(store_path)
    train_rows, val_rows = split_train_val(store, 0, seed, 0.1, 5000, args.max_train)
    train_rows = np.sort(np.concatenate([train_rows, val_rows]))   # trees need no validation set
    test_rows = np.flatnonzero(store.column("fold") == 0)
    phot_tr, phot_te = Photometry.from_store(store, train_rows), Photometry.from_store(store, test_rows)
    feats = ColourFeatures("r").fit(phot_tr)
    x_tr, x_te = feats.transform(phot_tr), feats.transform(phot_te)
    y_tr, y_te = property_labels(store, PROPERTIES, train_rows), property_labels(store, PROPERTIES, test_rows)
    z_tr, z_te = store.column("z_spec", train_rows), store.column("z_spec", test_rows)
    out = {}
    for label, (a, b) in {"photometry": (x_tr, x_te),
                          "photometry+z_spec": (np.column_stack([x_tr, z_tr]), np.column_stack([x_te, z_te]))}.items():
        out[label] = {}
        for j, name in enumerate(PROPERTIES):
            ok = np.isfinite(y_tr[:, j])
            q = {}
            for alpha in (0.16, 0.5, 0.84):
                model = lightgbm.LGBMRegressor(objective="quantile", alpha=alpha, n_estimators=600, learning_rate=0.03,
                                               num_leaves=31, subsample=0.8, subsample_freq=1, random_state=seed,
                                               n_jobs=2, deterministic=True, force_row_wise=True, verbose=-1)
                q[alpha] = model.fit(a[ok], y_tr[ok, j]).predict(b)
            lo, hi = np.minimum(q[0.16], q[0.84]), np.maximum(q[0.16], q[0.84])
            out[label][name] = property_metrics(y_te[:, j], q[0.5], np.maximum(0.5 * (hi - lo), 1e-3))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--max-train", type=int, default=5000)
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
        res["boost"] = boost_scores(store, seed, args)
        for arm in args.arms:
            run = reuse[seed] if arm == "binned" and seed in reuse else out / f"s{seed}" / arm.replace("+", "_")
            train_arm(store, run, seed, args, ARMS[arm])
            res[arm] = cnn_scores(run, store, out / f"s{seed}_{arm.replace('+', '_')}.parquet")
            (out / "results.json").write_text(json.dumps(results, indent=1))
            print(seed, arm, json.dumps(res[arm]), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
