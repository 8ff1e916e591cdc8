"""Every setting of ``deepdip train``, declared once (:class:`TrainConfig`), and the models' recipes.

The ``deepdip train`` options, :func:`deepdip.train.train`'s keywords, the checks run before
anything is read or written, and the settings that define a run (continuing a run with other
values would mix two experiments: ``identity=True``) all come from the fields below
(:mod:`deepdip.options`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from deepdip.errors import DeepdipValueError
from deepdip.options import (
    check_accelerator,
    check_devices,
    check_options,
    check_precision,
    check_strategy,
    identity_fields,
    option,
    parse_devices,
    parse_json_object,
)

# Per-model training defaults: Pasquet et al.'s recipe, and the CPU-tuned one for ``compact``.
# ``patience`` None: no early stopping. ``ema``: decay of the moving average of the weights that is
# validated and saved (0: the raw weights). ``lr_floor``: where the cosine schedule ends, as a
# fraction of ``lr``.
# ``compact`` (issue 18): a fixed number of epochs with a cosine schedule that anneals to zero and
# an EMA of the weights, no early stopping. Its validation loss jumped from epoch to epoch with the
# raw weights at a high learning rate, so early stopping and the best epoch (and the test metrics)
# changed with any perturbation; 30 epochs of 14,448 galaxies take about 13 minutes on 2 cores.
MODEL_DEFAULTS: dict[str, dict] = {
    "pasquet19": dict(optimizer="adam", lr=1e-4, weight_decay=0.0, schedule="step", batch_size=128,
                      epochs=30, patience=10, apertures="none", ema=0.0, lr_floor=0.01),
    "compact": dict(optimizer="adamw", lr=2e-3, weight_decay=1e-4, schedule="cosine", batch_size=128,
                    epochs=30, patience=None, apertures="auto", ema=0.998, lr_floor=0.0),
}
#: Fine-tuning a model file (``init_model``) without ``lr``: the model's peak rate times this. A
#: network that already works needs smaller steps than one starting from noise, or the first
#: epochs undo what it learnt (the usual tenth, as in Zoobot's and timm's fine-tuning recipes).
FINETUNE_LR_FACTOR = 0.1
FREEZE_CHOICES = ("none", "backbone")
HEAD_CHOICES = ("binned", "mdn")


def _check_properties(flag: str, value) -> None:
    from deepdip.properties import parse_properties

    if value is not None and not isinstance(value, (str, list, tuple)):
        raise DeepdipValueError(f"{flag} must be a comma list of names, got {value!r}")
    parse_properties(value)


def _check_precision(flag: str, value) -> None:
    if value != "auto":
        check_precision(flag, value)


def _check_model_kwargs(flag: str, value) -> None:
    if not isinstance(value, dict):
        raise DeepdipValueError(f"{flag} must be a JSON object of keywords, got {value!r}")


HARDWARE = "hardware"
OPTIMISATION = "optimisation (defaults depend on the model)"
FINETUNING = "fine-tuning (start from a trained model)"


@dataclass
class TrainConfig:
    """The settings of a training run. ``None`` means "the model's default" (:data:`MODEL_DEFAULTS`)."""

    model: str = option("compact", "registered network: compact (fast on CPUs) or pasquet19",
                        identity=True)
    fold: Any = option("0", "test fold K (train on fold != K), a comma list, or 'all'", parse=str)
    ensemble: int = option(1, "members per fold, PDFs averaged", minimum=1, integer=True)
    epochs: int | None = option(None, "maximum epochs per member [model default: 30]", minimum=1, integer=True)
    max_minutes: float | None = option(None, "wall-clock budget for the whole command; the LR schedule is "
                                             "planned to end within it", above=0)
    seed: int = option(0, "the one seed every random choice derives from", minimum=0, integer=True,
                       identity=True)
    # -- optimisation --------------------------------------------------------------------------
    batch_size: int | None = option(None, "galaxies per step", group=OPTIMISATION, minimum=1, integer=True,
                                    identity=True)
    lr: float | None = option(None, "peak learning rate", group=OPTIMISATION, above=0, identity=True)
    weight_decay: float | None = option(None, "decoupled weight decay (AdamW) or L2 (Adam)", group=OPTIMISATION,
                                        minimum=0, identity=True)
    optimizer: str | None = option(None, "adam or adamw", group=OPTIMISATION, choices=("adam", "adamw"),
                                   identity=True)
    schedule: str | None = option(None, "learning-rate schedule", group=OPTIMISATION,
                                  choices=("cosine", "step", "constant"), identity=True)
    patience: int | None = option(None, "early-stopping patience in epochs (0: none)", group=OPTIMISATION,
                                  minimum=0, integer=True)
    ema: float | None = option(None, "decay per step of the weight average that is validated and saved "
                                     "(0: the raw weights)", group=OPTIMISATION, minimum=0, maximum=0.99999,
                               identity=True)
    lr_floor: float | None = option(None, "end of the cosine schedule, as a fraction of --lr", group=OPTIMISATION,
                                    minimum=0, maximum=1, identity=True)
    stretch: str = option("asinh", "input normalisation", group=OPTIMISATION, choices=("asinh", "pasquet"),
                          identity=True)
    apertures: Any = option(None, "aperture photometry for the dense layers: auto, none or radii in pixels "
                                  "'2,4,8' [auto for compact, none for pasquet19]", group=OPTIMISATION, parse=str,
                            identity=True)
    augment: bool = option(True, "random rotations and flips of the training images", group=OPTIMISATION, identity=True)
    band_dropout: float = option(0.0, "probability that a training galaxy loses a random subset of its bands "
                                      "(at least one kept): one network for any subset of bands, which reads "
                                      "which bands a galaxy has from its pixels", group=OPTIMISATION, minimum=0,
                                 maximum=0.95, identity=True)
    band_dropout_mode: str = option("subset", "how --band-dropout P draws the bands a galaxy loses: subset (with "
                                              "probability P a galaxy loses 1 .. B-1 bands, how many and which "
                                              "uniform) or independent (each band lost with probability P, one "
                                              "kept at least: a given band alone is missing for P(1-P)^(B-1) of "
                                              "the galaxies, against P/(B(B-1)))", group=OPTIMISATION,
                                    choices=("subset", "independent"), identity=True)
    label_sigma: float = option(0.0, "soft labels: the training target is a Gaussian of sigma = S (1 + z_spec) in z "
                                     "on the bins instead of z_spec's bin alone (0): for many bins, sparsely "
                                     "populated at high z", group=OPTIMISATION, minimum=0, maximum=0.5,
                                identity=True, metavar="S")
    head: str = option("binned", "redshift head: binned (a softmax over the bins) or mdn (a mixture of Gaussians "
                                 "read out on the bins)", group=OPTIMISATION, choices=HEAD_CHOICES, identity=True)
    mdn_components: int = option(5, "Gaussians of the mdn head", group=OPTIMISATION, minimum=1, integer=True,
                                 identity=True)
    properties: Any = option(None, "physical parameters predicted beside the redshift, each a Gaussian (mean, sigma) "
                                   "in the catalogue's <name>_mean/_std: a comma list of logmstar, logsfr, logssfr "
                                   "(derived from a mock's stellar_mass, sfr) or catalogue columns",
                             group=OPTIMISATION, parse=str, check=_check_properties, identity=True,
                             metavar="NAME,...")
    labelled: str | None = option(None, "a selection file (deepdip select): train only on the galaxies it labels "
                                        "(a spectroscopic selection)", metavar="SEL.parquet", identity=True)
    augment_store: str | None = option(None, "another store (same bands, stamp size and flux unit) whose galaxies "
                                             "with a z_spec join the training set, e.g. generated galaxies for the "
                                             "region a spectroscopic selection leaves out", metavar="STORE",
                                       identity=True)
    augment_labelled: str | None = option(None, "selection file of --augment-store's store: only the galaxies it "
                                                "labels join", metavar="SEL.parquet", identity=True)
    reweight: str = option("none", "weights of the training galaxies in the loss: lima (density ratio of the "
                                   "photometric sample, every training-fold galaxy, to the labelled ones in "
                                   "colour-magnitude space; Lima et al. 2008), zbalance (1/n(z) of the labelled) "
                                   "or none", group=OPTIMISATION, choices=("none", "lima", "zbalance"), identity=True)
    recalibrate: str = option("none", "after training, map the PDFs through the empirical CDF of their PIT on the "
                                      "validation galaxies, one map per band-availability pattern (Bordoloi et al. "
                                      "2010): none or pit", group=OPTIMISATION, choices=("none", "pit"), identity=True)
    model_kwargs: dict | None = option(None, 'JSON keyword arguments of the model, e.g. \'{"widths": [16,32,48,64]}\'',
                                       group=OPTIMISATION, parse=parse_json_object, check=_check_model_kwargs,
                                       identity=True)
    survey: str | None = option(None, "survey preset for the redshift bins [the store's survey]", group=OPTIMISATION)
    val_fraction: float = option(0.1, "share of the training folds held out for validation", cli=False, above=0,
                                 maximum=0.9, identity=True)
    max_val: int = option(5000, "most validation galaxies", cli=False, minimum=1, integer=True, identity=True)
    max_train: int | None = option(None, "a random subset of this many training galaxies (learning curves; "
                                         "0 or None: all)", cli=False, minimum=0, integer=True, identity=True)
    # -- fine-tuning ----------------------------------------------------------------------------
    init_model: str | None = option(None, "start every member from this model file (or run directory: member m "
                                          "takes its m-th model) instead of random weights; the network, its "
                                          "input normaliser and redshift bins come from it", group=FINETUNING,
                                    metavar="MODEL.pt|RUN")
    freeze: str = option("none", "none: train every layer; backbone: train only the head (a linear probe)",
                         group=FINETUNING, choices=FREEZE_CHOICES)
    freeze_bn: bool = option(False, "keep batch-norm statistics as in the initial model (small or "
                                    "unrepresentative fine-tuning sets)", group=FINETUNING)
    transfer: bool = option(False, "--init-model from another survey (other bands, stamp size or redshift bins): "
                                   "a network is built for this store, its convolutions start from the model's "
                                   "(first layer mapped band by band by name), its dense head afresh, its "
                                   "normaliser fitted on this store", group=FINETUNING, identity=True)
    # -- hardware ---------------------------------------------------------------------------------
    precision: str = option("auto", "Lightning precision: 32-true, bf16-mixed, 16-mixed, or auto (bf16 where a "
                                    "timing probe of this network on this hardware finds it clearly faster, fp32 "
                                    "elsewhere; decided once per machine and kept in run.json)", group=HARDWARE,
                            check=_check_precision)
    channels_last: bool = option(True, "the NHWC memory layout (faster convolutions on CPUs and GPUs)",
                                 group=HARDWARE)
    accelerator: str = option("auto", "cpu, gpu or auto", group=HARDWARE, check=check_accelerator)
    devices: Any = option("auto", "devices (processes) per node, e.g. 2", group=HARDWARE, parse=parse_devices,
                          check=check_devices)
    num_nodes: int = option(1, "nodes", group=HARDWARE, minimum=1, integer=True)
    strategy: str = option("auto", "auto, ddp, ddp_spawn...", group=HARDWARE, check=check_strategy)
    num_workers: int | None = option(None, "DataLoader worker processes [4 on GPU; on CPU 0 with <= 2 cores per "
                                     "process, else 1]", group=HARDWARE, flag="--workers", minimum=0, integer=True)
    threads: int | None = option(None, "torch threads per process [cores / processes]", group=HARDWARE, minimum=1,
                                 integer=True)
    progress: bool = option(True, "the progress bars", group=HARDWARE)
    tensorboard: bool = option(True, "the TensorBoard logs (CSV logs are always written)", group=HARDWARE)

    def check(self) -> TrainConfig:
        """Every value against its declaration (raises :class:`DeepdipValueError` naming the flag)."""
        check_options(self)
        return self

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


#: Settings that define what a run *is*, as recorded in ``run.json``: the identity fields and what
#: the store decides (bands, stamp size, redshift bins).
IDENTITY_KEYS = (*identity_fields(TrainConfig), "bands", "image_shape", "zgrid", "finetune", "labelled_n",
                 "augment_n")
