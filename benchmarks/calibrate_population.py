"""Refit the population mixtures of the mocks on real galaxies (``deepdip.simulate.calibrate``).

    python benchmarks/calibrate_population.py sdss ../shared/data/real/sdss_main_gst10k/gst_tests_small.fits
    python benchmarks/calibrate_population.py hsc ../shared/data/real/hsc_pdr2_specz/hsc_ratios_and_specz.hdf5

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
    fit_hsc_colours,
    fit_population,
    load_hsc_reference,
    load_sdss_reference,
    split_halves,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python benchmarks/calibrate_population.py",
                                description="Refit the population mixtures on real galaxies.")
    p.add_argument("kind", choices=["sdss", "hsc"], help="sdss: the SDSS-like population; hsc: deep colours")
    p.add_argument("catalog", help="sdss_main_gst10k/gst_tests_small.fits or hsc_pdr2_specz/hsc_ratios_and_specz.hdf5")
    p.add_argument("--out", default=None, help="JSON written (default: the package data file)")
    args = p.parse_args(argv)
    if args.kind == "sdss":
        ref = load_sdss_reference(args.catalog)
        params = fit_population(ref, split_halves(len(ref["z"]))[0])
    else:
        ref = load_hsc_reference(args.catalog)
        params = fit_hsc_colours(ref, split_halves(len(ref["z"]))[0])
    out = Path(args.out or (POPULATION_FILE if args.kind == "sdss" else HSC_COLOUR_FILE))
    with atomic_path(out, suffix=".json") as tmp:  # indent 1: the format of the shipped files
        tmp.write_text(json.dumps(params, indent=1))
    print(f"{len(params['weights'])} components fitted on {params['n_fit']} galaxies -> {out}")


if __name__ == "__main__":
    main()
