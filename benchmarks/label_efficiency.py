"""Issue 15's label-efficiency curves: supervised from scratch against SimCLR-pretrained + fine-tuned.

On a mock store (``deepdip demo``'s or ``deepdip simulate``'s), for each seed:

1. ``deepdip pretrain STORE`` (SimCLR on every cutout of the store, labels unused; ``--pretrain-epochs``),
   its wall time recorded apart (issue 15: "pretraining cost counted separately");
2. for each N of ``--labels``: a random N of the training folds' galaxies with a z_spec (test fold 0 never
   touched; the N include the 10 % the run holds out for validation: every label the arm sees is counted),
   written as a ``deepdip select`` file; subsets are nested (N=300 inside N=1000 ...) for one seed;
3. three arms on those N labels, scored on test fold 0:
   - ``scratch``: ``deepdip train --labelled SEL`` from random weights;
   - ``pretrained``: the same with ``--init-model ENCODER/model.pt`` (the whole network trained, at the
     scratch run's peak learning rate: the head is new, so the fine-tuning default of a tenth does not apply);
   - ``boost``: ``deepdip baseline --method boost --labelled SEL`` (the best catalogue baseline of the
     training-set study);
   - ``transfer`` (with ``--transfer-from MODEL``, a model of another survey): ``--init-model MODEL --transfer``
     (issue 15's transfer between surveys: e.g. an sdss model fine-tuned on a legacy mock; the network is
     rebuilt for the store, its convolutions start from the model's, the first layer mapped band by band).
   - diagnostics of the pretrained encoder: ``pretrained-lowlr`` (fine-tuned at the fine-tuning default, a tenth
     of the rate) and ``probe`` (``--freeze backbone``: only the head trains on the pretrained features).
   ``--arms`` chooses (default scratch, pretrained, boost; the encoder arms run ``deepdip pretrain`` first).
   Both CNN arms take the same number of epochs, chosen so that each run sees ``--samples`` training
   galaxies (epochs = samples / training galaxies, within [--min-epochs, --max-epochs]): the same CPU budget
   for both arms at each N, stated in the table.

Metrics: σ_MAD, η (|Δz|/(1+z) > 0.05) of the PDF mean and PIT KS (``deepdip.metrics``). Issue 15's target:
the pretrained arm reaches the scratch σ_MAD of N labels with ≤ N/2 labels (N ≤ 10,000).

Usage: python benchmarks/label_efficiency.py STORE --out DIR [--seeds 1 2] [--labels 300 1000 3000]
       [--pretrain-epochs 6] [--samples 45000] [--arms scratch pretrained boost transfer]
       [--transfer-from MODEL.pt]
Each seed's runs go to DIR/s<seed>; finished ones are reused (rerun to resume or to tabulate).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def pretrain_encoder(store: Path, out: Path, args, seed: int) -> tuple[Path, float | None]:
    """The encoder of ``seed`` (trained unless it exists) and the wall seconds it took (None if reused)."""
    model = out / "model.pt"
    if model.exists():
        return model, None
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deepdip", "pretrain", str(store), "--out", str(out), "--seed", str(seed),
                    "--epochs", str(args.pretrain_epochs), "--no-progress", *shlex.split(args.pretrain_args)],
                   check=True)
    return model, time.perf_counter() - t0


def labelled_subsets(store, labels: list[int], seed: int, out: Path) -> dict[int, Path]:
    """Nested random subsets of the training folds' labelled galaxies, one selection file per N."""
    from deepdip.selection import write_selection

    rows = store.split_rows("train", fold=0)
    rows = rows[np.isfinite(store.column("z_spec", rows))]
    order = np.random.default_rng([seed, 15]).permutation(rows)
    files = {}
    for n in labels:
        path = out / f"labelled_{n}.parquet"
        if not path.exists():
            mask = np.zeros(len(store), dtype=bool)
            mask[order[:n]] = True
            write_selection(store, mask, path, rule=f"random:{n} of the training folds (benchmark)", seed=seed)
        files[n] = path
    return files


def epochs_for(n: int, args) -> int:
    n_train = n - max(1, round(0.1 * n))
    return int(np.clip(round(args.samples / n_train), args.min_epochs, args.max_epochs))


def scores(catalog: Path) -> dict:
    from deepdip.catalog import read_catalog
    from deepdip.metrics import compute_metrics

    cat = read_catalog(catalog)
    m = compute_metrics(cat.table["z_mean"].to_numpy(), cat.table["z_spec"].to_numpy(), cat.pdf, cat.zgrid)
    return {"sigma_mad": float(m["sigma_mad"]), "eta": float(m["outlier_frac"]), "pit_ks": float(m["pit_ks"]),
            "n_test": int(len(cat))}


def cnn_arm(store_path: Path, sel: Path, out: Path, epochs: int, seed: int, init: Path | None,
            **finetune) -> dict:
    from deepdip.predict import predict_store
    from deepdip.train import train
    from deepdip.train.config import MODEL_DEFAULTS

    catalog = out.with_suffix(".parquet")
    wall = None
    if not catalog.exists():
        t0 = time.perf_counter()
        extra = {"init_model": str(init), "lr": MODEL_DEFAULTS["compact"]["lr"], **finetune} if init else {}
        if extra.get("lr") is None:    # the fine-tuning default (a tenth of the model's rate)
            extra.pop("lr", None)
        train(store_path, fold=0, epochs=epochs, labelled=str(sel), out=out, seed=seed, progress=False,
              tensorboard=False, **extra)
        wall = time.perf_counter() - t0
        predict_store(out, store_path, catalog, rows="test", progress=False)
    return {**scores(catalog), "epochs": epochs, "train_wall_s": wall}


def boost_arm(store_path: Path, sel: Path, catalog: Path, seed: int) -> dict:
    if not catalog.exists():
        subprocess.run([sys.executable, "-m", "deepdip", "baseline", str(store_path), "--method", "boost", "--fold",
                        "0", "--labelled", str(sel), "--out", str(catalog), "--seed", str(seed), "--n-jobs", "2"],
                       check=True, capture_output=True)
    return scores(catalog)


def study_seed(store_path: Path, out: Path, args, seed: int) -> dict:
    from deepdip.store import CutoutStore

    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["args"] = {**vars(args), "seed": seed}
    encoder = None
    if {"pretrained", "pretrained-lowlr", "probe"} & set(args.arms):
        encoder, wall = pretrain_encoder(store_path, out / "encoder", args, seed)
        if wall is not None:
            results["pretrain_wall_s"] = wall
    store = CutoutStore(store_path)
    # arm -> (initial model, fine-tuning settings)
    cnn_arms = [(arm, init, kw) for arm, init, kw in (
        ("scratch", None, {}), ("pretrained", encoder, {}),
        ("pretrained-lowlr", encoder, {"lr": None}),            # the fine-tuning default, a tenth of the rate
        ("probe", encoder, {"freeze": "backbone"}),             # linear probe: are the features informative?
        ("transfer", args.transfer_from, {"transfer": True})) if arm in args.arms]
    for n, sel in labelled_subsets(store, args.labels, seed, out).items():
        epochs = epochs_for(n, args)
        for arm, init, kw in cnn_arms:
            key = f"{arm}/{n}"
            res = cnn_arm(store_path, sel, out / f"{arm}_{n}", epochs, seed, init, **kw)
            if res["train_wall_s"] is None and key in results:   # reused: keep the wall time it was measured with
                res["train_wall_s"] = results[key].get("train_wall_s")
            results[key] = res
            results_path.write_text(json.dumps(results, indent=1))
        if "boost" in args.arms:
            results[f"boost/{n}"] = boost_arm(store_path, sel, out / f"boost_{n}.parquet", seed)
            results_path.write_text(json.dumps(results, indent=1))
        print(seed, n, {k: round(v["sigma_mad"], 4) for k, v in results.items() if k.endswith(f"/{n}")}, flush=True)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--labels", type=int, nargs="+", default=[300, 1000, 3000])
    p.add_argument("--pretrain-epochs", type=int, default=6)
    p.add_argument("--pretrain-args", default="", help="more options of deepdip pretrain, e.g. '--ebv-jitter 0'")
    p.add_argument("--samples", type=int, default=45000, help="training galaxies each CNN run sees (budget)")
    p.add_argument("--min-epochs", type=int, default=10)
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--arms", nargs="+", default=["scratch", "pretrained", "boost"],
                   choices=["scratch", "pretrained", "pretrained-lowlr", "probe", "boost", "transfer"])
    p.add_argument("--transfer-from", default=None, help="model file of another survey (the transfer arm)")
    args = p.parse_args()
    if "transfer" in args.arms and not args.transfer_from:
        p.error("the transfer arm needs --transfer-from MODEL")
    store, root = Path(args.store), Path(args.out)
    by_seed = {seed: study_seed(store, root / f"s{seed}", args, seed) for seed in args.seeds}
    arms = [a for a in ("scratch", "pretrained", "pretrained-lowlr", "probe", "transfer", "boost") if a in args.arms]
    print("| labels | epochs | " + " | ".join(f"{arm}: σ_MAD / η / PIT KS (seeds {', '.join(map(str, args.seeds))})"
                                           for arm in arms) + " |")
    print("|---|---|" + "---|" * len(arms))
    for n in args.labels:
        cells = []
        for arm in arms:
            ms = [by_seed[s].get(f"{arm}/{n}") for s in args.seeds]
            cells.append(" ; ".join(f"{m['sigma_mad']:.4f} / {100 * m['eta']:.1f} % / {m['pit_ks']:.3f}" if m
                                    else "—" for m in ms))
        print(f"| {n} | {epochs_for(n, args)} | " + " | ".join(cells) + " |")
    for s in args.seeds:
        if by_seed[s].get("pretrain_wall_s"):
            print(f"seed {s}: pretraining {by_seed[s]['pretrain_wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
