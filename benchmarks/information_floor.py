"""How much redshift information is in a mock's galaxies at all (see deepdip.simulate.floor).

    python benchmarks/information_floor.py STORE [--fold 0]

Prints, for the test fold, σ_MAD / η / bias of the same LightGBM regression (the ``boost``
baseline's settings) on increasingly complete inputs: the measured photometry + size the
baselines see, the mock's true noise-free magnitudes, and those plus the true morphology. The last
row bounds what any estimator working from the images can reach at this training size.
"""

from __future__ import annotations

import argparse

from deepdip import metrics
from deepdip.baselines import make_baseline
from deepdip.simulate.floor import information_floor
from deepdip.store import CutoutStore


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--fold", type=int, default=0)
    args = ap.parse_args(argv)

    store = CutoutStore(args.store)
    floor = information_floor(store, args.fold, n_jobs=2)
    test = store.split_rows("test", args.fold)
    boost = make_baseline("boost").fit(store, args.fold)
    z = store.column("z_spec", test)
    zp = metrics.point_estimates(boost.predict_pdf(store, test), boost.zgrid)["z_mean"]  # as the catalogues
    print(f"{args.store}: {floor['n_train']} training, {floor['n_test']} test galaxies (fold {args.fold})")
    print("| inputs of the LightGBM regression | σ_MAD | η | bias |\n|---|---|---|---|")
    print(f"| measured fluxes + size (the boost baseline) | {metrics.sigma_mad(zp, z):.4f} | "
          f"{100 * metrics.outlier_frac(zp, z):.2f} % | {metrics.bias(zp, z):+.4f} |")
    for key, label in (("true_magnitudes", "true noise-free magnitudes"),
                       ("true_magnitudes_morphology", "true magnitudes + true size, bulge fraction, axis ratio")):
        m = floor[key]
        print(f"| {label} | {m['sigma_mad']:.4f} | {100 * m['outlier_frac']:.2f} % | {m['bias']:+.4f} |")


if __name__ == "__main__":
    main()
