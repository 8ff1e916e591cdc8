"""Where the time of one core goes when simulating a preset: cProfile of ``simulate_block``.

One warm-up block of 50 galaxies (template tables, GalSim transforms), then ``--blocks`` blocks of
``BLOCK_SIZE`` galaxies profiled; prints galaxies/s and the cumulative-time table.

Usage: OMP_NUM_THREADS=1 python benchmarks/profile_simulate.py [--survey sdss] [--blocks 2] [--top 35]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--survey", default="sdss")
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--top", type=int, default=35)
    args = p.parse_args()

    from deepdip.simulate import BLOCK_SIZE, population
    from deepdip.simulate.pipeline import simulate_block
    from deepdip.surveys import load_survey

    survey = load_survey(args.survey)
    ctx = population.prepare(survey)
    simulate_block(survey, ctx, 1, 0, 50)  # warm-up
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    for block in range(1, args.blocks + 1):
        simulate_block(survey, ctx, 1, block, BLOCK_SIZE)
    profile.disable()
    wall = time.perf_counter() - t0
    print(f"{args.blocks * BLOCK_SIZE / wall:.1f} galaxies/s ({wall:.1f} s)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
