"""Training: augmentation, normalisation, splits, DDP sharding, learning, determinism, resume after a kill."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdip.errors import DeepdipError
from deepdip.models.dihedral import allowed_symmetries, dihedral, random_dihedral
from deepdip.models.normalize import Normalizer, asinh
from deepdip.store import CutoutStore
from deepdip.train.data import BlockShuffleBatchSampler, make_datamodule
from deepdip.train.run import member_seed, split_train_val
from deepdip.train.toydata import make_toy_store

from .conftest import TINY_MODEL, cli_env

TINY = json.dumps(TINY_MODEL)


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "deepdip", *map(str, args)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def train_cmd(store, out, *extra):
    return ["train", store, "--out", out, "--model", "compact", "--model-kwargs", TINY, "--seed", "3",
            "--no-progress", "--workers", "0", "--threads", "1", *extra]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_store(tmp_path_factory.mktemp("toy") / "toy.h5", n=400, size=16, seed=0)


# -- augmentation --------------------------------------------------------------------------------
def test_dihedral_group_has_8_distinct_elements():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    images = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(images) == 8
    assert torch.equal(dihedral(x, 0), x)
    assert allowed_symmetries(4, 6) == (0, 2, 4, 6)


def test_random_dihedral_keeps_each_image_with_its_label():
    """Every output image is a symmetry of the input image at the same index (labels stay aligned)."""
    x = torch.randn(64, 5, 8, 8)
    y = random_dihedral(x, torch.Generator().manual_seed(0))
    used = set()
    for i in range(len(x)):
        matches = [k for k in range(8) if torch.equal(y[i], dihedral(x[i], k))]
        assert matches, f"image {i} is not a rotation/flip of its input"
        used.update(matches)
    assert len(used) == 8
    assert torch.allclose(y.sum(dim=(2, 3)), x.sum(dim=(2, 3)), atol=1e-4)  # fluxes untouched
    y2 = random_dihedral(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)


@pytest.mark.parametrize("shape", [(8, 8), (6, 10)])
def test_random_dihedral_draws_as_before(shape):
    """The gather through pixel maps gives, image by image, the orientation the earlier per-orientation
    code drew from the same generator (so training runs are unchanged bit for bit); rectangles keep
    their shape (0, 180 degrees and the flips only)."""
    x = torch.randn(40, 3, *shape)
    ks = allowed_symmetries(*shape)
    draw = torch.randint(len(ks), (len(x),), generator=torch.Generator().manual_seed(5))
    expect = torch.stack([dihedral(x[i], ks[int(draw[i])]) for i in range(len(x))])
    assert torch.equal(random_dihedral(x, torch.Generator().manual_seed(5)), expect)
    nhwc = random_dihedral(x, torch.Generator().manual_seed(5), channels_last=True)
    assert torch.equal(nhwc, expect) and nhwc.is_contiguous(memory_format=torch.channels_last)


# -- normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("stretch", ["asinh", "pasquet"])
def test_normalizer_standardises_bands(stretch):
    rng = np.random.default_rng(0)
    images = rng.normal(0, 0.05, (200, 3, 16, 16)).astype(np.float32)
    images[:, :, 6:10, 6:10] += np.array([1.0, 10.0, 100.0], np.float32)[None, :, None, None]
    images[0, 0, 0, 0] = np.nan
    ebv = rng.uniform(0, 0.1, (200, 1)).astype(np.float32)
    norm = Normalizer(3, 1, stretch).fit(images, ebv)
    x, e = norm(torch.from_numpy(images), torch.from_numpy(ebv))
    assert torch.isfinite(x).all()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    assert abs(float(e.mean())) < 1e-4
    if stretch == "asinh":  # the softening is the sky noise
        assert np.allclose(norm.scale.numpy(), 0.05, rtol=0.15)


def test_fast_asinh_equals_torch_asinh_to_float32_rounding():
    x = torch.cat([torch.logspace(-12, 17, 20001), -torch.logspace(-12, 17, 20001), torch.zeros(1),
                   torch.randn(10000, generator=torch.Generator().manual_seed(0)) * 5])
    ref = torch.asinh(x.double())
    rel = (asinh(x).double() - ref).abs() / ref.abs().clamp_min(1e-300)
    assert rel.max() < 2.5e-7 and asinh(torch.zeros(1)).item() == 0.0
    assert asinh(torch.tensor([1e30, -1e30])).tolist() == pytest.approx([42.1, -42.1], abs=0.1)  # capped, finite
    cl = torch.randn(4, 5, 8, 8).contiguous(memory_format=torch.channels_last)
    assert asinh(cl).is_contiguous(memory_format=torch.channels_last)   # the layout training feeds


# -- splits and seeds ---------------------------------------------------------------------------
def test_validation_is_carved_from_training_folds(toy):
    store = CutoutStore(toy)
    tr, va = split_train_val(store, fold=1, seed=5, val_fraction=0.2)
    folds = store.column("fold")
    assert not np.intersect1d(tr, va).size
    assert (folds[tr] != 1).all() and (folds[va] != 1).all()
    assert len(tr) + len(va) == (folds != 1).sum()
    tr2, va2 = split_train_val(store, fold=1, seed=5, val_fraction=0.2)
    assert np.array_equal(va, va2)
    assert member_seed(1, 0, 0) != member_seed(1, 0, 1) != member_seed(1, 1, 0)


# -- batches ------------------------------------------------------------------------------------
def test_batches_keep_each_image_with_its_own_label(toy):
    """Whatever the order and the block cache, row i's images, E(B-V), target bin and z_spec travel
    together, and the target is the bin that holds z_spec (a label off by one bin would bias every
    network by 2e-3)."""
    from deepdip.train.data import StoreDataset
    from deepdip.zgrid import ZGrid

    store = CutoutStore(toy)
    grid = ZGrid(0.0, 0.4, 180)
    rows = np.sort(np.random.default_rng(1).choice(len(store), 250, replace=False))
    ds = StoreDataset(store, rows, grid, cache_blocks=2)
    for idx in (np.random.default_rng(2).permutation(len(rows))[:100], np.arange(len(rows))[::-1][:70]):
        images, extra, zbin, z, _, _ = ds.__getitems__(idx.tolist())
        np.testing.assert_array_equal(images.numpy(), store.images(rows[idx]))
        np.testing.assert_array_equal(extra.numpy()[:, 0], store.column("ebv", rows[idx]))
        np.testing.assert_array_equal(z.numpy(), store.column("z_spec", rows[idx]))
        zb = zbin.numpy()
        assert np.all((grid.edges[zb] <= z.numpy()) & (z.numpy() < grid.edges[zb + 1]))
    image, _, _, z0, _, _ = ds[5]
    np.testing.assert_array_equal(image.numpy(), store.images(rows[5:6])[0])
    assert float(z0) == store.column("z_spec", rows[5:6])[0]


def test_a_training_set_that_fits_its_cache_is_read_from_the_store_once(toy):
    """With ``cache_bytes`` above the dataset's images, every block is read from the store once and
    the batches are those of the small cache; below it, the small cache evicts (memory stays bounded)."""
    from deepdip.train.data import StoreDataset
    from deepdip.zgrid import ZGrid

    store = CutoutStore(toy)
    grid = ZGrid(0.0, 0.4, 180)
    rows = np.arange(len(store))[: 4 * 64 + 10]
    need = len(rows) * 4 * store.n_bands * int(np.prod(store.image_shape))
    reads = []

    class Counting(CutoutStore):
        def images(self, rows=None):
            reads.append(len(rows))
            return super().images(rows)

    small = StoreDataset(store, rows, grid, cache_blocks=1)
    whole = StoreDataset(Counting(toy), rows, grid, cache_blocks=1, cache_bytes=need)
    bounded = StoreDataset(store, rows, grid, cache_blocks=1, cache_bytes=need - 1)
    assert whole.holds_all and not bounded.holds_all
    epochs = [np.random.default_rng(e).permutation(len(rows)) for e in range(3)]
    for order in epochs:
        for s in range(0, len(rows), 32):
            idx = order[s:s + 32].tolist()
            for a, b, c in zip(whole.__getitems__(idx), small.__getitems__(idx), bounded.__getitems__(idx),
                               strict=True):
                assert torch.equal(a, b) and torch.equal(a, c)
    assert sum(reads) == len(rows) and len(reads) == 5        # five blocks, each read once over three epochs
    assert whole._loaded.all() and len(bounded._cache) <= 1


# -- DDP sharding -------------------------------------------------------------------------------
def _epoch_batches(n, world, epoch, batch_size=32, drop_last=False, shuffle=True, seed=4):
    """Batches of every rank in one epoch: ``[[batch, ...] per rank]``."""
    out = []
    for rank in range(world):
        s = BlockShuffleBatchSampler(n, batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world,
                                     drop_last=drop_last)
        s.sampler.set_epoch(epoch)   # where Lightning calls it
        out.append([np.asarray(b) for b in s])
        assert len(s) == len(out[-1])
    return out


@pytest.mark.parametrize("n,world", [(300, 2), (301, 3), (100, 4), (5 * 1024 + 37, 2), (3000, 3)])
def test_ddp_ranks_get_disjoint_shares_of_the_training_rows(n, world):
    """Every rank gets batches (the same number: DDP steps in lockstep), the ranks' rows are
    disjoint and together are the whole training set but for the < world rows an epoch leaves out."""
    shares = []
    for epoch in (0, 1):
        per_rank = _epoch_batches(n, world, epoch)
        counts = [len(b) for b in per_rank]
        assert min(counts) > 0 and len(set(counts)) == 1, counts
        rows = [np.concatenate(b) for b in per_rank]
        union = np.concatenate(rows)
        assert len(np.unique(union)) == len(union), "two ranks (or two batches) share a row"
        assert union.min() >= 0 and union.max() < n
        assert len(union) == n - n % world
        shares.append(rows[0])
        # drop_last: still the same number of full batches on every rank
        full = _epoch_batches(n, world, epoch, drop_last=True, batch_size=16)
        assert len({len(b) for b in full}) == 1 and all(len(x) == 16 for b in full for x in b)
    assert not np.array_equal(np.sort(shares[0]), np.sort(shares[1])), "shares must be reshuffled each epoch"


def test_one_process_epoch_is_a_permutation_of_all_rows():
    for n in (1, 60, 1024, 3000):
        [batches] = _epoch_batches(n, 1, 0)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(n))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ddp_validation_rows_are_split_exactly(world):
    per_rank = _epoch_batches(101, world, 0, shuffle=False)
    assert all(len(b) > 0 for b in per_rank)
    assert np.array_equal(np.concatenate([np.concatenate(b) for b in per_rank]), np.arange(101))


def test_a_rank_without_batches_is_refused(toy):
    with pytest.raises(DeepdipError, match="cannot be shared by 4 processes"):
        BlockShuffleBatchSampler(3, 8, shuffle=True, seed=0, rank=0, world_size=4)
    with pytest.raises(DeepdipError, match="cannot be shared by 2 processes"):   # full batches only
        BlockShuffleBatchSampler(200, 128, shuffle=True, seed=0, rank=1, world_size=2, drop_last=True)
    # The data module refuses before reading anything, on every rank alike.
    from types import SimpleNamespace

    from deepdip.zgrid import ZGrid

    store = CutoutStore(toy)
    rows = np.arange(len(store))
    for train_rows, val_rows, what in [(rows[:7], rows[7:20], "training"), (rows[:300], rows[300:302], "validation")]:
        dm = make_datamodule(store, train_rows, val_rows, ZGrid(0.0, 0.4, 180), batch_size=8, num_workers=0, seed=0)
        dm.trainer = SimpleNamespace(global_rank=1, world_size=4)
        with pytest.raises(DeepdipError, match=f"{what} rows cannot be shared by 4 processes"):
            dm.setup("fit")
    dm = make_datamodule(store, rows[:300], rows[300:310], ZGrid(0.0, 0.4, 180), batch_size=8, num_workers=0, seed=0)
    dm.trainer = SimpleNamespace(global_rank=1, world_size=4)
    dm.setup("fit")
    assert len(dm.train_dataloader()) == len(dm.train_dataloader()) > 0


# -- learning -------------------------------------------------------------------------------------
def test_training_beats_the_prior_on_a_learnable_toy_store(tmp_path):
    """On toy galaxies whose colours, size and flux depend on z, the trained CNN is far better than
    the prior (the training redshifts, i.e. what a network that learnt nothing, e.g. from shuffled
    labels, predicts): a fraction of its sigma_MAD and of its bias at low and at high redshift."""
    from deepdip.catalog import read_catalog
    from deepdip.metrics import bias, sigma_mad
    from deepdip.predict import predict_store
    from deepdip.train import train

    store = make_toy_store(tmp_path / "learn.h5", n=600, size=8, seed=0)
    run = train(store, fold=0, epochs=12, batch_size=32, out=tmp_path / "run", seed=1, model_kwargs=json.loads(TINY),
                threads=1, progress=False, num_workers=0, tensorboard=False)
    cat = read_catalog(predict_store(run, store, tmp_path / "cnn.parquet", rows="test", progress=False))
    zp, zs = cat.table["z_mean"].to_numpy(), cat.table["z_spec"].to_numpy()
    s = CutoutStore(store)
    train_z = s.column("z_spec", s.split_rows("train", fold=0))
    prior = np.full_like(zs, np.median(train_z))   # the prior's best point estimate for sigma_MAD
    lo, hi = zs < np.median(train_z), zs >= np.median(train_z)
    assert min(lo.sum(), hi.sum()) > 20
    assert sigma_mad(prior, zs) > 0.08                                  # the toy range is wide
    assert sigma_mad(zp, zs) < 0.35 * sigma_mad(prior, zs)
    for half in (lo, hi):                                               # the prior: +-0.07 or more
        assert abs(bias(prior[half], zs[half])) > 0.05
        assert abs(bias(zp[half], zs[half])) < 0.3 * abs(bias(prior[half], zs[half]))
    assert abs(bias(zp, zs)) < 0.01


# -- end to end: determinism, resume, config guard ----------------------------------------------
def _weights(run):
    state = torch.load(Path(run) / "fold0" / "member0" / "model.pt", weights_only=True)["state_dict"]
    return state


def test_same_command_same_model_whatever_the_loader_workers(toy, tmp_path):
    # "b" reads its batches in a worker process, "a" in the training process: the batches, augmentation
    # and dropout are drawn in the training process, so the weights are the same bit for bit
    for name, workers in (("a", "0"), ("b", "1")):
        p = cli(*train_cmd(toy, tmp_path / name, "--epochs", "2", "--workers", workers))
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["model"] == "compact" and run["zgrid"]["nbins"] == 180
    # Each epoch's training throughput, beside the model file (which stays bit-for-bit repeatable).
    record = json.loads((tmp_path / "a" / "fold0" / "member0" / "throughput.json").read_text())
    assert record["loader_workers"] == 0 and record["threads"] == 1 and record["image_cache_bytes"] > 0
    epochs = record["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    for e in epochs:
        assert e["images"] > 0 and e["seconds"] >= e["step_seconds"] > 0
        # "seconds" is rounded to 1e-4 s: on a fast machine a toy epoch takes a few hundredths of a second
        assert e["images_per_s"] == pytest.approx(e["images"] / e["seconds"], rel=1e-3 + 6e-5 / e["seconds"])
        assert e["loader_wait_seconds"] == pytest.approx(e["seconds"] - e["step_seconds"], abs=1e-3)


def _sessions(member):
    """Epochs logged by each training session of a member, oldest first (one CSV version per session)."""
    import csv

    out = []
    for d in sorted((member / "logs").glob("version_*"), key=lambda d: int(d.name.split("_")[1])):
        path = d / "metrics.csv"
        rows = list(csv.DictReader(path.open())) if path.exists() else []
        out.append(sorted({int(r["epoch"]) for r in rows if r.get("epoch")}))
    return out


def test_resume_after_kill_matches_unbroken_run(toy, tmp_path):
    """Kill a training process after its first epoch checkpoint; the same command resumes the run
    from the epoch after that checkpoint (not from scratch), and the result equals an
    uninterrupted run bit for bit."""
    epochs = "6"
    member = tmp_path / "killed" / "fold0" / "member0"
    p = cli(*train_cmd(toy, tmp_path / "killed", "--epochs", epochs))
    last = member / "checkpoints" / "last.ckpt"
    while not last.exists() and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not (member / "model.pt").exists()
    killed_at = torch.load(last, weights_only=True, map_location="cpu")["epoch"]   # epochs done: killed_at + 1
    assert killed_at + 1 < int(epochs)
    before = len(_sessions(member))

    p = cli(*train_cmd(toy, tmp_path / "killed", "--epochs", epochs))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    sessions = _sessions(member)
    assert len(sessions) == before + 1
    # The resumed session starts after the checkpoint's epoch and trains only what was left.
    assert sessions[-1] == list(range(killed_at + 1, int(epochs))), sessions
    assert torch.load(member / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["epoch"] \
        == int(epochs) - 1
    recorded = json.loads((member / "throughput.json").read_text())["epochs"]
    assert [e["epoch"] for e in recorded] == list(range(int(epochs)))   # the killed session's epochs kept

    p = cli(*train_cmd(toy, tmp_path / "unbroken", "--epochs", epochs))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert _sessions(tmp_path / "unbroken" / "fold0" / "member0") == [list(range(int(epochs)))]
    wk, wu = _weights(tmp_path / "killed"), _weights(tmp_path / "unbroken")
    assert all(torch.equal(wk[k], wu[k]) for k in wu)
    # A finished member is not retrained: no new session, the model file untouched.
    model = member / "model.pt"
    stamp = (model.stat().st_mtime_ns, model.read_bytes())
    p = cli(*train_cmd(toy, tmp_path / "killed", "--epochs", epochs))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert len(_sessions(member)) == before + 1
    assert (model.stat().st_mtime_ns, model.read_bytes()) == stamp


def test_run_with_other_settings_is_refused(toy, tmp_path):
    from deepdip.train import train

    train(toy, fold=0, out=tmp_path / "r", epochs=1, model_kwargs=json.loads(TINY), progress=False,
          num_workers=0, tensorboard=False)
    with pytest.raises(DeepdipError, match="other settings"):
        train(toy, fold=0, out=tmp_path / "r", epochs=1, seed=9, model_kwargs=json.loads(TINY), progress=False)
    with pytest.raises(DeepdipError, match="fold 7 out of range"):
        train(toy, fold=7, out=tmp_path / "r2", epochs=1)


class _Clock:
    """A fake clock for :mod:`deepdip.train.budget`: every reading of ``monotonic`` (the epoch
    clock) advances it by ``epoch_s``, every reading of ``perf_counter`` (the step timer) by
    ``step_s``, so the budget's plan is the same on any machine, however loaded."""

    def __init__(self, epoch_s, step_s):
        self.t, self.p, self.epoch_s, self.step_s = 1000.0, 0.0, epoch_s, step_s

    def monotonic(self):
        self.t += self.epoch_s
        return self.t

    def perf_counter(self):
        self.p += self.step_s
        return self.p


def test_time_budget_plans_epochs(toy, tmp_path, monkeypatch):
    from deepdip.train import budget, train

    # Each epoch "takes" two seconds (one reading at its end), a step 5 ms: a 9.15-second budget
    # holds 4 full epochs of the 500 asked for, whatever the real speed.
    monkeypatch.setattr(budget, "time", _Clock(epoch_s=2.0, step_s=0.005))
    # 9.15 s: train() hands the member what is left of the budget at its start (microseconds less).
    run = train(toy, fold=0, out=tmp_path / "b", epochs=500, max_minutes=0.1525, model_kwargs=json.loads(TINY),
                progress=False, num_workers=0, tensorboard=False)
    info = torch.load(run / "fold0" / "member0" / "model.pt", weights_only=True)["info"]
    plan = json.loads((run / "fold0" / "member0" / "budget_plan.json").read_text())
    assert plan["train_batches"] is None          # full epochs: 6 of them fit easily
    assert info["epochs"] == 4


def test_plan_epochs_shortens_only_budgets_shorter_than_a_few_epochs():
    from deepdip.train.budget import MIN_EPOCHS, STEP_OVERHEAD, plan_epochs

    # 100 batches of 0.1 s: a full epoch ~14 s, so 10 minutes hold 40 of them: untouched.
    assert plan_epochs(600, 100, 10, 0.1)["train_batches"] is None
    # The paper's network on a CPU: 170 batches of 4.7 s (an epoch ~19 min) in a 5-minute budget.
    plan = plan_epochs(300, 170, 10, 4.7)
    per_epoch = plan["train_batches"] * 4.7 * STEP_OVERHEAD + plan["val_batches"] * 4.7 * STEP_OVERHEAD * 2 / 3
    assert 1 <= plan["train_batches"] < 170 and 2 <= plan["val_batches"] <= 10
    assert per_epoch <= 300 / MIN_EPOCHS * 1.05    # MIN_EPOCHS validations fit in the budget


def test_short_budget_trains_shorter_epochs_and_keeps_the_plan(toy, tmp_path, monkeypatch):
    from deepdip.train import budget, train

    # The tiny model's epochs take milliseconds: ask for more epochs than any full one allows in
    # the 3-second minimum budget, so that the budget is "short" whatever this machine's speed.
    monkeypatch.setattr(budget, "MIN_EPOCHS", 10_000)
    kw = dict(fold=0, out=tmp_path / "s", model_kwargs=json.loads(TINY), batch_size=8, progress=False,
              num_workers=0, tensorboard=False)
    run = train(toy, max_minutes=0.01, **kw)
    member = run / "fold0" / "member0"
    plan = json.loads((member / "budget_plan.json").read_text())
    assert plan["train_batches"] is not None and plan["train_batches"] < plan["full_epoch_s"] / plan["step_s"]
    last = torch.load(member / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    # Every epoch ran exactly the planned number of batches.
    assert last["global_step"] == (last["epoch"] + 1) * plan["train_batches"]
    assert (member / "model.pt").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(toy, tmp_path):
    """DDP over 2 CPU processes (gloo): the same code path as multi-GPU / multi-node training. On
    this small store (~290 training rows, less than one 1024-row window) both ranks must train."""
    p = cli(*train_cmd(toy, tmp_path / "ddp", "--epochs", "2", "--accelerator", "cpu", "--devices", "2",
                       "--strategy", "ddp"))
    out, _ = p.communicate(timeout=400)
    assert p.returncode == 0, out
    member = tmp_path / "ddp" / "fold0" / "member0"
    assert (member / "model.pt").exists()
    # Each rank's share of the training rows, in batches as the data module cuts them.
    n_train = len(split_train_val(CutoutStore(toy), 0, seed=3)[0])
    assert 128 < n_train // 2 < 1024       # one window per rank, more than one batch of 128 rows
    per_rank = (n_train // 2) // 128       # full batches only (drop_last) on every rank
    last = torch.load(member / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert last["epoch"] == 1 and last["global_step"] == 2 * per_rank


@pytest.mark.slow
def test_ddp_refuses_a_rank_without_batches_end_to_end(tmp_path):
    """Under a real 2-process DDP launch the refusal ends both processes with the one-line error
    (no hang waiting for the empty rank, no model written)."""
    store = make_toy_store(tmp_path / "small.h5", n=15, size=8, seed=0)   # 1 validation row for 2 ranks
    p = cli(*train_cmd(store, tmp_path / "ddp", "--epochs", "1", "--accelerator", "cpu", "--devices", "2",
                       "--strategy", "ddp"))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 2, out
    assert "deepdip train: error: 1 validation rows cannot be shared by 2 processes" in out
    assert not list(tmp_path.glob("ddp/fold*/member*/model.pt"))


def test_unreadable_budget_plan_is_replaced(toy, tmp_path):
    """A kill can leave a truncated budget_plan.json: the rerun makes a new plan instead of crashing."""
    import shutil

    from deepdip.train import train

    kw = dict(fold=0, out=tmp_path / "p", max_minutes=0.01, model_kwargs=json.loads(TINY), batch_size=8,
              progress=False, num_workers=0, tensorboard=False)
    member = train(toy, **kw) / "fold0" / "member0"
    (member / "model.pt").unlink()
    shutil.rmtree(member / "checkpoints")
    (member / "budget_plan.json").write_text("{truncated")
    train(toy, **kw)
    plan = json.loads((member / "budget_plan.json").read_text())
    assert "train_batches" in plan and (member / "model.pt").exists()


# -- fine-tuning: the same engine, started from a model file ------------------------------------
@pytest.fixture(scope="module")
def base_run(toy, tmp_path_factory):
    """A trained tiny model to fine-tune from."""
    from deepdip.train import train

    return train(toy, fold=0, epochs=1, out=tmp_path_factory.mktemp("base") / "run", seed=2,
                 model_kwargs=json.loads(TINY), threads=1, progress=False, num_workers=0, tensorboard=False)


def _member_state(run, fold=0, member=0):
    return torch.load(Path(run) / f"fold{fold}" / f"member{member}" / "model.pt", weights_only=True)


def _is_head(key: str) -> bool:
    return key.startswith("backbone.head.")


def test_finetune_linear_probe_trains_the_head_only_and_keeps_the_normaliser(toy, base_run, tmp_path):
    """--freeze backbone: every backbone weight and buffer and the input normaliser are the initial
    model's, bit for bit; the head moved. The network and bins come from the model file, the peak
    learning rate is a tenth of the model's, and run.json records where the run started."""
    from deepdip.train import train
    from deepdip.train.config import FINETUNE_LR_FACTOR, MODEL_DEFAULTS

    base = base_run / "fold0" / "member0" / "model.pt"
    run = train(toy, fold=1, epochs=2, out=tmp_path / "probe", seed=4, init_model=str(base), freeze="backbone",
                threads=1, progress=False, num_workers=0, tensorboard=False)
    before, after = _member_state(base_run)["state_dict"], _member_state(run, fold=1)["state_dict"]
    assert before.keys() == after.keys()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all(_is_head(k) for k in moved), moved
    assert any(k.startswith("normalizer.") for k in before)        # it is there, and unchanged
    config = json.loads((run / "run.json").read_text())
    assert config["finetune"] == {"init_model": [str(base.absolute())], "freeze": "backbone", "freeze_bn": False}
    assert config["lr"] == pytest.approx(MODEL_DEFAULTS["compact"]["lr"] * FINETUNE_LR_FACTOR)
    from deepdip.models import model_defaults

    assert config["model_kwargs"] == {**model_defaults("compact"), **json.loads(TINY)}   # the initial network's


def test_finetune_all_layers_with_frozen_batch_norm_statistics(toy, base_run, tmp_path):
    """--freeze-bn: convolution weights are trained, batch-norm running statistics stay the initial
    model's (without it they change: the control)."""
    from deepdip.train import train

    kw = dict(fold=0, epochs=1, seed=4, init_model=str(base_run), threads=1, progress=False, num_workers=0,
              tensorboard=False)
    frozen = _member_state(train(toy, out=tmp_path / "bn", freeze_bn=True, **kw))["state_dict"]
    free = _member_state(train(toy, out=tmp_path / "free", **kw))["state_dict"]
    before = _member_state(base_run)["state_dict"]
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    weights = [k for k in before if k.endswith(".weight") and not k.startswith("normalizer.")]
    assert stats and weights
    assert all(torch.equal(before[k], frozen[k]) for k in stats)
    assert not all(torch.equal(before[k], free[k]) for k in stats)
    assert not all(torch.equal(before[k], frozen[k]) for k in weights)


def test_finetune_refuses_what_does_not_fit_the_initial_model(toy, base_run, tmp_path):
    from deepdip.train import train

    kw = dict(fold=0, epochs=1, out=tmp_path / "r", init_model=str(base_run), progress=False, num_workers=0)
    with pytest.raises(DeepdipError, match="--model-kwargs"):
        train(toy, model_kwargs={"hidden": 16}, **kw)
    other = make_toy_store(tmp_path / "other.h5", n=60, size=8, seed=1)   # 8x8 stamps, the model's are 16x16
    with pytest.raises(DeepdipError, match="image size"):
        train(other, **kw)
    with pytest.raises(DeepdipError, match="no such run directory or model file"):
        train(toy, **{**kw, "init_model": str(tmp_path / "missing.pt")})
    assert not (tmp_path / "r").exists()   # nothing written for a refused start
    p = cli(*train_cmd(toy, tmp_path / "c", "--init-model", str(base_run), "--freeze", "all"))
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and "--freeze" in out and len(out.strip().splitlines()) == 1, out


def test_budget_probe_times_the_modules_own_optimiser(toy):
    """The time-budget probe steps the optimiser training builds (PhotozModule.build_optimizer):
    Adam for pasquet19's recipe, and the head's parameters only with a frozen backbone."""
    import copy

    from deepdip.train.budget import measure_step_seconds
    from deepdip.train.data import StoreDataset
    from deepdip.train.module import PhotozModule
    from deepdip.zgrid import ZGrid

    net = dict(model="compact", in_chans=5, num_bins=20, img_size=16, n_extra=1, model_kwargs=json.loads(TINY))
    module = PhotozModule(net=net, zcentres=ZGrid(0, 0.4, 20).centres.tolist(), optimizer="adam", freeze="backbone")
    made = []

    def spy(n):
        made.append(module.build_optimizer(n))
        return made[-1]

    store = CutoutStore(toy)
    ds = StoreDataset(store, np.arange(16), ZGrid(0, 0.4, 20))
    assert measure_step_seconds(module.net, ds, 8, False, torch.device("cpu"), make_optimizer=spy) > 0
    (opt,) = made
    assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
    n_trained = sum(p.numel() for g in opt.param_groups for p in g["params"])
    head = copy.deepcopy(module.net.backbone.get_head())
    assert n_trained == sum(p.numel() for p in head.parameters()) < sum(p.numel() for p in module.net.parameters())
