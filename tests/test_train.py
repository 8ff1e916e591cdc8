"""Training: augmentation, normalisation, splits, determinism, resume after a kill, DDP."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdip.errors import DeepdipError
from deepdip.store import CutoutStore
from deepdip.train.augment import allowed_symmetries, dihedral, random_dihedral
from deepdip.train.normalize import Normalizer
from deepdip.train.run import member_seed, split_train_val
from deepdip.train.toydata import make_toy_store

TINY = '{"widths": [8, 16, 16, 32], "hidden": 32}'   # seconds per run on a shared CPU
SRC = str(Path(__file__).resolve().parents[1] / "src")


def cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "deepdip", *map(str, args)], env=env,
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


# -- end to end: determinism, resume, config guard ----------------------------------------------
def _weights(run):
    state = torch.load(Path(run) / "fold0" / "member0" / "model.pt", weights_only=True)["state_dict"]
    return state


def test_same_command_same_model(toy, tmp_path):
    for name in ("a", "b"):
        p = cli(*train_cmd(toy, tmp_path / name, "--epochs", "2"))
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["model"] == "compact" and run["zgrid"]["nbins"] == 180


def test_resume_after_kill_matches_unbroken_run(toy, tmp_path):
    """Kill a training process after its first epoch checkpoint; the same command finishes the
    run, and the result equals an uninterrupted run bit for bit."""
    epochs = "6"
    p = cli(*train_cmd(toy, tmp_path / "killed", "--epochs", epochs))
    last = tmp_path / "killed" / "fold0" / "member0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not (tmp_path / "killed" / "fold0" / "member0" / "model.pt").exists()

    p = cli(*train_cmd(toy, tmp_path / "killed", "--epochs", epochs))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    p = cli(*train_cmd(toy, tmp_path / "unbroken", "--epochs", epochs))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    wk, wu = _weights(tmp_path / "killed"), _weights(tmp_path / "unbroken")
    assert all(torch.equal(wk[k], wu[k]) for k in wu)
    # a finished member is not retrained
    p = cli(*train_cmd(toy, tmp_path / "killed", "--epochs", epochs))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0 and "Epoch" not in out


def test_run_with_other_settings_is_refused(toy, tmp_path):
    from deepdip.train import train

    train(toy, fold=0, out=tmp_path / "r", epochs=1, model_kwargs=json.loads(TINY), progress=False,
          num_workers=0, tensorboard=False)
    with pytest.raises(DeepdipError, match="other settings"):
        train(toy, fold=0, out=tmp_path / "r", epochs=1, seed=9, model_kwargs=json.loads(TINY), progress=False)
    with pytest.raises(DeepdipError, match="fold 7 out of range"):
        train(toy, fold=7, out=tmp_path / "r2", epochs=1)


def test_time_budget_plans_epochs(toy, tmp_path):
    from deepdip.train import train

    run = train(toy, fold=0, out=tmp_path / "b", epochs=500, max_minutes=0.15, model_kwargs=json.loads(TINY),
                progress=False, num_workers=0, tensorboard=False)
    info = torch.load(run / "fold0" / "member0" / "model.pt", weights_only=True)["info"]
    assert 1 <= info["epochs"] < 500


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
    """DDP over 2 CPU processes (gloo): the same code path as multi-GPU / multi-node training."""
    p = cli(*train_cmd(toy, tmp_path / "ddp", "--epochs", "2", "--accelerator", "cpu", "--devices", "2",
                       "--strategy", "ddp"))
    out, _ = p.communicate(timeout=400)
    assert p.returncode == 0, out
    assert (tmp_path / "ddp" / "fold0" / "member0" / "model.pt").exists()


def test_unreadable_budget_plan_is_replaced(toy, tmp_path):
    from deepdip.train import train

    member = tmp_path / "p" / "fold0" / "member0"
    member.mkdir(parents=True)
    (member / "budget_plan.json").write_text("{truncated")
    run = train(toy, fold=0, out=tmp_path / "p", max_minutes=0.01, model_kwargs=json.loads(TINY), batch_size=8,
                progress=False, num_workers=0, tensorboard=False)
    plan = json.loads((run / "fold0" / "member0" / "budget_plan.json").read_text())
    assert "train_batches" in plan and (run / "fold0" / "member0" / "model.pt").exists()
