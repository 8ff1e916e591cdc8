"""Images/s inside ``deepdip train`` against the bare training step of the same network (issue 17, item 1).

In one run, alternated (round r measures every reference and then trains, so a load that drifts slows
all alike), for the model asked:

- **bare network**: forward + cross-entropy + backward + optimiser step of the backbone alone
  (:func:`deepdip.models.create_model`, the definition of ``bench_cnn.py``) on one fixed batch;
- **bare PhotozNet**: the same step of the whole network ``deepdip train`` trains (input normalisation,
  aperture photometry of the stamps, backbone), built from the trained member's own model file, on a
  real batch of the store;
- **deepdip train**: ``deepdip.train.train`` on the store, fixed epochs, default settings (loader worker,
  augmentation, weight average, Lightning, logging), its throughput as the member records it in
  ``throughput.json`` (training part of each epoch: first step to last, validation excluded; the
  first epoch, which pays for the loader's start, is left out).

All three use the run's precision and layout (``--precision``, channels-last by default) and batch size,
and torch's thread count as ``deepdip train`` sets it. The issue's target: train >= 90 % of the bare step.

Usage: python benchmarks/bench_train_throughput.py [--model compact] [--n 3000] [--epochs 3] [--rounds 3]
       [--store STORE] [--train-kwargs JSON] [--out benchmarks/output/train_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from deepdip.hardware import cpu_model
from deepdip.models import create_model
from deepdip.models.modelfile import ModelFile
from deepdip.store import CutoutStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cnn import timed  # noqa: E402  (a sibling script: the one timing loop of the CNN benchmarks)


def step_rate(net, images, extra, target, *, seconds: float, bf16: bool) -> float:
    """Images/s of training steps (forward, cross-entropy, backward, AdamW), timed as ``bench_cnn.py`` does."""
    net.train()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(images, extra).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return len(images) / timed(step, seconds)


def train_rate(store_path: Path, out: Path, args) -> tuple[float, dict]:
    """Median images/s of the epochs after the first, and the member's record."""
    from deepdip.train import train

    train(CutoutStore(store_path), fold=0, model=args.model, epochs=args.epochs, out=str(out), seed=1,
          precision=args.precision, batch_size=args.batch, progress=False, **json.loads(args.train_kwargs))
    record = json.loads((out / "fold0" / "member0" / "throughput.json").read_text())
    rates = [e["images_per_s"] for e in record["epochs"][1:]] or [record["epochs"][0]["images_per_s"]]
    return statistics.median(rates), record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="compact")
    p.add_argument("--store", default=None, help="an existing sdss-like store (default: simulate one)")
    p.add_argument("--n", type=int, default=3000, help="galaxies of the simulated store")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seconds", type=float, default=6.0, help="timing of each bare-step measurement")
    p.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed"))
    p.add_argument("--train-kwargs", default="{}",
                   help='more TrainConfig fields for deepdip train, as JSON (ablations: \'{"augment": false}\')')
    p.add_argument("--out", default="benchmarks/output/train_throughput.json")
    args = p.parse_args(argv)
    bf16 = args.precision == "bf16-mixed"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store_path = Path(args.store) if args.store else tmp_path / "mock.h5"
        if not args.store:
            from deepdip.simulate import simulate_store

            simulate_store("sdss", n=args.n, seed=1, out=store_path, workers=min(2, os.cpu_count() or 1))
        store = CutoutStore(store_path)
        rows = store.split_rows("train", fold=0)[:args.batch]
        images, extra = torch.as_tensor(store.images(rows)), torch.as_tensor(store.column("ebv", rows))[:, None]
        target = torch.randint(0, 180, (len(rows),), generator=torch.Generator().manual_seed(0))
        images = images.contiguous(memory_format=torch.channels_last)
        result: dict = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__},
                        "args": vars(args), "rounds": []}
        photoz = backbone = None
        for r in range(args.rounds):
            t_rate, record = train_rate(store_path, tmp_path / f"run{r}", args)
            threads = torch.get_num_threads()   # as deepdip train set them
            if photoz is None:   # the references: the first trained member's network, and its backbone
                model = ModelFile(tmp_path / "run0" / "fold0" / "member0" / "model.pt")
                num_bins, net_cfg = len(model.zgrid.centres), model.config["net"]
                photoz = model.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                backbone = create_model(net_cfg["model"], in_chans=images.shape[1], num_bins=num_bins,
                                        img_size=images.shape[-1], **(net_cfg.get("model_kwargs") or {}))
                backbone = backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                target = target % num_bins
            torch.manual_seed(0)
            bare_photoz = step_rate(photoz, images, extra, target, seconds=args.seconds, bf16=bf16)
            bare_backbone = step_rate(backbone, images, extra, target, seconds=args.seconds, bf16=bf16)
            row = {"round": r, "threads": threads, "bare_backbone": bare_backbone, "bare_photoz": bare_photoz,
                   "train": t_rate, "train_epochs": record["epochs"]}
            result["rounds"].append(row)
            print(f"round {r}: bare backbone {bare_backbone:.0f}, bare PhotozNet {bare_photoz:.0f}, deepdip train "
                  f"{t_rate:.0f} images/s ({t_rate / bare_photoz:.0%} of the PhotozNet step, "
                  f"{t_rate / bare_backbone:.0%} of the backbone's); loader waits "
                  f"{sum(e['loader_wait_seconds'] for e in record['epochs'][1:]):.2f} s of "
                  f"{sum(e['seconds'] for e in record['epochs'][1:]):.2f} s", flush=True)
    med = {k: statistics.median(row[k] for row in result["rounds"]) for k in ("bare_backbone", "bare_photoz", "train")}
    result["median"] = med
    print(f"median of {args.rounds} rounds ({args.model}, {args.precision}, batch {args.batch}): bare backbone "
          f"{med['bare_backbone']:.0f}, bare PhotozNet {med['bare_photoz']:.0f}, deepdip train {med['train']:.0f} "
          f"images/s: {med['train'] / med['bare_photoz']:.0%} of the PhotozNet step, "
          f"{med['train'] / med['bare_backbone']:.0%} of the backbone's (target 90 %)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
