"""``deepdip train``: train the CNN (folds x ensemble) on a cutout store."""

from __future__ import annotations

import argparse
import json

from deepdip.errors import DeepdipError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train the CNN on a cutout store: for each test fold K, train on the rows with fold != K (a "
        "validation set is carved from them), an ensemble of --ensemble members with seeds derived "
        "from --seed. Re-running the same command after an interruption resumes where it stopped.")
    parser.add_argument("store", help="cutout store (.h5 file or folder of shards)")
    parser.add_argument("--out", required=True, help="run directory (models, checkpoints, logs)")
    parser.add_argument("--model", default="compact", help="compact (fast on CPUs) or pasquet19 [compact]")
    parser.add_argument("--fold", default="0", help="test fold K, a comma list, or 'all' [0]")
    parser.add_argument("--ensemble", type=int, default=1, help="members per fold, PDFs averaged [1]")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs per member [model default: 30]")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="wall-clock budget for the whole command; the LR schedule is planned to end within it")
    parser.add_argument("--seed", type=int, default=0, help="the one seed every random choice derives from [0]")
    g = parser.add_argument_group("optimisation (defaults depend on the model)")
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--lr", type=float, default=None, help="peak learning rate")
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--schedule", choices=("cosine", "step", "constant"), default=None)
    g.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    g.add_argument("--stretch", choices=("asinh", "pasquet"), default="asinh", help="input normalisation [asinh]")
    g.add_argument("--apertures", default=None,
                   help="aperture photometry for the dense layers: auto, none or radii in pixels "
                        "'2,4,8' [auto for compact, none for pasquet19]")
    g.add_argument("--no-augment", action="store_true", help="no random rotations/flips")
    g.add_argument("--model-kwargs", default=None,
                   help='JSON keyword arguments of the model, e.g. \'{"widths": [16,32,48,64]}\'')
    g.add_argument("--survey", default=None, help="survey preset for the redshift bins [the store's survey]")
    h = parser.add_argument_group("hardware")
    h.add_argument("--precision", default="32-true",
                   help="Lightning precision: 32-true, bf16-mixed, 16-mixed [32-true]")
    h.add_argument("--no-channels-last", action="store_true",
                   help="keep NCHW memory layout (default NHWC: faster convolutions on CPUs and GPUs)")
    h.add_argument("--accelerator", default="auto", help="cpu, gpu or auto [auto]")
    h.add_argument("--devices", default="auto", help="devices (processes) per node, e.g. 2 [auto]")
    h.add_argument("--num-nodes", type=int, default=1)
    h.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn... [auto]")
    h.add_argument("--workers", type=int, default=None, help="DataLoader worker processes [1 on CPU, 4 on GPU]")
    h.add_argument("--threads", type=int, default=None, help="torch threads per process [cores / processes]")
    h.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from deepdip.train.run import train

    model_kwargs = None
    if args.model_kwargs:
        try:
            model_kwargs = json.loads(args.model_kwargs)
        except json.JSONDecodeError as exc:
            raise DeepdipError(f"--model-kwargs is not valid JSON: {exc}") from None
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    run_dir = train(
        args.store, fold=args.fold, model=args.model, ensemble=args.ensemble, epochs=args.epochs,
        max_minutes=args.max_minutes, out=args.out, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, patience=args.patience, stretch=args.stretch,
        apertures=args.apertures, model_kwargs=model_kwargs, augment=not args.no_augment, survey=args.survey,
        num_workers=args.workers, precision=args.precision, channels_last=not args.no_channels_last,
        accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes, strategy=args.strategy,
        threads=args.threads, progress=not args.no_progress)
    print(f"trained models in {run_dir}")
    return 0
