"""The Dask client every deepdip engine uses (``--dask``): prediction, simulation."""

from __future__ import annotations

import contextlib
from pathlib import Path

from deepdip.errors import DeepdipError

#: The Dask setting that gives workers ``MALLOC_TRIM_THRESHOLD_`` (None: not set, glibc's defaults)
NO_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


@contextlib.contextmanager
def dask_client(spec=None, *, timeout: float = 30):
    """A ``distributed.Client`` for ``spec``; one this function creates is closed on exit.

    ``spec``: a ``Client`` (used as is); None (the current default client, e.g. made by
    ``Client(...)`` earlier in the session); ``"local"`` or ``"local:N"`` (a ``LocalCluster`` of N
    single-threaded worker processes on this machine); a ``scheduler.json`` file written by
    ``dask scheduler --scheduler-file`` / dask-jobqueue / dask-mpi; or a scheduler address such as
    ``tcp://10.0.0.1:8786``. Raises DeepdipError when there is no client or the scheduler cannot
    be reached within ``timeout`` seconds.
    """
    try:
        from distributed import Client, LocalCluster, default_client
    except ImportError as exc:  # pragma: no cover - a dependency, but say what is missing
        raise DeepdipError(f"deepdip's Dask engine needs dask.distributed: pip install 'dask[distributed]' "
                           f"({exc})") from None

    if spec is None:
        try:
            client = default_client()
        except ValueError:
            raise DeepdipError("no Dask client: pass client= (a distributed.Client, a scheduler address or "
                               "'local:N'), or create one first with distributed.Client(...)") from None
        yield client
        return
    if isinstance(spec, Client):
        yield spec
        return
    if not isinstance(spec, str) or not spec.strip():
        raise DeepdipError(f"client must be a distributed.Client, a scheduler address or 'local:N', not {spec!r}")
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        n = spec.partition(":")[2]
        if n and not (n.isdigit() and int(n) > 0):
            raise DeepdipError(f"--dask local:N needs a positive number of workers, got {spec!r}")
        # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which also switches off glibc's
        # dynamic mmap threshold: every array above 128 kB is then a fresh mmap whose pages fault in
        # one by one. A simulated block took 1.9x the CPU time it takes in-process (measured in
        # docs/benchmarks.md, "On Dask"). The workers of a cluster made here get glibc's defaults, as
        # the process pool's do; a cluster of one's own is configured in its Dask config (same key).
        import dask

        with dask.config.set({NO_TRIM_KEY: None}), \
                LocalCluster(n_workers=int(n) if n else None, threads_per_worker=1, processes=True) as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield client
        return
    try:
        if spec.endswith(".json"):
            if not Path(spec).is_file():
                raise DeepdipError(f"no such Dask scheduler file: {spec}")
            client = Client(scheduler_file=spec, timeout=timeout, set_as_default=False)
        else:
            client = Client(spec, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DeepdipError(f"cannot reach the Dask scheduler at {spec} ({type(exc).__name__}: {exc})") from None
    with client:
        yield client


def wait_for_workers(client, timeout: float) -> None:
    """Wait until the cluster has a worker; DeepdipError if none joins within ``timeout`` seconds."""
    if client.nthreads():
        return
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise DeepdipError(f"the Dask scheduler {client.scheduler.address} has no workers "
                           f"(none joined within {timeout:g} s)") from None


def ordered_results(client, fn, tasks, *, shared=(), in_flight: int, key: str, died: str):
    """Run ``fn(*shared, *args)`` for each ``(label, args)`` of ``tasks`` on the cluster; yield the
    results in task order, with at most ``in_flight`` tasks submitted ahead (memory stays flat).

    ``shared``: futures of objects scattered once to every worker. ``key``: prefix of the task keys
    (one per task label). ``died``: the error message when workers die on a task, formatted with its
    ``label``. Leaving the generator (done, or an error of the caller) cancels what is still queued.
    """
    import collections
    import uuid

    from distributed import KilledWorker

    tag = uuid.uuid4().hex[:8]
    todo = iter(tasks)
    pending: collections.deque = collections.deque()

    def submit_next():
        task = next(todo, None)
        if task is not None:
            label, args = task
            pending.append((label, client.submit(fn, *shared, *args, key=f"{key}-{tag}-{label}")))

    try:
        for _ in range(in_flight):
            submit_next()
        while pending:
            label, future = pending.popleft()
            try:
                result = future.result()
            except KilledWorker as exc:
                raise DeepdipError(died.format(label=label) + f": {exc}") from None
            future.release()
            submit_next()
            yield result
    finally:
        leftover = [f for _, f in pending] + list(shared)
        if leftover:
            client.cancel(leftover)
