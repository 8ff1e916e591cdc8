"""Per-galaxy costs measured here, projected to Pasquet et al.'s full protocol and to an LSST-size run (issue 17).

    python benchmarks/project_scale.py [--n-sim 400] [--seconds 4] [--gpu-tflops 100 300] [--out costs.json]

Measures in one run, on this machine: the sdss simulation rate (``simulate_store``, N galaxies, the machine's
cores) and the store's bytes per galaxy; the training step (forward, backward, AdamW, batch 128) and the
inference rate (batch 256) of ``pasquet19`` and ``compact`` (``bench_cnn.bench_model``, fp32, channels-last)
and the same run's fp32 matmul peak. Then projects, from those numbers and the models' FLOPs:

- Pasquet et al. (2019)'s protocol (``examples/pasquet19_full_scale.sh``): 500,000 galaxies, 5 folds × 6
  members × 30 epochs of pasquet19 on 4/5 of them, every galaxy predicted by its fold's 6 members;
- an LSST-size inference: 10^10 galaxies, 6 bands, 64 × 64, 6 members (one fold's ensemble).

On this CPU the projection uses the measured rates. For a GPU it uses the FLOPs at an *effective* rate
(``--gpu-tflops``: the sustained TFLOP/s of the training step, i.e. MFU × the GPU's matmul peak), an assumption
stated in every line; replace it by the figure ``python benchmarks/bench_cnn.py --device cuda`` measures when a
GPU is lent (MFU against its measured peak).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PASQUET = {"galaxies": 500_000, "folds": 5, "members": 6, "epochs": 30}
LSST = {"galaxies": 10**10, "bands": 6, "stamp": 64, "members": 6}


def measure(n_sim: int, seconds: float) -> dict:
    import torch
    from bench_cnn import bench_model, matmul_peak

    from deepdip.models import count_flops, create_model
    from deepdip.simulate import simulate_store
    from deepdip.surveys import load_survey

    survey = load_survey("sdss")
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mock.h5"
        t0 = time.perf_counter()
        simulate_store("sdss", n_sim, seed=3, out=path, workers=workers, progress=False)
        sim_s = time.perf_counter() - t0
        store_bytes = path.stat().st_size
    out = {"threads": torch.get_num_threads(), "workers": workers, "matmul_fp32_flops": matmul_peak(torch.float32),
           "simulate": {"galaxies": n_sim, "seconds": sim_s, "galaxies_per_s": n_sim / sim_s,
                        "store_bytes_per_galaxy": store_bytes / n_sim}, "models": {}}
    for name in ("pasquet19", "compact"):
        net = create_model(name, in_chans=len(survey.bands), num_bins=survey.nbins, img_size=survey.stamp_size)
        flops = count_flops(net, in_chans=len(survey.bands), img_size=survey.stamp_size)
        out["models"][name] = {
            "forward_flops": flops,
            "train_images_per_s": bench_model(name, survey, "fp32", True, 128, seconds, train=True),
            "infer_images_per_s": bench_model(name, survey, "fp32", True, 256, seconds, train=False)}
    return out


def project(m: dict, gpu_tflops: list[float]) -> list[str]:
    p19 = m["models"]["pasquet19"]
    train_images = PASQUET["folds"] * PASQUET["members"] * PASQUET["epochs"] * PASQUET["galaxies"] * 4 // 5
    infer_images = PASQUET["members"] * PASQUET["galaxies"]
    train_flop, infer_flop = 3 * p19["forward_flops"] * train_images, p19["forward_flops"] * infer_images
    sim, gal_bytes = m["simulate"], m["simulate"]["store_bytes_per_galaxy"]
    lines = [
        f"measured here: {m['workers']} cores, fp32 matmul {m['matmul_fp32_flops'] / 1e9:.0f} GFLOP/s; sdss simulation "
        f"{sim['galaxies_per_s']:.1f} galaxies/s ({sim['galaxies']} galaxies), store {gal_bytes / 1e3:.1f} kB/galaxy",
    ]
    for name, r in m["models"].items():
        lines.append(f"  {name}: {r['forward_flops'] / 1e6:.0f} MFLOP/forward, train {r['train_images_per_s']:.1f} "
                     f"images/s, infer {r['infer_images_per_s']:.1f} images/s")
    lines += [
        "",
        f"Pasquet et al. protocol: {PASQUET['galaxies']:,} galaxies, {PASQUET['folds']} folds x {PASQUET['members']} "
        f"members x {PASQUET['epochs']} epochs = {train_images:.3g} training images, {infer_images:.3g} inferences",
        f"  store: {PASQUET['galaxies'] * gal_bytes / 1e9:.0f} GB; simulation here "
        f"{PASQUET['galaxies'] / sim['galaxies_per_s'] / 3600:.1f} h on {m['workers']} cores "
        f"({PASQUET['galaxies'] / sim['galaxies_per_s'] * m['workers'] / 3600:.0f} core-hours)",
        f"  training here (pasquet19 at {p19['train_images_per_s']:.1f} images/s): "
        f"{train_images / p19['train_images_per_s'] / 86400:.0f} days; FLOP {train_flop:.3g}",
    ]
    for t in gpu_tflops:
        lines.append(f"  on a GPU sustaining {t:g} TFLOP/s (assumed): training {train_flop / (t * 1e12) / 3600:.1f} "
                     f"GPU-hours, inference {infer_flop / (t * 1e12) / 3600:.3f} GPU-hours")
    lsst_bytes = LSST["galaxies"] * LSST["bands"] * LSST["stamp"] ** 2 * 4
    lsst_flop = LSST["members"] * LSST["galaxies"] * p19["forward_flops"] * LSST["bands"] / 5  # upper bound
    n_inf = LSST["members"] * LSST["galaxies"]
    years = {name: n_inf / r["infer_images_per_s"] / 3.15e7 for name, r in m["models"].items()}
    lines += [
        "",
        f"LSST-size inference: {LSST['galaxies']:.0e} galaxies x {LSST['bands']} bands x {LSST['stamp']}^2 float32 "
        f"= {lsst_bytes / 1e15:.2f} PB of cutouts read once; {LSST['members']} pasquet19 members = "
        f"{lsst_flop:.3g} FLOP (5-band FLOPs x 6/5: an upper bound, only the first layers grow)",
        f"  on this machine: {years['pasquet19']:,.1f} years (pasquet19), {years['compact']:,.1f} years (compact)",
    ]
    for t in gpu_tflops:
        gpu_h = lsst_flop / (t * 1e12) / 3600
        io_h = lsst_bytes / 2e9 / 3600
        lines.append(f"  on GPUs sustaining {t:g} TFLOP/s each (assumed): {gpu_h:,.0f} GPU-hours of compute; "
                     f"at an assumed 2 GB/s of cutouts per GPU, {io_h:,.0f} GPU-hours of reading unless overlapped")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python benchmarks/project_scale.py", description=__doc__.splitlines()[0])
    p.add_argument("--n-sim", type=int, default=400, help="galaxies simulated to measure the rate")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per model timing")
    p.add_argument("--gpu-tflops", type=float, nargs="+", default=[100.0, 300.0],
                   help="assumed sustained TFLOP/s of a GPU for the projection")
    p.add_argument("--out", default=None, help="JSON of the measured costs")
    args = p.parse_args(argv)
    m = measure(args.n_sim, args.seconds)
    if args.out:
        Path(args.out).write_text(json.dumps(m, indent=1))
    print("\n".join(project(m, args.gpu_tflops)))


if __name__ == "__main__":
    main()
