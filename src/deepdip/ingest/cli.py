"""``deepdip ingest``: real cutouts or survey frames plus a catalogue -> cutout store.

Exactly one input kind: ``--arrays`` (.npy/.npz ``[N, B, H, W]``), ``--cutouts`` (a FITS file-name
pattern) or ``--frame BAND=FILE`` (repeated). Options may come from ``--config`` (YAML, JSON or
TOML with the same names, underscores for dashes); flags given on the command line win.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from deepdip.errors import DeepdipError
from deepdip.ingest.options import IngestOptions, help_texts, load_config, parse_mapping

EPILOG = """examples:
  deepdip ingest --arrays piczl_train_griz.npz --survey legacy --column z_spec=z \\
      --ebv-from-transmission mw_transmission --dereddened-input --keep primary \\
      --size 32 --out real.h5
  deepdip ingest --cutouts 'stamps/{id}_{band}.fits' --catalog cat.csv --bands g,r,i,z \\
      --flux-unit counts --zero-point 30 --centre wcs --size 64 --skip-bad --out real.h5
  deepdip ingest --frame g=coadd_g.fits --frame r=coadd_r.fits --catalog pos.parquet \\
      --bands g,r --size 48 --out real.h5
"""

INPUT_KEYS = ("arrays", "cutouts", "frames", "catalog")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    h = help_texts()
    src = parser.add_argument_group("input (one kind)")
    src.add_argument("--arrays", metavar="FILE", help="numpy .npy/.npz of images [N, B, H, W], rows = catalogue rows")
    src.add_argument("--cutouts", metavar="PATTERN",
                     help="per-galaxy FITS files, e.g. 'stamps/{id}_{band}.fits' (one per band) or "
                          "'stamps/{id}.fits' (cube or one extension per band)")
    src.add_argument("--frame", action="append", metavar="BAND=FILE", dest="frames",
                     help="survey frame with a WCS for one band (repeat per band)")
    src.add_argument("--catalog", metavar="FILE",
                     help="catalogue (FITS, CSV, Parquet, .npz); for --arrays FILE.npz defaults to that file")
    src.add_argument("--config", metavar="FILE", help="YAML/JSON/TOML file of options (and inputs)")
    parser.add_argument("--out", required=True, metavar="STORE", help="cutout store to write (.h5)")
    parser.add_argument("--overwrite", action="store_true", default=None, help=h["overwrite"])

    m = parser.add_argument_group("catalogue and bands")
    m.add_argument("--survey", help=h["survey"])
    m.add_argument("--bands", metavar="LIST", help=h["bands"] + " (comma-separated)")
    m.add_argument("--pixel-scale", type=float, metavar="ARCSEC", help=h["pixel_scale"])
    m.add_argument("--column", action="append", metavar="STORE=CAT", help=h["columns"] + " (repeatable)")
    m.add_argument("--band-name", action="append", metavar="BAND=NAME", help=h["band_names"] + " (repeatable)")
    m.add_argument("--keep", metavar="COLS", help=h["keep"] + " (comma-separated)")
    m.add_argument("--ebv", type=float, metavar="VALUE", help=h["ebv"])
    m.add_argument("--ebv-from-transmission", metavar="COLUMN", help=h["ebv_from_transmission"])
    m.add_argument("--dereddened-input", action="store_true", default=None, help=h["dereddened_input"])
    m.add_argument("--extinction-coeff", action="append", metavar="BAND=R", help=h["extinction_coeffs"])

    p = parser.add_argument_group("pixels")
    p.add_argument("--flux-unit", metavar="UNIT", help=h["flux_unit"])
    p.add_argument("--zero-point", metavar="ZP", help=h["zero_point"] + ", e.g. 30 or g=30,r=30.1")
    p.add_argument("--size", type=int, metavar="N", help=h["size"])
    p.add_argument("--centre", choices=("none", "wcs", "centroid"), help=h["centre"])
    p.add_argument("--pad", choices=("noise", "zeros"), help=h["pad"])
    p.add_argument("--image-key", metavar="KEY", help=h["image_key"])
    p.add_argument("--hdu", help=h["hdu"])
    p.add_argument("--reference-band", metavar="BAND", help=h["reference_band"])

    r = parser.add_argument_group("run")
    r.add_argument("--missing-bands", choices=("mask", "reject"), help=h["missing_bands"])
    r.add_argument("--skip-bad", action="store_true", default=None, help=h["skip_bad"])
    r.add_argument("--rejects", metavar="CSV", help=h["rejects"])
    r.add_argument("--no-photometry", dest="photometry", action="store_false", default=None,
                   help="do not " + h["photometry"])
    r.add_argument("--folds", type=int, dest="n_folds", metavar="K", help=h["n_folds"])
    r.add_argument("--seed", type=int, help=h["seed"])
    r.add_argument("--chunk-size", type=int, metavar="N", help=h["chunk_size"])


def _zero_point(text):
    if text is None or isinstance(text, (int, float, dict)):
        return text
    if "=" in str(text):
        return parse_mapping(text, "--zero-point", float)
    try:
        return float(text)
    except ValueError:
        raise DeepdipError(f"--zero-point: {text!r} is neither a number nor BAND=VALUE pairs") from None


def options_from_args(args) -> tuple[IngestOptions, dict]:
    """Merge the config file and the flags into options plus the input paths."""
    config = load_config(args.config) if args.config else {}
    config = {k.replace("-", "_"): v for k, v in config.items()}
    inputs = {k: config.pop(k, None) for k in INPUT_KEYS}
    flags = {
        "survey": args.survey, "bands": args.bands, "pixel_scale": args.pixel_scale, "keep": args.keep,
        "ebv": args.ebv, "ebv_from_transmission": args.ebv_from_transmission,
        "dereddened_input": args.dereddened_input, "flux_unit": args.flux_unit,
        "zero_point": _zero_point(args.zero_point), "size": args.size, "centre": args.centre, "pad": args.pad,
        "image_key": args.image_key, "reference_band": args.reference_band, "skip_bad": args.skip_bad,
        "missing_bands": args.missing_bands,
        "rejects": args.rejects, "photometry": args.photometry, "n_folds": args.n_folds, "seed": args.seed,
        "chunk_size": args.chunk_size, "overwrite": args.overwrite,
        "hdu": (int(args.hdu) if args.hdu and args.hdu.isdigit() else args.hdu),
    }
    merged = {**config, **{k: v for k, v in flags.items() if v is not None}}
    for key, flag, kind in (("columns", args.column, str), ("band_names", args.band_name, str),
                            ("extinction_coeffs", args.extinction_coeff, float)):
        merged[key] = {**(config.get(key) or {}), **parse_mapping(flag, "--" + key.replace("_", "-"), kind)}
    if "zero_point" in merged:
        merged["zero_point"] = _zero_point(merged["zero_point"])
    for key, value in (("arrays", args.arrays), ("cutouts", args.cutouts), ("catalog", args.catalog)):
        inputs[key] = value or inputs[key]
    if args.frames:
        inputs["frames"] = parse_mapping(args.frames, "--frame")
    return IngestOptions.from_mapping(merged, source=args.config or "options"), inputs


def run(args) -> int:
    from deepdip.ingest.pipeline import ingest_arrays, ingest_cutouts, ingest_frames

    options, inputs = options_from_args(args)
    kinds = [k for k in ("arrays", "cutouts", "frames") if inputs.get(k)]
    if len(kinds) != 1:
        raise DeepdipError("give exactly one input: --arrays FILE, --cutouts PATTERN or --frame BAND=FILE "
                           f"(got {', '.join(kinds) or 'none'})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if kinds[0] == "arrays":
                result = ingest_arrays(inputs["arrays"], args.out, inputs["catalog"], options)
            elif kinds[0] == "cutouts":
                result = ingest_cutouts(inputs["cutouts"], inputs["catalog"], args.out, options)
            else:
                result = ingest_frames(inputs["frames"], inputs["catalog"], args.out, options)
        finally:
            for caught_warning in caught:
                print(f"deepdip ingest: warning: {caught_warning.message}", file=sys.stderr)
    h, w = result.image_shape
    print(f"wrote {result.store}: {result.n_written} galaxies, bands {','.join(result.bands)}, {h}x{w} px "
          f"at {result.pixel_scale:.4g}\"/px" + (f"; {result.n_rejected} rejected ({result.rejects})"
                                                 if result.n_rejected else ""))
    return 0
