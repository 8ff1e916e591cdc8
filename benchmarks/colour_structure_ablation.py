"""What the pixels are worth on the sdss mock, with and without its internal colour structure (issue 11, item 4).

The demo (``deepdip demo``: 20,000 galaxies, compact CNN 30 epochs, test fold 0, the four catalogue
baselines on the same split, the information floor) on the ``sdss`` preset (bulge, disk and knots
with their own SEDs, calibrated on real Petrosian - model colours) and on ``sdss-flat`` (the same
preset with the colour structure switched off: bulge_disk_contrast 0, knot_fraction 0; the same
random numbers, so the same galaxies, noise and neighbours, only the colours of their parts
differ), seeds 1 and 2 each. Runs the demos that are not done yet (a demo reuses its finished
steps), then tabulates their ``metrics.json`` and ``information_floor.json``.

Usage: python benchmarks/colour_structure_ablation.py [--out /tmp/study] [--seeds 1 2] [--table-only]
About 25-35 minutes per demo on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PRESETS = {"sdss": "colour structure on (sdss)", "sdss-flat": "off (sdss-flat)"}
METHODS = ("cnn", "rf", "boost", "knn", "bpz")
FLOORS = {"bayes_measured_photometry": "Bayes, measured photometry taken as unbiased",
          "bayes_true_photometry": "Bayes, noise-free magnitudes"}


def folder(out: Path, preset: str, seed: int) -> Path:
    return out / f"{'cal' if preset == 'sdss' else 'flat'}_s{seed}"


def run(out: Path, seeds) -> None:
    for seed in seeds:
        for preset in PRESETS:
            d = folder(out, preset, seed)
            if (d / "metrics.json").exists():
                continue
            cmd = [sys.executable, "-m", "deepdip", "demo", "--survey", preset, "--seed", str(seed), "--out", str(d)]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)


def table(out: Path, seeds) -> str:
    rows = ["| preset | seed | " + " | ".join(f"{m} σ_MAD" for m in METHODS) + " | CNN / best baseline | "
            + " | ".join(FLOORS.values()) + " |",
            "|---" * (len(METHODS) + 3 + len(FLOORS)) + "|"]
    ratios: dict[str, list] = {p: [] for p in PRESETS}
    done: dict[str, list] = {p: [] for p in PRESETS}
    for preset in PRESETS:
        for seed in seeds:
            d = folder(out, preset, seed)
            if not (d / "metrics.json").exists():
                continue
            m = json.loads((d / "metrics.json").read_text())
            floor = json.loads((d / "information_floor.json").read_text())
            best = min(m[k]["sigma_mad"] for k in METHODS[1:])
            ratio = m["cnn"]["sigma_mad"] / best
            ratios[preset].append(ratio)
            done[preset].append(seed)
            rows.append(f"| {preset} | {seed} | " + " | ".join(f"{m[k]['sigma_mad']:.4f}" for k in METHODS)
                        + f" | {ratio:.2f} | " + " | ".join(f"{floor[k]['sigma_mad']:.4f}" for k in FLOORS) + " |")
    lines = rows + [""]
    for preset, values in ratios.items():
        if values:
            lines.append(f"- {PRESETS[preset]}: CNN / best baseline " + ", ".join(f"{v:.2f}" for v in values)
                         + f" (mean {sum(values) / len(values):.2f}, seeds {', '.join(map(str, done[preset]))})")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/study")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    if not args.table_only:
        run(out, args.seeds)
    print(table(out, args.seeds))


if __name__ == "__main__":
    main()
