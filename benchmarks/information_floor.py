"""How much redshift information is in a mock's galaxies at all (see deepdip.report.floor).

    python benchmarks/information_floor.py STORE [--fold 0] [--gmm POPULATION.json]

Prints, for the test fold, σ_MAD / η / bias of: the boost baseline on the measured photometry
(what catalogue methods reach), the exact Bayes posterior median from the measured and from the
noise-free magnitudes (``gmm`` populations), and the boost learner trained on the truths.
``--gmm`` names the population file the store was drawn from when it is not the one shipped now
(a store records the digest of its population; without a match the Bayes rows are left out).
"""

from __future__ import annotations

import argparse
import json

from deepdip import metrics
from deepdip.baselines import make_baseline
from deepdip.report.floor import bayes_with_less_noise, information_floor
from deepdip.simulate.population import gmm_from_dict
from deepdip.store import CutoutStore

LABELS = {
    "bayes_measured_photometry": "Bayes posterior median, measured photometry",
    "bayes_true_photometry": "Bayes posterior median, noise-free magnitudes",
    "lgbm_true_magnitudes": "LightGBM on noise-free magnitudes",
    "lgbm_true_magnitudes_morphology": "LightGBM on noise-free magnitudes + true size, bulge fraction, axis ratio",
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--gmm", default=None, help="population mixture JSON the store was drawn from")
    ap.add_argument("--noise-scales", default="", help="also: the Bayes limit with the measured errors "
                    "scaled by these factors, e.g. 1,0.7,0.5,0.3,0")
    args = ap.parse_args(argv)

    store = CutoutStore(args.store)
    gmm = gmm_from_dict(json.load(open(args.gmm))) if args.gmm else None
    floor = information_floor(store, args.fold, gmm=gmm, n_jobs=2)
    test = store.split_rows("test", args.fold)
    boost = make_baseline("boost").fit(store, args.fold)
    z = store.column("z_spec", test)
    zp = metrics.point_estimates(boost.predict_pdf(store, test), boost.zgrid_)["z_mean"]  # as the catalogues
    print(f"{args.store}: {floor['n_train']} training, {floor['n_test']} test galaxies (fold {args.fold})")
    print("| estimate | σ_MAD | η | bias |\n|---|---|---|---|")
    print(f"| boost baseline, measured photometry + size | {metrics.sigma_mad(zp, z):.4f} | "
          f"{100 * metrics.outlier_frac(zp, z):.2f} % | {metrics.bias(zp, z):+.4f} |")
    for key, label in LABELS.items():
        if key in floor:
            m = floor[key]
            print(f"| {label} | {m['sigma_mad']:.4f} | {100 * m['outlier_frac']:.2f} % | {m['bias']:+.4f} |")
    if args.noise_scales:
        scales = [float(v) for v in args.noise_scales.split(",")]
        print("\n| photometric errors (× measured) | Bayes σ_MAD | η |\n|---|---|---|")
        for scale, m in bayes_with_less_noise(store, args.fold, scales, gmm=gmm).items():
            print(f"| {scale:g} | {m['sigma_mad']:.4f} | {100 * m['outlier_frac']:.2f} % |")


if __name__ == "__main__":
    main()
