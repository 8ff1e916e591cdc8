"""`deepdip demo` end to end on a tiny mock: every step runs, the report and metrics are written,
the same command gives the same metrics.json byte for byte, and bad options are refused before any work."""

import json

import pytest

from deepdip.cli import main

TINY = ["--n", "240", "--epochs", "2", "--workers", "1", "--baselines", "knn,bpz", "--seed", "3"]


def test_demo_end_to_end_tiny_and_reproducible(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for method in ("cnn", "knn", "bpz"):
        assert metrics[method]["n"] > 20
        assert 0 < metrics[method]["sigma_mad"] < 1 and 0 <= metrics[method]["outlier_frac"] <= 1
    html = (out / "index.html").read_text()
    assert "gallery.png" in html and "cnn" in html and "bpz" in html
    floor = json.loads((out / "information_floor.json").read_text())
    assert "Information floor" in html and 0 < floor["bayes_true_photometry"]["sigma_mad"] < 1
    assert (out / "gallery.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "report:" in printed and "sigma_MAD" in printed and "2 epochs" in printed
    info = __import__("torch").load(out / "cnn_compact" / "fold0" / "member0" / "model.pt", weights_only=True)["info"]
    assert info["epochs"] == 2   # a fixed length: no time budget, no early stopping

    # The same command in another folder, from scratch: the same numbers, byte for byte.
    other = tmp_path / "again"
    assert main(["demo", "--out", str(other), *TINY]) == 0
    assert (other / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()

    # Rerun in the first folder: every finished step is reused and the numbers do not change.
    assert main(["demo", "--out", str(out), *TINY]) == 0
    assert (out / "metrics.json").read_bytes() == (other / "metrics.json").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--baselines", "knn,magic"], "unknown baseline"),
    (["--baselines", "knn,knn"], "named twice"),
    (["--ensemble", "0"], "--ensemble must be"),
    (["--minutes", "0"], "--minutes must be a positive"),
    (["--minutes", "-5"], "--minutes must be a positive"),
    (["--minutes", "nan"], "--minutes must be a positive"),
    (["--epochs", "0"], "--epochs must be"),
    (["--n", "5"], "--n must be"),
    (["--seed", "-1"], "--seed must be"),
    (["--workers", "0"], "--workers must be"),
    (["--survey", "nosuch"], "unknown survey"),
    (["--model", "nosuch"], "invalid choice"),
])
def test_demo_refuses_bad_options_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "d"
    code = main(["demo", "--out", str(out), *args]) if args[0] != "--model" else None
    if code is None:   # argparse's own choices: exit status 2 through SystemExit
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--out", str(out), *args])
        code = exc.value.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()   # nothing simulated, nothing created


def test_demo_refuses_a_file_as_out(tmp_path, capsys):
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    assert main(["demo", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "keep me"
