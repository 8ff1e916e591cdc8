"""Peak memory of CNN training and prediction is flat in the number of galaxies.

Trains one epoch and predicts every row of two toy stores (64x64x5 stamps) of different sizes,
each in a fresh process, and reports that process's peak resident memory (``VmHWM``; not
``ru_maxrss``, which Linux carries over from the parent through fork and exec) — the images are
read in blocks and chunks, never all at once.

    flock /tmp/deepdip-cpu.lock python benchmarks/bench_cnn_memory.py --sizes 2000,8000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

JOB = r"""
import json, sys
from deepdip.train.toydata import make_toy_store
from deepdip.store import CutoutStore
what, store, out = sys.argv[1], sys.argv[2], sys.argv[3]
if what == "train":
    from deepdip.train import train
    train(store, fold=0, model="compact", epochs=1, out=out, seed=0, progress=False, tensorboard=False,
          max_val=500)
else:
    from deepdip.predict import predict_store
    predict_store(out, store, out + ".parquet", rows="all", progress=False)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"peak_mb": int(hwm) / 1024}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2000,8000")
    p.add_argument("--out", default="benchmarks/output/cnn_memory.json")
    args = p.parse_args(argv)
    from deepdip.train.toydata import make_toy_store

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            store = make_toy_store(Path(tmp) / f"toy{n}.h5", n=n, size=64, seed=0)
            size_mb = store.stat().st_size / 2**20
            for what in ("train", "predict"):
                res = subprocess.run([sys.executable, "-c", JOB, what, str(store), str(Path(tmp) / f"run{n}")],
                                     capture_output=True, text=True, check=True)
                mem = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append(dict(n=n, store_mb=size_mb, what=what, **mem))
                print(f"N={n:>6} store {size_mb:7.0f} MB  {what:<8} peak RSS {mem['peak_mb']:7.0f} MB", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
