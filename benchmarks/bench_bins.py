"""The cost of many redshift bins (issue 12): training steps, catalogue writing, metrics and qp export.

In one run, interleaved (round r times every configuration once, so a machine whose load drifts slows
all of them alike), the median over rounds of:

- a ``compact`` training step (forward, cross-entropy, backward, AdamW) on a batch of SDSS-shaped stamps
  (5 x 64 x 64) with the softmax head over 180 and over 1,000 bins, and the 1,000-bin MDN head; and the
  1,000-bin softmax with soft labels (``--label-sigma``);
- for N galaxies' PDFs: the point estimates and ``compute_metrics`` (PIT, CRPS, CDE loss, ...), writing the
  Parquet catalogue, and the qp export, at 180 and 1,000 bins.

Issue 12's target: the 1,000-bin compact trains at >= 80 % of the 180-bin throughput.

Usage: python benchmarks/bench_bins.py [--rounds 5] [--steps 10] [--batch 128] [--threads 2] [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepdip.models.net import PhotozNet
from deepdip.train.module import soft_labels
from deepdip.zgrid import ZGrid

NETS = {
    "softmax 180": (180, {}, 0.0),
    "softmax 1000": (1000, {}, 0.0),
    "softmax 1000, soft labels": (1000, {}, 0.02),
    "mdn 1000": (1000, {"head": "mdn", "head_kwargs": {"zmin": 0.0, "zmax": 3.0}}, 0.0),
}


def train_rate(net, images, extra, z, zgrid, label_sigma, steps) -> float:
    """Images per second of ``steps`` training steps (after one warm-up step)."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    centres = torch.as_tensor(zgrid.centres, dtype=torch.float32)
    zbin = torch.as_tensor(zgrid.bin_index(z.numpy()))

    def step():
        logits = net(images, extra).float()
        if label_sigma > 0:
            loss = -(soft_labels(z, centres, label_sigma) * logits.log_softmax(1)).sum(1).mean()
        else:
            loss = F.cross_entropy(logits, zbin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(images) / (time.perf_counter() - t0)


def catalogue_costs(n: int, nbins: int, rng) -> dict:
    """Seconds for point estimates + metrics, the Parquet catalogue, and the qp export of ``n`` PDFs."""
    from deepdip.catalog import CatalogWriter, read_catalog, to_qp
    from deepdip.metrics import compute_metrics, point_estimates

    grid = ZGrid(0.0, 3.0, nbins)
    z = rng.uniform(0.1, 2.5, n)
    c = grid.centres
    pdf = np.exp(-0.5 * ((c[None] - (z + rng.normal(0, 0.05, n))[:, None]) / 0.05) ** 2).astype(np.float32)
    pdf /= pdf.sum(1, keepdims=True)
    out = {}
    t0 = time.perf_counter()
    zp = point_estimates(pdf, grid)["z_mean"]
    compute_metrics(zp, z, pdf, grid)
    out["metrics_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cat.parquet"
        t0 = time.perf_counter()
        with CatalogWriter(path, grid, method="bench") as w:
            w.write(ids=np.arange(n), pdf=pdf, z_spec=z, fold=np.zeros(n, np.int8))
        out["write_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        to_qp(read_catalog(path))
        out["qp_s"] = time.perf_counter() - t0
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--out", default=None, help="JSON file for the raw measurements")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.normal(0, 1, (args.batch, 5, 64, 64)), dtype=torch.float32)
    images = images.contiguous(memory_format=torch.channels_last)
    extra = torch.zeros(args.batch, 1)
    z = torch.as_tensor(rng.uniform(0.05, 2.9, args.batch), dtype=torch.float32)
    nets = {}
    for name, (nbins, kw, _) in NETS.items():
        torch.manual_seed(0)
        nets[name] = PhotozNet("compact", 5, nbins, 64, apertures=(2.0, 4.0, 8.0), **kw).train()
        nets[name] = nets[name].to(memory_format=torch.channels_last)
    rates: dict[str, list[float]] = {name: [] for name in NETS}
    costs: dict[int, list[dict]] = {180: [], 1000: []}
    for _ in range(args.rounds):
        for name, (nbins, _, sigma) in NETS.items():
            rates[name].append(train_rate(nets[name], images, extra, z, ZGrid(0.0, 3.0, nbins), sigma, args.steps))
        for nbins in costs:
            costs[nbins].append(catalogue_costs(args.n, nbins, rng))
    med = {name: float(np.median(r)) for name, r in rates.items()}
    ref = med["softmax 180"]
    print(f"compact training, batch {args.batch}, {args.threads} threads, median of {args.rounds} rounds:")
    for name, rate in med.items():
        print(f"  {name:28s} {rate:7.0f} images/s   {rate / ref:.3f} x softmax 180")
    print(f"catalogue of {args.n} PDFs, median seconds:")
    for nbins, runs in costs.items():
        print(f"  {nbins:5d} bins  " + "  ".join(f"{k} {np.median([r[k] for r in runs]):.2f}" for k in runs[0]))
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rates": rates, "costs": costs}, indent=1))


if __name__ == "__main__":
    main()
