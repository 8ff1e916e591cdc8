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
