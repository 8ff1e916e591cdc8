"""Issue 13's honest generator: the population refitted on the labelled galaxies only, drawn in the gap.

The ``generated`` remedy of ``benchmarks/training_sets.py`` draws the galaxies a spectroscopic selection
leaves out from a second mock of the very population that made the test galaxies: a perfect generator,
the remedy's upper bound. What a survey can do instead is fit a generator on the galaxies it has spectra
for and let it extrapolate. This script does that with the simulator's own data-driven population (the
Gaussian mixture of (z, r, u-g, g-r, r-i, i-z) that ``benchmarks/calibrate_population.py`` fits on real
SDSS galaxies):

1. the labelled training galaxies (selection ``--rule`` on folds 1-4 of STORE; the test fold is never
   read) give z_spec and their measured, dereddened model fluxes (``reference_from_store``);
2. the mixture is fitted on them as on the real catalogue (BIC over the number of components, each
   component's covariance reduced by its galaxies' measurement noise, and the mock's measurement bias
   removed: it is the simulator's, measured on a mock of the shipped population, no test galaxy used);
3. a preset ``{"extends": "sdss", population: that mixture}`` simulates ``--n`` galaxies (``--bright-limit
   M``: only galaxies fainter than r = M, the gap of ``mag:r<M``), written to DIR/generated.h5;
4. the extrapolation is checked against the truth the mock knows: the quantiles of z and of the colours of
   the generated galaxies in the gap against those of STORE's galaxies in the gap (all folds but 0 — the
   galaxies a survey would want, never used above).

Then ``python benchmarks/training_sets.py STORE --out DIR2 --generated DIR/generated.h5 --selections RULE
--remedies generated`` scores the remedy with this generator.

Usage: python benchmarks/refit_generator.py STORE --rule "mag:r<17.0" --out DIR [--bright-limit 17.0]
       [--n 3000] [--seed 77] [--measurement-n 6000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_population import measurement_bias  # noqa: E402  (the same bias as the shipped population's)


def gap_summary(z: np.ndarray, features: np.ndarray) -> dict:
    """Quantiles (16, 50, 84 %) of z and of the colours u-g, g-r, r-i, i-z."""
    names = ("z", "u-g", "g-r", "r-i", "i-z")
    cols = [z, *features[:, 2:].T]
    return {n: np.nanquantile(c, [0.16, 0.5, 0.84]).round(4).tolist() for n, c in zip(names, cols)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python benchmarks/refit_generator.py", description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--rule", required=True, help="the spectroscopic selection (deepdip select's rules)")
    p.add_argument("--out", required=True, help="folder: population.json, preset.json, generated.h5, summary.json")
    p.add_argument("--bright-limit", type=float, default=None,
                   help="draw only galaxies fainter than this r (the gap of a magnitude-limited selection)")
    p.add_argument("--n", type=int, default=3000, help="galaxies generated")
    p.add_argument("--seed", type=int, default=77, help="the generator's simulation seed")
    p.add_argument("--selection-seed", type=int, default=1)
    p.add_argument("--measurement-n", type=int, default=6000, help="mock galaxies measuring the measurement bias")
    p.add_argument("--measurement-seed", type=int, default=11)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    from deepdip.atomic import atomic_path
    from deepdip.selection import select
    from deepdip.simulate import simulate_store
    from deepdip.simulate.calibrate import features_from_fluxes, fit_population, reference_from_store
    from deepdip.store import CutoutStore

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = CutoutStore(args.store)
    labelled = select(store, args.rule, args.selection_seed)
    train = np.zeros(len(store), dtype=bool)
    train[store.split_rows("train", fold=0)] = True
    rows = np.flatnonzero(labelled & train)
    pop_path = out / "population.json"
    if not pop_path.exists():
        ref = reference_from_store(store, rows)
        bias = measurement_bias(args.measurement_n, args.measurement_seed, args.workers)
        params = fit_population(ref, np.arange(len(rows)), measurement=bias, source={
            "selection": {"rule": args.rule, "note": "labelled training galaxies (folds 1-4) of a store"},
            "source": f"{store.path} (rule {args.rule!r}, selection seed {args.selection_seed})"})
        with atomic_path(pop_path, suffix=".json") as tmp:
            tmp.write_text(json.dumps(params, indent=1))
        print(f"{len(params['weights'])} components fitted on {params['n_fit']} labelled galaxies -> {pop_path}")
    preset = {"extends": "sdss", "name": "sdss-refit",
              "description": f"sdss with the population refitted on the galaxies labelled by {args.rule!r}",
              "population": {"model": "gmm", "file": "population.json"}}
    if args.bright_limit is not None:
        preset["mag_bright_limit"] = args.bright_limit
    preset_path = out / "preset.json"
    preset_path.write_text(json.dumps(preset, indent=1))
    gen_path = out / "generated.h5"
    if not gen_path.exists():
        simulate_store(str(preset_path), args.n, seed=args.seed, out=gen_path, workers=args.workers)

    # the extrapolation against the truth: generated gap galaxies vs the store's own gap galaxies
    gen = CutoutStore(gen_path)
    cut = args.rule.split("&max")[0]
    summary = {"rule": args.rule, "n_labelled_fit": int(len(rows))}
    for name, st, keep in (("store gap (folds 1-4, truth)", store, ~select(store, cut, args.selection_seed) & train),
                           ("generated gap", gen, ~select(gen, cut, args.selection_seed))):
        r = np.flatnonzero(keep)
        ref = reference_from_store(st, r)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = features_from_fluxes(ref["z"], np.where(ref["flux"] > 0, ref["flux"], np.nan))
        summary[name] = {"n": int(len(r)), **gap_summary(ref["z"], x)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
