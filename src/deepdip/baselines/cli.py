"""``deepdip baseline STORE|--table CAT --method knn|rf|boost|bpz --fold K --out FILE.parquet``.

Fits a catalogue baseline on the rows with ``fold != K`` (measured photometry only) of a cutout
store, or of a photometric table without images (``--table``, :mod:`deepdip.baselines.tables`),
and writes the photo-z catalogue of the test rows (``fold == K``, or all rows with ``--rows all``).
Every parameter of every method is an option, declared once in the method's ``PARAMS``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from deepdip.atomic import check_output
from deepdip.baselines import METHODS, baseline_class
from deepdip.baselines.params import Param
from deepdip.errors import DeepdipError


def _method_params() -> dict[str, tuple[Param, list[str]]]:
    """Each parameter name -> (its declaration, the methods that have it)."""
    out: dict[str, tuple[Param, list[str]]] = {}
    for method in METHODS:
        for name, p in baseline_class(method).PARAMS.items():
            out.setdefault(name, (p, []))[1].append(method)
    return out


EPILOG = """catalogue-only input (no images), e.g. the SDSS table of docs/baselines-real-sdss.md:
  deepdip baseline --table gst_tests_small.fits --survey sdss --zmax 0.6 --nbins 270 \\
      --flux-columns MODELFLUX --err-columns MODELFLUX_IVAR --extinction-columns EXTINCTION \\
      --column z_spec=Z --method knn --fold 0 --out knn.parquet
  deepdip baseline --table dc2.parquet --bands u,g,r,i,z,y \\
      --filters lsst2016-u,lsst2016-g,lsst2016-r,lsst2016-i,lsst2016-z,lsst2016-y \\
      --mag-columns 'mag_{band}_lsst' --err-columns 'mag_err_{band}_lsst' --nondetect-val 99 \\
      --mag-limit u=27.79,g=29.04,r=29.06,i=28.62,z=27.98,y=27.05 --column z_spec=redshift \\
      --zmax 3 --nbins 300 --method rf --fold 0 --out rf.parquet
"""

#: ``--table`` options: (flag, argparse keywords). Store input refuses them.
TABLE_OPTIONS: dict[str, dict] = {
    "--survey": {"metavar": "PRESET", "help": "deepdip survey preset: the default bands, their filters and the "
                                              "redshift grid (e.g. sdss)"},
    "--bands": {"metavar": "LIST", "help": "band names in table order, comma-separated (default: the preset's)"},
    "--filters": {"metavar": "LIST", "help": "speclite filter names, one per band (default: the preset's); BPZ "
                                             "and E(B-V) dereddening need them"},
    "--flux-columns": {"metavar": "PATTERN", "help": "flux columns: 'MODELFLUX_{band}' (one per band, any case) "
                                                     "or one 2-D column 'MODELFLUX'"},
    "--mag-columns": {"metavar": "PATTERN", "help": "AB magnitude columns instead of fluxes, e.g. 'mag_{band}'"},
    "--err-columns": {"metavar": "PATTERN", "help": "1-sigma errors (or inverse variances) of the values, "
                                                    "e.g. 'MODELFLUX_IVAR' or 'magerr_{band}'"},
    "--err-kind": {"choices": ("auto", "sigma", "ivar"), "default": None,
                   "help": "errors are sigmas or inverse variances (auto: ivar when the pattern contains 'ivar')"},
    "--flux-unit": {"metavar": "UNIT", "help": "unit of the flux columns: nanomaggy (default), maggy, nJy, uJy, "
                                               "Jy or any astropy flux density"},
    "--nondetect-val": {"type": float, "metavar": "X",
                        "help": "value marking a non-detection (nan allowed): magnitudes (default 99) -> zero flux "
                                "with the --mag-limit flux as error; fluxes -> zero flux with the row's error"},
    "--nonobserved-val": {"type": float, "metavar": "X",
                          "help": "value marking a band not observed (default -99); NaN always is"},
    "--mag-limit": {"action": "append", "metavar": "BAND=MAG",
                    "help": "1-sigma limiting magnitude of a band: the error of its non-detections (repeatable)"},
    "--column": {"action": "append", "metavar": "NAME=COLUMN",
                 "help": "table column of id, z_spec, ebv, ra, dec or fold, e.g. z_spec=Z (repeatable; default: "
                         "the usual spellings; without a fold column folds come from the ids as in a store)"},
    "--extinction-columns": {"metavar": "PATTERN",
                             "help": "Galactic extinction A_b (mag) per band, e.g. SDSS's 'EXTINCTION' (else an "
                                     "ebv column with the Fitzpatrick 99 law or --extinction-coeff)"},
    "--extinction-coeff": {"action": "append", "metavar": "BAND=R", "help": "A_b/E(B-V) of a band for the ebv "
                                                                            "column (repeatable)"},
    "--zmin": {"type": float, "metavar": "Z", "help": "lower edge of the redshift grid (default: the preset's or 0)"},
    "--zmax": {"type": float, "metavar": "Z", "help": "upper edge of the redshift grid (default: the preset's)"},
    "--nbins": {"type": int, "metavar": "N", "help": "redshift bins (default: the preset's)"},
    "--folds": {"type": int, "metavar": "K", "help": "cross-validation folds of the table (default 5)"},
    "--fold-seed": {"type": int, "metavar": "S", "help": "seed of the folds (default 0), as a store's fold seed"},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("store", metavar="STORE", nargs="?", default=None,
                        help="cutout store (.h5 file or folder of shards); or give --table")
    parser.add_argument("--table", metavar="CAT", default=None,
                        help="photometric table instead of a store (FITS, Parquet, CSV): see the table options")
    parser.add_argument("--method", required=True, choices=list(METHODS),
                        help="knn: neighbours in colour space; rf: random forest; boost: LightGBM; "
                             "bpz: template fitting (desc-bpz)")
    parser.add_argument("--fold", type=int, required=True, metavar="K",
                        help="train on rows with fold != K, predict rows with fold == K")
    parser.add_argument("--out", required=True, metavar="FILE.parquet", help="photo-z catalogue to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing catalogue at --out (never a folder or an input)")
    parser.add_argument("--rows", choices=("test", "all"), default="test",
                        help="rows to predict: the test fold (default) or every row")
    parser.add_argument("--save-model", metavar="FILE.npz", default=None,
                        help="also write the fitted model there (read back with "
                             "deepdip.baselines.load_baseline; --overwrite replaces an existing one)")
    parser.add_argument("--dask", metavar="SCHEDULER", default=None,
                        help="predict the chunks on a Dask cluster: a scheduler address (tcp://host:8786), a "
                             "scheduler.json file, or local:N for N worker processes here; the fit stays in this "
                             "process and the catalogue is the same as without --dask (workers must read STORE "
                             "at the same path)")
    parser.add_argument("--chunk-size", type=int, default=None, metavar="N",
                        help="galaxies per prediction chunk (default 4096)")
    table = parser.add_argument_group("table options (--table only)")
    for flag, kwargs in TABLE_OPTIONS.items():
        table.add_argument(flag, dest="table_" + flag[2:].replace("-", "_"), **{"default": None, **kwargs})
    group = parser.add_argument_group("method parameters (default: the method's own)")
    n_methods = len(METHODS)
    for name, (p, methods) in _method_params().items():
        where = "" if len(methods) == n_methods else f" [{', '.join(methods)}]"
        default = "" if p.default in (None, "") else f" (default {p.default})"
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"param_{name}", type=p.type, default=None,
                           metavar=p.type.__name__.upper(), help=f"{p.help}{default}{where}")


def _estimator(args, zgrid=None):
    cls = baseline_class(args.method)
    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    wrong = sorted(set(given) - set(cls.PARAMS))
    if wrong:
        raise DeepdipError(f"--{wrong[0].replace('_', '-')} does not apply to --method {args.method}")
    try:
        return cls(zgrid, **given)
    except ValueError as exc:
        raise DeepdipError(str(exc)) from None


def _check_save_model(args, source) -> None:
    if args.save_model is not None:  # refuse a bad model path before the fit, not after
        if Path(args.save_model).resolve() == Path(args.out).resolve():
            raise DeepdipError("--save-model and --out must be different files")
        check_output(args.save_model, inputs=(source,), overwrite=args.overwrite)


def run(args) -> int:
    table_given = [flag for flag in TABLE_OPTIONS if getattr(args, "table_" + flag[2:].replace("-", "_")) is not None]
    if (args.store is None) == (args.table is None):
        raise DeepdipError("give a cutout store (STORE) or a photometric table (--table CAT), one of the two")
    from deepdip.errors import check_number
    from deepdip.estimators import DEFAULT_CHUNK

    check_number("--chunk-size", args.chunk_size, minimum=1, integer=True)
    if args.table is not None:
        if args.dask or args.chunk_size is not None:
            raise DeepdipError("--dask and --chunk-size apply to a store (a --table is predicted in memory)")
        return _run_table(args)
    if table_given:
        raise DeepdipError(f"{table_given[0]} applies to --table input only (a store knows its bands and columns)")
    from deepdip.store import CutoutStore

    store = CutoutStore(args.store)
    if not 0 <= args.fold < store.n_folds:
        raise DeepdipError(f"--fold must be in 0..{store.n_folds - 1} for this store")
    est = _estimator(args)
    _check_save_model(args, args.store)
    t0 = time.perf_counter()
    print(f"fitting {args.method} on fold != {args.fold} ...", flush=True)
    est.fit(store, args.fold)
    fit_s = time.perf_counter() - t0
    rows = store.split_rows(args.rows, fold=args.fold)
    est.predict_catalog(store, rows, args.out, overwrite=args.overwrite, client=args.dask,
                        chunk_size=args.chunk_size or DEFAULT_CHUNK)
    if args.save_model is not None:
        est.save(args.save_model, overwrite=args.overwrite)
    print(f"{args.method}: fitted on {est.n_train_} galaxies in {fit_s:.1f} s, predicted {len(rows)} "
          f"in {time.perf_counter() - t0 - fit_s:.1f} s -> {args.out}")
    return 0


def table_zgrid(survey, zmin, zmax, nbins):
    """The redshift grid of a table run: the preset's, with any of zmin/zmax/nbins overriding it."""
    from deepdip.zgrid import ZGrid

    base = None
    if survey:
        from deepdip.surveys import load_survey

        base = load_survey(survey).zgrid
    zmin = zmin if zmin is not None else (base.zmin if base else 0.0)
    zmax = zmax if zmax is not None else (base.zmax if base else None)
    nbins = nbins if nbins is not None else (base.nbins if base else None)
    if zmax is None or nbins is None:
        raise DeepdipError("a table has no redshift grid of its own: give --survey PRESET or --zmax and --nbins")
    try:
        return ZGrid(float(zmin), float(zmax), int(nbins))
    except ValueError:
        raise DeepdipError(f"--zmin {zmin} --zmax {zmax} --nbins {nbins} is not a redshift grid (zmax > zmin, "
                           "nbins >= 1)") from None


def _run_table(args) -> int:
    from deepdip.baselines.tables import check_table_fit, fit_table, predict_table_catalog, read_photometry_table
    from deepdip.ingest.options import parse_mapping

    def opt(name, default=None):
        value = getattr(args, "table_" + name)
        return default if value is None else value

    zgrid = table_zgrid(opt("survey"), opt("zmin"), opt("zmax"), opt("nbins"))
    est = _estimator(args, zgrid)  # parameters refused before the table is read
    _check_save_model(args, args.table)
    if not Path(args.table).is_file():
        raise DeepdipError(f"table {args.table} not found")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = read_photometry_table(
                args.table, survey=opt("survey"), bands=opt("bands"), filters=opt("filters"),
                flux_columns=opt("flux_columns"), mag_columns=opt("mag_columns"), err_columns=opt("err_columns"),
                err_kind=opt("err_kind", "auto"), flux_unit=opt("flux_unit", "nanomaggy"),
                nondetect_val=opt("nondetect_val"), nonobserved_val=opt("nonobserved_val", -99.0),
                mag_limits=parse_mapping(opt("mag_limit"), "--mag-limit", float),
                columns=parse_mapping(opt("column"), "--column"), extinction_columns=opt("extinction_columns"),
                extinction_coeffs=parse_mapping(opt("extinction_coeff"), "--extinction-coeff", float),
                extra_columns="" if est.settings["extra_columns"] == "auto" else est.settings["extra_columns"],
                n_folds=opt("folds", 5), fold_seed=opt("fold_seed", 0))
        finally:
            for w in caught:
                print(f"deepdip baseline: warning: {w.message}", file=sys.stderr)
    if not 0 <= args.fold < table.n_folds:
        raise DeepdipError(f"--fold must be in 0..{table.n_folds - 1} for this table (--folds {table.n_folds})")
    check_table_fit(est, table)
    t0 = time.perf_counter()
    print(f"fitting {args.method} on fold != {args.fold} of {args.table} ({len(table)} rows) ...", flush=True)
    fit_table(est, table, args.fold)
    fit_s = time.perf_counter() - t0
    rows = table.split_rows(args.rows, fold=args.fold)
    predict_table_catalog(est, table, rows, args.out, overwrite=args.overwrite)
    if args.save_model is not None:
        est.save(args.save_model, overwrite=args.overwrite)
    print(f"{args.method}: fitted on {est.n_train_} galaxies in {fit_s:.1f} s, predicted {len(rows)} "
          f"in {time.perf_counter() - t0 - fit_s:.1f} s -> {args.out}")
    return 0
