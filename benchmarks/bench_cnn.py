"""CNN throughput on this machine, as a fraction of its measured matrix-multiply peak.

For each model x precision (fp32, bf16 autocast) x memory layout (NCHW, channels-last):
inference and training images/s at the survey's stamp size, and model FLOPs utilisation
(MFU = forward FLOPs x (1 for inference, 3 for training) x images/s / measured matmul FLOP/s,
measured in the same run with the same threads). Also: the DataLoader's images/s from a real
store on disk (must exceed the training rate), so data loading is never the bottleneck.

    flock /tmp/deepdip-cpu.lock python benchmarks/bench_cnn.py --survey sdss --out benchmarks/output/cnn.json

On a GPU (the one command to run when one is lent; ``--device auto`` picks it):

    python benchmarks/bench_cnn.py --device cuda --train-batch 512 --seconds 10 --no-loader --out gpu.json

times the same steps on the device (synchronised), bf16 autocast on CUDA, and the matmul peak of
the device (fp32 with TF32 off and on, bf16). ``--smoke`` runs every code path in seconds with tiny
sizes (CI runs it on the CPU: tests/test_benchmarks.py), the GPU parts when a GPU is there.
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


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, min_seconds: float, min_iters: int = 3, device: str = "cpu") -> float:
    """Seconds per call of ``fn`` after one warm-up call, timing at least ``min_seconds`` (GPU work
    is waited for: kernels run asynchronously)."""
    fn()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
        _sync(device)
    return (time.perf_counter() - t0) / n


def matmul_peak(dtype, n: int = 2048, seconds: float = 3.0, device: str = "cpu") -> float:
    """Measured FLOP/s of an n x n x n matrix multiply (the practical peak for dense layers)."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 / timed(lambda: torch.mm(a, b), seconds, device=device)


def bench_model(name, survey, precision, channels_last, batch, seconds, train: bool, kwargs=None,
                device: str = "cpu") -> float:
    """Images/s of inference (``train=False``) or of a full training step (forward, backward, AdamW)."""
    torch.manual_seed(0)
    b, s, k = len(survey.bands), survey.stamp_size, survey.nbins
    net = create_model(name, in_chans=b, num_bins=k, img_size=s, **(kwargs or {}))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device=device, memory_format=fmt)
    x = torch.randn(batch, b, s, s, device=device).contiguous(memory_format=fmt)
    e = torch.randn(batch, 1, device=device)
    y = torch.randint(0, k, (batch,), device=device)
    bf16 = precision == "bf16"
    if train:
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step():
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x, e).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        net.eval()

        def step():
            with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                net(x, e)
    return batch / timed(step, seconds, device=device)


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
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                   help="where the steps run (auto: cuda when torch sees a GPU)")
    p.add_argument("--smoke", action="store_true",
                   help="every code path in seconds (tiny batches and timings): what CI runs")
    args = p.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_cnn: --device cuda but torch sees no GPU")
    if args.smoke:  # compact only unless asked (pasquet19 takes seconds per CPU step)
        args.seconds, args.train_batch, args.loader_n = 0.05, 8, 256
        if "--models" not in (argv if argv is not None else __import__("sys").argv):
            args.models = "compact"
    if args.threads:
        torch.set_num_threads(args.threads)
    survey = load_survey(args.survey)
    res = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
                       "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
                       "load_avg_start": os.getloadavg()}, "survey": survey.name, "rows": []}
    size = 256 if args.smoke else (8192 if device == "cuda" else 2048)
    peak = {"fp32": matmul_peak(torch.float32, size, args.seconds, device),
            "bf16": matmul_peak(torch.bfloat16, size, args.seconds, device)}
    if device == "cuda":  # convolutions may use TF32 tensor cores for fp32: its peak too
        torch.backends.cuda.matmul.allow_tf32 = True
        peak["tf32"] = matmul_peak(torch.float32, size, args.seconds, device)
        torch.backends.cuda.matmul.allow_tf32 = False
    res["matmul_flops"] = peak
    print(f"matmul peak ({device}): " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peak.items())
          + f" ({torch.get_num_threads()} threads)")
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
                                      kwargs, device)
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
