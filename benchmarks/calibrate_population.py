"""Refit the population mixtures of the mocks on real galaxies (``deepdip.simulate.calibrate``).

    python benchmarks/calibrate_population.py sdss ../shared/data/real/sdss_main_gst10k/gst_tests_small.fits
    python benchmarks/calibrate_population.py hsc ../shared/data/real/hsc_pdr2_specz/hsc_ratios_and_specz.hdf5

    python benchmarks/calibrate_population.py sdss ../shared/data/real/sdss_main_gst10k/gst_tests_small.fits \
        --through-measurement 6000 --workers 2

``--through-measurement N`` calibrates the SDSS-like population through the mock's measurement: it
simulates N galaxies of the ``sdss`` preset with the population as shipped (seed ``--mock-seed``,
not the realism benchmark's 2024), measures how its catalogue photometry (SDSS model fits on
galaxies with bulge, disk and knots of their own colours) shifts each galaxy's features from the
true ones (``MeasurementBias``), and fits the mixture to the real features minus that shift, so
that the mock's measured colours, not its true ones, follow the real model colours.

Each fit uses the calibration half of the fixed split (``split_halves``; the validation half is
``benchmarks/realism/``'s) and writes only the mixture parameters: by default over the package
data file the simulator reads (``POPULATION_FILE`` or ``HSC_COLOUR_FILE``), so a refit changes
every later mock; ``--out`` writes elsewhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepdip.atomic import atomic_path
from deepdip.simulate.calibrate import (
    HSC_COLOUR_FILE,
    POPULATION_FILE,
    SDSS_BANDS,
    MeasurementBias,
    features_from_fluxes,
    fit_hsc_colours,
    fit_population,
    load_hsc_reference,
    load_sdss_reference,
    split_halves,
)


def measurement_bias(n: int, seed: int, workers: int) -> MeasurementBias:
    """The sdss mock's measurement bias, from an ``n``-galaxy mock of the shipped population."""
    import json
    import tempfile

    import numpy as np

    from deepdip.simulate import simulate_store
    from deepdip.store import CutoutStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mock.h5"
        simulate_store("sdss", n, seed=seed, out=path, workers=workers)
        store = CutoutStore(path)
        cat = store.catalog()
        coeffs = np.asarray(json.loads(store.attrs["provenance"])["extinction_coeffs"])
        photometry = json.loads(store.attrs["provenance"]).get("photometry", "")
    dered = 10 ** (0.4 * np.outer(cat["ebv"], coeffs))  # the mock's fluxes are reddened, its true magnitudes not
    measured = np.column_stack([cat[f"flux_{b}"] for b in SDSS_BANDS]) * dered
    true = 10 ** (-0.4 * (np.column_stack([cat[f"mag_{b}"] for b in SDSS_BANDS]) - 22.5))
    with np.errstate(divide="ignore", invalid="ignore"):
        x_meas = features_from_fluxes(cat["z_spec"], np.where(measured > 0, measured, np.nan))
    x_true = features_from_fluxes(cat["z_spec"], true)
    bias = MeasurementBias(x_true, x_meas, note=f"sdss mock of {n} galaxies, seed {seed}: {photometry}")
    print("median measured - true:", bias.summary["median_measured_minus_true"])
    return bias


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python benchmarks/calibrate_population.py",
                                description="Refit the population mixtures on real galaxies.")
    p.add_argument("kind", choices=["sdss", "hsc"], help="sdss: the SDSS-like population; hsc: deep colours")
    p.add_argument("catalog", help="sdss_main_gst10k/gst_tests_small.fits or hsc_pdr2_specz/hsc_ratios_and_specz.hdf5")
    p.add_argument("--out", default=None, help="JSON written (default: the package data file)")
    p.add_argument("--through-measurement", type=int, default=0, metavar="N",
                   help="sdss: calibrate through the measurement of an N-galaxy mock (0: fit the true colours)")
    p.add_argument("--mock-seed", type=int, default=11, help="seed of that mock (default 11)")
    p.add_argument("--workers", type=int, default=2, help="simulation workers for that mock")
    args = p.parse_args(argv)
    if args.kind == "sdss":
        ref = load_sdss_reference(args.catalog)
        bias = None
        if args.through_measurement:
            bias = measurement_bias(args.through_measurement, args.mock_seed, args.workers)
        params = fit_population(ref, split_halves(len(ref["z"]))[0], measurement=bias)
    else:
        ref = load_hsc_reference(args.catalog)
        params = fit_hsc_colours(ref, split_halves(len(ref["z"]))[0])
    out = Path(args.out or (POPULATION_FILE if args.kind == "sdss" else HSC_COLOUR_FILE))
    with atomic_path(out, suffix=".json") as tmp:  # indent 1: the format of the shipped files
        tmp.write_text(json.dumps(params, indent=1))
    print(f"{len(params['weights'])} components fitted on {params['n_fit']} galaxies -> {out}")


if __name__ == "__main__":
    main()
