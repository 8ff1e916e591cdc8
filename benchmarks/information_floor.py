"""How much redshift information is in a mock's galaxies at all: catalogue regressions on TRUTH.

The CNN can only beat catalogue baselines by using information the catalogue lacks. In a mock the
images are made from known quantities (noise-free magnitudes, half-light radius, bulge fraction,
axis ratios, E(B-V)), so a regression on those truths, with the same learner and split as the
``boost`` baseline, bounds what any estimator working from the pixels can reach at that training
size. If the bound is above a target, the target is unreachable on this mock whatever the network.

    python benchmarks/information_floor.py STORE [--fold 0] [--rounds 600]

Prints σ_MAD, η, bias of a LightGBM point regression (the boost baseline's settings) on the test
fold for increasingly complete feature sets: measured (what the baselines see), true magnitudes,
true magnitudes + true morphology.
"""

from __future__ import annotations

import argparse

import numpy as np

from deepdip.baselines.features import ColourFeatures
from deepdip.baselines.photometry import Photometry
from deepdip import metrics
from deepdip.store import CutoutStore


def true_features(cat: dict, bands: list[str], morphology: bool) -> np.ndarray:
    mag = np.stack([cat[f"mag_{b}"] for b in bands], axis=1)  # noise-free, before extinction
    parts = [mag[:, [bands.index("r")]] if "r" in bands else mag[:, :1], mag[:, :-1] - mag[:, 1:]]
    if morphology:
        parts.append(np.stack([np.log10(cat["hlr"]), cat["bulge_frac"], cat["q_disk"]], axis=1))
    return np.concatenate(parts, axis=1)


def fit_predict(x_train, z_train, x_test, rounds: int, seed: int) -> np.ndarray:
    import lightgbm

    model = lightgbm.LGBMRegressor(
        n_estimators=rounds, learning_rate=0.03, num_leaves=31, min_child_samples=20, subsample=0.8,
        subsample_freq=1, random_state=seed, n_jobs=2, deterministic=True, force_row_wise=True, verbose=-1)
    return model.fit(x_train, z_train).predict(x_test)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    store = CutoutStore(args.store)
    bands = list(store.bands)
    names = ["z_spec", "fold", "hlr", "bulge_frac", "q_disk"] + [f"mag_{b}" for b in bands]
    cat = {k: np.asarray(store.column(k)) for k in names}
    test = cat["fold"] == args.fold
    z = cat["z_spec"]

    phot = Photometry.from_store(store, extra_columns=("hlr_meas",))
    feats = ColourFeatures("r").fit(phot)
    measured = feats.transform(phot)
    sets = {
        "measured fluxes + measured size (the baselines' features)": measured,
        "true magnitudes": true_features(cat, bands, morphology=False),
        "true magnitudes + true size, bulge fraction, axis ratio": true_features(cat, bands, morphology=True),
    }
    print(f"store {args.store}: {int((~test).sum())} training, {int(test.sum())} test galaxies (fold {args.fold})")
    print(f"| features | σ_MAD | η | bias |\n|---|---|---|---|")
    for label, x in sets.items():
        zp = fit_predict(x[~test], z[~test], x[test], args.rounds, args.seed)
        zt = z[test]
        print(f"| {label} | {metrics.sigma_mad(zp, zt):.4f} | {100 * metrics.outlier_frac(zp, zt):.2f} % "
              f"| {metrics.bias(zp, zt):+.4f} |")


if __name__ == "__main__":
    main()
