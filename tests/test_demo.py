"""`deepdip demo` end to end on a tiny mock: every step runs, the report and metrics are written."""

import json

from deepdip.cli import main


def test_demo_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--n", "240", "--minutes", "0.15", "--workers", "1",
                 "--baselines", "knn,bpz", "--seed", "3"])
    assert code == 0
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
    assert "report:" in printed and "sigma_MAD" in printed

    # A second run reuses every finished step and gives the same numbers.
    assert main(["demo", "--out", str(out), "--n", "240", "--minutes", "0.15", "--workers", "1",
                 "--baselines", "knn,bpz", "--seed", "3"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["cnn"]["sigma_mad"] == metrics["cnn"]["sigma_mad"]


def test_demo_rejects_unknown_baseline(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--baselines", "knn,magic"]) == 2
    assert "unknown baseline" in capsys.readouterr().err
