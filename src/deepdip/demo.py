"""``deepdip demo``: the whole chain on a mock survey it generates itself (the README's main job).

simulate an ``sdss`` mock -> train the CNN on the other folds for a fixed number of epochs ->
predict the test fold -> fit every catalogue baseline on the same split -> evaluate all side by
side -> one report (``index.html``, ``metrics.json``, figures, a gallery of cutouts with their PDFs).

Reproducible: every random choice derives from ``seed`` and the CNN trains a fixed number of epochs
(the model's default, 30 for ``compact``), so the same command on the same hardware and thread count
writes the same ``metrics.json`` byte for byte, however loaded the machine is. ``minutes`` instead
fits training into a wall-clock budget: the epochs then depend on the machine's speed, and so do the
numbers. What else could vary, and why it does not:

- the mock: each block of galaxies draws from ``SeedSequence([seed, block])``, whatever the number
  of simulation workers (tests/test_simulate.py);
- the CNN: batch order, augmentation and dropout are drawn from (seed, epoch, step) in the training
  process, the DataLoader workers only read; no early stopping; the torch thread count is fixed by
  the core count (see ``deepdip.train.member.train_member``);
- the baselines: one thread each (``n_jobs=1``), LightGBM with ``deterministic=True``; the random
  forest and boosted trees are seeded;
- the precision: fp32 (``precision="32-true"``) unlike ``train``/``predict``, whose default ``auto``
  takes bf16 where this hardware runs it clearly faster. The demo is the README's reference table,
  so it computes the same way on every machine; ``--precision auto`` runs it the fast way.

Each step's output is kept in ``DIR``; running the same command again reuses finished steps
(the store, the trained members, the catalogues), so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from deepdip.atomic import write_json_atomic
from deepdip.errors import DeepdipError

BASELINES = ("knn", "rf", "boost", "bpz")
N_FOLDS = 5   # folds of a simulated store (deepdip.store.writer.StoreWriter's default)


def _step(title: str):
    print(f"\n== {title} ==", flush=True)
    return time.monotonic()


MIN_N = 100   # below this the five folds leave too few training galaxies for anything but a crash


def check_options(out, *, n: int, survey: str, model: str, minutes: float | None, epochs: int | None,
                  seed: int, workers: int, fold: int, ensemble: int, baselines, precision: str = "32-true") -> None:
    """Refuse any bad option before any work (a 20,000-galaxy simulation takes a minute or more)."""
    from deepdip.surveys import load_survey
    from deepdip.train.config import MODEL_DEFAULTS

    def whole(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DeepdipError(f"--{name} must be an integer >= {low}, got {value!r}")

    whole("n", n, MIN_N)
    whole("seed", seed, 0)
    whole("workers", workers, 1)
    whole("ensemble", ensemble, 1)
    whole("fold", fold, 0)
    if fold >= N_FOLDS:
        raise DeepdipError(f"--fold must be 0..{N_FOLDS - 1} (the mock has {N_FOLDS} folds), got {fold}")
    if epochs is not None:
        whole("epochs", epochs, 1)
    if minutes is not None and not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise DeepdipError(f"--minutes must be a positive number of minutes, got {minutes!r}")
    from deepdip.hardware import check_precision

    check_precision(precision)
    if model not in MODEL_DEFAULTS:
        raise DeepdipError(f"unknown model {model!r}; choose from {', '.join(MODEL_DEFAULTS)}")
    baselines = tuple(baselines)
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise DeepdipError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    if len(set(baselines)) != len(baselines):
        raise DeepdipError(f"a baseline is named twice in {','.join(baselines)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DeepdipError(f"--out {out} is a file, not a folder")
    load_survey(survey)   # an unknown preset is refused here, with the list of known ones


def run_demo(out, *, n: int = 20000, survey: str = "sdss", model: str = "compact", minutes: float | None = None,
             epochs: int | None = None, seed: int = 1, workers: int = 2, fold: int = 0, ensemble: int = 1,
             baselines=BASELINES, precision: str = "32-true", progress: bool = True) -> dict:
    """Run the demo into ``out``; return the metrics of every method (also in ``out/metrics.json``).

    A preset with an ``evaluation`` (the deep ones) also gets its own conventions printed and in
    ``out/conventions.json`` (eta at each outlier threshold, per magnitude and z bin;
    :mod:`deepdip.report.conventions`), and with an ``external_test`` the CNN and every baseline
    also predict ``n // 4`` galaxies of that deeper preset, those fainter than the training limit.

    Args:
        out: output folder (created; steps already done there are reused).
        n: galaxies in the mock survey.
        survey: survey preset of the mock.
        model: CNN model (``compact`` trains well on a CPU in minutes; ``pasquet19`` is the paper's).
        minutes: optional wall-clock budget of CNN training (all ensemble members together); the
            number of epochs then depends on the machine's speed (not reproducible).
        epochs: epochs per CNN member (default: the model's, 30 for ``compact``); with ``minutes``
            the most the budget may plan.
        seed: the one seed of the mock, the folds and the training.
        workers: simulation worker processes.
        fold: test fold; every method trains on the other folds.
        ensemble: CNN members whose PDFs are averaged.
        baselines: catalogue baselines to compare with.
        precision: of the CNN's training and prediction (``32-true``, ``bf16-mixed`` or ``auto``);
            fp32 by default so that the reference numbers do not depend on the machine's bf16.
    """
    from deepdip.baselines import make_baseline
    from deepdip.gallery import write_gallery
    from deepdip.predict.core import predict_store
    from deepdip.report import evaluate
    from deepdip.report.conventions import convention_table, conventions, score_catalog
    from deepdip.report.floor import information_floor
    from deepdip.report.html import figure, section
    from deepdip.simulate.pipeline import simulate_store
    from deepdip.store import CutoutStore
    from deepdip.surveys import load_survey
    from deepdip.train.config import MODEL_DEFAULTS
    from deepdip.train.run import train

    check_options(out, n=n, survey=survey, model=model, minutes=minutes, epochs=epochs, seed=seed,
                  workers=workers, fold=fold, ensemble=ensemble, baselines=baselines, precision=precision)
    baselines = tuple(baselines)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    preset = load_survey(survey)

    conv = conventions(preset)
    ext_spec = conv.get("external_test")
    external = None if ext_spec is None else {**ext_spec, "n": max(MIN_N, n // 4)}

    t = _step(f"1/5 simulate {n} {survey} galaxies")
    store_path = out / f"mock_{survey}_n{n}_seed{seed}.h5"
    if not store_path.exists():
        simulate_store(preset, n=n, seed=seed, out=store_path, workers=workers, progress=progress)
    store = CutoutStore(store_path)
    if len(store) != n:
        raise DeepdipError(f"{store_path} holds {len(store)} galaxies, not {n}: remove it or use another --out")
    timings["simulate_s"] = time.monotonic() - t

    if minutes is None:
        plan = f"{epochs or MODEL_DEFAULTS[model]['epochs']} epochs"
    else:
        plan = f"{minutes:g} min budget" + (f", at most {epochs} epochs" if epochs else "")
    t = _step(f"2/5 train the {model} CNN on folds != {fold} ({plan})")
    run_dir = out / f"cnn_{model}"
    train(store, fold=fold, model=model, ensemble=ensemble, epochs=epochs, max_minutes=minutes, out=run_dir,
          seed=seed, precision=precision, progress=progress)
    timings["train_s"] = time.monotonic() - t

    t = _step(f"3/5 predict fold {fold} with the CNN")
    catalogs = {"cnn": out / "cnn.parquet"}
    # The demo's own files in its own folder: a rerun replaces them (the models may have changed).
    predict_store(run_dir, store, catalogs["cnn"], rows="test", precision=precision, progress=progress,
                  overwrite=True)
    timings["predict_s"] = time.monotonic() - t

    t = _step(f"4/5 catalogue baselines on the same split: {', '.join(baselines)}")
    test_rows = store.split_rows("test", fold)
    fitted = {}
    for method in baselines:
        path = catalogs[method] = out / f"{method}.parquet"
        if path.exists() and external is None:
            continue
        t_m = time.monotonic()
        fitted[method] = make_baseline(method, preset.zgrid).fit(store, fold)
        fitted[method].predict_catalog(store, test_rows, path, progress=progress, overwrite=True)
        timings[f"{method}_s"] = time.monotonic() - t_m
        print(f"   {method}: {timings[f'{method}_s']:.0f} s", flush=True)
    if external is not None:
        t = _step(f"4b/5 external test: {external['n']} {external['survey']} galaxies, those fainter than "
                  f"{conv['magnitude']} = {external['fainter_than']:g} (no training galaxy is)")
        ext_catalogs = _external_test(external, run_dir, fitted, out, seed, workers, conv["magnitude"], precision,
                                      progress)
        timings["external_s"] = time.monotonic() - t

    t = _step("5/5 evaluate and write the report")
    gallery = write_gallery(store_path, [catalogs["cnn"]] + [catalogs[m] for m in baselines[:1]],
                            out / "gallery.png", n=12, seed=seed)
    gallery_html = section("Example galaxies", figure(gallery, "gri composites of test-fold galaxies and their "
                                                      "redshift PDFs", relative_to=out))
    floor = information_floor(store, fold)
    metrics = evaluate([catalogs[k] for k in catalogs], out, names=list(catalogs), overwrite=True,
                       title=f"deepdip demo: {survey} mock, {n} galaxies, test fold {fold}",
                       extra_sections=[_floor_section(floor), gallery_html])
    # Beside the report's metrics, not inside them: the floor uses truths no estimator may see.
    write_json_atomic(out / "information_floor.json", floor)
    timings["evaluate_s"] = time.monotonic() - t
    write_json_atomic(out / "timings.json", timings)
    _print_table(metrics, list(catalogs))
    for key, label in FLOOR_ROWS.items():
        if key in floor:
            m = floor[key]
            print(f"{'floor':<8}{m['sigma_mad']:>11.4f}{m['outlier_frac']:>11.3%}   {label} (uses the mock's truths)")
    if preset.get("evaluation"):
        deep = {"test": {k: score_catalog(p, conv) for k, p in catalogs.items()}}
        print(f"\n{survey} conventions, test fold {fold}:\n" + convention_table(deep["test"], conv))
        if external is not None:
            ext_conv = {**conv, "mag_edges": external.get("mag_edges")}
            deep["external"] = {k: score_catalog(p, ext_conv) for k, p in ext_catalogs.items()}
            print(f"\nexternal test ({conv['magnitude']} > {external['fainter_than']:g}):\n"
                  + convention_table(deep["external"], ext_conv))
        write_json_atomic(out / "conventions.json", deep)
    print(f"\nreport: {out / 'index.html'}\nmetrics: {out / 'metrics.json'}")
    return metrics


def _external_test(spec: dict, run_dir, fitted: dict, out, seed: int, workers: int, band: str, precision: str,
                   progress: bool) -> dict:
    """Predict galaxies fainter than the training set (a deeper mock of the same population) with
    the CNN and every fitted baseline; returns their catalogues (in ``out``)."""
    from deepdip.predict.core import predict_store
    from deepdip.simulate.pipeline import simulate_store
    from deepdip.store import CutoutStore
    from deepdip.surveys import load_survey

    path = out / f"external_{spec['survey']}_n{spec['n']}_seed{seed + 1}.h5"
    if not path.exists():
        simulate_store(load_survey(spec["survey"]), n=spec["n"], seed=seed + 1, out=path, workers=workers,
                       progress=progress)
    store = CutoutStore(path)
    # the survey selects its galaxies on the true magnitude (mag_<band>), so the external test does too
    rows = np.flatnonzero(store.column(f"mag_{band}").astype(np.float64) > float(spec["fainter_than"]))
    if len(rows) == 0:
        raise DeepdipError(f"{path}: no galaxy fainter than {band} = {spec['fainter_than']}")
    catalogs = {"cnn": out / "external_cnn.parquet"}
    predict_store(run_dir, store, catalogs["cnn"], rows=rows, precision=precision, progress=progress, overwrite=True)
    for method, est in fitted.items():
        catalogs[method] = out / f"external_{method}.parquet"
        est.predict_catalog(store, rows, catalogs[method], progress=progress, overwrite=True)
    return catalogs


FLOOR_ROWS = {   # deepdip.report.floor keys -> labels of the report
    "bayes_true_photometry": "Bayes, noise-free magnitudes",
    "bayes_measured_photometry": "Bayes, measured photometry taken as unbiased",
    "lgbm_true_magnitudes": "boosted trees, noise-free magnitudes",
    "lgbm_true_magnitudes_morphology": "boosted trees, noise-free magnitudes + morphology",
}


def _floor_section(floor: dict) -> str:
    """The information floor (deepdip.report.floor) as a reference table for the report."""
    from deepdip.report.html import metrics_table, paragraph, section

    table = metrics_table({label: floor[k] for k, label in FLOOR_ROWS.items() if k in floor})
    return section(
        "Information floor of the mock",
        paragraph("Reference lines, not competitors: they use the mock's truths, which no estimator sees. "
                  "'Bayes' is the median of the exact p(z | magnitudes) of the mock's population model: the best "
                  "any method could do from those magnitudes with unlimited training data. 'Boosted trees' is the "
                  "boost baseline's learner trained on the truths (noise-free magnitudes; plus the true size, "
                  f"bulge fraction and axis ratio the images were drawn from) at this training size "
                  f"({floor['n_train']} galaxies). How far below the catalogue baselines any method, the CNN "
                  "included, can get on this mock is bounded by these rows."),
        table)


def _print_table(metrics: dict, names: list[str]) -> None:
    keys = [("sigma_mad", "sigma_MAD", ".4f"), ("outlier_frac", "eta", ".3%"), ("bias", "bias", "+.5f"),
            ("pit_ks", "PIT KS", ".3f"), ("crps", "CRPS", ".4f"), ("n", "n", "d")]
    print("\n" + f"{'method':<8}" + "".join(f"{label:>11}" for _, label, _ in keys))
    for name in names:
        m = metrics[name]
        cells = "".join(f"{format(m[k], fmt) if m.get(k) is not None else '-':>11}" for k, _, fmt in keys)
        print(f"{name:<8}{cells}")


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder (report in OUT/index.html)")
    parser.add_argument("--n", type=int, default=20000, help="galaxies in the mock survey (default 20000)")
    parser.add_argument("--survey", default="sdss", help="survey preset (default sdss)")
    parser.add_argument("--model", default="compact", choices=["compact", "pasquet19"], help="CNN model")
    parser.add_argument("--epochs", type=int, default=None,
                        help="CNN training epochs per member (default: the model's, 30 for compact); "
                             "the same command gives the same numbers")
    parser.add_argument("--minutes", type=float, default=None,
                        help="train within a wall-clock budget instead (the epochs, and so the numbers, then "
                             "depend on the machine's speed)")
    parser.add_argument("--ensemble", type=int, default=1, help="CNN ensemble members (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mock, folds and training")
    parser.add_argument("--workers", type=int, default=2, help="simulation worker processes (default 2)")
    parser.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated catalogue baselines")
    parser.add_argument("--precision", default="32-true",
                        help="CNN precision: 32-true (default: the reference numbers, the same on every machine), "
                             "bf16-mixed, or auto (bf16 where this hardware runs it clearly faster)")


def run(args) -> int:
    baselines = tuple(b for b in args.baselines.split(",") if b)
    run_demo(args.out, n=args.n, survey=args.survey, model=args.model, minutes=args.minutes, epochs=args.epochs,
             seed=args.seed, workers=args.workers, ensemble=args.ensemble, baselines=baselines,
             precision=args.precision)
    return 0
