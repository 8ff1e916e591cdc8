"""``deepdip baseline STORE --method knn|rf|boost|bpz --fold K --out FILE.parquet``.

Fits a catalogue baseline on the store's rows with ``fold != K`` (measured photometry only) and
writes the photo-z catalogue of the test rows (``fold == K``, or all rows with ``--rows all``).
Every parameter of every method is an option, declared once in the method's ``PARAMS``.
"""

from __future__ import annotations

import argparse
import time
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="cutout store (.h5 file or folder of shards)")
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
    group = parser.add_argument_group("method parameters (default: the method's own)")
    n_methods = len(METHODS)
    for name, (p, methods) in _method_params().items():
        where = "" if len(methods) == n_methods else f" [{', '.join(methods)}]"
        default = "" if p.default in (None, "") else f" (default {p.default})"
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"param_{name}", type=p.type, default=None,
                           metavar=p.type.__name__.upper(), help=f"{p.help}{default}{where}")


def run(args) -> int:
    from deepdip.store import CutoutStore

    store = CutoutStore(args.store)
    if not 0 <= args.fold < store.n_folds:
        raise DeepdipError(f"--fold must be in 0..{store.n_folds - 1} for this store")
    cls = baseline_class(args.method)
    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    wrong = sorted(set(given) - set(cls.PARAMS))
    if wrong:
        raise DeepdipError(f"--{wrong[0].replace('_', '-')} does not apply to --method {args.method}")
    try:
        est = cls(**given)
    except ValueError as exc:
        raise DeepdipError(str(exc)) from None
    if args.save_model is not None:  # refuse a bad model path before the fit, not after
        if Path(args.save_model).resolve() == Path(args.out).resolve():
            raise DeepdipError("--save-model and --out must be different files")
        check_output(args.save_model, inputs=(args.store,), overwrite=args.overwrite)
    t0 = time.perf_counter()
    print(f"fitting {args.method} on fold != {args.fold} ...", flush=True)
    est.fit(store, args.fold)
    fit_s = time.perf_counter() - t0
    rows = store.split_rows(args.rows, fold=args.fold)
    est.predict_catalog(store, rows, args.out, overwrite=args.overwrite)
    if args.save_model is not None:
        est.save(args.save_model, overwrite=args.overwrite)
    print(f"{args.method}: fitted on {est.n_train_} galaxies in {fit_s:.1f} s, predicted {len(rows)} "
          f"in {time.perf_counter() - t0 - fit_s:.1f} s -> {args.out}")
    return 0
