"""Simulate a mock survey into a cutout store, in blocks, over worker processes.

Galaxies are made in fixed blocks of ``BLOCK_SIZE``; block ``k`` draws every random number from
``SeedSequence([seed, k])``, so the store depends on the seed alone, never on the number of
workers. Blocks stream to the store in order: memory stays flat whatever N.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError, DeepdipValueError
from deepdip.extinction import EXTINCTION_LAW, extinction_record
from deepdip.photometry import pipeline as catalogue
from deepdip.signals import deferred_signals, sigterm_as_exit
from deepdip.simulate import population, rendering
from deepdip.simulate.truths import PROVENANCE_KEY, truth_columns
from deepdip.store.format import BAND_MASK

BLOCK_SIZE = 200
SHARD_SIZE = 10_000  # galaxies per shard file when the output is a folder


def simulate_block(survey, ctx: dict, seed: int, block: int, n: int) -> tuple[np.ndarray, dict]:
    """Galaxies ``block * BLOCK_SIZE ... + n - 1``: images [n, B, S, S] and catalogue columns.

    ``ctx`` is :func:`deepdip.simulate.population.prepare`'s output for ``survey``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block)]))
    pop = population.sample_population(survey, n, rng, ctx)
    images, observing = rendering.render_block(survey, pop, rng, ctx)
    z = pop["z"].astype(np.float32)
    cat = {"id": block * BLOCK_SIZE + np.arange(n, dtype=np.int64), "z_spec": z, "z_true": z,
           "ebv": pop["ebv"].astype(np.float32)}
    for key, values in pop.items():
        if key not in ("z", "ebv", "flux"):
            cat[key] = values.astype(np.int8 if values.dtype == bool else np.float32)
    cat.update(observing)
    psf_fwhm = np.column_stack([observing[f"psf_fwhm_{band}"] for band in survey.bands])
    cat.update(catalogue.catalogue_photometry(images, survey, psf_fwhm))
    mask = missing_band_mask(survey, seed, block, n)
    if mask is not None:  # the writer zeroes the missing bands' pixels and NaNs their fluxes
        cat[BAND_MASK] = mask
    return images, cat


def missing_band_mask(survey, seed: int, block: int, n: int) -> np.ndarray | None:
    """The preset's ``missing_bands`` ({band: fraction of galaxies without it}) drawn for a block, or None.

    Each galaxy loses each band independently with its fraction; one that would lose every band keeps
    its reference band. Drawn from its own stream (``SeedSequence([seed, block, 1])``), so a preset
    with missing bands has the same galaxies, pixels and noise as without.
    """
    spec = survey.get("missing_bands")
    if not spec:
        return None
    unknown = sorted(set(spec) - set(survey.bands))
    if unknown or not all(isinstance(v, (int, float)) and 0 <= v < 1 for v in spec.values()):
        raise DeepdipValueError(f"survey preset {survey.name!r}: missing_bands must map its bands "
                                f"{list(survey.bands)} to fractions in [0, 1), got {spec!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block), 1]))
    frac = np.array([float(spec.get(b, 0.0)) for b in survey.bands])
    mask = rng.random((n, len(survey.bands))) >= frac[None, :]
    ref = list(survey.bands).index(survey.get("mag_limit_band", survey.bands[len(survey.bands) // 2]))
    mask[~mask.any(axis=1), ref] = True
    return mask


def _run_block(args):
    return simulate_block(*args)


def _warm_up():
    """Import what blocks need as soon as a worker starts (unpickling the first task would)."""
    import photutils.geometry  # noqa: F401


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _worker_init(parent_pid: int):
    """Run in each worker as it starts: the worker must never outlive the process that made it.

    On Linux the kernel sends SIGKILL to the worker when its parent dies, whatever killed the
    parent (``kill -9`` included); the check of ``getppid`` closes the race of a parent that died
    before the request was made. Elsewhere a daemon thread polls the parent. Ctrl-C in a terminal
    reaches the whole process group: workers ignore SIGINT and let the parent shut them down.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:
        os._exit(1)
    if not armed:
        import threading

        def watch():
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="deepdip-parent-watch", daemon=True).start()


def _stop_workers(pool: ProcessPoolExecutor, timeout: float = 10.0):
    """Stop the workers now (the run failed or was interrupted): do not wait for their blocks.

    A worker stopped while it was sending a block back leaves half a message in the result pipe.
    The executor's manager thread then waits for the rest for ever, and ``shutdown(wait=True)``
    (and the interpreter's exit, which joins that thread) with it: CPython 3.11's executor, seen
    as a rare hang of an interrupted run. The parent holds the pipe's last write end once the
    workers are gone; closing it turns that wait into end-of-file, which the manager thread
    handles as a broken pool and ends.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    if not processes:  # an executor without the attribute (a later Python): its own public call
        terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
        if terminate is not None:
            terminate()
        return
    for proc in processes:
        try:
            proc.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    for proc in processes:
        try:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()


UNGUARDED = ("the worker processes of simulate_store exited while starting up. Workers are spawned and "
             "re-import the calling script, so a script that calls simulate_store with workers > 1 must "
             'make the call under `if __name__ == "__main__":` (or use workers=1)')


def simulate_store(survey, n: int, seed: int, out, workers: int = 1, progress: bool = True,
                   shard_size: int | None = None, overwrite: bool = False, dask=None) -> dict:
    """Simulate ``n`` galaxies of ``survey`` (a preset name, JSON path or Survey) into ``out``.

    ``out`` ending in ``.h5``/``.hdf5`` is one file; anything else becomes a folder of shards of
    ``shard_size`` galaxies. An existing store at ``out`` is replaced only with ``overwrite``
    (never a directory of other files). ``dask``: run the blocks as tasks of a Dask cluster
    instead of local worker processes (a ``distributed.Client``, a scheduler address or
    scheduler.json, or ``"local:N"``; see :func:`deepdip._dask.dask_client`): one task per block,
    results written in block order as they arrive, a bounded number in flight; the same store as
    the local path for the same seed. Returns timing information (seconds, galaxies per second).
    """
    from deepdip.surveys import load_survey

    survey = load_survey(survey) if isinstance(survey, (str, Path)) else survey
    if n < 1:
        raise DeepdipError(f"--n must be at least 1, got {n}")
    if workers < 1:
        raise DeepdipError(f"--workers must be at least 1, got {workers}")
    if dask is not None and workers > 1:
        raise DeepdipError("--workers and --dask exclude each other: the Dask cluster's workers do the work")
    if int(seed) < 0:  # SeedSequence takes non-negative integers only; it would fail in the first block
        raise DeepdipValueError(f"--seed must be at least 0, got {seed}")
    for key in ("noise", "psf_fwhm", "population"):
        if key not in survey.params:
            raise DeepdipError(f"survey preset {survey.name!r} has no {key!r}: it cannot be simulated")
    catalogue.photometry_method(survey)  # a bad catalogue_photometry is refused before any work
    missing_band_mask(survey, 0, 0, 1)  # and a bad missing_bands
    out = Path(out)
    single_file = out.suffix in (".h5", ".hdf5")
    from deepdip.store import check_store_output

    check_store_output(out, sharded=not single_file, overwrite=overwrite,
                       inputs=[survey.path] if getattr(survey, "path", None) else ())
    _check_room(out, n, survey, None if single_file else (shard_size or SHARD_SIZE))
    # SIGTERM unwinds like Ctrl-C: the writer drops its temporary, the workers are stopped
    with sigterm_as_exit():
        pool, started = _start_pool(workers) if workers > 1 else (None, [])  # workers start up while we prepare
        try:
            return _simulate(survey, n, seed, out, pool, started, progress,
                             None if single_file else (shard_size or SHARD_SIZE), overwrite, dask)
        except BaseException:
            if pool is not None:
                _stop_workers(pool)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def _check_room(out: Path, n: int, survey, shard_size) -> None:
    """Refuse at once a store that cannot fit: the free space, or the file-size limit, is below its pixels alone.

    A lower bound (the catalogue and HDF5's overhead come on top), so nothing that fits is refused.
    Worth checking before any work: HDF5 buffers writes, so a full disk surfaces only when it
    flushes, as errors it cannot report and, on closing, a crash that leaves the temporary behind.
    """
    import shutil

    from deepdip.store.writer import CHUNK_ROWS

    try:
        import resource
    except ImportError:  # not on Windows: no file-size limit to check
        resource = None  # type: ignore[assignment]  # the usual optional-module idiom; checked before use

    per_galaxy = len(survey.bands) * survey.stamp_size ** 2 * np.dtype(np.float32).itemsize

    def allocated(rows):  # HDF5 allocates whole chunks of CHUNK_ROWS stamps
        return -(-rows // CHUNK_ROWS) * CHUNK_ROWS * per_galaxy

    shards = [n] if not shard_size else [shard_size] * (n // shard_size) + ([n % shard_size] if n % shard_size else [])
    need = sum(allocated(rows) for rows in shards)
    folder = out.parent if str(out.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:  # the writer will create it
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < need:
        raise DeepdipError(f"not enough free space for {out}: its {n} stamps alone need {need / 1e6:.1f} MB, "
                           f"{free / 1e6:.1f} MB are free on {folder}")
    largest = allocated(max(shards))
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else None
    if limit is not None and limit != resource.RLIM_INFINITY and limit < largest:
        raise DeepdipError(f"{out} would exceed this process's file-size limit (ulimit -f): its largest file "
                           f"needs at least {largest / 1e6:.1f} MB, the limit is {limit / 1e6:.1f} MB")


def _dask_blocks(spec, survey, ctx, tasks, timeout: float = 30):
    """Results of ``tasks`` (simulate_block's arguments) run on a Dask cluster, in task order.

    The survey and its context go to every worker once (scattered); at most twice as many blocks
    as the cluster has threads are in flight, so memory stays flat. Leaving the generator (done,
    or an error while writing) cancels what is still queued.
    """
    from deepdip._dask import dask_client, ordered_results, wait_for_workers

    with dask_client(spec, timeout=timeout) as dc:
        wait_for_workers(dc, timeout)
        shared = dc.scatter([survey, ctx], broadcast=True, hash=False)
        blocks = ((block, (seed, block, count)) for _, _, seed, block, count in tasks)
        yield from ordered_results(dc, simulate_block, blocks, shared=shared,
                                   in_flight=max(2, 2 * sum(dc.nthreads().values())), key="deepdip-simulate",
                                   died="Dask workers died simulating block {label} (out of memory?)")


def _simulate(survey, n, seed, out, pool, started, progress, shard_size, overwrite=False, dask=None) -> dict:
    from tqdm.auto import tqdm

    from deepdip.store import StoreWriter

    t0 = time.perf_counter()
    ctx = population.prepare(survey)
    # the context is small (tables of a few hundred kB): sending it with every block is cheap
    tasks = [(survey, ctx, seed, k, min(BLOCK_SIZE, n - k * BLOCK_SIZE))
             for k in range((n + BLOCK_SIZE - 1) // BLOCK_SIZE)]
    provenance = {
        "generator": "deepdip.simulate", "seed": int(seed), "n": int(n), "block_size": BLOCK_SIZE,
        "survey_preset": survey.params,
        **extinction_record(ctx["ext_coeffs"], EXTINCTION_LAW),  # what the mock was reddened with
        "population_sha256": population.population_digest(survey),
        "photometry": catalogue.describe(survey),
        # Which catalogue columns hold truths: readers refuse them as features by this list (issue 18).
        PROVENANCE_KEY: truth_columns(survey.bands),
    }
    try:
        for future in started:  # before anything is written: a pool that cannot start fails here
            future.result()
    except BrokenProcessPool:
        raise DeepdipError(UNGUARDED) from None
    with contextlib.ExitStack() as stack:
        # the writer drops its temporary on any exception, so a failed run leaves nothing behind; a
        # signal between the temporary's creation and the `with` would escape that: held back here
        with deferred_signals():
            writer = stack.enter_context(StoreWriter(
                out, bands=survey.bands, image_shape=(survey.stamp_size, survey.stamp_size), survey=survey.name,
                pixel_scale=survey.pixel_scale, flux_unit=survey["flux_unit"], seed=seed, attrs=provenance,
                shard_size=shard_size, overwrite=overwrite))
        if dask is not None:
            blocks = _dask_blocks(dask, survey, ctx, tasks)
        else:
            blocks = map(_run_block, tasks) if pool is None else pool.map(_run_block, tasks)
        bar = stack.enter_context(tqdm(total=n, unit="gal", desc=f"simulate {survey.name}", disable=not progress))
        try:
            for images, cat in blocks:
                writer.append(images, cat, band_mask=cat.pop(BAND_MASK, None))
                bar.update(len(images))
        except BrokenProcessPool:
            raise DeepdipError("a simulate_store worker process died unexpectedly (killed, out of memory?)") from None
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds, "galaxies_per_s": n / seconds}


def _start_pool(workers: int):
    """``workers`` spawned processes with one thread each, and a warm-up future per process.

    Spawn, not fork: forked workers deadlocked with GalSim's OpenMP state. One thread: several
    processes' BLAS/OpenMP thread pools otherwise fight over the same cores (the children read
    OMP_NUM_THREADS when they start, so it is set only around their creation: the executor spawns
    a process per submitted task until it has ``workers``, hence the warm-up tasks submitted here).
    An executor rather than ``multiprocessing.Pool``: when a worker dies (e.g. it re-imported an
    unguarded script, see ``UNGUARDED``) its futures raise ``BrokenProcessPool`` instead of the
    pool silently replacing the worker while the caller waits for ever. Workers die with the
    parent (``_worker_init``), even when it is killed with SIGKILL.
    """
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))
        return pool, [pool.submit(_warm_up) for _ in range(workers)]
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
