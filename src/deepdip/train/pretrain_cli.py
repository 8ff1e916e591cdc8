"""``deepdip pretrain``: self-supervised (SimCLR) pretraining of a backbone on every cutout of a store."""

from __future__ import annotations

import argparse
import json

from deepdip.options import parse_devices
from deepdip.train.pretrain import DEFAULTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Pretrain a deepdip backbone on every galaxy of a store, labelled or not, by contrasting two "
        "astronomy-augmented views of each (SimCLR); writes OUT/model.pt for deepdip train --init-model. "
        "Rerunning the same command resumes an interrupted run.")
    parser.add_argument("store", help="cutout store (.h5 file or folder of shards)")
    parser.add_argument("--out", required=True, help="folder for the encoder (model.pt), checkpoints and logs")
    parser.add_argument("--model", default="compact", help="registered network [compact]")
    parser.add_argument("--model-kwargs", default=None, help="JSON keyword arguments of the model")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice [0]")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [all cores]")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu or auto [auto]")
    parser.add_argument("--devices", type=parse_devices, default=1,
                        help="devices (processes) per node, e.g. 2 with --strategy ddp [1]")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes [1]")
    parser.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn... [auto]")
    helps = {"epochs": "epochs", "batch_size": "galaxies per step (2 views each)", "lr": "peak learning rate",
             "weight_decay": "AdamW weight decay", "temperature": "NT-Xent temperature",
             "projection_dim": "width of the projection the loss compares", "shift": "largest sub-pixel shift (px)",
             "blur": "largest PSF broadening, Gaussian sigma (px)", "noise": "largest added noise, in sky sigmas",
             "ebv_jitter": "range of the E(B-V) change"}
    for key, default in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(default), default=default,
                            help=f"{helps[key]} [{default}]")


def run(args) -> int:
    from deepdip.errors import DeepdipValueError
    from deepdip.train.pretrain import pretrain

    try:
        kwargs = json.loads(args.model_kwargs) if args.model_kwargs else None
    except ValueError:
        raise DeepdipValueError(f"--model-kwargs must be a JSON object, got {args.model_kwargs!r}") from None
    out = pretrain(args.store, args.out, model=args.model, seed=args.seed, model_kwargs=kwargs, threads=args.threads,
                   progress=args.progress, accelerator=args.accelerator, devices=args.devices,
                   num_nodes=args.num_nodes, strategy=args.strategy, **{k: getattr(args, k) for k in DEFAULTS})
    print(f"pretrained encoder in {out / 'model.pt'}")
    return 0
