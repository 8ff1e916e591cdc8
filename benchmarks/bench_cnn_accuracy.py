"""CNN accuracy against CPU time and training-set size on a mock survey (fold 0 test set).

Each configuration trains with a wall-clock budget (``--max-minutes``: the LR schedule is planned
to end within it), predicts the test fold and reports sigma_MAD, outlier fraction, bias, PIT-KS
(metrics of ``deepdip.metrics``, point estimate = PDF mean). Catalogue baselines run on the same
fold for reference. Heavy: run under the CPU lock, e.g.

    flock /tmp/deepdip-cpu.lock python benchmarks/bench_cnn_accuracy.py mock.h5 --models compact \\
        --minutes 5,10,20 --out benchmarks/output/cnn_accuracy.json
    ... --minutes 5 --train-sizes 2000,5000,10000,0          # 0 = all training galaxies
    ... --variants '{"small": {"model_kwargs": {"widths": [16, 32, 48, 64]}}}' --minutes 4
    ... --baselines knn,rf,boost --models ''   # baselines run at each --train-sizes too
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def evaluate(catalog_path) -> dict:
    from deepdip.catalog import read_catalog
    from deepdip.metrics import compute_metrics

    cat = read_catalog(catalog_path)
    t = cat.table
    return compute_metrics(t["z_mean"].to_numpy(), t["z_spec"].to_numpy(), pdf=cat.pdf, zgrid=cat.zgrid)


def run_cnn(store, fold, model, minutes, max_train, seed, workdir, extra: dict) -> dict:
    import torch

    from deepdip.predict import predict_store
    from deepdip.train import train

    tag = f"{model}_{minutes}m_{max_train or 'all'}_{abs(hash(json.dumps(extra, sort_keys=True))) % 10**6}"
    t0 = time.perf_counter()
    run = train(store, fold=fold, model=model, max_minutes=minutes, epochs=extra.pop("epochs", 200),
                out=Path(workdir) / tag, seed=seed, max_train=max_train or None, progress=False,
                tensorboard=False, **extra)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cat = predict_store(run, store, Path(workdir) / f"{tag}.parquet", rows="test", progress=False)
    predict_s = time.perf_counter() - t0
    info = torch.load(run / f"fold{fold}" / "member0" / "model.pt", weights_only=True)["info"]
    return dict(evaluate(cat), train_s=train_s, predict_s=predict_s, epochs=info["epochs"] + 1,
                n_train=info["n_train"], best_val_loss=info["best_val_loss"])


def run_baseline(store, fold, method, workdir, max_train: int = 0, seed: int = 0) -> dict:
    from deepdip.baselines import baseline_class

    t0 = time.perf_counter()
    # The same number of training galaxies as the CNN at this size (a seeded subset of the
    # training folds; not the same rows, since the CNN also carves its validation set from them).
    est = baseline_class(method)(max_train=max_train, seed=seed).fit(store, fold)
    train_s = time.perf_counter() - t0
    out = est.predict_catalog(store, store.split_rows("test", fold=fold),
                              Path(workdir) / f"{method}_{max_train or 'all'}_s{seed}.parquet", progress=False)
    return dict(evaluate(out), train_s=train_s, n_train=int(getattr(est, "n_train_", -1)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--models", default="compact")
    p.add_argument("--minutes", default="5,10,20", help="training budgets (comma list)")
    p.add_argument("--train-sizes", default="0", help="training-set sizes (0 = all)")
    p.add_argument("--variants", default=None, help='JSON {name: train() kwargs} to compare designs')
    p.add_argument("--baselines", default="", help="catalogue baselines to run for reference, e.g. knn,rf,boost")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="keep runs here (default: a temporary folder)")
    p.add_argument("--out", default="benchmarks/output/cnn_accuracy.json")
    args = p.parse_args(argv)

    from deepdip.store import CutoutStore

    store = CutoutStore(args.store)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"store": str(args.store), "rows": []}
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_cnn_acc_")
    variants = json.loads(args.variants) if args.variants else {"default": {}}

    def record(row):
        results["rows"].append(row)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        keys = ("sigma_mad", "outlier_frac", "bias", "pit_ks")
        print(" | ".join(f"{k}={row.get(k)}" if k not in keys else f"{k}={row[k]:.4f}"
                         for k in ("method", "variant", "minutes", "n_train", "epochs", *keys, "train_s")
                         if k in row), flush=True)

    for method in filter(None, args.baselines.split(",")):
        for size in (int(n) for n in args.train_sizes.split(",")):
            record(dict(method=method, max_train=size, seed=args.seed,
                        **run_baseline(store, args.fold, method, workdir, size, args.seed), load=os.getloadavg()[0]))
    for model in filter(None, args.models.split(",")):
        for name, extra in variants.items():
            for minutes in (float(m) for m in args.minutes.split(",")):
                for size in (int(n) for n in args.train_sizes.split(",")):
                    res = run_cnn(store, args.fold, model, minutes, size, args.seed, workdir, dict(extra))
                    record(dict(method=model, variant=name, minutes=minutes, max_train=size, seed=args.seed, **res,
                                load=os.getloadavg()[0]))


if __name__ == "__main__":
    main()
