"""``deepdip models``: each CNN with its parameter count and forward FLOPs per image for a survey."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("List the CNN models with their parameters and forward FLOPs per image "
                          "(multiply-add = 2 FLOPs, counted by torch.utils.flop_counter) for a survey's "
                          "bands, stamp size and redshift bins.")
    parser.add_argument("--survey", default="sdss", help="survey preset [sdss]")


def run(args) -> int:
    from deepdip.models import count_flops, count_params, create_model, list_models
    from deepdip.surveys import load_survey

    survey = load_survey(args.survey)
    b, s, k = len(survey.bands), survey.stamp_size, survey.nbins
    print(f"survey {survey.name}: {b} bands, {s}x{s} px, {k} redshift bins")
    print(f"{'model':<12} {'params':>12} {'GFLOP/image':>12}  description")
    for name, desc in list_models().items():
        net = create_model(name, in_chans=b, num_bins=k, img_size=s)
        print(f"{name:<12} {count_params(net):>12,} {count_flops(net) / 1e9:>12.3f}  {desc}")
    return 0
