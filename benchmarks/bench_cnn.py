"""CNN throughput on this machine, as a fraction of its measured matrix-multiply peak.

For each model x precision (fp32, bf16 autocast) x memory layout (NCHW, channels-last):
inference and training images/s at the survey's stamp size, and model FLOPs utilisation
(MFU = forward FLOPs x (1 for inference, 3 for training) x images/s / measured matmul FLOP/s,
measured in the same run with the same threads). Also: the DataLoader's images/s from a real
store on disk (must exceed the training rate), so data loading is never the bottleneck.

    flock /tmp/deepdip-cpu.lock python benchmarks/bench_cnn.py --survey sdss --out benchmarks/output/cnn.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepdip.models import count_flops, create_model
from deepdip.surveys import load_survey


def timed(fn, min_seconds: float, min_iters: int = 3) -> float:
    """Seconds per call of ``fn`` after one warm-up call, timing at least ``min_seconds``."""
    fn()
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def matmul_peak(dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """Measured FLOP/s of an n x n x n matrix multiply (the practical peak for dense layers)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: torch.mm(a, b), seconds)


def bench_model(name, survey, precision, channels_last, batch, seconds, train: bool, kwargs=None) -> float:
    """Images/s of inference (``train=False``) or of a full training step (forward, backward, AdamW)."""
    torch.manual_seed(0)
    b, s, k = len(survey.bands), survey.stamp_size, survey.nbins
    net = create_model(name, in_chans=b, num_bins=k, img_size=s, **(kwargs or {}))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.randn(batch, b, s, s).contiguous(memory_format=fmt)
    e = torch.randn(batch, 1)
    y = torch.randint(0, k, (batch,))
    bf16 = precision == "bf16"
    if train:
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x, e).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        net.eval()

        def step():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                net(x, e)
    return batch / timed(step, seconds)


def bench_loader(survey, n: int, batch: int, workers: int, seconds: float, tmp: Path) -> float:
    """Images/s delivered by the training DataLoader (random batches, sorted HDF5 reads)."""
    from deepdip.store import CutoutStore, create_store
    from deepdip.train.data import StoreDataset, make_loader

    path = tmp / f"loader_{n}.h5"
    if not path.exists():
        rng = np.random.default_rng(0)
        images = rng.normal(0, 1, (n, len(survey.bands), survey.stamp_size, survey.stamp_size)).astype(np.float32)
        create_store(path, images, {"id": np.arange(n), "z_spec": rng.uniform(0, 0.4, n).astype(np.float32),
                                    "ebv": np.zeros(n, np.float32)}, bands=survey.bands, survey=survey.name,
                     pixel_scale=survey.pixel_scale, flux_unit="nanomaggy", n_folds=5, seed=0)
    store = CutoutStore(path)
    ds = StoreDataset(store, np.arange(n), survey.zgrid)
    loader = make_loader(ds, batch_size=batch, shuffle=True, seed=0, num_workers=workers)
    seen, t0 = 0, None
    for epoch in range(100):
        loader.batch_sampler.set_epoch(epoch)
        for images, *_rest in loader:
            if t0 is None:  # skip worker start-up
                t0 = time.perf_counter()
                continue
            seen += len(images)
            if time.perf_counter() - t0 > seconds:
                return seen / (time.perf_counter() - t0)
    return seen / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--survey", default="sdss")
    p.add_argument("--models", default="compact,pasquet19")
    p.add_argument("--variants", default=None,
                   help='JSON {label: [model, kwargs]} instead of --models, to compare designs')
    p.add_argument("--modes", default="infer,train")
    p.add_argument("--no-loader", action="store_true", help="skip the DataLoader measurement")
    p.add_argument("--loader-only", action="store_true", help="only the DataLoader measurement")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--layouts", default="nchw,channels_last")
    p.add_argument("--seconds", type=float, default=5.0, help="timing per measurement")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--train-batch", type=int, default=128, help="training batch size (inference uses twice it)")
    p.add_argument("--loader-n", type=int, default=4096, help="galaxies in the loader test store")
    p.add_argument("--out", default="benchmarks/output/cnn.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    survey = load_survey(args.survey)
    res = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "load_avg_start": os.getloadavg()}, "survey": survey.name, "rows": []}
    peak = {"fp32": matmul_peak(torch.float32, seconds=args.seconds),
            "bf16": matmul_peak(torch.bfloat16, seconds=args.seconds)}
    res["matmul_flops"] = peak
    print(f"matmul peak: fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s "
          f"({torch.get_num_threads()} threads)")
    print("| model | precision | layout | mode | batch | images/s | GFLOP/s | MFU vs fp32 peak "
          "| MFU vs own-dtype peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    variants = json.loads(args.variants) if args.variants else {m: [m, {}] for m in args.models.split(",")}
    if args.loader_only:
        variants = {}
    for label, (name, kwargs) in variants.items():
        flops = count_flops(create_model(name, len(survey.bands), survey.nbins, survey.stamp_size, **kwargs))
        for prec in args.precisions.split(","):
            for layout in args.layouts.split(","):
                for train in [m == "train" for m in args.modes.split(",")]:
                    batch = args.train_batch * (1 if train else 2)
                    ips = bench_model(name, survey, prec, layout == "channels_last", batch, args.seconds, train,
                                      kwargs)
                    achieved = flops * (3 if train else 1) * ips
                    row = dict(model=label, kwargs=kwargs, precision=prec, layout=layout,
                               mode="train" if train else "infer", batch=batch, images_per_s=ips,
                               gflops=achieved / 1e9, fwd_gflop=flops / 1e9,
                               mfu_fp32=achieved / peak["fp32"], mfu_own=achieved / peak[prec])
                    res["rows"].append(row)
                    print(f"| {label} | {prec} | {layout} | {row['mode']} | {batch} | {ips:.1f} | {achieved / 1e9:.1f} "
                          f"| {row['mfu_fp32']:.0%} | {row['mfu_own']:.0%} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        res["loader"] = []
        if args.no_loader:
            tmp = None
        for workers in () if tmp is None else (0, 1, 2):
            ips = bench_loader(survey, args.loader_n, 128, workers, args.seconds, Path(tmp))
            res["loader"].append({"workers": workers, "images_per_s": ips})
            print(f"loader: {workers} workers -> {ips:.0f} images/s", flush=True)
    res["machine"]["load_avg_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
