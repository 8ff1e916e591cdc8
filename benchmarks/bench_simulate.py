"""Speed and memory of ``deepdip simulate`` (sdss, 64x64x5), and accuracy of its renderer.

Each configuration runs in a fresh process (so peak memory is its own): galaxies/s over the
whole command (start-up of workers included) and peak resident memory of the parent and of the
largest worker, for several N (flat memory = streaming works). Then the Fourier renderer
against ``galsim.drawImage`` (default accuracy) on noiseless stamps: total flux and measured
half-light radius.

Usage: python benchmarks/bench_simulate.py [--n 2000 6000] [--workers 1 2]
Run it under ``flock /tmp/deepdip-cpu.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _sdss(**overrides):
    """The sdss preset with some keys replaced."""
    from deepdip.surveys import Survey, load_survey

    base = load_survey("sdss")
    return Survey(base.name, base.bands, base.filters, base.pixel_scale, base.stamp_size, base.zmin, base.zmax,
                  base.nbins, dict(base.params, **overrides))


def one(n: int, workers: int, photometry: str, dask: str | None = None) -> dict:
    from deepdip.simulate import simulate_store

    survey = _sdss(catalogue_photometry={"method": photometry, "reference_band": "r"})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        info = simulate_store(survey, n, seed=1, out=Path(tmp) / "bench", workers=workers, progress=False, dask=dask)
        wall = time.perf_counter() - t0
    return {"n": n, "workers": workers, "dask": dask, "photometry": photometry, "wall_s": round(wall, 2),
            "galaxies_per_s": round(n / wall, 1),
            "store_s": round(info["seconds"], 2),
            "parent_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}


def renderer_accuracy(n: int = 100) -> dict:
    import galsim
    import numpy as np

    from deepdip.photometry import measure_photometry
    from deepdip.simulate import population, rendering, structure
    from deepdip.surveys import load_survey

    # no noise, no neighbours, no knots (GalSim draws the bulge and the disk; the knots are point sources
    # whose transform is exact): the bulge and disk keep their own colours (structure.shares)
    morphology = dict(load_survey("sdss")["morphology"], knot_fraction=0.0, n_knots=0)
    s = _sdss(noise={"sky_sigma": [0] * 5, "poisson_var_per_nmgy": [0] * 5},
              neighbours={"density_arcmin2": 0.0}, morphology=morphology)
    ctx = population.prepare(s)
    pop = population.sample_population(s, n, np.random.default_rng(0), ctx)
    mine, truth = rendering.render_block(s, pop, np.random.default_rng(1), ctx)
    split = structure.shares(pop, s.bands)
    share = split[0] if split is not None else rendering.bulge_share_per_band(s, pop["bulge_frac"], ctx["wave_eff"])
    # the components' sizes per band (larger bluewards where the preset has size-wavelength slopes)
    factor = rendering.size_factors(s, truth["size_wavelength_slope"], ctx["wave_eff"])   # [n, B]
    ref = np.zeros_like(mine)
    t0 = time.perf_counter()
    for k in range(n):
        beta = pop["pa"][k] * galsim.degrees
        for b, band in enumerate(s.bands):
            hd = pop["hlr"][k] * factor[k, b]
            hb = rendering.BULGE_SIZE_RATIO * hd
            disk = galsim.Exponential(half_light_radius=hd).shear(q=pop["q_disk"][k], beta=beta)
            bulge = galsim.DeVaucouleurs(half_light_radius=hb, trunc=rendering.BULGE_TRUNCATION * hb).shear(
                q=pop["q_bulge"][k], beta=beta)
            gal = ((1 - share[k, b]) * disk + share[k, b] * bulge) * pop["flux"][k, b]
            galsim.Convolve(gal, galsim.Kolmogorov(fwhm=truth[f"psf_fwhm_{band}"][k])).drawImage(
                image=galsim.Image(ref[k, b], scale=s.pixel_scale), offset=(truth["offset_x"][k], truth["offset_y"][k]))
    galsim_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rendering.render_block(s, pop, np.random.default_rng(1), ctx)
    fourier_s = time.perf_counter() - t0
    noise = np.random.default_rng(2).normal(0, 1e-3, mine.shape).astype(np.float32)  # detection needs noise
    pm = measure_photometry(mine + noise, s.pixel_scale, s.bands)
    pg = measure_photometry(ref + noise, s.pixel_scale, s.bands)
    flux = np.abs(pm["flux_r"] / pg["flux_r"] - 1)
    hlr = np.abs(pm["hlr_meas"] / pg["hlr_meas"] - 1)
    return {"n": n, "max_abs_pixel_diff_over_peak": float((np.abs(mine - ref).max((2, 3)) / ref.max((2, 3))).max()),
            "kron_flux_r_rel_diff_median": float(np.median(flux)), "kron_flux_r_rel_diff_max": float(flux.max()),
            "hlr_rel_diff_median": float(np.median(hlr)), "hlr_rel_diff_max": float(hlr.max()),
            "galsim_drawImage_galaxies_per_s": round(n / galsim_s, 1),
            "fourier_galaxies_per_s": round(n / fourier_s, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[2000, 6000])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--photometry", nargs="+", default=["model", "kron"], choices=["model", "kron"],
                   help="catalogue photometry of the mock (sdss: model fits; kron: apertures only)")
    p.add_argument("--dask", type=int, default=0, metavar="N",
                   help="instead: simulate --dask local:1 against local:N (interleaved, --repeat times), N galaxies "
                        "from --n[0]; the wall time includes starting the cluster")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--one", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), int(args.one[1]), args.one[2], *args.one[3:])))
        return
    if args.dask:
        import statistics

        walls: dict[str, list] = {"local:1": [], f"local:{args.dask}": []}
        for _ in range(args.repeat):
            for spec in walls:  # interleaved: both see the same machine load
                out = subprocess.run([sys.executable, __file__, "--one", str(args.n[0]), "1", args.photometry[0], spec],
                                     check=True, capture_output=True, text=True).stdout
                walls[spec].append(json.loads(out.strip().splitlines()[-1])["wall_s"])
                print(spec, walls[spec][-1], flush=True)
        med = {k: statistics.median(v) for k, v in walls.items()}
        res = {"n": args.n[0], "photometry": args.photometry[0], "wall_s": walls, "median_s": med,
               "speedup": med["local:1"] / med[f"local:{args.dask}"]}
        print(json.dumps(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return
    rows = []
    for n in args.n:
        for w in args.workers:
            for phot in args.photometry:  # interleaved: both methods see the same machine load
                out = subprocess.run([sys.executable, __file__, "--one", str(n), str(w), phot], check=True,
                                     capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    acc = renderer_accuracy()
    print(acc)
    if args.json:
        Path(args.json).write_text(json.dumps({"speed": rows, "renderer": acc}, indent=1))


if __name__ == "__main__":
    main()
