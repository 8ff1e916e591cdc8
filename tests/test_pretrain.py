"""deepdip pretrain (SimCLR on every cutout) and fine-tuning from its encoder (issue 15, items 1-2)."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from deepdip.errors import DeepdipError
from deepdip.models.modelfile import ModelFile
from deepdip.train.pretrain import astro_views, nt_xent
from deepdip.train.toydata import make_toy_store

from .conftest import TINY_MODEL, cli_env

TINY = json.dumps(TINY_MODEL)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_store(tmp_path_factory.mktemp("pre") / "toy.h5", n=300, size=8, seed=0)


def cmd(store, out, *extra):
    return [sys.executable, "-m", "deepdip", "pretrain", str(store), "--out", str(out), "--batch-size", "32",
            "--model-kwargs", TINY, "--threads", "1", "--no-progress", *extra]


def _weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)["state_dict"]


def test_nt_xent_prefers_matching_views():
    torch.manual_seed(0)
    a = torch.randn(16, 8)
    assert nt_xent(a, a + 0.01 * torch.randn(16, 8), 0.2) < nt_xent(a, torch.randn(16, 8), 0.2) - 1.0


def test_nt_xent_over_gathered_batches_is_the_loss_of_the_whole_batch():
    """What each DDP process computes (its views against every process's) averages to the loss one
    process would compute on the concatenated batch, and the gradient flows to every view."""
    torch.manual_seed(1)
    a, b = torch.randn(12, 8, requires_grad=True), torch.randn(12, 8, requires_grad=True)
    whole = nt_xent(a, b, 0.2)
    per_rank = [nt_xent(a[r * 4:(r + 1) * 4], b[r * 4:(r + 1) * 4], 0.2, all_a=a, all_b=b, offset=4 * r)
                for r in range(3)]
    assert torch.allclose(torch.stack(per_rank).mean(), whole, atol=1e-6)
    g_whole = torch.autograd.grad(whole, (a, b))
    g_split = torch.autograd.grad(torch.stack(per_rank).mean(), (a, b))
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(g_whole, g_split, strict=True))


@pytest.mark.slow
def test_pretraining_under_ddp_on_two_cpu_processes(toy, tmp_path):
    """deepdip pretrain --strategy ddp --devices 2 (gloo): both processes train on their share, the loss
    is contrasted over the gathered batch, and one encoder comes out."""
    p = subprocess.run(cmd(toy, tmp_path / "ddp", "--epochs", "2", "--accelerator", "cpu", "--devices", "2",
                           "--strategy", "ddp"), env=cli_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    model = ModelFile(tmp_path / "ddp" / "model.pt")
    assert model.info["epochs"] == 2 and model.bands == list("ugriz")
    last = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    # 300 galaxies, 2 processes of 150, batches of 32 (full ones only): 4 steps an epoch
    assert last["global_step"] == 2 * ((300 // 2) // 32)


def test_views_keep_flux_scale_and_move_ebv_with_the_dimming():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16) + 1.0
    ebv = torch.full((64, 1), 0.05)
    v, e = astro_views(x, ebv, torch.full((3,), 0.01), torch.tensor([4.0, 3.0, 2.0]), torch.Generator().manual_seed(1),
                       shift=1.0, blur=1.0, noise=1.0, ebv_jitter=0.05)
    assert v.shape == x.shape and e.shape == ebv.shape and not torch.equal(v, x)
    ratio = v.sum((2, 3)) / x.sum((2, 3))                      # total flux: only the reddening changes it
    expected = 10 ** (-0.4 * torch.tensor([4.0, 3.0, 2.0]) * (e - ebv))
    assert torch.allclose(ratio, expected, rtol=0.02)


def test_pretraining_learns_reruns_identically_and_resumes_after_a_kill(toy, tmp_path):
    p = subprocess.run(cmd(toy, tmp_path / "a", "--epochs", "4"), env=cli_env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    rows = (tmp_path / "a" / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert losses[-1] < losses[0] - 0.1                          # it learns to match the views
    model = ModelFile(tmp_path / "a" / "model.pt")             # a deepdip model file, weights_only
    assert model.bands == list("ugrizy"[:5])

    killed = tmp_path / "k"
    proc = subprocess.Popen(cmd(toy, killed, "--epochs", "4", "--lr", "0.001"), env=cli_env(),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    while not last.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (killed / "model.pt").exists()
    p = subprocess.run(cmd(toy, killed, "--epochs", "4"), env=cli_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    wa, wk = _weights(tmp_path / "a"), _weights(killed)
    assert all(torch.equal(wa[k], wk[k]) for k in wa)           # resumed = unbroken = rerun

    other = subprocess.run(cmd(toy, tmp_path / "a", "--epochs", "5"), env=cli_env(), capture_output=True, text=True,
                           timeout=600)
    assert other.returncode == 2 and "other settings (epochs)" in other.stderr


def test_finetuning_from_the_encoder_and_what_is_refused(toy, tmp_path):
    from deepdip.train import train
    from deepdip.train.pretrain import pretrain

    enc = pretrain(toy, tmp_path / "enc", epochs=1, batch_size=32, model_kwargs=TINY_MODEL, threads=1, progress=False)
    run = train(toy, fold=0, epochs=1, batch_size=32, out=tmp_path / "ft", init_model=str(enc / "model.pt"),
                threads=1, progress=False, num_workers=0, tensorboard=False)
    assert (run / "fold0" / "member0" / "model.pt").exists()
    four = make_toy_store(tmp_path / "four.h5", n=100, size=8, seed=0, n_bands=4)
    with pytest.raises(DeepdipError, match="does not match model"):
        train(four, fold=0, epochs=1, out=tmp_path / "bad", init_model=str(enc / "model.pt"), threads=1,
              progress=False, num_workers=0, tensorboard=False)
    small = make_toy_store(tmp_path / "small.h5", n=20, size=8, seed=0)
    with pytest.raises(DeepdipError, match="fewer than one batch"):
        pretrain(small, tmp_path / "enc2", batch_size=32, model_kwargs=TINY_MODEL)
