"""Benchmark scripts that must keep running: their smoke modes, on this machine's CPU (GPU parts when one is there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import cli_env

ROOT = Path(__file__).resolve().parents[1]


def test_bench_cnn_smoke_runs_every_path_and_reports_mfu(tmp_path):
    out = tmp_path / "cnn.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cnn.py"), "--smoke", "--device", "auto",
                          "--out", str(out)], capture_output=True, text=True, env=cli_env(), timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got["machine"]["device"] in ("cpu", "cuda")
    assert {"fp32", "bf16"} <= set(got["matmul_flops"]) and all(v > 0 for v in got["matmul_flops"].values())
    kinds = {(r["precision"], r["layout"], r["mode"]) for r in got["rows"]}
    assert len(kinds) == 8 and all(r["images_per_s"] > 0 and 0 < r["mfu_own"] for r in got["rows"])
    assert [r["workers"] for r in got["loader"]] == [0, 1, 2] and all(r["images_per_s"] > 0 for r in got["loader"])


def test_bench_train_throughput_compares_train_with_the_bare_step(tmp_path):
    """benchmarks/bench_train_throughput.py (issue 17, item 1) on a toy store: every figure measured and > 0."""
    from deepdip.train.toydata import make_toy_store

    from .conftest import TINY_MODEL

    store = make_toy_store(tmp_path / "toy.h5", n=300, size=16)
    out = tmp_path / "tt.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train_throughput.py"), "--store", str(store),
                          "--epochs", "2", "--rounds", "1", "--batch", "32", "--seconds", "0.05",
                          "--train-kwargs", json.dumps({"model_kwargs": TINY_MODEL}), "--out", str(out)],
                         capture_output=True, text=True, env=cli_env(), timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(out.read_text())
    row = got["rounds"][0]
    assert row["bare_backbone"] > 0 and row["bare_photoz"] > 0 and row["train"] > 0
    assert [e["epoch"] for e in row["train_epochs"]] == [0, 1]
    assert "of the PhotozNet step" in res.stdout


def test_pasquet19_full_scale_recipe_runs_at_ci_size_and_resumes(tmp_path):
    """examples/pasquet19_full_scale.sh (issue 17, item 6) end to end on 600 galaxies, one fold, one member,
    one epoch; run again, it keeps the store and the finished member and rewrites only the products."""
    out = tmp_path / "p19"
    env = {**cli_env(), "N": "600", "FOLDS": "0", "ENSEMBLE": "1", "EPOCHS": "1", "OUT": str(out), "WORKERS": "2",
           "DEEPDIP": f"{sys.executable} -m deepdip"}
    script = ROOT / "examples" / "pasquet19_full_scale.sh"
    first = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (out / "cnn.parquet").is_file() and (out / "boost.parquet").is_file()
    assert (out / "report" / "index.html").is_file()
    model = next((out / "run").rglob("*.pt"))
    stamp = (out / "store").stat().st_mtime_ns, model.stat().st_mtime_ns
    again = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert ((out / "store").stat().st_mtime_ns, model.stat().st_mtime_ns) == stamp


def test_project_scale_projects_from_measured_costs():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from project_scale import project

    m = {"workers": 2, "matmul_fp32_flops": 3e11,
         "simulate": {"galaxies": 400, "galaxies_per_s": 50.0, "store_bytes_per_galaxy": 82e3},
         "models": {"pasquet19": {"forward_flops": 1.5e9, "train_images_per_s": 25.0, "infer_images_per_s": 100.0},
                    "compact": {"forward_flops": 3.4e7, "train_images_per_s": 1600.0, "infer_images_per_s": 6000.0}}}
    text = "\n".join(project(m, [100.0]))
    # 5 x 6 x 30 x 400,000 = 3.6e8 training images x 4.5 GFLOP = 1.62e18 FLOP: 4.5 GPU-hours at 100 TFLOP/s
    assert "3.6e+08 training images" in text and "training 4.5 GPU-hours" in text
    assert "store: 41 GB" in text and "0.98 PB" in text
