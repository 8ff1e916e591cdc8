"""fp32 against bf16 autocast: the same CNN, the same split and seeds, trained in each precision.

For each seed, ``compact`` is trained for a fixed number of epochs on fold 0 of a mock sdss store
in fp32 and in bf16 (``--precision 32-true`` / ``bf16-mixed``), alternating, so both see the same
machine; each model predicts the test fold in fp32 and in bf16. Reported: sigma_MAD, outlier
fraction, bias, PIT KS, CRPS (``deepdip.metrics``, point estimate = PDF mean), the training and
prediction wall time, and the ratio of each bf16 figure to its fp32 twin. Also the choice that
``--precision auto`` makes on this machine (``deepdip.hardware.choose_precision``).

    python benchmarks/bench_precision.py --n 6000 --epochs 20 --seeds 1 2 --out benchmarks/output/precision

Heavy (four trainings): run on a quiet machine for the timings; the accuracy figures do not depend
on the load (fixed epochs, fixed threads: bitwise repeatable runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

PRECISIONS = ("32-true", "bf16-mixed")


def metrics_of(catalog_path) -> dict:
    from deepdip.catalog import read_catalog
    from deepdip.metrics import compute_metrics

    cat = read_catalog(catalog_path)
    m = compute_metrics(cat.table["z_mean"].to_numpy(), cat.table["z_spec"].to_numpy(), pdf=cat.pdf, zgrid=cat.zgrid)
    return {k: m[k] for k in ("sigma_mad", "outlier_frac", "bias", "pit_ks", "crps", "n")}


def auto_choice(store, model: str) -> dict:
    """What ``--precision auto`` picks for this model on this machine (training and inference)."""
    import numpy as np
    import torch

    from deepdip.hardware import choose_precision
    from deepdip.models.net import PhotozNet
    from deepdip.train.run import AUTO_APERTURES

    h = store.image_shape[0]
    net = PhotozNet(model=model, in_chans=store.n_bands, num_bins=180, img_size=h, n_extra=1,
                    apertures=[f * h for f in AUTO_APERTURES] if model == "compact" else [])
    rows = np.arange(128)
    x = torch.as_tensor(store.images(rows))
    e = torch.as_tensor(store.column("ebv", rows)[:, None].astype(np.float32))
    torch.set_flush_denormal(True)
    return {"train": choose_precision(net, x, e, train=True)[1], "infer": choose_precision(net, x, e, train=False)[1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=6000, help="galaxies in the mock [6000]")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", default="compact")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sim-workers", type=int, default=1,
                   help="processes simulating the mock (the store is the same for any number) [1]")
    p.add_argument("--out", required=True, help="work folder (mock, runs, catalogues, results.json)")
    args = p.parse_args(argv)

    from deepdip.atomic import write_json_atomic
    from deepdip.predict import predict_store
    from deepdip.simulate import simulate_store
    from deepdip.store import CutoutStore
    from deepdip.train import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mock = out / "mock.h5"
    if not mock.exists():
        simulate_store("sdss", n=args.n, seed=1, out=mock, workers=args.sim_workers)
    store = CutoutStore(mock)
    results: dict = {"command": "python benchmarks/bench_precision.py " + " ".join(argv or []), "n": args.n,
                     "epochs": args.epochs, "model": args.model, "auto": auto_choice(store, args.model), "runs": []}
    # A rerun into the same folder resumes: trainings already scored (same n, epochs, model) are kept.
    earlier = out / "results.json"
    if earlier.exists():
        old = json.loads(earlier.read_text())
        if all(old.get(k) == results[k] for k in ("n", "epochs", "model")):
            results["runs"] = old["runs"]
    for seed in args.seeds:
        for precision in PRECISIONS:
            tag = f"s{seed}_{precision}"
            if any(r["seed"] == seed and r["train"] == precision for r in results["runs"]):
                continue
            t0 = time.perf_counter()
            run = train(store, fold=0, model=args.model, epochs=args.epochs, seed=seed, precision=precision,
                        out=out / tag, threads=args.threads, progress=False, tensorboard=False)
            train_s = time.perf_counter() - t0
            for infer in PRECISIONS:
                cat = out / f"{tag}_infer-{infer}.parquet"
                t0 = time.perf_counter()
                predict_store(run, store, cat, rows="test", precision=infer, progress=False, threads=args.threads,
                              overwrite=True)
                row = dict(seed=seed, train=precision, infer=infer, train_s=round(train_s, 1),
                           predict_s=round(time.perf_counter() - t0, 2), **metrics_of(cat))
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
            write_json_atomic(out / "results.json", results)
    print("| seed | train | infer | sigma_MAD | eta | bias | PIT KS | CRPS | train s | predict s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        print(f"| {r['seed']} | {r['train']} | {r['infer']} | {r['sigma_mad']:.4f} | {100 * r['outlier_frac']:.2f} % | "
              f"{r['bias']:+.4f} | {r['pit_ks']:.3f} | {r['crps']:.4f} | {r['train_s']} | {r['predict_s']} |")
    print("auto:", json.dumps(results["auto"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
