"""Simulate a mock survey into a cutout store, in blocks, over worker processes.

Galaxies are made in fixed blocks of ``BLOCK_SIZE``; block ``k`` draws every random number from
``SeedSequence([seed, k])``, so the store depends on the seed alone, never on the number of
workers. Blocks stream to the store in order: memory stays flat whatever N.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError
from deepdip.photometry import measure_photometry
from deepdip.simulate import population, reddening, rendering

BLOCK_SIZE = 200
SHARD_SIZE = 10_000  # galaxies per shard file when the output is a folder

_WORKER: dict = {}  # the survey and template tables, set once per worker process


def simulate_block(survey, tables: dict, seed: int, block: int, n: int) -> tuple[np.ndarray, dict]:
    """Galaxies ``block * BLOCK_SIZE ... + n - 1``: images [n, B, S, S] and catalogue columns."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block)]))
    pop = population.sample_population(survey, n, rng, tables)
    images, observing = rendering.render_block(survey, pop, rng)
    z = pop["z"].astype(np.float32)
    cat = {"id": block * BLOCK_SIZE + np.arange(n, dtype=np.int64), "z_spec": z, "z_true": z,
           "ebv": pop["ebv"].astype(np.float32)}
    for key, values in pop.items():
        if key not in ("z", "ebv", "flux"):
            cat[key] = values.astype(np.int8 if values.dtype == bool else np.float32)
    cat.update(observing)
    cat.update(measure_photometry(images, survey.pixel_scale, survey.bands,
                                  poisson_var_per_flux=survey["noise"]["poisson_var_per_nmgy"]))
    return images, cat


def _init_worker(survey, tables):
    _WORKER["survey"], _WORKER["tables"] = survey, tables


def _run_block(args):
    seed, block, n = args
    return simulate_block(_WORKER["survey"], _WORKER["tables"], seed, block, n)


def simulate_store(survey, n: int, seed: int, out, workers: int = 1, progress: bool = True,
                   shard_size: int | None = None) -> dict:
    """Simulate ``n`` galaxies of ``survey`` (a preset name, JSON path or Survey) into ``out``.

    ``out`` ending in ``.h5``/``.hdf5`` is one file; anything else becomes a folder of shards of
    ``shard_size`` galaxies. Returns timing information (seconds, galaxies per second).
    """
    from tqdm.auto import tqdm

    from deepdip.store import StoreWriter
    from deepdip.surveys import load_survey

    survey = load_survey(survey) if isinstance(survey, (str, Path)) else survey
    if n < 1:
        raise DeepdipError(f"--n must be at least 1, got {n}")
    if workers < 1:
        raise DeepdipError(f"--workers must be at least 1, got {workers}")
    for key in ("noise", "psf_fwhm", "population"):
        if key not in survey.params:
            raise DeepdipError(f"survey preset {survey.name!r} has no {key!r}: it cannot be simulated")
    out = Path(out)
    single_file = out.suffix in (".h5", ".hdf5")
    tables = population.tables_for(survey)
    tasks = [(seed, k, min(BLOCK_SIZE, n - k * BLOCK_SIZE)) for k in range((n + BLOCK_SIZE - 1) // BLOCK_SIZE)]
    provenance = {
        "generator": "deepdip.simulate", "seed": int(seed), "n": int(n), "block_size": BLOCK_SIZE,
        "survey_preset": survey.params,
        "extinction_coeffs": reddening.band_coefficients(tuple(survey.filters)).tolist(),
        "extinction_law": "Fitzpatrick (1999), R_V = 3.1, at filter effective wavelengths",
        "photometry": "deepdip.photometry.measure_photometry (Kron 2.5 matched apertures)",
    }
    t0 = time.perf_counter()
    writer = StoreWriter(out, bands=survey.bands, image_shape=(survey.stamp_size, survey.stamp_size),
                         survey=survey.name, pixel_scale=survey.pixel_scale, flux_unit=survey["flux_unit"],
                         seed=seed, attrs=provenance,
                         shard_size=None if single_file else (shard_size or SHARD_SIZE))
    with writer, tqdm(total=n, unit="gal", desc=f"simulate {survey.name}", disable=not progress) as bar:
        for images, cat in _blocks(survey, tables, tasks, workers):
            writer.append(images, cat)
            bar.update(len(images))
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds, "galaxies_per_s": n / seconds, "workers": workers}


def _blocks(survey, tables, tasks, workers):
    """Yield simulated blocks in order, computed here or in ``workers`` spawned processes."""
    if workers == 1:
        _init_worker(survey, tables)
        yield from map(_run_block, tasks)
        return
    # GalSim's OpenMP threads fight each other across processes, and forked GalSim workers
    # deadlock: spawn the workers with one thread each (they read the environment at start).
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(survey, tables))
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    with pool:
        yield from pool.imap(_run_block, tasks)
