"""Memory and time of ``deepdip evaluate --stream`` against the in-memory ``evaluate`` (issue 17, item 5).

A synthetic photo-z catalogue of 10^6 rows (180-bin float32 PDFs, the sdss grid; Gaussian PDFs
about a scattered z_phot, 3 % outliers) is written once in parts of 10^5 rows; 10^7 rows are a
folder of ten hard links to each part (ten times the rows read and scored; the disk holds them
once). Each configuration runs in a fresh process: wall time and peak resident memory
(``ru_maxrss`` of the child). The in-memory ``evaluate`` (with its figures) runs on the 10^6 rows
as one file only: its memory grows with N.

Usage: python benchmarks/bench_evaluate_stream.py [--rows 1000000 10000000] [--repeat 2] [--dir /tmp/dd_stream]
Target (issue 17): evaluate of 10^7 rows in < 2 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

PART_ROWS = 100_000


def make_parts(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from deepdip.catalog import write_catalog
    from deepdip.zgrid import ZGrid

    grid = ZGrid(0.0, 0.4, 180)
    centres = grid.zmin + (np.arange(grid.nbins) + 0.5) * grid.width
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n // PART_ROWS):
        path = folder / f"part{k:03d}.parquet"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng([seed, k])
        zs = rng.uniform(0.02, 0.38, PART_ROWS)
        zp = np.clip(zs + rng.normal(0, 0.015, PART_ROWS) * (1 + zs)
                     + (rng.random(PART_ROWS) < 0.03) * rng.normal(0, 0.1, PART_ROWS), 0.0, 0.4)
        pdf = np.exp(-0.5 * ((centres[None] - zp[:, None]) / 0.02) ** 2).astype(np.float32) + 1e-6
        write_catalog(path, np.arange(k * PART_ROWS, (k + 1) * PART_ROWS), pdf, grid, z_spec=zs, method="synthetic")
    return paths


def linked_copies(parts: list[Path], folder: Path, copies: int) -> Path:
    """A folder of ``copies`` x ``parts`` hard links (distinct names, the same bytes on disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    for c in range(copies):
        for p in parts:
            link = folder / f"c{c:02d}_{p.name}"
            if not link.exists():
                os.link(p, link)
    return folder


def measure(args: list[str]) -> dict:
    """Wall time and peak RSS of one ``deepdip evaluate`` in a child process (its own ru_maxrss)."""
    code = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
            f"r = subprocess.run([sys.executable, '-m', 'deepdip', 'evaluate', *{args!r}], capture_output=True, "
            "text=True); w = time.perf_counter() - t; "
            "print(json.dumps({'rc': r.returncode, 'err': r.stderr[-300:], 'wall_s': w, "
            "'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if res["rc"]:
        raise SystemExit(res["err"])
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--dir", default="/tmp/dd_stream")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    root = Path(args.dir)
    base = make_parts(root / "parts", 1_000_000)
    rows = []
    for n in args.rows:
        copies = max(1, n // 1_000_000)
        folder = root / "parts" if copies == 1 else linked_copies(base, root / f"x{copies}", copies)
        configs = [("stream", [str(folder), "--stream"])]
        if n <= 1_000_000:  # in memory: all parts as one catalogue is not possible (it matches by id across files)
            whole = root / "whole.parquet"
            if not whole.exists():
                from deepdip.catalog import read_catalog, write_catalog

                cats = [read_catalog(q) for q in base]
                write_catalog(whole, np.concatenate([c.ids for c in cats]), np.concatenate([c.pdf for c in cats]),
                              cats[0].zgrid, z_spec=np.concatenate([c.table["z_spec"].to_numpy() for c in cats]),
                              method="synthetic")
                del cats
            configs.append(("in-memory", [str(whole)]))
        for name, cli in configs:
            runs = []
            for r in range(args.repeat):
                out = root / f"rep_{name}_{n}_{r}"
                runs.append(measure([*cli, "--out", str(out), "--overwrite"]))
            metrics = json.loads((out / "metrics.json").read_text())
            first = next(iter(metrics.values()))
            row = {"rows": n, "mode": name, "wall_s_median": float(np.median([x["wall_s"] for x in runs])),
                   "peak_rss_mb_median": float(np.median([x["peak_rss_mb"] for x in runs])),
                   "sigma_mad": first["sigma_mad"], "n": first["n"],
                   "sigma_mad_bound": first.get("bounds", {}).get("sigma_mad")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
