"""Redshift grid, survey presets, atomic writes and the command-line frame."""

import json

import numpy as np
import pytest

from deepdip.atomic import atomic_path
from deepdip.cli import COMMANDS, main
from deepdip.errors import DeepdipError
from deepdip.surveys import available_surveys, load_survey
from deepdip.zgrid import ZGrid


def test_zgrid_centres_and_bins():
    grid = ZGrid(0.0, 0.4, 180)
    assert grid.edges.shape == (181,) and grid.centres.shape == (180,)
    assert grid.centres[0] == pytest.approx(0.4 / 360)  # centre, not the left edge
    np.testing.assert_array_equal(grid.bin_index([0.0, 0.0022, 0.39999, 0.5, -1]), [0, 0, 179, 179, 0])
    assert ZGrid.from_edges(grid.edges) == grid
    with pytest.raises(ValueError):
        ZGrid.from_edges([0, 0.1, 0.3])
    with pytest.raises(ValueError):
        ZGrid(0.4, 0.0, 10)


def test_survey_presets():
    assert {"sdss", "cfhtls-wide", "legacy"} <= set(available_surveys())
    sdss = load_survey("sdss")
    assert sdss.bands == tuple("ugriz") and sdss.pixel_scale == 0.396 and sdss.stamp_size == 64
    assert sdss.zgrid == ZGrid(0.0, 0.4, 180)
    deep = load_survey("cfhtls-wide")
    assert deep.zmax >= 1.5 and deep.nbins > 180 and deep.get("mag_limit") == 22.5
    with pytest.raises(DeepdipError, match="unknown survey 'nope'"):
        load_survey("nope")


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_cli_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: deepdip" in capsys.readouterr().out


# -- settings declared once (deepdip.options): the CLI and the checks come from the dataclass ------
def test_train_and_predict_clis_are_generated_from_their_config_dataclasses():
    """Every CLI field of TrainConfig/PredictConfig is an option of its command, parsed back into
    the same dataclass: types, JSON keywords, ``--no-x`` for settings on by default, devices."""
    import argparse
    import dataclasses

    from deepdip import options
    from deepdip.predict.config import PredictConfig
    from deepdip.train.config import IDENTITY_KEYS, TrainConfig

    parser = argparse.ArgumentParser()
    options.add_arguments(parser, TrainConfig)
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help"}
    cli_fields = [f for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]]
    assert flags == {f.name: options.flag_of(f) for f in cli_fields}
    assert flags["augment"] == "--no-augment" and flags["num_workers"] == "--workers"
    args = parser.parse_args(["--lr", "0.01", "--no-augment", "--devices", "2", "--model-kwargs", '{"hidden": 8}',
                              "--freeze", "backbone", "--freeze-bn"])
    cfg = options.from_namespace(TrainConfig, args)
    assert cfg == TrainConfig(lr=0.01, augment=False, devices=2, model_kwargs={"hidden": 8}, freeze="backbone",
                              freeze_bn=True)
    assert options.from_namespace(TrainConfig, parser.parse_args([])) == TrainConfig()
    assert {"lr", "seed", "model_kwargs", "max_train", "bands", "zgrid"} <= set(IDENTITY_KEYS)
    assert "epochs" not in IDENTITY_KEYS and "devices" not in IDENTITY_KEYS   # a run may be continued longer
    parser = argparse.ArgumentParser()
    options.add_arguments(parser, PredictConfig)
    cfg = options.from_namespace(PredictConfig, parser.parse_args(["--accelerator", "cpu", "--no-progress"]))
    assert cfg.lightning and not cfg.progress and not PredictConfig().lightning


@pytest.mark.parametrize("change, flag", [
    (dict(lr=0.0), "--lr"), (dict(ensemble=1.5), "--ensemble"), (dict(schedule="linear"), "--schedule"),
    (dict(val_fraction=0.95), "val_fraction"), (dict(devices=0), "--devices"), (dict(strategy="nope"), "--strategy"),
    (dict(precision="8-bit"), "--precision"), (dict(model_kwargs=[1]), "--model-kwargs"),
    (dict(freeze="all"), "--freeze"),
])
def test_train_config_checks_name_the_flag(change, flag):
    from deepdip.errors import DeepdipValueError
    from deepdip.train.config import TrainConfig

    with pytest.raises(DeepdipValueError, match=flag):
        TrainConfig(**change).check()


# -- --precision auto (deepdip.hardware): measured, with a margin, recorded ----------------------
def _fake_steps(monkeypatch, fp32_s, bf16_s):
    from deepdip import hardware

    monkeypatch.setattr(hardware, "bf16_native", lambda device: True)
    monkeypatch.setattr(hardware, "MIN_STEP_FLOP", 0)      # the test networks are tiny
    monkeypatch.setattr(hardware, "_step", lambda net, x, e, opt, *, bf16, train: bf16_s if bf16 else fp32_s)


@pytest.mark.parametrize("fp32_s, bf16_s, chosen", [(2.0, 1.0, "bf16-mixed"), (1.1, 1.0, "32-true"),
                                                    (1.0, 3.0, "32-true")])
def test_precision_auto_takes_bf16_only_when_clearly_faster(monkeypatch, fp32_s, bf16_s, chosen):
    import torch

    from deepdip.hardware import MIN_SPEEDUP, choose_precision

    _fake_steps(monkeypatch, fp32_s, bf16_s)
    net = torch.nn.Linear(3, 2)
    got, probe = choose_precision(lambda_net(net), torch.zeros(4, 3), torch.zeros(4, 1), train=True)
    assert got == chosen == probe["chosen"] and probe["speedup"] == pytest.approx(fp32_s / bf16_s, abs=1e-3)
    assert probe["min_speedup"] == MIN_SPEEDUP


def lambda_net(linear):
    """A two-input network for the probe (images, extra) -> logits."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = linear

        def forward(self, x, e):
            return self.lin(x)

    return Net()


def test_precision_auto_without_native_bf16_times_nothing(monkeypatch):
    import torch

    from deepdip import hardware

    monkeypatch.setattr(hardware, "bf16_native", lambda device: False)
    monkeypatch.setattr(hardware, "_step", lambda *a, **k: pytest.fail("timed without native bf16"))
    got, probe = hardware.choose_precision(lambda_net(torch.nn.Linear(3, 2)), torch.zeros(4, 3), torch.zeros(4, 1),
                                           train=False)
    assert got == "32-true" and "no native bf16" in probe["reason"]


def test_precision_auto_decides_once_per_machine(monkeypatch, tmp_path):
    """A timed decision is cached under its key: the next call with the same network and batch reads
    it without timing (so a default of ``auto`` cannot flip between two runs), a different batch
    shape or mode is timed afresh, and an unreadable cache only costs a new probe."""
    import torch

    from deepdip import hardware

    _fake_steps(monkeypatch, 1.0, 0.5)
    net, x, e = lambda_net(torch.nn.Linear(3, 2)), torch.zeros(4, 3), torch.zeros(4, 1)
    got, probe = hardware.choose_precision(net, x, e, train=True)
    assert got == "bf16-mixed" and probe["cached"] is False
    cache = hardware.cache_dir() / "precision.json"
    assert str(cache).startswith(str(tmp_path)) and probe["key"] in json.loads(cache.read_text())

    _fake_steps(monkeypatch, 0.5, 1.0)                      # the machine now "times" the other way
    again, probe2 = hardware.choose_precision(net, x, e, train=True)
    assert again == "bf16-mixed" and probe2["cached"] is True and probe2["speedup"] == 2.0
    assert hardware.choose_precision(net, torch.zeros(8, 3), torch.zeros(8, 1), train=True)[0] == "32-true"
    assert hardware.choose_precision(net, x, e, train=False)[0] == "32-true"
    assert hardware.choose_precision(net, x, e, train=True, use_cache=False)[0] == "32-true"

    cache.write_text("{not json")
    assert hardware.choose_precision(net, x, e, train=True)[1]["cached"] is False


def test_precision_auto_keeps_fp32_untimed_for_a_step_with_little_arithmetic(monkeypatch):
    """The work is counted, not timed: the same decision on every machine, however loaded."""
    import torch

    from deepdip import hardware
    from deepdip.models.net import PhotozNet

    monkeypatch.setattr(hardware, "bf16_native", lambda device: True)
    monkeypatch.setattr(hardware, "_step", lambda *a, **k: pytest.fail("a tiny step was timed"))
    net = PhotozNet(model="compact", in_chans=5, num_bins=60, img_size=16, model_kwargs={"widths": [8, 16, 16, 32]})
    x, e = torch.zeros(128, 5, 16, 16), torch.zeros(128, 1)
    flop = hardware.step_flop(net, x, e, train=True)
    assert flop == 3 * hardware.step_flop(net, x, e, train=False) > 0
    got, probe = hardware.choose_precision(net, x, e, train=True)
    assert flop < hardware.MIN_STEP_FLOP and got == "32-true" and "too little" in probe["reason"]
    assert not (hardware.cache_dir() / "precision.json").exists()
    real = PhotozNet(model="compact", in_chans=5, num_bins=180, img_size=64)   # the sdss default is timed
    real_flop = hardware.step_flop(real, torch.zeros(128, 5, 64, 64), torch.zeros(128, 1), train=True)
    assert real_flop > 2 * hardware.MIN_STEP_FLOP


def test_precision_is_auto_by_default_except_in_the_demo():
    import inspect

    from deepdip.demo import run_demo
    from deepdip.predict.config import PredictConfig
    from deepdip.predict.core import predict_store
    from deepdip.train.config import TrainConfig

    assert TrainConfig().precision == PredictConfig().precision == "auto"
    assert inspect.signature(predict_store).parameters["precision"].default == "auto"
    assert inspect.signature(run_demo).parameters["precision"].default == "32-true"


def test_precision_auto_is_recorded_and_reused_by_the_run(monkeypatch, tmp_path):
    """train(precision="auto") probes once, trains in the chosen precision, records the probe in
    run.json and the precision in the model file; the same command later reuses the record."""
    import json

    import torch

    from deepdip import hardware
    from deepdip.train import train
    from deepdip.train.toydata import make_toy_store

    from .conftest import TINY_MODEL

    calls = []
    real = hardware.choose_precision

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    _fake_steps(monkeypatch, 2.0, 1.0)                     # bf16 "twice as fast" here
    monkeypatch.setattr(hardware, "choose_precision", spy)
    store = make_toy_store(tmp_path / "toy.h5", n=120, size=8, seed=0)
    kw = dict(fold=0, epochs=1, out=tmp_path / "run", precision="auto", model_kwargs=TINY_MODEL, threads=1,
              progress=False, num_workers=0, tensorboard=False)
    run = train(store, **kw)
    record = json.loads((run / "run.json").read_text())["precision_auto"]
    assert record["chosen"] == "bf16-mixed" and record["speedup"] == 2.0 and len(calls) == 1
    info = torch.load(run / "fold0" / "member0" / "model.pt", weights_only=True)["info"]
    assert info["precision"] == "bf16-mixed"
    train(store, **{**kw, "fold": 1})                      # the same run, one more fold: no new probe
    assert len(calls) == 1
    assert torch.load(run / "fold1" / "member0" / "model.pt", weights_only=True)["info"]["precision"] == "bf16-mixed"


def test_loader_workers_default_to_in_process_reading_on_a_cpu_with_two_cores_per_process(monkeypatch):
    from deepdip import hardware

    assert hardware.default_loader_workers(on_cpu=False) == 4
    for cores, processes, want in ((1, 1, 0), (2, 1, 0), (4, 2, 0), (3, 1, 1), (8, 2, 1)):
        monkeypatch.setattr(hardware, "usable_cores", lambda c=cores: c)
        assert hardware.default_loader_workers(on_cpu=True, processes=processes) == want, (cores, processes)
