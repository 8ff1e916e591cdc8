"""Fault injection: signals at fixed points, full disk, concurrent writers, tampered model files, nothing lost.

Every command runs as a user would run it: ``deepdip ...`` in a subprocess when it is signalled,
limited or raced (``tests/fault_hook.py`` adds a deterministic pause just before an output is
published), in-process through ``deepdip.cli.main`` when it must only refuse. The checks are
the same everywhere: a one-line ``deepdip CMD: error: ...`` and exit status 2 for a refusal, no
half-written output at the final path, no temporary left behind (a kill -9 may leave one, which
must not stop or change the rerun), every pre-existing file byte-identical, and a rerun equal to
an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest
import torch

from deepdip.catalog import read_catalog
from deepdip.cli import main as cli_main

from .conftest import SRC, TINY_MODEL

HERE = Path(__file__).resolve().parent
HOOK = HERE / "fault_hook.py"
TINY = json.dumps(TINY_MODEL)
TRAIN_OPTS = ["--model", "compact", "--model-kwargs", TINY, "--seed", "3", "--epochs", "2", "--no-progress",
              "--workers", "0", "--threads", "1"]
N = 300          # galaxies of every store here: two simulation blocks (200 + 100)
WAIT = 240       # seconds: generous, the machine is shared; no test asserts on time


# -- helpers --------------------------------------------------------------------------------------
def env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", **extra)


def tree(path: Path) -> dict:
    """Every file (sha256) and folder under ``path`` (or the file itself): compare before/after."""
    path = Path(path)
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_one_line_error(stderr: str, cmd: str):
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("deepdip")]
    assert len(lines) == 1 and lines[0].startswith(f"deepdip {cmd}: error: "), stderr


def refuse(capsys, argv: list, cmd: str | None = None) -> str:
    """Run ``deepdip argv`` in-process: it must refuse with exit 2 and one line on stderr."""
    capsys.readouterr()
    rc = cli_main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, f"deepdip {' '.join(map(str, argv))} -> exit {rc}; stderr: {err}"
    assert_one_line_error(err, cmd or argv[0])
    return err


def ok(argv: list):
    rc = cli_main([str(a) for a in argv])
    assert rc == 0, f"deepdip {' '.join(map(str, argv))} -> exit {rc}"


def temporaries(folder: Path, name: str) -> list[str]:
    """Entries beside ``name`` in ``folder`` that are temporaries of it (``.NAME.*``)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(f".{name}."))


def store_content(path) -> dict:
    with h5py.File(path, "r") as f:
        out = {"images": f["images"][:]}
        out.update({f"catalog/{k}": f["catalog"][k][:] for k in f["catalog"]})
        out.update({f"attrs/{k}": np.asarray(f.attrs[k]) for k in f.attrs})
    return out


def assert_same_store(a, b):
    ca, cb = store_content(a), store_content(b)
    assert sorted(ca) == sorted(cb)
    for key in ca:
        assert np.array_equal(ca[key], cb[key], equal_nan=ca[key].dtype.kind == "f"), key


def assert_same_catalog(a, b, config: bool = True):
    ca, cb = read_catalog(a), read_catalog(b)
    assert np.array_equal(ca.ids, cb.ids) and np.array_equal(ca.pdf, cb.pdf)
    assert ca.table.equals(cb.table) and ca.method == cb.method
    assert ca.config == cb.config or not config  # the configuration names the input paths


def assert_same_report(a, b):
    a, b = Path(a), Path(b)
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())


def weights(run: Path) -> dict:
    return torch.load(run / "fold0" / "member0" / "model.pt", weights_only=True)["state_dict"]


def assert_same_weights(a: Path, b: Path):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class Procs:
    """Subprocesses of one test; any still running at the end is killed (with its children)."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, args, hook_env: dict | None = None, **kw) -> subprocess.Popen:
        cmd = [sys.executable, str(HOOK), *map(str, args)]
        extra = kw.pop("preexec_fn", None)   # e.g. a file-size limit (test_full_disk)

        def preexec():
            _default_signals()
            if extra is not None:
                extra()

        p = subprocess.Popen(cmd, env=env(**(hook_env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, preexec_fn=preexec, **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.communicate()


def _default_signals():
    """In the child, before exec: SIGINT and SIGTERM at their defaults, as a terminal gives them.

    An ignored signal survives exec, and Python keeps ignoring a SIGINT it started with. In the full
    suite (not in isolation) the SIGINT cases of this module saw commands that never noticed the
    signal (exit 0), as if pytest's process had been left ignoring SIGINT by an earlier test; which
    one is not found yet (see the session notes). The commands' own handling is what is tested here.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.close()


def wait_for(predicate, proc: subprocess.Popen | None = None, what: str = ""):
    deadline = time.monotonic() + WAIT
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, out, err


# -- the world: one small survey, a trained run, catalogues and a report ---------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from deepdip.simulate import simulate_store
    from deepdip.store import CutoutStore
    from deepdip.surveys import load_survey

    root = tmp_path_factory.mktemp("world")
    preset = root / "small.json"  # the sdss preset with 16x16 stamps (keeps the name: baselines know it)
    preset.write_text(json.dumps(dict(load_survey("sdss").params, stamp_size=16)))
    store = root / "store.h5"
    simulate_store(str(preset), N, seed=1, out=store, workers=1, progress=False)
    # the same galaxies as arrays + a catalogue, for ingest
    s = CutoutStore(store)
    np.savez(root / "cut.npz", images=s.images(np.arange(N)), id=s.column("id"))
    cat = root / "cat.csv"
    with open(cat, "w") as fh:
        fh.write("id,z_spec,ebv\n")
        fh.writelines(f"{i},{float(z)!r},{float(e)!r}\n"
                      for i, z, e in zip(s.column("id"), s.column("z_spec"), s.column("ebv")))
    proc = subprocess.run([sys.executable, "-m", "deepdip", "train", str(store), "--out", str(root / "run"),
                           *TRAIN_OPTS], env=env(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    ok(["predict", root / "run", store, "--rows", "all", "--no-progress", "--out", root / "cnn.parquet"])
    ok(["baseline", store, "--method", "knn", "--fold", "0", "--out", root / "knn.parquet"])
    ok(["evaluate", root / "cnn.parquet", root / "knn.parquet", "--out", root / "report"])
    return root


@pytest.fixture
def inputs(world, tmp_path) -> Path:
    """A private copy of the world, for the tests whose failure could damage their inputs."""
    copy = tmp_path / "inputs"
    shutil.copytree(world, copy, symlinks=True)
    return copy


def command(world: Path, cmd: str, out: Path, *extra) -> list:
    """The argv of ``cmd`` on the world's inputs, writing ``out``."""
    w = world
    return {
        "simulate": ["simulate", "--survey", w / "small.json", "--n", N, "--seed", 1, "--quiet"],
        "ingest": ["ingest", "--arrays", w / "cut.npz", "--catalog", w / "cat.csv", "--survey", "sdss",
                   "--no-photometry"],
        "predict": ["predict", w / "run", w / "store.h5", "--rows", "all", "--no-progress"],
        "baseline": ["baseline", w / "store.h5", "--method", "knn", "--fold", "0"],
        "evaluate": ["evaluate", w / "cnn.parquet", w / "knn.parquet"],
        "train": ["train", w / "store.h5", *TRAIN_OPTS],
    }[cmd] + ["--out", out, *extra]


OUT_NAME = {"simulate": "mock.h5", "ingest": "real.h5", "predict": "cnn.parquet", "baseline": "knn.parquet",
            "evaluate": "report"}
REFERENCE = {"simulate": "store.h5", "predict": "cnn.parquet", "baseline": "knn.parquet", "evaluate": "report"}


def assert_same_output(world: Path, cmd: str, path: Path):
    if cmd == "simulate":
        assert_same_store(path, world / "store.h5")
    elif cmd == "ingest":
        got, ref = store_content(path), store_content(world / "store.h5")
        assert np.array_equal(got["images"], ref["images"])
        for col in ("id", "z_spec", "ebv"):
            assert np.array_equal(got[f"catalog/{col}"], ref[f"catalog/{col}"]), col
    elif cmd == "evaluate":
        assert_same_report(path, world / "report")
    else:
        assert_same_catalog(path, world / REFERENCE[cmd])


# -- 1. signals ------------------------------------------------------------------------------------
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}


@pytest.mark.parametrize("sig", list(SIGNALS))
def test_signal_while_simulating_with_workers(world, tmp_path, procs, sig):
    """Signal `simulate --workers 2` once its temporary store exists: no store, no temporary (but
    after kill -9), no worker left; the same command then writes the store of an unbroken run."""
    out = tmp_path / "mock.h5"
    argv = command(world, "simulate", out, "--workers", 2)
    p = procs.start(argv)
    wait_for(lambda: temporaries(tmp_path, out.name), p, "the temporary store appeared")
    workers = psutil.Process(p.pid).children(recursive=True)
    assert len([w for w in workers if "spawn_main" in " ".join(w.cmdline())]) == 2, workers
    assert p.poll() is None, "simulate finished before it could be signalled"
    p.send_signal(SIGNALS[sig])
    rc, _, err = finish(p)
    assert rc != 0 and "Traceback" not in err, (rc, err)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"orphaned after {sig}: {[(a.pid, a.cmdline()) for a in alive]}"
    assert not out.exists()
    left = temporaries(tmp_path, out.name)
    if sig != "SIGKILL":
        assert left == [], f"temporary left after {sig}: {left}"
    ok(argv)  # the rerun: a leftover temporary of the killed run neither blocks nor changes it
    assert_same_store(out, world / "store.h5")
    assert temporaries(tmp_path, out.name) == left  # the rerun left nothing of its own


PUBLISH_CASES = [(cmd, sig) for cmd in ("simulate", "ingest", "predict", "baseline", "evaluate")
                 for sig in ("SIGTERM", "SIGKILL")] + [("predict", "SIGINT")]


@pytest.mark.parametrize("cmd,sig", PUBLISH_CASES)
def test_signal_just_before_the_output_is_published(world, tmp_path, procs, cmd, sig):
    """Pause CMD when its complete temporary is about to be renamed onto --out, signal it there.

    The final path keeps what it held before (nothing, or the previous output replaced with
    --overwrite for the file outputs), SIGTERM/SIGINT leave no temporary, and the rerun gives
    the output of an unbroken run."""
    out = tmp_path / OUT_NAME[cmd]
    old = None
    extra = []
    if cmd in ("predict", "baseline"):  # a previous catalogue, replaced only once the new one is complete
        other = "knn.parquet" if cmd == "predict" else "cnn.parquet"
        shutil.copy(world / other, out)
        old = tree(out)
        extra = ["--overwrite"]
    ready = tmp_path / "ready"
    p = procs.start(command(world, cmd, out, *extra), {"FAULT_PAUSE_ON": out.name, "FAULT_READY": str(ready)})
    wait_for(ready.exists, p, "the output was about to be published")
    tmp = Path(ready.read_text())
    assert tmp.exists() and tmp.parent == tmp_path, tmp  # a complete temporary beside --out
    ready.unlink()
    p.send_signal(SIGNALS[sig])
    rc, _, err = finish(p)
    assert rc != 0 and "Traceback" not in err, (rc, err)
    if old is None:
        assert not out.exists(), f"{cmd}: {out} exists after {sig} before its publication"
    else:
        assert tree(out) == old, f"{cmd}: the previous {out.name} changed after {sig}"
    left = temporaries(tmp_path, out.name)
    if sig != "SIGKILL":
        assert left == [], f"{cmd}: temporary left after {sig}: {left}"
    ok(command(world, cmd, out, *extra))
    assert_same_output(world, cmd, out)
    assert temporaries(tmp_path, out.name) == left


def test_kill_9_of_predict_on_a_local_dask_cluster_leaves_no_worker(world, tmp_path, procs):
    """`predict --dask local:2` killed with SIGKILL just before publishing: its Dask worker
    processes die with it, and the final path holds nothing."""
    out = tmp_path / "cnn.parquet"
    ready = tmp_path / "ready"
    p = procs.start(command(world, "predict", out, "--dask", "local:2"),
                    {"FAULT_PAUSE_ON": out.name, "FAULT_READY": str(ready)})
    wait_for(ready.exists, p, "the output was about to be published")
    workers = psutil.Process(p.pid).children(recursive=True)
    # Dask's worker processes are multiprocessing children ("spawn_main", renamed "dask worker [...]"
    # once they run); prediction needs only the first to have joined, so on a loaded machine the
    # second may still be starting: at least one.
    spawned = [w for w in workers if any(k in " ".join(w.cmdline()) for k in ("spawn_main", "dask worker"))]
    assert spawned, [w.cmdline() for w in workers]
    p.send_signal(signal.SIGKILL)
    finish(p)
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, f"orphaned Dask workers: {[(a.pid, a.cmdline()) for a in alive]}"
    assert not out.exists()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_during_training_then_resume(world, tmp_path, procs, sig):
    """Signal `train` between its two epochs (paused right after the first last.ckpt): no
    finished-looking model.pt, no temporary; the same command resumes and gives the weights of an
    unbroken run. (kill -9 at the same point: tests/test_train.py.)"""
    run = tmp_path / "run"
    argv = command(world, "train", run)
    ready = tmp_path / "ready"
    p = procs.start(argv, {"FAULT_PAUSE_AFTER_CHECKPOINT": "last.ckpt", "FAULT_READY": str(ready)})
    wait_for(ready.exists, p, "the first epoch checkpoint")
    p.send_signal(SIGNALS[sig])
    rc, _, err = finish(p)
    assert rc != 0, f"train exited 0 after {sig}: it must not look finished"
    assert "Traceback" not in err, err
    assert not (run / "fold0" / "member0" / "model.pt").exists(), f"model.pt written after {sig}"
    assert [str(q) for q in run.rglob("*.tmp*")] == []
    rc, _, err = finish(procs.start(argv))
    assert rc == 0, err
    assert_same_weights(run, world / "run")


# -- 2. full disk ----------------------------------------------------------------------------------
FULL_DISK_METHOD: list[str] = []


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tmpfs of ``size`` bytes when ``mount`` works (root), else an RLIMIT_FSIZE of
    ``file_limit`` bytes per file for the child (EFBIG instead of ENOSPC). FAULT_FULL_DISK=rlimit
    forces the second way."""
    mounts = []

    def make(size: int, file_limit: int):
        disk = tmp_path / "disk"
        disk.mkdir()
        if os.environ.get("FAULT_FULL_DISK") != "rlimit":
            try:
                mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                                         capture_output=True, check=False).returncode == 0
            except OSError:  # no mount command
                mounted = False
            if mounted:
                mounts.append(disk)
                FULL_DISK_METHOD.append("tmpfs")
                return disk, None

        def limit():
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
        FULL_DISK_METHOD.append("RLIMIT_FSIZE")
        return disk, limit

    yield make
    for disk in mounts:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


FULL_DISK_CASES = {
    # command: tmpfs size, per-file limit (bytes), output, previous output copied from the world.
    # A 300-galaxy store is 2 MB, its catalogue 360 kB, a report 430 kB (PNGs of 20-60 kB).
    "simulate-early": (1_000_000, 1_000_000, "mock.h5", None),   # below its pixels: refused before work
    "simulate-late": (1_850_000, 1_850_000, "mock.h5", None),    # room for the pixels, not for the store
    "predict": (150_000, 150_000, "cnn.parquet", "knn.parquet"),
    "evaluate": (200_000, 30_000, "report", None),
}


@pytest.mark.parametrize("case", list(FULL_DISK_CASES))
def test_full_disk(world, small_disk, procs, case):
    """The disk fills up while CMD writes: one-line error, non-zero exit, no temporary, and the
    files already on that disk (a previous output replaced with --overwrite) untouched."""
    cmd = case.split("-")[0]
    size, file_limit, name, previous = FULL_DISK_CASES[case]
    disk, limit = small_disk(size, file_limit)
    (disk / "keep.txt").write_text("pre-existing\n")
    out = disk / name
    extra = []
    if previous:
        shutil.copy(world / previous, out)
        extra = ["--overwrite"]
    before = tree(disk)
    p = procs.start(command(world, cmd, out, *extra), preexec_fn=limit)
    rc, _, err = finish(p)
    assert rc != 0, f"{cmd} succeeded on a full disk"
    assert tree(disk) == before, f"{cmd}: the disk's contents changed ({sorted(os.listdir(disk))})"
    assert_one_line_error(err, cmd)


# -- 3. concurrent writers -------------------------------------------------------------------------
@pytest.mark.parametrize("cmd,overwrite", [("simulate", False), ("predict", True)])
def test_two_writers_of_one_output(world, tmp_path, procs, cmd, overwrite):
    """Two CMD processes write the same --out and publish at the same moment (both paused with a
    complete temporary, then released together): no traceback, at most one refused with a one-line
    error (without --overwrite exactly one), the output is one complete result, no temporary left."""
    out = tmp_path / OUT_NAME[cmd]
    go = tmp_path / "go"
    extra = ["--overwrite"] if overwrite else []
    pair = []
    for k in range(2):
        ready = tmp_path / f"ready{k}"
        pair.append((procs.start(command(world, cmd, out, *extra),
                                 {"FAULT_PAUSE_ON": out.name, "FAULT_READY": str(ready), "FAULT_GO": str(go)}),
                     ready))
    for p, ready in pair:
        wait_for(ready.exists, p, "both writers were ready to publish")
    temps = {Path(ready.read_text()) for _, ready in pair}
    assert len(temps) == 2 and all(t.exists() for t in temps), temps  # unique temporaries, both complete
    go.touch()
    results = [finish(p) for p, _ in pair]
    codes = sorted(rc for rc, _, _ in results)
    for rc, _, err in results:
        assert "Traceback" not in err, err
        if rc != 0:
            assert rc == 2
            assert_one_line_error(err, cmd)
    assert codes == ([0, 0] if overwrite else [0, 2]), results
    assert_same_output(world, cmd, out)
    assert temporaries(tmp_path, out.name) == []


def test_two_trainings_of_one_run_directory(world, tmp_path, procs):
    """A second `train` on a run directory in use (the first paused just before publishing its
    model) is refused at once with one line; the first then completes as an unbroken run."""
    run = tmp_path / "run"
    argv = command(world, "train", run)
    ready, go = tmp_path / "ready", tmp_path / "go"
    first = procs.start(argv, {"FAULT_PAUSE_ON": "model.pt", "FAULT_READY": str(ready), "FAULT_GO": str(go)})
    wait_for(ready.exists, first, "the first training was about to publish its model")
    before = tree(run)
    rc, _, err = finish(procs.start(argv))
    assert rc == 2, (rc, err)
    assert_one_line_error(err, "train")
    assert tree(run) == before, "the refused train changed the run directory"
    go.touch()
    rc, _, err = finish(first)
    assert rc == 0, err
    assert_same_weights(run, world / "run")


# -- 4. tampered model files -----------------------------------------------------------------------
class Payload:
    """Unpickling this creates ``marker``: proof that a pickle from the model file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tampered_run(world: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    return run


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_model_file_with_a_pickle_payload_never_runs(world, tmp_path, capsys, how):
    run = tampered_run(world, tmp_path)
    marker = tmp_path / "PWNED"
    model = run / "fold0" / "member0" / "model.pt"
    good = torch.load(model, weights_only=True)
    evil = dict(good, info={"fold": 0, "member": 0, "x": Payload(marker)})
    if how == "torch.save":
        torch.save(evil, model)
    else:
        model.write_bytes(pickle.dumps(evil))
    for target in (run, model):  # the run directory, and the model file named directly
        refuse(capsys, ["predict", target, world / "store.h5", "--no-progress", "--out", tmp_path / "cnn.parquet"])
        assert not marker.exists(), "the pickle payload in model.pt RAN"
    assert not (tmp_path / "cnn.parquet").exists()


def test_checkpoint_with_a_pickle_payload_never_runs(world, tmp_path, procs):
    """Resuming reads last.ckpt: a payload there must not run (refused, or the member restarted)."""
    run = tampered_run(world, tmp_path)
    marker = tmp_path / "PWNED"
    member = run / "fold0" / "member0"
    (member / "model.pt").unlink()  # unfinished member: the next `train` resumes from last.ckpt
    ckpt = torch.load(member / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["x"] = Payload(marker)
    torch.save(ckpt, member / "checkpoints" / "last.ckpt")
    rc, _, err = finish(procs.start(command(world, "train", run)))
    assert not marker.exists(), "the pickle payload in last.ckpt RAN"
    if rc != 0:
        assert rc == 2
        assert_one_line_error(err, "train")


@pytest.mark.parametrize("damage", ["truncated model.pt", "empty model.pt", "run.json not JSON"])
def test_damaged_run_is_refused_with_one_line(world, tmp_path, capsys, damage):
    run = tampered_run(world, tmp_path)
    model = run / "fold0" / "member0" / "model.pt"
    if damage == "truncated model.pt":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "empty model.pt":
        model.write_bytes(b"")
    else:
        (run / "run.json").write_text('{"model": "compact", ')
    before = tree(run)
    argv = ["predict", run, world / "store.h5", "--rows", "all", "--no-progress", "--out", tmp_path / "cnn.parquet"]
    if damage == "run.json not JSON":
        # predict reads only the model files (each carries its configuration): it may ignore
        # run.json, but then its catalogue is the one of the intact models
        capsys.readouterr()
        rc = cli_main([str(a) for a in argv])
        err = capsys.readouterr().err
        if rc == 0:
            assert_same_catalog(tmp_path / "cnn.parquet", world / "cnn.parquet", config=False)
        else:
            assert rc == 2, (rc, err)
            assert_one_line_error(err, "predict")
    else:
        refuse(capsys, argv)
        argv[1] = model
        refuse(capsys, argv)
        assert not (tmp_path / "cnn.parquet").exists()
    assert tree(run) == before


def test_train_on_a_run_whose_run_json_is_not_json(world, tmp_path, capsys):
    """A trained run with unreadable settings is refused (not re-configured over its models)."""
    run = tampered_run(world, tmp_path)
    (run / "run.json").write_text("not json")
    before = tree(run)
    refuse(capsys, command(world, "train", run))  # in-process: refused before any thread setting
    assert tree(run) == before


# -- 5. nothing lost -------------------------------------------------------------------------------
@pytest.fixture
def workdir(world, tmp_path, monkeypatch):
    """A working directory holding files and folders of the user's (and the world's inputs)."""
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("\\chapter{One}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


IN_PROCESS = ("simulate", "ingest", "predict", "baseline", "evaluate")


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("cmd", IN_PROCESS)
def test_out_naming_an_existing_directory_is_refused(inputs, workdir, capsys, cmd, overwrite):
    extra = ["--overwrite"] if overwrite else []
    for out in ("thesis", "."):
        before = tree(workdir)  # holds the inputs too
        if cmd != "evaluate":
            refuse(capsys, command(inputs, cmd, Path(out), *extra))
            assert tree(workdir) == before, f"{cmd} --out {out} changed the working directory"
            continue
        # A report is a folder: it may go into a folder of other things (the demo writes its report
        # beside its store and runs), as long as it only adds its own files; or be refused.
        capsys.readouterr()
        rc = cli_main([str(a) for a in command(inputs, cmd, Path(out), *extra)])
        err = capsys.readouterr().err
        after = tree(workdir)
        if rc != 0:
            assert rc == 2, (rc, err)
            assert_one_line_error(err, cmd)
            assert after == before
        else:
            changed = [k for k in before if after.get(k) != before[k]]
            assert changed == [], f"evaluate --out {out} changed or removed {changed}"
            assert (workdir / out / "metrics.json").exists()


@pytest.mark.parametrize("out", ["thesis", "."])
def test_train_out_naming_a_folder_of_other_files_is_refused(world, workdir, capsys, out):
    before = tree(workdir)
    refuse(capsys, command(world, "train", Path(out)))
    assert tree(workdir) == before


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("target", ["run", "run/fold0/member0/model.pt", "run/run.json"])
def test_predict_out_naming_the_run_or_a_file_in_it_is_refused(inputs, capsys, target, overwrite):
    before = tree(inputs)
    refuse(capsys, ["predict", inputs / "run", inputs / "store.h5", "--no-progress", "--out", inputs / target]
           + (["--overwrite"] if overwrite else []))
    assert tree(inputs) == before


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_out_equal_to_an_input_is_refused(inputs, capsys, overwrite):
    """predict/baseline onto the store, ingest onto its arrays or catalogue, evaluate onto a
    catalogue, simulate onto its preset: refused even with --overwrite, inputs byte-identical."""
    w, extra = inputs, (["--overwrite"] if overwrite else [])
    before = tree(w)
    cases = [
        (["predict", w / "run", w / "store.h5", "--out", w / "store.h5"], "predict"),
        (["baseline", w / "store.h5", "--method", "knn", "--fold", "0", "--out", w / "store.h5"], "baseline"),
        (command(w, "ingest", w / "cut.npz"), "ingest"),
        (command(w, "ingest", w / "cat.csv"), "ingest"),
        (command(w, "evaluate", w / "knn.parquet"), "evaluate"),
        (command(w, "simulate", w / "small.json"), "simulate"),
    ]
    for argv, cmd in cases:
        refuse(capsys, argv + extra, cmd)
    assert tree(w) == before


@pytest.mark.parametrize("cmd", ["predict", "baseline", "simulate", "ingest"])
def test_existing_file_needs_overwrite_and_of_the_expected_kind(world, tmp_path, capsys, cmd):
    """An existing output file is refused without --overwrite; with it, a previous output of the
    same kind is replaced, a file of another kind (notes, a store for a catalogue) never."""
    out = tmp_path / OUT_NAME[cmd]
    # a previous output of the same kind, but different content
    previous = {"predict": "knn.parquet", "baseline": "cnn.parquet"}.get(cmd)
    if previous:
        shutil.copy(world / previous, out)
    else:
        ok(["simulate", "--survey", world / "small.json", "--n", 20, "--seed", 5, "--quiet", "--out", out])
    before = tree(out)
    refuse(capsys, command(world, cmd, out))
    assert tree(out) == before
    ok(command(world, cmd, out, "--overwrite"))
    assert_same_output(world, cmd, out)
    # a file of another kind under the output's name is never replaced
    foreign = {"predict": b"my notes", "baseline": b"my notes", "simulate": b"PAR1 not a store",
               "ingest": b"my notes"}[cmd]
    out.write_bytes(foreign)
    refuse(capsys, command(world, cmd, out, "--overwrite"))
    assert out.read_bytes() == foreign
    if cmd in ("predict", "baseline"):  # a store where a catalogue is expected
        shutil.copy(world / "store.h5", out)
        before = tree(out)
        refuse(capsys, command(world, cmd, out, "--overwrite"))
        assert tree(out) == before
    assert temporaries(tmp_path, out.name) == []


def test_evaluate_overwrite_replaces_a_previous_report_only(world, tmp_path, capsys):
    """A previous report is replaced only with --overwrite, and then wholly (its figures that the
    new one lacks are gone); a folder of the user's that merely holds a metrics.json is not a
    report: refused even with --overwrite."""
    out = tmp_path / "report"
    ok(command(world, "evaluate", out, "--names", "old1", "old2"))  # figures old1_*.png, old2_*.png
    (tmp_path / "mine.txt").write_text("beside the report\n")
    before = tree(out)
    refuse(capsys, command(world, "evaluate", out))
    assert tree(out) == before
    ok(command(world, "evaluate", out, "--overwrite"))
    assert_same_report(out, world / "report")  # no old1_*.png left
    assert (tmp_path / "mine.txt").read_text() == "beside the report\n"
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.png").write_bytes(b"\x89PNG mine")
    (folder / "metrics.json").write_text('{"mine": 1}')
    before = tree(folder)
    for extra in ([], ["--overwrite"]):
        refuse(capsys, command(world, "evaluate", folder, *extra))
        assert tree(folder) == before
    assert temporaries(tmp_path, out.name) == [] and temporaries(tmp_path, folder.name) == []
